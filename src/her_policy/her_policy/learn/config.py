"""Settings of a training run: one typed dataclass, its ``--help`` and its presets.

Every field of :class:`TrainConfig` is a ``her train --field-name`` option whose
help text is the field's docstring (read from this file's source with ``ast``).
Values are layered, later wins::

    TrainConfig defaults < preset for the env/task < --config YAML < command-line flags

and the merged mapping goes through :func:`her_goals.config.from_mapping`, so a
typo in a YAML key is rejected with a suggestion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from her_goals.checks import (
    Count,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    OutputDir,
    PositiveFloat,
    Range,
    check_fields,
)
from her_goals.config import check_value, from_mapping, load_yaml, suggest
from her_goals.errors import ConfigError
from her_goals.tasks import TaskName, task_names
from her_mujoco.randomization import DomainRandomization
from her_mujoco.tasks import NEAR_START_XY_M, near_start_range
from her_policy.learn.presets import preset_values

Algorithm = Literal["ddpg", "td3", "sac", "gciql"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (online in simulation, or offline from a filled buffer)."""

    # -- what to learn ---------------------------------------------------------
    task: TaskName | None = None
    """Registered task to train on in the MuJoCo arm (her_goals.tasks): reach, push, pick_and_place..."""
    env: str | None = None
    """Gymnasium goal-env id to train on instead of a task, e.g. FetchPush-v4."""
    preset: str = "auto"
    """Tuned settings applied before YAML and flags: auto (by env/task), none, or a preset name."""
    algo: Algorithm = "ddpg"
    """Learning algorithm: ddpg (HER paper / baselines recipe), td3, sac, or gciql (goal-conditioned
    implicit Q-learning, for learning from another policy's data)."""
    # -- budget ----------------------------------------------------------------
    env_steps: Count = 100_000
    """Stop after this many environment steps (all training envs together)."""
    max_wall_s: PositiveFloat | None = None
    """Stop after this many seconds of training wall-clock (evaluation time excluded)."""
    target_success: Fraction | None = None
    """Stop once a periodic evaluation reaches this requested-goal success rate."""
    target_checks: Annotated[int, Range(ge=1, le=100)] = 1
    """Periodic evaluations in a row that must reach ``target_success`` before the run stops.
    One 50-goal check can be a lucky crossing: push (seeds 0-2) stopped at 0.96 / 0.96 / 0.98 on
    50 goals and gave 0.93 / 0.84 / 0.89 on the 100 final ones."""
    # -- collection ------------------------------------------------------------
    n_envs: Annotated[int, Range(ge=1, lt=1000)] = 2
    """Training environments stepped together; one cycle = one episode in each."""
    parallel: Literal["auto", "on", "off"] = "auto"
    """Collect in a second process while learning: on, off, or auto (on with 2+ CPU cores)."""
    random_steps: NonNegativeInt = 0
    """Env steps at the start with uniformly random actions."""
    exploration_noise: NonNegativeFloat | None = None
    """Std of Gaussian action noise, in units of the action half-range (None: 0.2 ddpg/td3, 0 sac)."""
    random_eps: Fraction | None = None
    """Chance of a uniformly random action per step (None: 0.3 ddpg, 0 td3/sac)."""
    noise_color: Annotated[float, Range(ge=0, le=2)] = 0.0
    """Colour of the exploration noise: exponent beta of its power spectrum 1/f^beta over each
    training episode (0: white, independent each step; 1: pink; 2: red, a random walk's). Same
    std per step; correlated noise carries the tool further from its start (learn/collect.py)."""
    grasped_start: Fraction = 0.0
    """Share of training episodes of an her_mujoco object task that start with the block held
    in the closed gripper where it lies (after the HER paper's pick-and-place aid); evaluation
    episodes never do."""
    near_start: Fraction = 0.0
    """Share of the other training episodes of an her_mujoco object task that start with the
    tool 5-8 cm beside the block (random side, the tool's start height) instead of the task's
    tool start, so that exploring touches the block early; evaluation episodes never do. On a
    real arm the reset moves the tool there from the object's measured pose."""
    near_start_m: tuple[PositiveFloat, ...] = NEAR_START_XY_M
    """[low, high]: the near start's tool-to-block-centre distance (xy, metres), drawn
    uniformly; the default puts the shut fingers 1-4 cm from the block."""
    randomize: str | dict[str, Any] = "none"
    """Domain randomisation of training episodes (her_mujoco tasks): none, default (the
    standard ranges of her_mujoco.randomization) or, in YAML, a block of [low, high] ranges
    per parameter. Each episode's drawn parameters go into its bag; evaluation runs nominal."""
    safety_layer: bool = False
    """her_mujoco tasks: step training (and periodic evaluation) through the robot's action
    limits, IK and safety monitor (config/safety.yaml, her_policy.learn.safety_layer) instead of
    the env's silent clip into the workspace; each step's intervention cost is info['cost'], kept
    per step in the episode (and its bag) beside the reward, and its mean per training episode
    is the training log's train_episode_cost. Off by default: the presets were measured without."""
    cost_penalty: NonNegativeFloat = 0.0
    """With safety_layer: the learner's reward is the goal space's (recomputed for every relabelled
    goal) minus cost_penalty x the step's safety cost (a step's cost is in [0, 1]: 1 for a
    workspace or table-floor intervention). 0: the cost is recorded, not learned from. The cost
    belongs to the step, so relabelling never changes it."""
    cost_budget: NonNegativeFloat | None = None
    """With safety_layer: a budget of safety cost per training episode, held by a Lagrange
    multiplier (lambda >= 0, starting at 0) added to cost_penalty in the learner's reward. After
    every collected batch of episodes, lambda <- max(0, lambda + cost_multiplier_lr x (their mean
    cost per episode - cost_budget)): it grows while episodes overspend and decays back to 0 once
    they keep within the budget. The training log's metrics carry it as cost_multiplier. None: no
    multiplier (a fixed cost_penalty only). Measured on randomised push (seed 0, budget 3): the
    training episodes' cost includes exploration (random actions into the table floor), so the
    budget was never met and lambda kept rising (4.5 at 200k env steps, success 0.18); the
    randomised push preset uses cost_penalty 0.5 instead (learn/presets.py RANDOMIZED)."""
    cost_multiplier_lr: PositiveFloat = 0.01
    """Step size of the cost_budget multiplier per collected batch, per unit of cost per episode
    over budget (push overspends a budget of 3 by ~20: lambda then rises by ~0.2 per batch)."""
    # -- updates ---------------------------------------------------------------
    updates_per_step: NonNegativeFloat = 0.4
    """Gradient updates per env step (update-to-data ratio); baselines HER uses 0.4."""
    learning_starts: NonNegativeInt = 0
    """Env steps collected before the first update."""
    batch_size: Count = 256
    """Transitions per gradient update."""
    hidden: tuple[Count, ...] = (256, 256, 256)
    """Hidden layer widths of actor and critic."""
    critic_layer_norm: bool = False
    """Layer normalisation in the critics (and gciql's value net) after every hidden layer."""
    n_critics: Annotated[int, Range(ge=1, le=32)] | None = None
    """Critics of ddpg/td3/sac (None: the algorithm's own, ddpg 1, td3 and sac 2). All are one
    stacked network, a batch one batched matmul per layer (learn/nets.py). With more than two,
    REDQ (Chen et al. 2021): the TD target is the minimum over ``target_critics`` of them drawn
    at random each update, and the actor follows their mean."""
    target_critics: Annotated[int, Range(ge=1, le=32)] | None = None
    """REDQ's in-target subset: critics drawn per update for the target's minimum (None: all)."""
    critic_dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    """Dropout in the critics after every hidden linear layer, before its layer norm (DroQ,
    Hiraoka et al. 2022); also in the target critics."""
    gamma: Annotated[float, Range(ge=0, lt=1)] | None = None
    """Discount factor (None: 1 - 1/episode_length, the baselines HER choice)."""
    actor_lr: PositiveFloat = 1e-3
    """Actor Adam learning rate."""
    critic_lr: PositiveFloat = 1e-3
    """Critic Adam learning rate."""
    tau: Annotated[float, Range(gt=0, le=1)] = 0.05
    """Polyak rate of the target networks: target <- (1 - tau) target + tau online."""
    target_update_every: Count = 1
    """Gradient updates between target-network updates (baselines HER: 40, tau 0.05)."""
    action_l2: NonNegativeFloat = 1.0
    """Weight of the squared-action penalty in the actor loss (ddpg, td3)."""
    n_step: Count = 1
    """Rewards summed before bootstrapping (1: one-step TD); scored against the relabelled goal."""
    clip_target: bool = True
    """Clip TD targets to [-1/(1-gamma), 0], the range of sparse-reward returns."""
    policy_noise: NonNegativeFloat = 0.2
    """td3: std of the target policy smoothing noise."""
    noise_clip: NonNegativeFloat = 0.5
    """td3: clip of the target policy smoothing noise."""
    policy_delay: Count = 2
    """td3: critic updates per actor update."""
    bc_weight: NonNegativeFloat = 0.0
    """ddpg, td3, gciql: weight of the behaviour-cloning term mean (pi(s, g) - a_data)^2 in the
    actor loss beside the Q term scaled to unit size (TD3+BC, DDPG+BC); 0: the plain actor loss."""
    bc_on: Literal["all", "demos"] = "all"
    """Which samples the behaviour-cloning term clones: all, or only the demonstrations'."""
    bc_q_filter: bool = False
    """ddpg, td3: clone a sample only where the critic rates its data action above the actor's
    (the Q filter of Nair et al. 2018: demonstrations stop pulling once the policy is better)."""
    expectile: Annotated[float, Range(ge=0.5, lt=1)] = 0.9
    """gciql: expectile of the value V(s, g) over Q(s, a_data, g) (0.5: the data's mean, SARSA;
    towards 1: the best action the data holds)."""
    actor_loss: Literal["ddpg_bc", "awr"] = "ddpg_bc"
    """gciql: policy extraction. ddpg_bc: follow the critic's gradient with the bc-weight
    behaviour-cloning term; awr: clone the data's actions weighted by exp(awr-temperature x
    advantage), never leaving the data's actions."""
    awr_temperature: PositiveFloat = 3.0
    """gciql with actor-loss awr: inverse temperature of the advantage weights (weights capped at 100)."""
    init_alpha: PositiveFloat = 0.1
    """sac: initial entropy temperature."""
    learn_alpha: bool = True
    """sac: tune the temperature towards an entropy of -action_dim."""
    # -- hindsight replay ------------------------------------------------------
    relabel_strategy: Literal["future", "final", "episode"] = "future"
    """Where relabelled goals come from (future is inclusive of the current step)."""
    replay_k: NonNegativeFloat = 4.0
    """Relabelled goals per real one; relabel probability k/(k+1)."""
    relabel_prob: Fraction | None = None
    """Share of relabelled samples, overriding replay_k."""
    moving_share: Fraction = 0.0
    """Share of each batch drawn from episodes whose achieved goal moved (0: uniform)."""
    buffer_capacity: Annotated[int, Range(ge=2, le=200_000_000)] = 1_000_000
    """Replay rows (transitions plus one final observation per episode)."""
    clip_obs: PositiveFloat = 200.0
    """Clip of raw observations and goals before normalising."""
    norm_clip: PositiveFloat = 5.0
    """Clip of normalised inputs."""
    norm_eps: PositiveFloat = 0.01
    """Floor of the normaliser's standard deviation."""
    # -- prior data: demonstrations (her train --demos) and bags (her train --bags) ------
    demo_share: Fraction = 0.5
    """With --demos: share of every batch drawn from the demonstration episodes (the rest from
    the learner's own experience; RLPD's symmetric sampling is 0.5)."""
    demo_pretrain_updates: NonNegativeInt = 0
    """With --demos: gradient updates on the demonstrations alone before the first env step."""
    offline_updates: Count = 20_000
    """Offline (--bags): gradient updates on the recorded data."""
    eval_every_updates: NonNegativeInt = 2_000
    """Offline (--bags): gradient updates between requested-goal evaluations (0: only at the end)."""
    # -- evaluation and output -------------------------------------------------
    eval_every: NonNegativeInt = 5_000
    """Env steps between requested-goal evaluations (0: only at the end)."""
    eval_episodes: Count = 50
    """Held-out goals per periodic evaluation."""
    final_eval_episodes: NonNegativeInt = 100
    """Held-out goals for the final evaluation (0: skip)."""
    seed: Annotated[int, Range(ge=0, lt=1e9)] = 0
    """Seed of networks, exploration, replay sampling and training-env resets."""
    torch_threads: NonNegativeInt = 1
    """Torch CPU threads of the learner (0: torch default)."""
    out: OutputDir | None = None
    """Directory for the policy artefact, checkpoints and the training log."""
    checkpoint_every: NonNegativeInt = 25_000
    """Env steps (offline: updates) between checkpoints in out/checkpoint, the point a killed
    run resumes from (0: only at the end and on Ctrl-C/SIGTERM)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.task is not None and self.env is not None:
            raise ConfigError(f"give task or env, not both (task={self.task!r}, env={self.env!r})")
        check_fields(self, where="train config")
        critics = self.n_critics or (1 if self.algo == "ddpg" else 2)  # the learners' own defaults
        if self.target_critics is not None and self.target_critics > critics:
            raise ConfigError(
                f"target_critics {self.target_critics} is more than the {critics} critics "
                "(n_critics); draw at most all of them"
            )
        if self.randomize != "none":
            DomainRandomization.from_spec(self.randomize)  # names a typo or a bad range now
            if self.env is not None:
                raise ConfigError(
                    f"randomize is an her_mujoco task option; env {self.env!r} cannot be randomised. "
                    "Drop --randomize or train a --task"
                )
        if self.safety_layer and self.env is not None:
            raise ConfigError(
                f"safety_layer is an her_mujoco task option; env {self.env!r} has no robot "
                "safety stack. Drop safety_layer or train a --task"
            )
        if self.cost_penalty and not self.safety_layer:
            raise ConfigError(
                f"cost_penalty={self.cost_penalty} needs safety_layer: without it no step has a "
                "cost. Add --safety-layer, or drop --cost-penalty"
            )
        if self.cost_budget is not None and not self.safety_layer:
            raise ConfigError(
                f"cost_budget={self.cost_budget} needs safety_layer: without it no step has a "
                "cost. Add --safety-layer, or drop --cost-budget"
            )
        if self.near_start and self.env is not None:
            raise ConfigError(
                f"near_start is an her_mujoco task option; env {self.env!r} has no such reset. "
                "Drop near_start or train a --task"
            )
        near_start_range(self.near_start_m, "near_start_m")
        if self.grasped_start and self.env is not None:
            raise ConfigError(
                f"grasped_start is an her_mujoco task option; env {self.env!r} has no such reset. "
                "Drop grasped_start or train a --task"
            )

    # -- algorithm-dependent defaults ------------------------------------------
    @property
    def resolved_exploration_noise(self) -> float:
        if self.exploration_noise is not None:
            return self.exploration_noise
        return 0.0 if self.algo == "sac" else 0.2

    @property
    def resolved_random_eps(self) -> float:
        if self.random_eps is not None:
            return self.random_eps
        return 0.3 if self.algo == "ddpg" else 0.0

    def resolved_gamma(self, episode_length: int) -> float:
        return self.gamma if self.gamma is not None else 1.0 - 1.0 / max(2, episode_length)

    @property
    def source(self) -> str:
        """The env id or task name trained on."""
        return self.env if self.env is not None else f"task:{self.task}"


def build_train_config(
    flags: Mapping[str, Any] | None = None,
    *,
    yaml_path: str | Path | None = None,
    offline: bool = False,
    demos: bool = False,
) -> TrainConfig:
    """Layer defaults < preset < YAML < flags into a validated :class:`TrainConfig`.

    ``offline`` (``her train --bags``): the automatic preset is the task's with the offline
    settings over it (:data:`~her_policy.learn.presets.OFFLINE`); ``demos`` (``--demos``): the
    settings for demonstrations in every batch (:data:`~her_policy.learn.presets.WITH_DEMOS`);
    a ``randomize`` other than none adds the task's randomised-training settings
    (:data:`~her_policy.learn.presets.RANDOMIZED`).
    """
    from_yaml: dict[str, Any] = dict(load_yaml(yaml_path)) if yaml_path is not None else {}
    flags = dict(flags or {})
    # Validate the YAML's keys on their own first, so a typo names the file.
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in from_yaml:
        if key not in names:
            raise ConfigError(
                f"{yaml_path}: unknown key {key!r}.{suggest(key, names)} "
                f"Valid keys: {', '.join(sorted(names))}."
            )
    if isinstance(from_yaml.get("parallel"), bool):  # YAML 1.1 reads on/off as true/false
        from_yaml["parallel"] = "on" if from_yaml["parallel"] else "off"
    # Each layer is checked on its own first, so an error names the flag or the file key.
    for key, value in flags.items():
        if key in names:
            check_value(TrainConfig, key, value, "--")
    if yaml_path is not None:
        for key, value in from_yaml.items():
            check_value(TrainConfig, key, value, str(yaml_path))
    chosen = {**from_yaml, **flags}
    if isinstance(chosen.get("parallel"), bool):  # YAML 1.1 reads on/off as true/false
        chosen["parallel"] = "on" if chosen["parallel"] else "off"
    task, env = chosen.get("task"), chosen.get("env")
    if task is None and env is None:
        raise ConfigError(
            f"say what to train on: --task {'|'.join(task_names())} or --env ENV_ID"
        )
    if task is not None and env is not None:
        raise ConfigError(f"give --task or --env, not both (got task={task!r}, env={env!r})")
    source = env if env is not None else f"task:{task}"
    randomized = chosen.get("randomize", "none") != "none"
    preset = preset_values(
        str(chosen.get("preset", "auto")), source, offline=offline, demos=demos, randomized=randomized
    )
    return from_mapping(TrainConfig, {**preset, **chosen}, where=str(yaml_path or "config"))
