"""ament_python build of her_bringup: launch files and node parameters, installed into share/.

No Python package: ``ros2 launch her_bringup <file>`` finds the files in
``share/her_bringup/launch`` and the launch files find their YAML in ``share/her_bringup/config``.
"""

from glob import glob

from setuptools import setup

PACKAGE = "her_bringup"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml"))),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="HER-ROS maintainers",
    maintainer_email="maintainers@her-ros.dev",
    description=open("package.xml").read().split("<description>")[1].split("</description>")[0],
    license="Apache-2.0",
)
