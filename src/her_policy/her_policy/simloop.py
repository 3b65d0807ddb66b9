"""The MuJoCo arm driven through the control loop, exactly as a real arm is.

Each tick goes state → observation → actor → action limits → IK → safety monitor
→ joint-position command, the path ``policy_node`` runs on the robot (DESIGN.md
rule 5). ``her demo`` evaluates and ``her sim`` records through it, so their bags
carry real safety flags and costs, like the robot's.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_policy.control_loop import (
    CachedKinematics,
    ControlLoop,
    EpisodeResult,
    SafetyStackConfig,
    StepSink,
    build_pipeline,
    load_safety_config,
)
from her_policy.safety import SafetyDecision

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
    from her_mujoco.ik import cartesian_step
    from her_mujoco.observation import ObservationBuilder

    task = env.unwrapped
    sim = task.sim
    cfg = config if config is not None else load_safety_config()
    dt = float(task.control_period_s)
    if abs(cfg.loop.period_s - dt) > 1e-9:
        # The policy was trained at the task's rate; the loop must tick at it too.
        cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, rate_hz=1.0 / dt))
    # Typed Any: CachedKinematics has Kinematics' interface (one kinematics pass per
    # tick shared by observation, IK and monitor) without being its subclass.
    kin: Any = CachedKinematics(task.kinematics, copy=False)
    observe = ObservationBuilder(
        kin,
        sim.config.gripper_joints,
        dt,
        with_object=task.has_object,
    )
    ik_settings = task.ik_settings
    pipeline = build_pipeline(
        cfg,
        actor=actor,
        observe=observe,
        kinematics=kin,
        ik=lambda q, step: cartesian_step(kin, q, step, dt, settings=ik_settings),
        achieved_goal=task.achieved_goal_extractor,
        goal_region=task.goal_region,
        tcp_slice=observe.layout.slice("tcp_pos"),
    )

    # Tasks that hold the gripper shut (push, as FetchPush) ignore the gripper action.
    hold_shut = bool(getattr(task, "block_gripper", False))

    def send(decision: SafetyDecision) -> None:
        if decision.command is not None:
            sim.set_joint_targets(decision.command, 0.0 if hold_shut else decision.gripper_m)
        sim.step()

    read_state = sim.state if raw_recorder is None else _recording_reader(sim, raw_recorder)
    return ControlLoop(
        pipeline,
        cfg.loop,
        read_state=read_state,
        send_command=send,
        now_ns=lambda: int(sim.time_ns),
        sink=sink,
        goal_space=task.goal_space,
        realtime=False,
    )


def _recording_reader(sim: Any, recorder: Any) -> Callable[[], Any]:
    """``sim.state`` that also records each state as the driver's raw topics."""
    from her_goals import msgconv
    from her_recorder import interfaces

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
) -> list[EpisodeResult]:
    """Run one episode per requested goal through ``loop`` (block placed by ``env.reset``)."""
    horizon = int(env.spec.max_episode_steps) if env.spec and env.spec.max_episode_steps else 50
    results = []
    for i, goal in enumerate(goals):
        env.reset(seed=seed + i, options={"desired_goal": np.asarray(goal, dtype=np.float64)})
        result = loop.run_episode(goal, max_ticks=horizon)
        results.append(result)
        if on_episode is not None:
            on_episode(result)
    return results


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
        from her_mujoco.scripted import scripted_controller

        controller = scripted_controller(env)
        goal_slice = task.observation_layout.slice(
            "tcp_pos" if task.goal_space.name == "ee_position" else "object_pos"
        )

        def base(o: NDArray[np.float64], g: NDArray[np.float64]) -> ArrayLike:
            return controller({"observation": o, "desired_goal": g, "achieved_goal": o[goal_slice]})

    else:
        from her_policy.runtime import RuntimeActor

        base = RuntimeActor.load(policy, expect_goal_space=task.goal_space)
    if noise <= 0:
        return base

    def noisy(o: NDArray[np.float64], g: NDArray[np.float64]) -> ArrayLike:
        a = np.asarray(base(o, g), dtype=np.float64)
        return np.clip(a + rng.normal(0.0, noise, size=a.shape), -1.0, 1.0)

    return noisy


def add_sim_command(subparsers: Any) -> None:
    """Register ``her sim``: record episodes of the MuJoCo arm to bags, through the safety loop."""
    parser = subparsers.add_parser(
        "sim",
        help="Record episodes of the MuJoCo arm to bags (policy -> limits -> safety monitor).",
        description="Record episodes of the MuJoCo arm to rosbag2, driven through action limits "
        "and the safety monitor, the way policy_node drives a robot.",
    )
    parser.add_argument("--task", default="reach", choices=["reach", "push", "pick_and_place"])
    parser.add_argument("--policy", default="scripted", help="scripted | random | ARTEFACT path")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument(
        "--split",
        default="train",
        choices=["train", "eval"],
        help="train: training goals; eval: held-out requested goals",
    )
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian action noise std")
    parser.add_argument("--out", type=Path, required=True, help="session directory of bags")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_sim_main)


def _sim_main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import her_mujoco
    from her_policy.control_loop import RecorderSink
    from her_recorder.writer import EpisodeRecorder

    env = her_mujoco.make_task(args.task)
    task: Any = env.unwrapped
    sampler = task.goal_sampler
    if args.split == "eval":
        goals = sampler.heldout(args.episodes, seed=args.seed)
    else:
        sampler.reset(args.seed)
        goals = sampler.sample(args.episodes)
    actor = policy_actor(env, args.policy, noise=args.noise, seed=args.seed)
    config = {"split": args.split, "policy": args.policy, "noise": args.noise, "task": args.task}
    with EpisodeRecorder(
        args.out,
        goal_space=task.goal_space,
        task=args.task,
        config=config,
        seeds={"run": args.seed},
        resume=True,
    ) as recorder:
        loop = sim_control_loop(
            env, actor, sink=RecorderSink(recorder, split=args.split), raw_recorder=recorder
        )
        bar = tqdm(total=len(goals), unit="episode", dynamic_ncols=True)
        results = run_requested_goals(
            env, loop, goals, seed=args.seed, on_episode=lambda _r: bar.update(1)
        )
        bar.close()
    successes = sum(bool(r.success) for r in results)
    cost = sum(r.safety_cost for r in results)
    print(
        f"recorded {len(results)} {args.task} episodes ({args.split} goals, policy {args.policy}) "
        f"to {args.out}: requested-goal success {successes}/{len(results)}, "
        f"safety cost {cost:.1f} in all"
    )
    env.close()
    return 0
