"""Settings of a training run: one typed dataclass, its ``--help`` and its presets.

Every field of :class:`TrainConfig` is a ``her train --field-name`` option whose
help text is the field's docstring (read from this file's source with ``ast``).
Values are layered, later wins::

    TrainConfig defaults < preset for the env/task < --config YAML < command-line flags

and the merged mapping goes through :func:`her_goals.config.from_mapping`, so a
typo in a YAML key is rejected with a suggestion.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from her_goals.config import from_mapping, load_yaml, suggest
from her_goals.errors import ConfigError

Algorithm = Literal["ddpg", "td3", "sac"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (online in simulation, or offline from a filled buffer)."""

    # -- what to learn ---------------------------------------------------------
    task: str | None = None
    """her_mujoco task to train on: reach, push or pick_and_place."""
    env: str | None = None
    """Gymnasium goal-env id to train on instead of a task, e.g. FetchPush-v4."""
    preset: str = "auto"
    """Tuned settings applied before YAML and flags: auto (by env/task), none, or a preset name."""
    algo: Algorithm = "ddpg"
    """Learning algorithm: ddpg (HER paper / baselines recipe), td3 or sac."""
    # -- budget ----------------------------------------------------------------
    env_steps: int = 100_000
    """Stop after this many environment steps (all training envs together)."""
    max_wall_s: float | None = None
    """Stop after this many seconds of training wall-clock (evaluation time excluded)."""
    target_success: float | None = None
    """Stop once a periodic evaluation reaches this requested-goal success rate."""
    # -- collection ------------------------------------------------------------
    n_envs: int = 2
    """Training environments stepped together; one cycle = one episode in each."""
    parallel: Literal["auto", "on", "off"] = "auto"
    """Collect in a second process while learning: on, off, or auto (on with 2+ CPU cores)."""
    random_steps: int = 0
    """Env steps at the start with uniformly random actions."""
    exploration_noise: float | None = None
    """Std of Gaussian action noise, in units of the action half-range (None: 0.2 ddpg/td3, 0 sac)."""
    random_eps: float | None = None
    """Chance of a uniformly random action per step (None: 0.3 ddpg, 0 td3/sac)."""
    grasped_start: float = 0.0
    """Share of training episodes of an her_mujoco object task that start with the block held
    in the gripper (after the HER paper's pick-and-place aid); evaluation episodes never do."""
    # -- updates ---------------------------------------------------------------
    updates_per_step: float = 0.4
    """Gradient updates per env step (update-to-data ratio); baselines HER uses 0.4."""
    learning_starts: int = 0
    """Env steps collected before the first update."""
    batch_size: int = 256
    """Transitions per gradient update."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths of actor and critic."""
    gamma: float | None = None
    """Discount factor (None: 1 - 1/episode_length, the baselines HER choice)."""
    actor_lr: float = 1e-3
    """Actor Adam learning rate."""
    critic_lr: float = 1e-3
    """Critic Adam learning rate."""
    tau: float = 0.05
    """Polyak rate of the target networks: target <- (1 - tau) target + tau online."""
    target_update_every: int = 1
    """Gradient updates between target-network updates (baselines HER: 40, tau 0.05)."""
    action_l2: float = 1.0
    """Weight of the squared-action penalty in the actor loss (ddpg, td3)."""
    n_step: int = 1
    """Rewards summed before bootstrapping (1: one-step TD); scored against the relabelled goal."""
    clip_target: bool = True
    """Clip TD targets to [-1/(1-gamma), 0], the range of sparse-reward returns."""
    policy_noise: float = 0.2
    """td3: std of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """td3: clip of the target policy smoothing noise."""
    policy_delay: int = 2
    """td3: critic updates per actor update."""
    init_alpha: float = 0.1
    """sac: initial entropy temperature."""
    learn_alpha: bool = True
    """sac: tune the temperature towards an entropy of -action_dim."""
    # -- hindsight replay ------------------------------------------------------
    relabel_strategy: Literal["future", "final", "episode"] = "future"
    """Where relabelled goals come from (future is inclusive of the current step)."""
    replay_k: float = 4.0
    """Relabelled goals per real one; relabel probability k/(k+1)."""
    relabel_prob: float | None = None
    """Share of relabelled samples, overriding replay_k."""
    moving_share: float = 0.0
    """Share of each batch drawn from episodes whose achieved goal moved (0: uniform)."""
    buffer_capacity: int = 1_000_000
    """Replay rows (transitions plus one final observation per episode)."""
    clip_obs: float = 200.0
    """Clip of raw observations and goals before normalising."""
    norm_clip: float = 5.0
    """Clip of normalised inputs."""
    norm_eps: float = 0.01
    """Floor of the normaliser's standard deviation."""
    # -- evaluation and output -------------------------------------------------
    eval_every: int = 5_000
    """Env steps between requested-goal evaluations (0: only at the end)."""
    eval_episodes: int = 50
    """Held-out goals per periodic evaluation."""
    final_eval_episodes: int = 100
    """Held-out goals for the final evaluation (0: skip)."""
    seed: int = 0
    """Seed of networks, exploration, replay sampling and training-env resets."""
    torch_threads: int = 1
    """Torch CPU threads of the learner (0: torch default)."""
    out: Path | None = None
    """Directory for the policy artefact, checkpoints and the training log."""
    checkpoint_every: int = 0
    """Env steps between checkpoints in out/checkpoints (0: none)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.task is not None and self.env is not None:
            raise ConfigError(f"give task or env, not both (task={self.task!r}, env={self.env!r})")
        positive = {
            "env_steps": self.env_steps,
            "n_envs": self.n_envs,
            "batch_size": self.batch_size,
            "target_update_every": self.target_update_every,
            "policy_delay": self.policy_delay,
            "n_step": self.n_step,
            "buffer_capacity": self.buffer_capacity,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"tau must be in (0, 1], got {self.tau}")
        if self.gamma is not None and not 0.0 <= self.gamma < 1.0:
            raise ConfigError(f"gamma must be in [0, 1), got {self.gamma}")
        if self.updates_per_step < 0:
            raise ConfigError(f"updates_per_step must be >= 0, got {self.updates_per_step}")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden widths must be >= 1, got {self.hidden}")
        if not 0.0 <= self.grasped_start <= 1.0:
            raise ConfigError(f"grasped_start must be in [0, 1], got {self.grasped_start}")
        if self.grasped_start and self.env is not None:
            raise ConfigError(
                f"grasped_start is an her_mujoco task option; env {self.env!r} has no such reset"
            )
        if self.seed < 0 or self.seed >= 10**9:
            raise ConfigError(f"seed must be in [0, 1e9), got {self.seed}")
        if self.n_envs >= 1000:
            raise ConfigError(f"n_envs must be < 1000, got {self.n_envs}")

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


# -- presets -------------------------------------------------------------------
PRESETS: dict[str, dict[str, Any]] = {
    "fetch_reach": {
        # Reach is easy: small nets with one update per step beat 3x256 at 0.4 in
        # wall-clock; 50 held-out goals per check keep an early stop honest.
        "algo": "ddpg",
        "env_steps": 10_000,
        "n_envs": 2,
        "hidden": [64, 64],
        "updates_per_step": 1.0,
        "batch_size": 256,
        "eval_every": 500,
        "eval_episodes": 50,
        "target_success": 0.95,
        "parallel": "off",
    },
    "fetch_push": {
        # The baselines HER recipe at the scale of 2 MPI workers (4 episodes, then 40
        # updates of 512 and one target update per cycle), plus half of each batch
        # from episodes that moved the block. Measured on FetchPush-v4, 2 cores:
        # 3x256 nets reach 0.97 by 180k steps but cost ~24 ms per update (184k steps
        # in 15 min); 2x256 nets reached 0.90 at 140k steps in 460 s. Stops at 0.95
        # on 50 held-out goals so that the final 100-goal evaluation clears 0.9.
        "algo": "ddpg",
        "env_steps": 300_000,
        "n_envs": 4,
        "hidden": [256, 256],
        "updates_per_step": 0.2,
        "batch_size": 512,
        "gamma": 0.98,
        "tau": 0.05,
        "target_update_every": 40,
        "moving_share": 0.5,
        "eval_every": 10_000,
        "eval_episodes": 50,
        "target_success": 0.95,
        "parallel": "on",
    },
    "push": {
        # The fetch_push recipe on the arm's push task (issue 10): the same learner, an
        # env-step budget (150k) and no wall-clock cap. See PUSH_FINDINGS.md for curves.
        "algo": "ddpg",
        "env_steps": 150_000,
        "n_envs": 4,
        "hidden": [256, 256],
        "updates_per_step": 0.2,
        "batch_size": 512,
        "gamma": 0.98,
        "tau": 0.05,
        "target_update_every": 40,
        "moving_share": 0.5,
        "n_step": 3,
        "eval_every": 10_000,
        "eval_episodes": 50,
        "target_success": 0.95,
        "parallel": "on",
    },
    "pick_and_place": {
        # The push recipe plus a pick-and-place exploration aid after the HER paper: half
        # of the training episodes start with the block held in the closed gripper where
        # it lies on the table (evaluation episodes never do).
        "algo": "ddpg",
        "env_steps": 500_000,
        "n_envs": 4,
        "hidden": [256, 256],
        "updates_per_step": 0.2,
        "batch_size": 512,
        "gamma": 0.98,
        "tau": 0.05,
        "target_update_every": 40,
        "moving_share": 0.5,
        "n_step": 3,
        "grasped_start": 0.5,
        "eval_every": 20_000,
        "eval_episodes": 50,
        "target_success": 0.95,
        "parallel": "on",
    },
}
"""Tuned settings by name; see :data:`PRESET_FOR` for which env/task uses which."""

PRESET_FOR: dict[str, str] = {
    "FetchReach-v4": "fetch_reach",
    "task:reach": "fetch_reach",
    "FetchPush-v4": "fetch_push",
    "task:push": "push",
    "FetchPickAndPlace-v4": "fetch_push",
    "task:pick_and_place": "pick_and_place",
}


def preset_values(name: str, source: str) -> dict[str, Any]:
    """The settings of preset ``name`` ("auto": the one for ``source``; "none": nothing)."""
    if name == "none":
        return {}
    if name == "auto":
        key = PRESET_FOR.get(source)
        return dict(PRESETS[key]) if key else {}
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}.{suggest(name, PRESETS)} Presets: "
            f"{', '.join(['auto', 'none', *PRESETS])}."
        )
    return dict(PRESETS[name])


# -- field docs and the command line -------------------------------------------
@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Docstrings of a dataclass's fields: the string literal right after each annotation."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef)).body
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of an annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), True
    return annotation, False


def _none_or(convert: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()
) -> None:
    """One ``--field-name`` option per dataclass field, typed, with the field docstring as help.

    Every option defaults to None (SUPPRESS), so :func:`overrides` sees only what was typed.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        base, optional = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{docs.get(f.name, '')} (default: {default})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is Literal:
            kwargs["choices"] = list(typing.get_args(base))
        elif typing.get_origin(base) is tuple:
            item = typing.get_args(base)[0]
            kwargs.update(nargs="+", type=item, metavar=item.__name__.upper())
        elif base in (int, float, str, Path):
            kwargs["type"] = _none_or(base) if optional else base
            kwargs["metavar"] = base.__name__.upper()
        parser.add_argument(flag, **kwargs)


def overrides(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The dataclass fields given on the command line, as a plain mapping."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in vars(namespace).items():
        if key in names:
            out[key] = str(value) if isinstance(value, Path) else value
    return out


def build_train_config(
    flags: Mapping[str, Any] | None = None, *, yaml_path: str | Path | None = None
) -> TrainConfig:
    """Layer defaults < preset < YAML < flags into a validated :class:`TrainConfig`."""
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
    chosen = {**from_yaml, **flags}
    if isinstance(chosen.get("parallel"), bool):  # YAML 1.1 reads on/off as true/false
        chosen["parallel"] = "on" if chosen["parallel"] else "off"
    task, env = chosen.get("task"), chosen.get("env")
    if task is None and env is None:
        raise ConfigError("say what to train on: --task reach|push|pick_and_place or --env ENV_ID")
    if task is not None and env is not None:
        raise ConfigError(f"give --task or --env, not both (got task={task!r}, env={env!r})")
    source = env if env is not None else f"task:{task}"
    preset = preset_values(str(chosen.get("preset", "auto")), source)
    return from_mapping(TrainConfig, {**preset, **chosen}, where=str(yaml_path or "config"))
