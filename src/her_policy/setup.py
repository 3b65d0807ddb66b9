"""ament_python build of her_policy (ROS 2); without ROS the root pyproject.toml installs it."""

from setuptools import find_packages, setup

PACKAGE = "her_policy"
# The launch files and node parameters are her_bringup's.

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        ("bin", ["scripts/her"]),  # `her` on PATH once the workspace is sourced
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="HER-ROS maintainers",
    maintainer_email="maintainers@her-ros.dev",
    description=open("package.xml").read().split("<description>")[1].split("</description>")[0],
    license="Apache-2.0",
    entry_points={"console_scripts": ["policy_node = her_policy.policy_node:main", "her = her_policy.app.cli:main"]},
)
