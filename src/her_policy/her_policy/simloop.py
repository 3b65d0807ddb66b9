"""The MuJoCo arm driven through the control loop, exactly as a real arm is.

Each tick goes state → observation → actor → action limits → IK → safety monitor
→ joint-position command, the path ``policy_node`` runs on the robot (DESIGN.md
rule 5). ``her demo`` evaluates and ``her sim`` records through it, so their bags
carry real safety flags and costs, like the robot's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
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
) -> ControlLoop:
    """A :class:`ControlLoop` over the simulator of a her_mujoco task env.

    The loop runs at the task's control rate in simulated time (no sleeping);
    ``env.reset(options={"desired_goal": g})`` places the block and the goal
    marker before each :meth:`ControlLoop.run_episode`.
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

    def send(decision: SafetyDecision) -> None:
        if decision.command is not None:
            sim.set_joint_targets(decision.command, decision.gripper_m)
        sim.step()

    return ControlLoop(
        pipeline,
        cfg.loop,
        read_state=sim.state,
        send_command=send,
        now_ns=lambda: int(sim.time_ns),
        sink=sink,
        goal_space=task.goal_space,
        realtime=False,
    )


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
