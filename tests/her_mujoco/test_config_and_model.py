"""Arm config loading and model/config mismatches: every error names the thing and the fix."""

import dataclasses
from pathlib import Path

import pytest

from her_goals import ConfigError
from her_goals.config import from_mapping
from her_goals.robot import ArmConfig, Kinematics, load_arm_config, packaged_model_path
from her_mujoco import ArmSim

REPO = Path(__file__).resolve().parents[2]

# A two-joint arm whose names do not match the default config.
OTHER_ARM = """
<mujoco>
  <worldbody>
    <body name="base_link">
      <body name="upper" pos="0 0 0.3">
        <joint name="shoulder" axis="0 0 1" range="-1 1"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/>
        <body name="lower" pos="0.3 0 0">
          <joint name="elbow" axis="0 1 0" range="-2 2"/>
          <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/>
          <site name="tip" pos="0.3 0 0"/>
        </body>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def test_yaml_mirrors_the_defaults() -> None:
    assert load_arm_config(REPO / "config" / "arm.yaml") == ArmConfig()


def test_a_typo_in_the_yaml_names_the_key_and_suggests_the_right_one(tmp_path: Path) -> None:
    text = (REPO / "config" / "arm.yaml").read_text().replace("control_rate_hz", "control_rate_hx")
    path = tmp_path / "arm.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"unknown key 'control_rate_hx'\. Did you mean 'control_rate_hz'\?"):
        load_arm_config(path)


def test_one_home_angle_per_joint_is_required() -> None:
    with pytest.raises(ConfigError, match="home_qpos_rad has 6 values but arm_joints lists 7"):
        from_mapping(ArmConfig, {"home_qpos_rad": [0.0] * 6})


def test_substeps_are_derived_from_rate_and_timestep() -> None:
    cfg = ArmConfig()
    assert cfg.n_substeps == 20
    assert cfg.control_period_s == pytest.approx(0.04)
    assert ArmConfig(control_rate_hz=50.0, timestep_s=0.001).n_substeps == 20


def test_packaged_model_is_shipped_inside_the_package() -> None:
    path = packaged_model_path()
    assert path.is_file() and path.parent.name == "models" and path.parents[2].name == "her_goals"


def test_a_model_without_the_configured_joints_names_them_and_lists_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "other.xml"
    path.write_text(OTHER_ARM)
    cfg = ArmConfig(model_path=path)
    with pytest.raises(ConfigError) as err:
        Kinematics(cfg)
    msg = str(err.value)
    assert "no joint 'joint1'" in msg and "arm_joints" in msg
    assert "shoulder" in msg and "elbow" in msg  # the names the model does have
    assert "Fix:" in msg


def test_a_misspelt_site_gets_a_close_match_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "other.xml"
    path.write_text(OTHER_ARM)
    cfg = ArmConfig(
        model_path=path,
        arm_joints=("shoulder", "elbow"),
        home_qpos_rad=(0.0, 0.0),
        joint_velocity_limits_rad_s=(1.0, 1.0),
        ee_site="tipp",
    )
    with pytest.raises(ConfigError, match=r"no site 'tipp' \(from ee_site.*Did you mean 'tip'\?"):
        Kinematics(cfg)
    # With the right names the same model works for kinematics...
    kin = Kinematics(ArmConfig(
        model_path=path,
        arm_joints=("shoulder", "elbow"),
        home_qpos_rad=(0.0, 0.0),
        joint_velocity_limits_rad_s=(1.0, 1.0),
        ee_site="tip",
    ))
    assert kin.fk([0.0, 0.0]) == pytest.approx([0.6, 0.0, 0.3])
    # ...but the simulator needs actuators, and says how to add one.
    no_hand = dataclasses.replace(
        kin.config, gripper_joints=(), gripper_actuator=None, object_body=None, goal_marker=None
    )
    with pytest.raises(ConfigError, match=r"no actuator driving joint 'shoulder'.*<position joint=\"shoulder\""):
        ArmSim(no_hand)


def test_a_missing_model_file_says_which_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.xml does not exist"):
        Kinematics(ArmConfig(model_path=tmp_path / "nowhere.xml"))


URDF_ARM = """
<robot name="two_link">
  <link name="base_link"/>
  <link name="l1"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="l2"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="tool_tcp"/>
  <joint name="j1" type="revolute"><parent link="base_link"/><child link="l1"/><origin xyz="0 0 0.3"/><axis xyz="0 0 1"/><limit lower="-1" upper="1" effort="10" velocity="1"/></joint>
  <joint name="j2" type="revolute"><parent link="l1"/><child link="l2"/><origin xyz="0.3 0 0"/><axis xyz="0 1 0"/><limit lower="-2" upper="2" effort="10" velocity="1"/></joint>
  <joint name="tcp_fixed" type="fixed"><parent link="l2"/><child link="tool_tcp"/><origin xyz="0.3 0 0"/></joint>
</robot>
"""


def test_kinematics_from_a_urdf_keeps_the_fixed_tcp_link(tmp_path: Path) -> None:
    path = tmp_path / "arm.urdf"
    path.write_text(URDF_ARM)
    kin = Kinematics(ArmConfig(
        model_path=path,
        arm_joints=("j1", "j2"),
        home_qpos_rad=(0.0, 0.0),
        joint_velocity_limits_rad_s=(1.0, 1.0),
        ee_site="tool_tcp",  # a link, not a site: URDF has no sites
    ))
    assert kin.fk([0.0, 0.0]) == pytest.approx([0.6, 0.0, 0.3])
    # Joint 2 pitches about y: +90 deg points the forearm down.
    assert kin.fk([0.0, 1.5707963]) == pytest.approx([0.3, 0.0, 0.0], abs=1e-6)
    low, high = kin.joint_limits
    assert low.tolist() == [-1.0, -2.0] and high.tolist() == [1.0, 2.0]
