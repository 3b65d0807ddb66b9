"""Control-loop runner: tick pipeline, closed loop on the MuJoCo arm with bad policies, recording, cadence."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from her_goals import GoalRegion, RobotState, get_goal_space, robot
from her_goals.safety_flags import SafetyFlag, SafetyStatus
from her_policy.deploy.loop import ControlLoop
from her_policy.deploy.pipeline import CachedKinematics, TickPipeline, build_pipeline
from her_policy.deploy.safety import SafetyConfig, SafetyDecision
from her_policy.deploy.settings import ControlLoopConfig, SafetyStackConfig, load_safety_config
from her_policy.deploy.sinks import ListSink, RecorderSink, StepRecord
from her_policy.deploy.toy_arm import ToyArm

EPS = 1e-9

# -- the toy arm: fast, analytic, no MuJoCo --------------------------------------------------

TOY = ToyArm()


class ToyPlant:
    """The toy arm as a perfect position-controlled plant with an injectable state stamp."""

    def __init__(self) -> None:
        self.q = TOY.home_qpos.copy()
        self.t_ns = 0
        self.stale_ns = 0  # age added to the next state's stamp

    def state(self) -> RobotState:
        return RobotState(TOY.joint_names, self.q.copy(), stamp_ns=self.t_ns - self.stale_ns)

    def send(self, d: SafetyDecision) -> None:
        if d.command is not None:
            self.q = d.command.copy()
        self.t_ns += 40_000_000


def toy_pipeline(
    actor: Callable[[Any, Any], Any], **loop_kw: Any
) -> tuple[TickPipeline, SafetyStackConfig]:
    cfg = SafetyStackConfig(
        loop=ControlLoopConfig(**loop_kw),
        safety=SafetyConfig(
            singularity_jacobian_rows="position"
        ),  # the toy's 6x3 J never is singular
    )
    pipe = build_pipeline(
        cfg,
        actor=actor,
        observe=lambda s, prev: np.concatenate([TOY.fk(s.joints(TOY.joint_names)), s.position]),
        kinematics=TOY,
        ik=TOY.ik,
        achieved_goal=lambda s: TOY.fk(s.joints(TOY.joint_names)),
        goal_region=GoalRegion(low=(0.3, -0.2, 0.05), high=(0.7, 0.2, 0.4)),
        tcp_slice=slice(0, 3),
    )
    return pipe, cfg


def test_config_file_loads_strictly(tmp_path: Path):
    cfg = load_safety_config()
    assert cfg == SafetyStackConfig()  # the YAML spells out the defaults
    bad = tmp_path / "safety.yaml"
    bad.write_text("safety:\n  stale_state_timeout: 0.1\n")
    with pytest.raises(Exception, match="stale_state_timeout_s"):
        load_safety_config(bad)


def test_tick_passes_a_reasonable_action_and_records_what_was_applied():
    pipe, _ = toy_pipeline(lambda o, g: np.array([0.2, 0.0, -0.2, 0.5]))
    plant = ToyPlant()
    r = pipe.tick(plant.state(), plant.t_ns, np.array([0.5, 0.0, 0.2]))
    d = r.decision
    assert d.flags == 0 and not d.hold and d.status is SafetyStatus.OK
    np.testing.assert_allclose(r.applied_action, [0.2, 0.0, -0.2, 0.5])
    assert d.gripper_m == pytest.approx(0.06)
    tcp0 = TOY.fk(plant.q)
    np.testing.assert_allclose(TOY.fk(d.command) - tcp0, [0.01, 0.0, -0.01], atol=2e-3)
    assert all(t >= 0 for t in r.stage_ns)


@pytest.mark.parametrize(
    "bad", [np.full(4, np.nan), np.array([np.inf, 0, 0, 0]), np.array([0.1, 0.2]), "raise"]
)
def test_broken_policy_output_holds(bad: Any):
    def actor(o: Any, g: Any) -> Any:
        if isinstance(bad, str):
            raise RuntimeError("CUDA out of memory")
        return bad

    pipe, _ = toy_pipeline(actor)
    plant = ToyPlant()
    r = pipe.tick(plant.state(), 0, np.array([0.5, 0.0, 0.2]))
    assert r.decision.hold and r.decision.flags & SafetyFlag.NON_FINITE
    np.testing.assert_array_equal(r.decision.command, plant.q)
    np.testing.assert_array_equal(r.applied_action[:3], 0.0)


def test_nan_state_holds_and_never_reaches_the_actor():
    called = []
    pipe, _ = toy_pipeline(lambda o, g: called.append(1) or np.zeros(4))
    plant = ToyPlant()
    pipe.tick(plant.state(), 0, np.zeros(3))
    nan_state = RobotState(TOY.joint_names, np.array([np.nan, 0.1, -1.0]), stamp_ns=0)
    r = pipe.tick(nan_state, 0, np.zeros(3))
    assert called == [1]
    assert r.decision.hold and r.decision.flags & SafetyFlag.NON_FINITE
    np.testing.assert_array_equal(r.decision.command, plant.q)
    assert r.observation is None


def test_huge_action_is_clipped_and_step_limited():
    pipe, cfg = toy_pipeline(lambda o, g: np.array([1e9, -1e9, 1e9, 1e9]))
    plant = ToyPlant()
    r = pipe.tick(plant.state(), 0, np.zeros(3))
    d = r.decision
    assert d.flags & SafetyFlag.CLIPPED and d.flags & SafetyFlag.STEP_LIMITED
    assert np.abs(d.command - plant.q).max() <= pipe.monitor.joint_step_cap_rad.max() + EPS
    assert np.linalg.norm(TOY.fk(d.command) - TOY.fk(plant.q)) <= cfg.limits.max_ee_step_m + 5e-3


def test_target_below_the_table_slides_along_the_floor():
    plant = ToyPlant()
    plant.q = np.array([0.0, 0.12, -1.3])  # tcp 2.5 cm above the table
    pipe, _ = toy_pipeline(lambda o, g: np.array([1.0, 0.0, -1.0, 0.0]))  # forward and down
    r = pipe.tick(plant.state(), 0, np.zeros(3))
    assert r.decision.flags & SafetyFlag.WORKSPACE
    p0, p1 = TOY.fk(plant.q), TOY.fk(r.decision.command)
    assert p1[0] > p0[0] + 0.01  # it still moved forward
    assert p1[2] >= 0.01 - 1e-3  # and stopped at the floor
    assert 0.0 < r.applied_action[0] < 1.0


def test_stale_state_in_the_loop_holds_on_that_tick():
    pipe, cfg = toy_pipeline(lambda o, g: np.array([0.5, 0.3, 0.0, 0.0]))
    plant = ToyPlant()
    sink = ListSink()
    ticks: list[tuple[int, SafetyDecision, np.ndarray]] = []

    def read() -> RobotState:
        plant.stale_ns = 150_000_000 if len(ticks) == 4 else 0
        return plant.state()

    def send(d: SafetyDecision) -> None:
        ticks.append((len(ticks), d, plant.q.copy()))
        plant.send(d)

    loop = ControlLoop(
        pipe,
        cfg.loop,
        read_state=read,
        send_command=send,
        now_ns=lambda: plant.t_ns,
        sink=sink,
        realtime=False,
    )
    result = loop.run_episode([0.5, 0.0, 0.2], max_ticks=8)
    assert result.ticks == 8
    for i, d, q_before in ticks:
        if i == 4:
            assert d.hold and d.flags & SafetyFlag.STALE_STATE and d.status is SafetyStatus.STALE
            np.testing.assert_array_equal(d.command, q_before)
        else:
            assert not d.flags & SafetyFlag.STALE_STATE
    assert result.flag_counts["STALE_STATE"] == 1
    assert sink.steps[4].safety_flags & SafetyFlag.STALE_STATE
    assert sink.steps[4].safety_cost == 1.0


def test_estop_in_the_loop_aborts_and_stays_latched_across_episodes():
    pipe, cfg = toy_pipeline(lambda o, g: np.array([0.1, 0.0, 0.0, 0.0]))
    plant = ToyPlant()
    sink = ListSink()
    n = {"ticks": 0}

    def estop() -> bool:
        n["ticks"] += 1
        return n["ticks"] == 3  # one pulse; the signal clears by itself

    decisions: list[SafetyDecision] = []

    def send(d: SafetyDecision) -> None:
        decisions.append(d)
        plant.send(d)

    loop = ControlLoop(
        pipe,
        cfg.loop,
        read_state=plant.state,
        send_command=send,
        now_ns=lambda: plant.t_ns,
        read_estop=estop,
        sink=sink,
        realtime=False,
    )
    r = loop.run_episode([0.5, 0.0, 0.2], max_ticks=10)
    assert r.aborted and r.reason == "estop" and r.ticks == 3
    assert decisions[-1].hold and decisions[-1].flags & SafetyFlag.ESTOP
    assert sink.episodes[-1]["end"] == ("ABORT", "estop")
    r2 = loop.run_episode([0.5, 0.0, 0.2], max_ticks=10)
    assert r2.aborted and r2.ticks == 1  # still latched: hold, abort
    assert pipe.monitor.reset_estop()
    r3 = loop.run_episode([0.5, 0.0, 0.2], max_ticks=5)
    assert not r3.aborted and r3.ticks == 5 and r3.safety_cost == 0.0


def test_goal_outside_the_region_refuses_the_episode():
    pipe, cfg = toy_pipeline(lambda o, g: np.zeros(4))
    plant = ToyPlant()
    sink = ListSink()
    sent: list[SafetyDecision] = []
    loop = ControlLoop(
        pipe,
        cfg.loop,
        read_state=plant.state,
        send_command=lambda d: sent.append(d) or plant.send(d),
        now_ns=lambda: plant.t_ns,
        sink=sink,
        realtime=False,
    )
    r = loop.run_episode([0.5, 0.0, -0.3])
    assert r.refused and r.ticks == 0
    assert r.safety_cost == 1.0 and r.flag_counts == {"GOAL_OUT_OF_REGION": 1}
    assert len(sent) == 1 and sent[0].hold  # one hold at the measured position
    (step,) = sink.steps
    assert step.safety_flags == SafetyFlag.GOAL_OUT_OF_REGION
    assert sink.episodes[-1]["end"][0] == "ABORT"


def test_step_sink_can_be_a_plain_callable():
    pipe, cfg = toy_pipeline(lambda o, g: np.array([0.1, 0.0, 0.0, 0.0]))
    plant = ToyPlant()
    got: list[StepRecord] = []
    loop = ControlLoop(
        pipe,
        cfg.loop,
        read_state=plant.state,
        send_command=plant.send,
        now_ns=lambda: plant.t_ns,
        sink=got.append,
        realtime=False,
    )
    loop.run_episode([0.5, 0.0, 0.2], max_ticks=5)
    assert len(got) == 5
    assert got[-1].truncated and not got[0].truncated
    np.testing.assert_array_equal(got[1].observation, got[0].next_observation)


def test_realtime_pacing_and_cadence_report():
    pipe, _ = toy_pipeline(lambda o, g: np.array([0.1, 0.0, 0.0, 0.0]))
    plant = ToyPlant()
    cfg = ControlLoopConfig(rate_hz=100.0)
    loop = ControlLoop(
        pipe, cfg, read_state=plant.state, send_command=plant.send, now_ns=lambda: plant.t_ns
    )
    r = loop.run_episode([0.5, 0.0, 0.2], max_ticks=30)
    c = r.cadence
    assert c.ticks == 30 and c.target_hz == 100.0
    assert 60.0 < c.achieved_hz < 110.0  # a loaded 2-core machine may lose some ticks
    assert c.sleep_mean_us > 0
    assert 0 < c.tick_p50_us <= c.tick_p99_us <= c.tick_max_us
    assert set(c.stage_mean_us) == {"observe", "actor", "limits_ik", "safety", "io"}
    assert "Hz vs 100 Hz target" in c.summary()
    assert loop.cadence().ticks == 30


# -- closed loop on the MuJoCo arm ---------------------------------------------------------------


def bad_policies() -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    rng = np.random.default_rng(0)
    k = {"i": 0}

    def oscillate(o: np.ndarray, g: np.ndarray) -> np.ndarray:
        k["i"] += 1
        s = 1.0 if k["i"] % 2 else -1.0
        return np.array([s, -s, s, s])

    def garbage(o: np.ndarray, g: np.ndarray) -> np.ndarray:
        a = rng.uniform(-3, 3, 4)
        r = rng.random()
        if r < 0.05:
            a[rng.integers(4)] = np.nan
        elif r < 0.1:
            a[rng.integers(4)] = rng.choice([np.inf, -np.inf, 1e9, -1e9])
        return a

    return {
        "into_table": lambda o, g: np.array([0.3, 0.0, -1.0, -1.0]),
        "out_of_workspace": lambda o, g: np.array([1.0, 1.0, 1.0, 1.0]),
        "behind_the_base": lambda o, g: np.array([-1.0, -0.3, -0.2, 0.0]),
        "oscillate": oscillate,
        "garbage": garbage,
    }


@pytest.fixture(scope="module")
def arm() -> dict[str, Any]:
    mj = pytest.importorskip("her_mujoco")
    sim = mj.ArmSim()
    kin = CachedKinematics(robot.Kinematics(sim.config, model=sim.model), copy=False)
    return {"mj": mj, "sim": sim, "kin": kin}


def arm_loop(
    arm: dict[str, Any], actor: Callable[..., Any], sink: Any = None
) -> tuple[ControlLoop, list[dict[str, Any]]]:
    mj, sim, kin = arm["mj"], arm["sim"], arm["kin"]
    cfg = SafetyStackConfig()
    dt = cfg.loop.period_s
    ob = robot.ObservationBuilder(kin, sim.config.gripper_joints, dt, with_object=False)
    pipe = build_pipeline(
        cfg,
        actor=actor,
        observe=ob,
        kinematics=kin,
        ik=lambda q, step: robot.cartesian_step(kin, q, step, dt),
        achieved_goal=lambda s: kin.fk(s.joints(kin.joint_names)),
        goal_region=mj.ReachEnv.goal_region,
        tcp_slice=ob.layout.slice("tcp_pos"),
    )
    log: list[dict[str, Any]] = []

    def send(d: SafetyDecision) -> None:
        q = sim.arm_qpos.copy()
        log.append({"decision": d, "q": q, "tcp": sim.tcp_position()})
        if d.command is not None:
            sim.set_joint_targets(d.command, d.gripper_m)
        sim.step()

    loop = ControlLoop(
        pipe,
        cfg.loop,
        read_state=sim.state,
        send_command=send,
        now_ns=lambda: sim.time_ns,
        sink=sink,
        goal_space=get_goal_space("ee_position"),
        realtime=False,
    )
    return loop, log


def assert_commands_within_limits(loop: ControlLoop, log: list[dict[str, Any]]) -> None:
    m = loop.pipeline.monitor
    kin_fk = m._kin.fk
    for entry in log:
        d, q = entry["decision"], entry["q"]
        c = d.command
        assert c is not None and np.isfinite(c).all()
        ref = np.clip(q, m.joint_low_rad, m.joint_high_rad)
        assert (np.abs(c - ref) <= m.joint_step_cap_rad + EPS).all()
        assert (c >= np.minimum(m.band_low_rad, ref) - EPS).all()
        assert (c <= np.maximum(m.band_high_rad, ref) + EPS).all()
        p = kin_fk(c)
        p_now = kin_fk(ref)
        inside = (p >= m.workspace_low_m - 1e-9).all() and (p <= m.workspace_high_m + 1e-9).all()
        was_inside = (p_now >= m.workspace_low_m).all() and (p_now <= m.workspace_high_m).all()
        assert inside or not was_inside or d.hold, (p, p_now)


@pytest.mark.parametrize("name", list(bad_policies()))
def test_bad_policy_never_produces_an_out_of_limit_command(arm: dict[str, Any], name: str):
    sink = ListSink()
    loop, log = arm_loop(arm, bad_policies()[name], sink)
    arm["sim"].reset(seed=1)
    r = loop.run_episode([0.5, 0.1, 0.25], max_ticks=50)
    assert r.ticks == 50 and not r.refused
    assert_commands_within_limits(loop, log)
    # The tool never went through the table (fingertips are 5 mm below the tcp).
    assert min(e["tcp"][2] for e in log) > 0.005
    # Every intervention was recorded with its cost, and the run's cost adds up.
    steps = sink.steps
    assert len(steps) == 50
    assert sum(s.safety_cost for s in steps) == pytest.approx(r.safety_cost)
    assert r.safety_cost > 0 and r.interventions > 0
    assert all((s.safety_flags != 0) == bool(s.safety_reasons) for s in steps)
    assert r.success is not None


def test_good_policy_reaches_the_goal_without_interventions(arm: dict[str, Any]):
    goal = np.array([0.55, 0.1, 0.25])

    def p_controller(o: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.append(np.clip((g - o[:3]) / 0.05, -1.0, 1.0) * 0.5, 1.0)

    loop, log = arm_loop(arm, p_controller)
    arm["sim"].reset(seed=2)
    r = loop.run_episode(goal, max_ticks=50)
    assert r.success
    assert r.safety_cost < 1.0  # at most a few step-limited ticks
    assert r.flag_counts.keys() <= {"STEP_LIMITED", "VELOCITY_LIMIT"}
    assert_commands_within_limits(loop, log)


def test_closed_loop_steps_land_in_a_bag_with_their_safety_cost(
    arm: dict[str, Any], tmp_path: Path
):
    recorder_mod = pytest.importorskip("her_recorder.writer")
    reader_mod = pytest.importorskip("her_recorder.reader")
    space = get_goal_space("ee_position")
    with recorder_mod.EpisodeRecorder(tmp_path / "run", goal_space=space, task="reach") as rec:
        loop, _ = arm_loop(arm, bad_policies()["into_table"], RecorderSink(rec))
        arm["sim"].reset(seed=3)
        r = loop.run_episode([0.5, 0.0, 0.1], max_ticks=20)
    read = reader_mod.read_episodes(tmp_path / "run", goal_space=space, log_summary=False)
    (episode,) = read.episodes
    assert len(episode) == 20
    assert float(episode.safety_cost.sum()) == pytest.approx(r.safety_cost, rel=1e-6)
    assert (episode.safety_flags & SafetyFlag.WORKSPACE).any()
    assert any("WORKSPACE" in reasons for reasons in episode.safety_reasons)
    # The applied action is what the arm was asked to do: never more than the raw action.
    assert (
        np.abs(episode.action[:, :3])
        <= np.abs(np.clip(episode.action_raw[:, :3], -1, 1)) + 1e-9
    ).all()
    assert math.isfinite(float(episode.reward.sum()))


def test_safety_box_is_the_tasks_workspace():
    """config/safety.yaml repeats her_mujoco's task workspace; this catches the two drifting apart."""
    tasks = pytest.importorskip("her_mujoco.tasks")
    cfg = load_safety_config().safety
    np.testing.assert_allclose(cfg.workspace_high_m, tasks.WORKSPACE_HIGH)
    np.testing.assert_allclose(cfg.workspace_low_m[:2], tasks.WORKSPACE_LOW[:2])
    assert cfg.floor_z_m == pytest.approx(float(tasks.WORKSPACE_LOW[2]))


def test_cached_kinematics_shares_one_pass_per_joint_vector(arm: dict[str, Any]):
    raw = arm["kin"].kinematics
    kin = CachedKinematics(raw)
    q = raw.home_qpos + 0.05
    p = kin.fk(q)
    np.testing.assert_allclose(p, raw.fk(q))
    _, _, jac = kin.pose_and_jacobian(q)  # the IK's call at the same joints: a hit
    np.testing.assert_allclose(jac, raw.jacobian(q))
    assert (kin.misses, kin.hits) == (1, 1)
    np.testing.assert_allclose(kin.fk(q + 0.01), raw.fk(q + 0.01))
    assert kin.misses == 2
    with pytest.raises(ValueError):
        p[0] = 1.0  # shared arrays are read-only
    np.testing.assert_array_equal(kin.joint_limits[0], raw.joint_limits[0])
    np.testing.assert_array_equal(kin.home_qpos, raw.home_qpos)


def test_a_failing_state_reader_turns_into_a_stale_hold():
    pipe, cfg = toy_pipeline(lambda o, g: np.array([0.3, 0.0, 0.0, 0.0]))
    plant = ToyPlant()
    decisions: list[SafetyDecision] = []

    def read() -> RobotState:
        if len(decisions) >= 2:
            raise ConnectionError("driver gone")
        return plant.state()

    def send(d: SafetyDecision) -> None:
        decisions.append(d)
        plant.send(d)

    loop = ControlLoop(
        pipe,
        cfg.loop,
        read_state=read,
        send_command=send,
        now_ns=lambda: plant.t_ns,
        realtime=False,
    )
    r = loop.run_episode([0.5, 0.0, 0.2], max_ticks=6)
    assert r.ticks == 6 and loop.read_errors == 5  # 4 ticks + the final observation
    # The last state (stamped at tick 1) is 40 and 80 ms old at ticks 2 and 3: still fresh;
    # from tick 4 on it is older than the 0.1 s timeout and every tick holds.
    assert not decisions[2].hold and not decisions[3].hold
    assert all(d.hold and d.flags & SafetyFlag.STALE_STATE for d in decisions[4:])


@pytest.mark.slow
def test_adversarial_soak_has_no_out_of_limit_command():
    """A shorter run of bench/bench_safety.py's soak (the bench runs 10^6 ticks)."""
    pytest.importorskip("her_mujoco")
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_safety.py"
    spec = importlib.util.spec_from_file_location("bench_safety", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from her_policy.artefact.weights import ActorWeights
    from her_policy.deploy.runtime import RuntimeActor

    actor = RuntimeActor(ActorWeights.random(23, 3, 4, seed=0))
    arm = bench.make_arm(actor.numpy_actor)
    states = bench.realistic_states(arm, 300, seed=0)
    result = bench.soak(arm, states, 50_000, seed=1)
    assert result["out_of_limit_commands"] == 0, result["out_of_limit_by_kind"]
    assert result["stale_ticks_not_held"] == 0
    assert result["estop_ticks_not_held"] == 0


def test_the_cadence_meter_keeps_its_memory_flat_over_a_long_run() -> None:
    """Counts and the maximum cover every tick; the percentiles' samples are a ring of the latest ticks."""
    from her_policy.deploy.cadence import CadenceMeter

    meter = CadenceMeter(25.0, capacity=16, max_samples=64)
    for i in range(1000):
        meter.add(i * 40_000_000, 50_000_000 if i == 10 else 1_000_000 + i, (0, 0, 0, 0), 0, 0)
    report = meter.report()
    assert report.ticks == 1000 and report.over_budget == 1  # the slow tick 10 is counted
    assert meter._work.size == 64  # bounded
    # the maximum covers every tick, so it agrees with the over-budget count
    assert report.tick_max_us == pytest.approx(50_000_000 * 1e-3)
