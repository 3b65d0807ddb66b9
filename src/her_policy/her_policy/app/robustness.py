"""``her robustness``: how a policy degrades under named perturbations of the simulated arm.

Every condition (nominal, each single perturbation of the suite at both ends of its range,
each "all together" bundle - low and high friction - or the user's own ``--perturbation
key=value,...``) runs the *same* held-out requested goals with the same block placements
through the full control loop (limits, IK, safety monitor). For each: requested-goal success
judged on the **true** final state with its Wilson interval, the drop in points from
nominal, the mean safety cost per episode, and how often the **measured** state (what the
loop and a robot's bags see) gave a different verdict than the truth (honest sensing). The
report calls out the worst single condition and the worst bundle ("all together" is the
worst bundle's figure). Writes ``robustness.md``, ``robustness.json`` and
``robustness.png``. ``--compare`` runs more policies (say, one trained with ``--randomize
default`` beside one trained without) on the same goals and conditions, side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import her_mujoco
from her_goals.checks import EpisodeCount, NonNegativeInt, OutputDir, check_fields
from her_goals.errors import ConfigError
from her_goals.evaluation import EvaluationPlan
from her_goals.outputs import StagedOutput, refuse_existing
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_goals.stats import wilson_interval
from her_goals.tasks import TaskName
from her_mujoco.randomization import BUNDLES, PERTURBATION_SUITE, SimParams, parse_sim_params
from her_policy.app.sim import policy_actor, sim_control_loop


@dataclass(frozen=True)
class RobustnessSettings:
    """``her robustness``: a policy's requested-goal success under a suite of perturbations."""

    policy: str = field(metadata={"positional": True})
    """Policy artefact directory, or 'scripted' (the task's controller, as a stand-in)."""
    task: TaskName = "push"
    """Registered task."""
    goals: EpisodeCount = 100
    """Held-out requested goals per condition (the same goals in every condition)."""
    perturbation: tuple[str, ...] = ()
    """Conditions to run instead of the standard suite, each KEY=VALUE[,KEY=VALUE...] of
    SimParams fields (e.g. latency_ticks=2 or block_friction_scale=0.5,table_friction_scale=0.5)."""
    out: OutputDir | None = None
    """Directory for robustness.md/.json/.png (default: beside the artefact); one holding a
    report already is refused unless --overwrite."""
    seed: NonNegativeInt = 0
    """Held-out stream seed."""
    compare: tuple[str, ...] = ()
    """More policies (artefact directories or 'scripted') run on the same goals and conditions,
    reported side by side with POLICY (e.g. a --randomize default policy beside a nominal one)."""
    overwrite: bool = False
    """Replace a robustness report already in --out (the new one is renamed into place whole)."""

    def __post_init__(self) -> None:
        check_fields(self, where="--")  # the task: a registered one, or the closest named
        for name, policy in (("POLICY", self.policy), *(("--compare", p) for p in self.compare)):
            if policy != "scripted" and not Path(policy).exists():
                raise ConfigError(f"{name} {policy!r}: not 'scripted' and no such artefact directory")
        for spec in self.perturbation:
            parse_perturbation(spec)


parse_perturbation = parse_sim_params
"""``KEY=VALUE,...`` of SimParams fields to a SimParams (``her_mujoco.randomization``)."""


@dataclass
class ConditionResult:
    """One condition's outcome on the shared held-out goals."""

    name: str
    params: dict[str, Any]
    n_goals: int
    successes: int
    ci_low: float
    ci_high: float
    drop_points: float
    safety_cost_mean: float
    measured_successes: int
    verdict_flips: int
    """Episodes where the measured final state's verdict differs from the true one's."""
    success_margin_mean: float
    """Mean of tolerance - final distance (true state), goal-space units: how close calls were."""
    kind: str = "single"
    """nominal, single (one knob; also a --perturbation of the user's) or bundle (everything
    together in one direction: her_mujoco.randomization.BUNDLES)."""

    @property
    def success(self) -> float:
        return self.successes / self.n_goals if self.n_goals else math.nan


def run_condition(
    env: Any, actor: Any, goals: Any, params: Any, *, seed: int, name: str
) -> ConditionResult:
    """Run the goals under ``params``; success judged on the true final state."""
    task = env.unwrapped
    sim, space = task.sim, task.goal_space
    loop = sim_control_loop(env, actor)
    horizon = int(env.spec.max_episode_steps) if env.spec and env.spec.max_episode_steps else 50
    wins = measured_wins = flips = 0
    costs, margins = [], []
    for i, goal in enumerate(goals):
        sim.set_params(params, seed=seed + i)
        env.reset(seed=seed + i, options={"desired_goal": np.asarray(goal, dtype=np.float64)})
        result = loop.run_episode(goal, max_ticks=horizon)
        true_achieved = task.achieved_goal_extractor(sim.true_state())
        measured = task.achieved_goal_extractor(sim.state())
        true_ok = bool(space.is_success(true_achieved, goal))
        measured_ok = bool(space.is_success(measured, goal))
        wins += true_ok
        measured_wins += measured_ok
        flips += true_ok != measured_ok
        costs.append(result.safety_cost)
        margins.append(float(space.tolerance - space.distance(true_achieved, goal)))
    sim.set_params(type(params)())
    n = len(costs)
    low, high = wilson_interval(wins, n)
    return ConditionResult(
        name, params.record(), n, wins, low, high, 0.0, float(np.mean(costs)) if n else 0.0,
        measured_wins, flips, float(np.mean(margins)) if n else math.nan,
    )  # fmt: skip


def run_robustness(
    policy: str, task: str, goals: int, conditions: dict[str, Any], *, seed: int = 0, report: Any = None
) -> list[ConditionResult]:
    """Nominal first, then every condition, on the same held-out goals."""
    env = her_mujoco.make_task(task)
    actor = policy_actor(env, policy, seed=seed)
    base: Any = env.unwrapped
    plan = EvaluationPlan.for_task(task, "eval", planned_episodes=goals, stream_seed=seed, sampler=base.goal_sampler)
    heldout = plan.goals()
    results = []
    for name, params in {"nominal": SimParams(), **conditions}.items():
        result = run_condition(env, actor, heldout, params, seed=10_000 + seed, name=name)
        result.kind = condition_kind(name)
        results.append(result)
        if report is not None:
            report(f"  {name:<40} {result.success:.2f} [{result.ci_low:.2f}, {result.ci_high:.2f}]")
    env.close()
    nominal = results[0].success
    for r in results:
        r.drop_points = round(100.0 * (nominal - r.success), 1)
    return results


def condition_kind(name: str) -> str:
    """nominal, bundle (a name of her_mujoco.randomization.BUNDLES) or single."""
    return "nominal" if name == "nominal" else "bundle" if name in BUNDLES else "single"


def worst(results: list[ConditionResult], kind: str) -> ConditionResult | None:
    """The condition of that kind with the lowest success (the first on a tie), or None."""
    of_kind = [r for r in results if r.kind == kind]
    return min(of_kind, key=lambda r: r.success) if of_kind else None


def worst_lines(results: list[ConditionResult]) -> list[str]:
    """The call-outs under a report: the worst single condition and the worst bundle."""
    lines = []
    for kind, what in (("single", "worst single condition"), ("bundle", "worst bundle (all together)")):
        r = worst(results, kind)
        if r is not None:
            lines.append(f"{what}: {r.name} {r.success:.2f} ({-r.drop_points:+.0f} points from nominal)")
    return lines


def markdown(results: list[ConditionResult], title: str) -> str:
    lines = [
        f"# Robustness: {title}",
        "",
        "Requested-goal success on the same held-out goals under each condition, judged on the",
        "true final state (Wilson 95% interval); drop in points from nominal; mean safety cost",
        "per episode; episodes where the measured state's verdict differed from the truth.",
        "",
        "| condition | success | 95% CI | drop (points) | safety cost | verdict flips | margin |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("nominal", "single", "bundle"):
        for r in results:
            if r.kind != kind:
                continue
            name = f"**{r.name}** (bundle)" if kind == "bundle" else r.name
            lines.append(
                f"| {name} | {r.success:.2f} | [{r.ci_low:.2f}, {r.ci_high:.2f}] | {r.drop_points:+.1f} "
                f"| {r.safety_cost_mean:.2f} | {r.verdict_flips}/{r.n_goals} | {r.success_margin_mean:+.3f} |"
            )
    callouts = worst_lines(results)
    if callouts:
        lines += ["", *(f"- {line}" for line in callouts)]
    return "\n".join(lines) + "\n"


def policy_label(policy: str) -> str:
    """A short name for a policy: its run directory for ``RUN/policy``, else its directory name."""
    path = Path(policy)
    return path.parent.name if path.name == "policy" and path.parent.name else path.name


def markdown_side_by_side(by_policy: dict[str, list[ConditionResult]], title: str) -> str:
    labels = list(by_policy)
    lines = [
        f"# Robustness: {title}",
        "",
        "Requested-goal success (true final state) of each policy on the same held-out goals and",
        "conditions; the drop in points from that policy's own nominal in parentheses.",
        "",
        "| condition | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for i, first in enumerate(by_policy[labels[0]]):
        cells = [f"{rs[i].success:.2f} ({0.0 - rs[i].drop_points + 0.0:+.0f})" for rs in by_policy.values()]
        name = f"**{first.name}** (bundle)" if first.kind == "bundle" else first.name
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for label, results in by_policy.items():
        lines += [f"- {label}, {line}" for line in worst_lines(results)]
    for label, results in by_policy.items():
        lines += ["", markdown(results, f"{label}").replace("# Robustness: ", "## ")]
    return "\n".join(lines) + "\n"


def plot_side_by_side(by_policy: dict[str, list[ConditionResult]], path: Path, title: str) -> Path:
    import matplotlib  # heavy: only when a report is plotted

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen

    labels = list(by_policy)
    names = [r.name for r in by_policy[labels[0]]]
    height = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) * max(1, len(labels) / 1.5) + 1.4))
    for k, (label, results) in enumerate(by_policy.items()):
        y = np.array([r.success for r in results])
        err = np.maximum([[r.success - r.ci_low for r in results], [r.ci_high - r.success for r in results]], 0.0)
        ax.barh(np.arange(len(names)) + k * height, y, height=height, xerr=err, capsize=2, label=label)
    ax.set_yticks(np.arange(len(names)) + height * (len(labels) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("requested-goal success (true state)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(results: list[ConditionResult], path: Path, title: str) -> Path:
    import matplotlib  # heavy: only when a report is plotted

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen

    names = [r.name for r in results]
    y = np.array([r.success for r in results])
    err = np.array([[r.success - r.ci_low for r in results], [r.ci_high - r.success for r in results]])
    err = np.maximum(err, 0.0)  # a Wilson bound at 10/10 can round a hair below the rate
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(results) + 1.2))
    colours = {"nominal": "tab:green", "single": "tab:blue", "bundle": "tab:red"}
    ax.barh(names, y, xerr=err, color=[colours[r.kind] for r in results], capsize=3)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("requested-goal success (true state)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_robustness_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her robustness``."""
    text = (
        "Requested-goal success of a policy under the standard perturbation suite (every knob "
        "alone at both ends: latency 1 and 2 ticks, contact friction, block mass, joint damping, "
        "dry joint friction, sensor noise, servo gains with and without their damping) and all "
        "together in two bundles (low and high friction, the worst called out), on the same "
        "held-out goals; markdown, JSON and a plot."
    )
    parser: argparse.ArgumentParser = subparsers.add_parser("robustness", help=text, description=text)
    add_settings_arguments(parser, RobustnessSettings)
    parser.set_defaults(handler=robustness_command)
    return parser


REPORT_FILES = ("robustness.md", "robustness.json")
"""What makes a directory hold a robustness report (``--overwrite`` replaces it)."""


def robustness_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(RobustnessSettings, args)
    if settings.perturbation:
        conditions = {}
        for spec in settings.perturbation:
            params = parse_perturbation(spec)
            conditions[params.name()] = params
    else:
        conditions = dict(PERTURBATION_SUITE)
    out = Path(settings.out) if settings.out else (
        Path(settings.policy).parent / "robustness" if settings.policy != "scripted" else Path("robustness")
    )  # fmt: skip
    refuse_existing(out, REPORT_FILES, overwrite=settings.overwrite, what="a robustness report")
    if settings.compare:
        by_policy: dict[str, list[ConditionResult]] = {}
        for policy in (settings.policy, *settings.compare):
            label = policy_label(policy)
            while label in by_policy:
                label += "'"
            print(f"robustness of {policy} on {settings.task} ({settings.goals} held-out goals per condition):")
            by_policy[label] = run_robustness(
                policy, settings.task, settings.goals, conditions, seed=settings.seed, report=print
            )
            for line in worst_lines(by_policy[label]):
                print(f"  {line}")
        title = f"{settings.task}, {' vs '.join(by_policy)}, {settings.goals} held-out goals"
        with StagedOutput(out, last=REPORT_FILES[::-1]) as staged:
            (staged.dir / "robustness.md").write_text(markdown_side_by_side(by_policy, title))
            (staged.dir / "robustness.json").write_text(json.dumps(
                {label: [dataclasses.asdict(r) | {"success": r.success} for r in rs] for label, rs in by_policy.items()},
                indent=1))  # fmt: skip
            plot_side_by_side(by_policy, staged.dir / "robustness.png", title)
        print(f"report: {out / 'robustness.md'}")
        return 0
    title = f"{settings.task}, policy {policy_label(settings.policy)}, {settings.goals} held-out goals"
    print(f"robustness of {settings.policy} on {settings.task} ({settings.goals} held-out goals per condition):")
    results = run_robustness(
        settings.policy, settings.task, settings.goals, conditions, seed=settings.seed, report=print
    )
    for line in worst_lines(results):
        print(f"  {line}")
    with StagedOutput(out, last=REPORT_FILES[::-1]) as staged:
        (staged.dir / "robustness.md").write_text(markdown(results, title))
        (staged.dir / "robustness.json").write_text(
            json.dumps([dataclasses.asdict(r) | {"success": r.success} for r in results], indent=1))
        plot(results, staged.dir / "robustness.png", title)
    print(f"report: {out / 'robustness.md'}")
    return 0
