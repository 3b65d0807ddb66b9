"""Property test of the whole tick: any state and any policy output give a command within limits.

Policy output -> action limits -> workspace pre-clip -> IK -> joint step cap -> safety
monitor, with NaN, inf, 1e9, wrong-length and raising policies, states in and out of
the joint limits, and stale or future stamps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from her_goals import GoalRegion, RobotState
from her_goals.safety_flags import SafetyFlag
from her_policy.deploy.pipeline import build_pipeline
from her_policy.deploy.safety import SafetyConfig
from her_policy.deploy.settings import ControlLoopConfig, SafetyStackConfig
from her_policy.deploy.toy_arm import ToyArm

ARM = ToyArm()
EPS = 1e-12
WILD = [math.nan, math.inf, -math.inf, 1e9, -1e9, 1e300, -1e300, 0.0, 1.0, -1.0]


def wild(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.one_of(st.floats(lo, hi), st.floats(lo, hi), st.sampled_from(WILD), st.floats())


class Policy:
    """Returns whatever the test says, or raises."""

    def __init__(self) -> None:
        self.output: Any = np.zeros(4)

    def __call__(self, obs: Any, goal: Any) -> Any:
        if isinstance(self.output, Exception):
            raise self.output
        return self.output


POLICY = Policy()
CFG = SafetyStackConfig(
    loop=ControlLoopConfig(),
    safety=SafetyConfig(singularity_jacobian_rows="position"),
)
PIPE = build_pipeline(
    CFG,
    actor=POLICY,
    observe=lambda s, prev: np.concatenate([ARM.fk(s.joints(ARM.joint_names)), s.position]),
    kinematics=ARM,
    ik=ARM.ik,
    goal_region=GoalRegion(low=(0.3, -0.2, 0.05), high=(0.7, 0.2, 0.4)),
    tcp_slice=slice(0, 3),
)
MON = PIPE.monitor

outputs = st.one_of(
    st.lists(wild(-3.0, 3.0), min_size=4, max_size=4).map(np.array),
    st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4).map(np.array),
    st.lists(wild(-3.0, 3.0), min_size=0, max_size=6).map(np.array),
    st.just(RuntimeError("policy crashed")),
)
joints = st.one_of(
    st.lists(wild(-3.5, 3.5), min_size=3, max_size=3).map(np.array),
    st.lists(st.floats(-0.3, 0.3), min_size=3, max_size=3).map(
        lambda d: ARM.home_qpos + np.array(d)
    ),
)
ages = st.one_of(st.integers(0, 99_000_000), st.integers(-(10**12), 10**12))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(q=joints, output=outputs, age_ns=ages, estop=st.booleans())
def test_any_state_and_any_policy_output_give_a_command_within_limits(
    q: np.ndarray, output: Any, age_ns: int, estop: bool
) -> None:
    MON.reset_estop()
    MON._last_finite = None  # each example stands alone
    POLICY.output = output
    now = 10**13
    state = RobotState(ARM.joint_names, q, stamp_ns=now - age_ns)
    d = PIPE.tick(state, now, np.array([0.5, 0.0, 0.2]), estop=estop).decision
    if not np.isfinite(q).all():
        assert d.command is None and d.hold
        return
    c = d.command
    assert c is not None and np.isfinite(c).all()
    ref = np.clip(q, MON.joint_low_rad, MON.joint_high_rad)
    assert (c >= MON.joint_low_rad).all() and (c <= MON.joint_high_rad).all()
    assert (np.abs(c - ref) <= MON.joint_step_cap_rad + EPS).all()
    assert (c >= np.minimum(MON.band_low_rad, ref) - EPS).all()
    assert (c <= np.maximum(MON.band_high_rad, ref) + EPS).all()
    if abs(age_ns) > 100_000_000:
        assert d.hold and d.flags & SafetyFlag.STALE_STATE
    if estop:
        assert d.hold and d.flags & SafetyFlag.ESTOP
    finite_output = (
        isinstance(output, np.ndarray) and output.shape == (4,) and np.isfinite(output).all()
    )
    if not finite_output:
        assert d.hold and d.flags & SafetyFlag.NON_FINITE
    if d.hold:
        np.testing.assert_array_equal(c, ref)
