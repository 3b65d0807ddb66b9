"""The MuJoCo arm driven through the control loop, exactly as a real arm is.

Each tick goes state → observation → actor → action limits → IK → safety monitor
→ joint-position command, the path ``policy_node`` runs on the robot (ARCHITECTURE.md,
rule 5). ``her demo`` evaluates and ``her sim`` records through it, so their bags
carry real safety flags and costs, like the robot's.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

import her_mujoco
from her_goals.checks import EpisodeCount, NonNegativeFloat, NonNegativeInt, OutputDir, check_fields
from her_goals.errors import ConfigError
from her_goals.evaluation import EvaluationPlan, heldout_reset_seed, policy_id
from her_goals.provenance import read_policy_metadata
from her_goals.rosglue import msgconv
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_goals.tasks import TaskName
from her_mujoco.randomization import DomainRandomization, parse_sim_params
from her_policy.deploy.loop import ControlLoop, EpisodeResult
from her_policy.deploy.pipeline import pipeline_for
from her_policy.deploy.runtime import RuntimeActor
from her_policy.deploy.safety import SafetyDecision
from her_policy.deploy.scripted import scripted_controller
from her_policy.deploy.settings import SafetyStackConfig, load_safety_config
from her_policy.deploy.sinks import RecorderSink, StepSink
from her_recorder import interfaces
from her_recorder.writer import EpisodeRecorder

Actor = Callable[[NDArray[np.float64], NDArray[np.float64]], ArrayLike]


def sim_control_loop(
    env: Any,
    actor: Actor,
    *,
    config: SafetyStackConfig | None = None,
    sink: StepSink | None = None,
    raw_recorder: Any = None,
) -> ControlLoop:
    """A :class:`ControlLoop` over the simulator of a her_mujoco task env.

    The loop runs at the task's control rate in simulated time (no sleeping);
    ``env.reset(options={"desired_goal": g})`` places the block and the goal
    marker before each :meth:`ControlLoop.run_episode`. With ``raw_recorder`` (an
    open ``EpisodeRecorder``) every state read is also recorded as
    ``/joint_states`` and ``/object_pose``, as a robot's bag has them.
    """
    task = env.unwrapped
    sim = task.sim
    cfg = config if config is not None else load_safety_config()
    dt = float(task.control_period_s)
    if abs(cfg.loop.period_s - dt) > 1e-9:
        # The policy was trained at the task's rate; the loop must tick at it too.
        cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, rate_hz=1.0 / dt))
    # The env's rig: the goal space, observation and achieved goal the policy was trained with.
    pipeline = pipeline_for(task.rig, cfg, actor, ik_settings=task.ik_settings)

    def send(decision: SafetyDecision) -> None:
        if decision.command is not None:
            sim.set_joint_targets(decision.command, decision.gripper_m)
        sim.step()

    measured = sim.state if raw_recorder is None else _recording_reader(sim, raw_recorder)
    tap = _TruthTap(sim, task.achieved_goal_extractor)

    def read_state() -> Any:
        state = measured()
        tap.capture()  # before the command moves the arm: the truth of the state just read
        return state

    if sink is not None and hasattr(sink, "recorder"):
        sink = _SimSink(sink, tap)
    return ControlLoop(
        pipeline,
        cfg.loop,
        read_state=read_state,
        send_command=send,
        now_ns=lambda: int(sim.time_ns),
        sink=sink,
        goal_space=task.goal_space,
        realtime=False,
        episode_ticks=task.task.episode_steps,
    )


class _TruthTap:
    """The true achieved goal of the last state read (only when sensing is perturbed)."""

    def __init__(self, sim: Any, extractor: Any) -> None:
        self.sim, self.extractor = sim, extractor
        self.last: NDArray[np.float64] | None = None

    def capture(self) -> None:
        noisy = self.sim.params.senses_noisily
        self.last = np.asarray(self.extractor(self.sim.true_state()), dtype=np.float64) if noisy else None


class _SimSink:
    """A recorder sink in simulation: adds each episode's physics parameters (when not
    nominal) and, under sensing noise, the true achieved goal beside the measured one."""

    def __init__(self, sink: Any, tap: _TruthTap) -> None:
        self.sink, self.tap = sink, tap

    def __getattr__(self, name: str) -> Any:  # split, policy, recorder... of the wrapped sink
        return getattr(self.sink, name)

    def start_episode(self, desired_goal: NDArray[np.float64], *, stamp_ns: int) -> Any:
        params = self.tap.sim.params
        extra = {} if params.nominal else {"sim_params": params.record()}
        return self.sink.start_episode(desired_goal, stamp_ns=stamp_ns, **extra)

    def record_step(self, record: Any) -> Any:
        if self.tap.last is not None:
            record = dataclasses.replace(record, true_next_achieved_goal=self.tap.last)
        return self.sink.record_step(record)

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> Any:
        return self.sink.end_episode(stamp_ns=stamp_ns, aborted=aborted, reason=reason)


def _recording_reader(sim: Any, recorder: Any) -> Callable[[], Any]:
    """``sim.state`` that also records each state as the driver's raw topics."""

    types = msgconv.MessageTypes.from_rosbags(interfaces.typestore())
    frame = sim.config.base_frame

    def read() -> Any:
        state = sim.state()
        recorder.record_raw(
            interfaces.TOPIC_JOINT_STATES,
            msgconv.joint_state_msg(
                types,
                state.joint_names,
                state.position,
                state.velocity,
                state.effort,
                state.stamp_ns,
            ),
            state.stamp_ns,
        )
        if state.object_pose is not None:
            recorder.record_raw(
                interfaces.TOPIC_OBJECT_POSE,
                msgconv.pose_stamped_msg(types, state.object_pose, state.object_stamp_ns, frame),
                state.object_stamp_ns,
            )
        return state

    return read


def run_requested_goals(
    env: Any,
    loop: ControlLoop,
    goals: Iterable[ArrayLike],
    *,
    seed: int = 0,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    params: Callable[[int], Any] | None = None,
) -> list[EpisodeResult]:
    """Run one episode per requested goal through ``loop`` (block placed by ``env.reset``).

    ``params(i)`` gives episode ``i``'s physics and sensing parameters (her_mujoco
    randomisation), set before its reset; None keeps the simulator's.
    """
    horizon = int(env.spec.max_episode_steps) if env.spec and env.spec.max_episode_steps else 50
    results = []
    sim = env.unwrapped.sim
    for i, goal in enumerate(goals):
        if params is not None:
            sim.set_params(params(i), seed=seed + i)
        env.reset(seed=seed + i, options={"desired_goal": np.asarray(goal, dtype=np.float64)})
        result = loop.run_episode(goal, max_ticks=horizon)
        results.append(result)
        if on_episode is not None:
            on_episode(result)
    return results


def record_evaluation(
    env: Any,
    artefact: Path,
    out: Path,
    *,
    episodes: int,
    stream_seed: int,
    config: dict[str, Any],
    safety: SafetyStackConfig | None = None,
    progress: bool = False,
) -> tuple[list[EpisodeResult], Any]:
    """Evaluate ``artefact`` on held-out requested goals through limits and the safety monitor,
    recorded to the session ``out`` with its evaluation plan (the goal stream and its seed, the
    planned count, the artefact hash) so that ``her audit`` can verify it; returns the episode
    results and the plan. ``her demo`` and ``her eval --record`` use it."""


    task = env.unwrapped
    actor = RuntimeActor.load(artefact, expect_goal_space=task.goal_space)
    plan = EvaluationPlan.for_task(
        task.task_name, "eval", planned_episodes=episodes, policy=actor.artefact_hash,
        stream_seed=stream_seed, sampler=task.goal_sampler,
    )  # fmt: skip
    goals = plan.goals()
    config = {**config, "artefact_hash": actor.artefact_hash}  # the bag names what acted (the audit checks)
    with EpisodeRecorder(
        out, goal_space=task.goal_space, task=task.task_name, config=config,
        seeds={"run": stream_seed}, plan=plan,
    ) as recorder:  # fmt: skip
        sink = RecorderSink(recorder, split=plan.split, policy=plan.policy)
        loop = sim_control_loop(env, actor, config=safety, sink=sink, raw_recorder=recorder)
        bar = tqdm(total=len(goals), unit="goal", disable=not progress, dynamic_ncols=True)
        results = run_requested_goals(
            env, loop, goals, seed=heldout_reset_seed(stream_seed), on_episode=lambda _r: bar.update(1)
        )
        bar.close()
    return results, plan


def policy_actor(env: Any, policy: str, *, noise: float = 0.0, seed: int = 0) -> Actor:
    """The actor ``her sim`` drives the arm with.

    ``policy`` is ``"scripted"`` (the task's non-learned controller), ``"random"``
    (uniform actions) or the path of a policy artefact; ``noise`` adds Gaussian
    exploration noise (std, in normalised action units) to any of them.
    """
    task = env.unwrapped
    rng = np.random.default_rng(seed)
    base: Actor
    if policy == "random":

        def base(o: NDArray[np.float64], g: NDArray[np.float64]) -> ArrayLike:
            return rng.uniform(-1.0, 1.0, size=env.action_space.shape)

    elif policy == "scripted":
        controller = scripted_controller(env)
        goal_slice = task.observation_layout.slice(task.rig.goal_field)

        def base(o: NDArray[np.float64], g: NDArray[np.float64]) -> ArrayLike:
            return controller({"observation": o, "desired_goal": g, "achieved_goal": o[goal_slice]})

    else:
        base = RuntimeActor.load(policy, expect_goal_space=task.goal_space)
    if noise <= 0:
        return base

    def noisy(o: NDArray[np.float64], g: NDArray[np.float64]) -> ArrayLike:
        a = np.asarray(base(o, g), dtype=np.float64)
        return np.clip(a + rng.normal(0.0, noise, size=a.shape), -1.0, 1.0)

    return noisy


@dataclass(frozen=True)
class SimSettings:
    """``her sim``: record episodes of the MuJoCo arm to bags, through limits and the safety monitor."""

    out: OutputDir
    """Session directory of the bags. An existing session is continued, never overwritten:
    the episodes go into a new bag_NNNN beside the old ones (episode ids go on)."""
    task: TaskName = "reach"
    """Registered task (her_goals.tasks)."""
    policy: str = "scripted"
    """scripted (the task's controller), random, or the path of a policy artefact."""
    episodes: EpisodeCount = 20
    """Episodes to record."""
    split: Literal["train", "eval"] = "train"
    """train: training goals; eval: held-out requested goals."""
    noise: NonNegativeFloat = 0.0
    """Std of Gaussian action noise, in normalised action units."""
    seed: NonNegativeInt = 0
    """Seed of the goal stream, the object placement and the noise."""
    randomize: str = "none"
    """Domain randomisation per episode: none or default (her_mujoco.randomization); each
    episode's parameters go into its bag."""
    perturbation: str = ""
    """Fixed physics/sensing parameters for every episode, KEY=VALUE[,...] of SimParams
    (e.g. object_position_noise_m=0.005); recorded in the bags."""

    def __post_init__(self) -> None:
        check_fields(self, where="--")  # the task: a registered one, or the closest named
        DomainRandomization.from_spec(self.randomize)
        if self.perturbation:
            parse_sim_params(self.perturbation)
        if self.randomize != "none" and self.perturbation:
            raise ConfigError("give --randomize or --perturbation, not both")
        if self.policy not in ("scripted", "random") and not Path(self.policy).exists():
            raise ConfigError(
                f"--policy {self.policy!r}: not scripted, random or an existing policy artefact; "
                "give the directory her train wrote (RUN/policy)"
            )


def policy_name(policy: str, *, noise: float = 0.0) -> str:
    """The id every Step of ``her sim`` names (her_goals.evaluation): ``scripted``, ``random``
    or the artefact hash, ``+explore`` when ``noise`` changes its actions."""
    base = policy if policy in ("scripted", "random") else str(read_policy_metadata(policy)["artefact_hash"])
    return policy_id(base, noise_std=noise)


def add_sim_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her sim``: record episodes of the MuJoCo arm to bags, through the safety loop."""
    parser = subparsers.add_parser(
        "sim",
        help="Record episodes of the MuJoCo arm to bags (policy -> limits -> safety monitor).",
        description="Record episodes of the MuJoCo arm to rosbag2, driven through action limits "
        "and the safety monitor, the way policy_node drives a robot.",
    )
    add_settings_arguments(parser, SimSettings)
    parser.set_defaults(handler=_sim_main)
    return parser


def _episode_params(settings: SimSettings) -> Callable[[int], Any] | None:
    """Episode ``i``'s SimParams for ``her sim`` (None: nominal physics)."""

    if settings.perturbation:
        fixed = parse_sim_params(settings.perturbation)
        return lambda i: fixed
    if settings.randomize == "none":
        return None
    ranges = DomainRandomization.from_spec(settings.randomize)
    rng = np.random.default_rng(settings.seed)
    return lambda i: ranges.sample(rng)


EXIT_INTERRUPTED = 130


@contextmanager
def _stop_between_episodes() -> Iterator[threading.Event]:
    """The first SIGTERM or Ctrl-C sets the event (the caller stops after the running episode,
    which then ends as planned: no episode is cut and the bag closes cleanly); a second one
    interrupts at once (KeyboardInterrupt: the running episode is recorded as aborted). SIGKILL
    leaves the bag for ``her bag recover``, which keeps every completed episode."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def stop(signum: int, frame: Any) -> None:
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield asked
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _sim_main(args: argparse.Namespace) -> int:
    settings = settings_from_args(SimSettings, args)
    safety = load_safety_config()  # every config file is checked before any work
    env = her_mujoco.make_task(settings.task)
    task: Any = env.unwrapped
    sampler = task.goal_sampler
    actor = policy_actor(env, settings.policy, noise=settings.noise, seed=settings.seed)
    acting = policy_name(settings.policy, noise=settings.noise)
    plan = EvaluationPlan.for_task(
        settings.task,
        settings.split,
        planned_episodes=settings.episodes if settings.split == "eval" else 0,
        policy=acting,
        stream_seed=settings.seed,
        sampler=sampler,
    )
    if settings.split == "eval":
        goals = plan.goals()  # the held-out stream the bags' plan names, index by index
    else:
        sampler.reset(settings.seed)
        goals = sampler.sample(settings.episodes)
    config = {"split": settings.split, "policy": settings.policy, "noise": settings.noise, "task": settings.task}
    recorder = EpisodeRecorder(
        settings.out,
        goal_space=task.goal_space,
        task=settings.task,
        config=config,
        seeds={"run": settings.seed},
        plan=plan,
        resume=True,
    )
    try:
        with _stop_between_episodes() as asked, recorder:
            sink = RecorderSink(recorder, split=plan.split, policy=acting)
            loop = sim_control_loop(env, actor, config=safety, sink=sink, raw_recorder=recorder)
            with tqdm(total=len(goals), unit="episode", dynamic_ncols=True) as bar:  # closed on errors too

                def done(_result: EpisodeResult) -> None:
                    bar.update(1)
                    if asked.is_set():  # SIGTERM or Ctrl-C: this episode is on disk, stop here
                        raise KeyboardInterrupt

                results = run_requested_goals(
                    env, loop, goals, seed=settings.seed, on_episode=done, params=_episode_params(settings)
                )
    except KeyboardInterrupt:
        bags = ", ".join(str(p) for p in recorder.bag_paths) or str(settings.out)
        print(
            f"her sim: interrupted: the {recorder.episodes_kept} completed episodes of this run are in {bags} "
            "(closed)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    successes = sum(bool(r.success) for r in results)
    cost = sum(r.safety_cost for r in results)
    print(
        f"recorded {len(results)} {settings.task} episodes ({settings.split} goals, policy {settings.policy}) "
        f"to {settings.out}: requested-goal success {successes}/{len(results)}, "
        f"safety cost {cost:.1f} in all"
    )
    env.close()
    return 0
