"""Property tests of the safety monitor's invariant (safety.py module docstring).

For any sequence of states (NaN, inf, 1e9, out of limits, stale and future stamps),
commands (the same, or None), e-stop signals and resets:

* a command is finite, inside the hard joint limits, within one joint step of the
  (clamped) last finite measured position, and inside the margin band unless that
  joint is already outside it, in which case it does not go further out;
* a hold commands exactly the (clamped) last finite measured position;
* a stale (or future-stamped) state holds on that very tick;
* once an e-stop signal is seen, every decision holds until reset_estop(), even
  when the signal clears by itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from her_goals import RobotState
from her_goals.safety_flags import SafetyFlag
from her_policy.deploy.safety import SafetyConfig, SafetyDecision, SafetyMonitor
from her_policy.deploy.toy_arm import ToyArm

ARM = ToyArm()
DT = 0.04
TIMEOUT_NS = 100_000_000
EPS = 1e-12  # float rounding of ref + scale * delta

SPECIAL = [math.nan, math.inf, -math.inf, 1e9, -1e9, 1e300, -1e300, 0.0, 2.5, -2.6, 0.4, 1.8]


def values(lo: float = -3.5, hi: float = 3.5) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(lo, hi),
        st.floats(lo, hi),
        st.sampled_from(SPECIAL),
        st.floats(allow_nan=True, allow_infinity=True),
    )


def vectors(n: int = 3) -> st.SearchStrategy[np.ndarray]:
    return st.lists(values(), min_size=n, max_size=n).map(lambda v: np.array(v, dtype=np.float64))


def near(q: np.ndarray, scale: float) -> st.SearchStrategy[np.ndarray]:
    """Commands near ``q``: the realistic case, where the interesting clamps happen."""
    return st.lists(st.floats(-scale, scale), min_size=q.size, max_size=q.size).map(
        lambda d: q + np.array(d)
    )


def make_monitor(margin: float = 0.1, rows: str = "position", wide: bool = False) -> SafetyMonitor:
    box = (
        {"workspace_low_m": (-1.0, -1.0, 0.0), "workspace_high_m": (1.0, 1.0, 1.0)} if wide else {}
    )
    cfg = SafetyConfig(joint_limit_margin_rad=margin, singularity_jacobian_rows=rows, **box)  # type: ignore[arg-type]
    return SafetyMonitor.from_kinematics(cfg, ARM, max_joint_step_rad=0.08, control_period_s=DT)


def check_invariant(m: SafetyMonitor, d: SafetyDecision, last_finite: np.ndarray | None) -> None:
    if last_finite is None:
        assert d.command is None and d.hold
        return
    c = d.command
    assert c is not None
    assert c.shape == (m.n_joints,)
    assert np.isfinite(c).all()
    low, high = m.joint_low_rad, m.joint_high_rad
    ref = np.clip(last_finite, low, high)
    assert (c >= low).all() and (c <= high).all(), (c, low, high)
    assert (np.abs(c - ref) <= m.joint_step_cap_rad + EPS).all(), (c, ref)
    band_lo, band_hi = m.band_low_rad, m.band_high_rad
    # Inside the band, or between the reference and the band (never further out).
    assert (c >= np.minimum(band_lo, ref) - EPS).all(), (c, ref)
    assert (c <= np.maximum(band_hi, ref) + EPS).all(), (c, ref)
    if ((ref >= band_lo) & (ref <= band_hi)).all():
        assert ((c >= band_lo - EPS) & (c <= band_hi + EPS)).all()
    if d.hold:
        np.testing.assert_array_equal(c, ref)
        assert d.gripper_m is None
    assert 0.0 <= d.safety_cost <= 1.0
    assert d.intervened == (d.flags != 0)


@dataclass
class Tick:
    q: np.ndarray
    command: np.ndarray | None
    age_ns: int
    estop: bool
    reset: bool
    upstream: int
    velocity: np.ndarray


ages = st.one_of(
    st.integers(-2 * TIMEOUT_NS, 2 * TIMEOUT_NS),
    st.sampled_from([0, TIMEOUT_NS, TIMEOUT_NS + 1, -TIMEOUT_NS - 1, 10**12, -(10**12)]),
)


@st.composite
def ticks(draw: Any) -> Tick:
    q = draw(st.one_of(vectors(), near(ARM.home_qpos, 3.0)))
    finite_q = q if np.isfinite(q).all() else ARM.home_qpos
    command = draw(st.one_of(st.none(), vectors(), near(finite_q, 0.3), near(finite_q, 0.05)))
    return Tick(
        q=q,
        command=command,
        age_ns=draw(ages),
        estop=draw(st.booleans().map(lambda b: b and draw(st.integers(0, 9)) == 0)),
        reset=draw(st.integers(0, 9)) == 0,
        upstream=draw(
            st.sampled_from([0, 0, 0, int(SafetyFlag.CLIPPED), int(SafetyFlag.NON_FINITE)])
        ),
        velocity=draw(st.one_of(st.just(np.zeros(3)), vectors())),
    )


def run(m: SafetyMonitor, seq: list[Tick]) -> None:
    last_finite: np.ndarray | None = None
    latched = False
    now = 10**10
    for t in seq:
        now += 40_000_000
        if t.reset:
            assert m.reset_estop()
            latched = False
        st_ = RobotState(ARM.joint_names, t.q, velocity=t.velocity, stamp_ns=now - t.age_ns)
        d = m.check(st_, now, t.command, gripper_m=0.04, upstream_flags=t.upstream, estop=t.estop)
        if np.isfinite(t.q).all():
            last_finite = t.q
        latched = latched or t.estop
        check_invariant(m, d, last_finite)
        stale = t.age_ns > TIMEOUT_NS or t.age_ns < -TIMEOUT_NS
        if stale:
            assert d.hold and d.flags & SafetyFlag.STALE_STATE
        if latched:
            assert d.hold and d.flags & SafetyFlag.ESTOP
        assert m.estop_latched == latched
        if t.command is None or t.upstream & SafetyFlag.NON_FINITE or not np.isfinite(t.q).all():
            assert d.hold


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    seq=st.lists(ticks(), min_size=1, max_size=25), margin=st.sampled_from([0.0, 0.05, 0.1, 0.3])
)
def test_invariant_over_tick_sequences(seq: list[Tick], margin: float) -> None:
    run(make_monitor(margin), seq)


@FAST
@given(seq=st.lists(ticks(), min_size=1, max_size=25))
def test_invariant_with_only_joint_limits_binding(seq: list[Tick]) -> None:
    """A box the toy arm cannot leave, and the full-Jacobian condition: joint limits alone."""
    run(make_monitor(0.1, rows="full", wide=True), seq)


@settings(max_examples=100, deadline=None)
@given(
    q=near(ARM.home_qpos, 3.0),
    age_ns=st.integers(TIMEOUT_NS + 1, 10**15) | st.integers(-(10**15), -TIMEOUT_NS - 1),
    command=vectors(),
)
def test_stale_holds_on_the_very_next_tick(q: np.ndarray, age_ns: int, command: np.ndarray) -> None:
    m = make_monitor()
    now = 10**16
    fresh = m.check(RobotState(ARM.joint_names, q, stamp_ns=now), now, q)
    assert not fresh.flags & SafetyFlag.STALE_STATE
    d = m.check(
        RobotState(ARM.joint_names, q, stamp_ns=now + 40_000_000 - age_ns),
        now + 40_000_000,
        command,
    )
    assert d.hold and d.flags & SafetyFlag.STALE_STATE
    np.testing.assert_array_equal(d.command, np.clip(q, *ARM.joint_limits))


@settings(max_examples=60, deadline=None)
@given(
    n_before=st.integers(0, 5),
    n_after=st.integers(1, 30),
    commands=st.lists(vectors(), min_size=36, max_size=36),
)
def test_estop_holds_until_reset_even_when_the_signal_clears(
    n_before: int, n_after: int, commands: list[np.ndarray]
) -> None:
    m = make_monitor()
    q = ARM.home_qpos
    t = 0
    for i in range(n_before):
        m.check(RobotState(ARM.joint_names, q, stamp_ns=t), t, commands[i])
    m.check(RobotState(ARM.joint_names, q, stamp_ns=t), t, commands[n_before], estop=True)
    for i in range(n_after):  # the signal is gone; the latch is not
        d = m.check(RobotState(ARM.joint_names, q, stamp_ns=t), t, commands[n_before + 1 + i % 30])
        assert d.hold and d.flags & SafetyFlag.ESTOP
        np.testing.assert_array_equal(d.command, q)
    assert m.reset_estop()
    d = m.check(RobotState(ARM.joint_names, q, stamp_ns=t), t, q + 0.01)
    assert not d.hold


def test_invariant_on_the_mujoco_arm() -> None:
    """The same invariant with the real 7-DoF kinematics (fewer examples: FK is costlier)."""
    kin_mod = pytest.importorskip("her_goals.robot.kinematics")
    kin = kin_mod.Kinematics()
    m = SafetyMonitor.from_kinematics(
        SafetyConfig(), kin, max_joint_step_rad=0.1, control_period_s=DT
    )
    low, high = kin.joint_limits
    home = kin.home_qpos

    seven = st.lists(values(), min_size=7, max_size=7).map(lambda v: np.array(v, dtype=np.float64))

    @settings(max_examples=300, deadline=None)
    @given(
        q=st.one_of(seven, near(home, 1.0), near(home, 3.0)),
        cmd=st.one_of(st.none(), seven, near(home, 0.3), near(home, 2.0)),
        age_ns=ages,
    )
    def prop(q: np.ndarray, cmd: np.ndarray | None, age_ns: int) -> None:
        m.reset_estop()
        m._last_finite = None  # each example stands alone
        now = 10**12
        d = m.check(RobotState(kin.joint_names, q, stamp_ns=now - age_ns), now, cmd)
        check_invariant(m, d, q if np.isfinite(q).all() else None)
        if d.command is not None and not d.hold and ((q >= low + 0.1) & (q <= high - 0.1)).all():
            # The predicted tool position stays in the box (or the arm was already out of it).
            p = kin.fk(d.command)
            inside = (p >= m.workspace_low_m - 1e-9).all() and (
                p <= m.workspace_high_m + 1e-9
            ).all()
            assert inside or d.flags & SafetyFlag.WORKSPACE

    prop()
