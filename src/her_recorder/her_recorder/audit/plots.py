"""The audit's PNG plots: success vs episodes, requested vs hindsight side by side, coverage.

Every figure carries a footer naming the bags, the config hash and the artefact
hash it came from, and the same text in the PNG's ``Description`` metadata, so a
figure copied out of its report still says where it came from. Figures are
drawn on :class:`matplotlib.figure.Figure` directly (Agg, no pyplot state), so
the audit runs headless and in threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from her_goals import GoalRegion
from her_goals.learning_curve import plot_learning_curve
from her_goals.training_log import read_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from her_recorder.audit.episodes import AuditedEpisode
    from her_recorder.audit.model import AuditReport, EpisodeAudit, TrainingLogSummary

SUCCESS_VS_EPISODES = "success_vs_episodes.png"
REQUESTED_VS_HINDSIGHT = "requested_vs_hindsight.png"
COVERAGE = "coverage.png"
LEARNING_CURVE = "learning_curve.png"


def provenance(report: AuditReport, *, max_bags: int = 3) -> tuple[str, str]:
    """(short footer for the figure, full text for the PNG metadata)."""
    names = [f"{Path(b).parent.name}/{Path(b).name}" for b in report.bags]
    shown = ", ".join(names[:max_bags]) + (
        f" +{len(names) - max_bags} more" if len(names) > max_bags else ""
    )
    hashes = ", ".join(report.config_hashes) or "none"
    short = (
        f"verdict: {report.verdict} | bags: {shown} | config hash: {hashes} | "
        f"artefact hash: {report.artefact_hash[:16]}"
    )
    full = (
        f"verdict: {report.verdict}; bags: {', '.join(report.bags)}; config hash: {hashes}; "
        f"artefact hash: {report.artefact_hash}"
    )
    return short, full


def _save(fig: Figure, report: AuditReport, path: Path, title: str) -> str:
    short, full = provenance(report)
    fig.text(0.01, 0.01, short, fontsize=7, color="0.3", ha="left", va="bottom")
    fig.savefig(
        path,
        dpi=110,
        metadata={"Title": title, "Description": full, "Software": "her_recorder.audit"},
    )
    return str(path)


def _rolling(values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Trailing mean over up to ``window`` values (shorter at the start)."""
    if not len(values):
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return np.asarray((csum[idx] - csum[lo]) / (idx - lo))


def _success_vs_episodes(report: AuditReport, out: Path) -> str:
    from matplotlib.figure import Figure  # heavy: only when the audit draws its PNGs

    log = report.training_log
    fig = Figure(figsize=(10, 7.5 if log is not None else 4.8), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))  # type: ignore[call-arg, union-attr]
    axes = fig.subplots(2 if log is not None else 1, 1, squeeze=False)[:, 0]
    _episode_panel(axes[0], [a for a in report.episodes if a.status == "complete"])
    if log is not None:
        _training_log_panel(axes[1], log)
    return _save(fig, report, out / SUCCESS_VS_EPISODES, "requested-goal success vs episodes")


def _episode_panel(ax: Axes, audits: list[EpisodeAudit]) -> None:
    """Rolling requested-goal success (all, evaluation) and hindsight success per episode."""
    n = len(audits)
    window = max(5, n // 10)
    x = np.arange(n)
    ok = np.array([a.counted_success for a in audits], dtype=np.float64)
    hs = np.array([a.hindsight_success for a in audits], dtype=np.float64)
    if n:
        ax.plot(
            x,
            _rolling(ok, window),
            color="C0",
            lw=2,
            label=f"requested-goal success, all (rolling {window})",
        )
        ev = np.array([a.split == "eval" for a in audits])
        if ev.any():
            ax.plot(
                x[ev],
                _rolling(ok[ev], window),
                color="C2",
                lw=2,
                marker=".",
                label=f"requested-goal success, evaluation episodes (rolling {window})",
            )
        ax.plot(
            x,
            _rolling(hs, window),
            color="0.5",
            lw=1.5,
            ls="--",
            label="hindsight success (relabelled goals) - NOT a result",
        )
        colours = {"eval": "C2", "train": "C0", "unknown": "0.4"}
        ax.scatter(x, -0.06 + 1.12 * ok, s=40, c=[colours[a.split] for a in audits], marker="|")
    else:
        ax.text(0.5, 0.5, "no complete episodes", ha="center", transform=ax.transAxes)
    ax.set_ylim(-0.1, 1.1)
    ax.set_xlabel("episode (bag order)")
    ax.set_ylabel("success rate")
    ax.set_title("Requested-goal success vs episodes (ticks: each episode's outcome)")
    ax.legend(loc="best", fontsize=8)


def _training_log_panel(ax: Axes, log: TrainingLogSummary) -> None:
    """The trainer's periodic requested-goal success beside its hindsight ratio."""
    ax.plot(
        log.step,
        log.requested_success,
        color="C2",
        marker="o",
        label="trainer's periodic requested-goal success (held-out goals)",
    )
    ax.plot(
        log.step,
        log.hindsight_ratio,
        color="0.5",
        ls="--",
        label="hindsight ratio (share of relabelled samples) - NOT a result",
    )
    ax.plot(
        log.step,
        log.positive_fraction_relabelled,
        color="0.7",
        ls=":",
        label="positive share of relabelled samples - NOT a result",
    )
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("training step (training log)")
    ax.set_ylabel("fraction")
    ax.set_title("Training log")
    ax.legend(loc="lower right", fontsize=8)


def _bars(
    ax: Axes,
    labels: list[str],
    values: list[float],
    colour: str,
    errors: list[tuple[float, float]] | None = None,
) -> None:
    y = np.array([v if v is not None and math.isfinite(v) else 0.0 for v in values])
    x = np.arange(len(labels))
    yerr = None
    if errors is not None:
        yerr = np.array([[max(0.0, v - lo), max(0.0, hi - v)] for v, (lo, hi) in zip(y, errors)]).T
    ax.bar(x, y, color=colour, yerr=yerr, capsize=4)
    for xi, v in zip(x, values):
        text = "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"
        ax.text(float(xi), 1.02, text, ha="center", fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.1)


def _requested_vs_hindsight(report: AuditReport, out: Path) -> str:
    from matplotlib.figure import Figure  # heavy: only when the audit draws its PNGs

    fig = Figure(figsize=(11, 4.8), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))  # type: ignore[call-arg, union-attr]
    left, right = fig.subplots(1, 2, sharey=True)
    req = report.requested_success
    keys = [("eval", "evaluation\n(held-out)"), ("train", "training"), ("all", "all complete")]
    _bars(
        left,
        [f"{label}\nn={req[k].n}" for k, label in keys],
        [req[k].rate for k, _ in keys],
        "C0",
        [(req[k].ci_low, req[k].ci_high) if req[k].n else (0.0, 0.0) for k, _ in keys],
    )
    left.set_ylabel("fraction")
    what = "the result" if report.verdict == "verified" else f"{report.verdict.upper()}: not a result"
    left.set_title(
        f"Requested-goal success ({what})\ntolerance {report.tolerance} "
        f"{report.goal_space.get('units', '')}, Wilson 95% CI"
    )
    h = report.hindsight
    _bars(
        right,
        [
            "hindsight\nepisode success",
            f"relabelled positive\nshare (bags, {h['strategy_used']})",
            "hindsight ratio\n(training log)",
            "hindsight ratio\n(configured)",
        ],
        [
            _f(h["episode_success"]),
            _f(h["positive_fraction_relabelled_bags"]),
            _f(h["hindsight_ratio_training"]),
            _f(h["hindsight_ratio_configured"]),
        ],
        "0.6",
    )
    right.set_title("Hindsight figures - NOT results\n(goals relabelled to achieved goals)")
    return _save(fig, report, out / REQUESTED_VS_HINDSIGHT, "requested vs hindsight success")


def _f(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


@dataclass(frozen=True)
class _CoveragePoints:
    """The goals a coverage figure draws, in the goal region's frame and cells."""

    achieved: NDArray[np.float64]
    desired: NDArray[np.float64]
    won: NDArray[np.bool_]
    """Per desired goal: its episode counts as a success."""
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    cell: float
    units: str

    @property
    def names(self) -> list[str]:
        dim = len(self.low)
        return list("xyz") if dim == 3 else [f"goal[{i}]" for i in range(dim)]

    @property
    def points(self) -> NDArray[np.float64]:
        return np.concatenate([self.achieved, self.desired, self.low[None, :], self.high[None, :]])

    def pairs(self) -> list[tuple[int, int]]:
        """Goal axes drawn against each other; axes along which nothing varies (a push
        task's table height) get no panel."""
        points = self.points
        spread = [k for k in range(len(self.low)) if np.ptp(points[:, k]) > 1e-9] or [0]
        return [(spread[0], k) for k in spread[1:3]] or [(spread[0], spread[0])]

    def edges(self, k: int) -> NDArray[np.float64]:
        """Cell edges along goal axis ``k`` covering the region and every goal."""
        points, low, cell = self.points, self.low, self.cell
        first = math.floor((points[:, k].min() - low[k]) / cell)
        last = math.ceil((points[:, k].max() - low[k]) / cell)
        return np.asarray(low[k] + cell * np.arange(first, max(last, first + 1) + 1))


def _coverage(report: AuditReport, eps: list[AuditedEpisode], region: GoalRegion, out: Path) -> str:
    from matplotlib.figure import Figure  # heavy: only when the audit draws its PNGs

    cov = report.coverage
    dim = len(region.low)
    pts = _CoveragePoints(
        achieved=(
            np.concatenate([np.concatenate([e.achieved_goal, e.next_achieved_goal]) for e in eps])
            if eps
            else np.zeros((0, dim))
        ),
        desired=np.stack([e.requested_goal for e in eps]) if eps else np.zeros((0, dim)),
        won=np.array([a.counted_success for a in report.episodes], dtype=bool),
        low=np.asarray(region.low, dtype=np.float64),
        high=np.asarray(region.high, dtype=np.float64),
        cell=float(cov["cell_size"]),
        units=cov["units"],
    )
    pairs = pts.pairs()
    fig = Figure(figsize=(5.5 * len(pairs) + 1, 5.2), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))  # type: ignore[call-arg, union-attr]
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (i, j) in zip(axes, pairs):
        if i == j:  # one-dimensional goals: histogram of achieved goals
            _histogram_panel(ax, pts, i)
        else:
            _heatmap_panel(fig, ax, pts, i, j)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Goal coverage: {cov['desired_cells_reached']}/{cov['desired_cells']} desired-goal cells, "
        f"{cov['region_cells_reached']}/{cov['region_cells']} region cells reached "
        f"({pts.cell} {pts.units} cells)",
        fontsize=10,
    )
    return _save(fig, report, out / COVERAGE, "goal coverage")


def _histogram_panel(ax: Axes, pts: _CoveragePoints, i: int) -> None:
    achieved, desired, won = pts.achieved, pts.desired, pts.won
    ax.hist(achieved[:, i], bins=pts.edges(i).tolist(), color="C0", alpha=0.6, label="achieved goals")
    ax.plot(desired[won, i], np.zeros(won.sum()), "o", color="C2", label="desired, success")
    ax.plot(desired[~won, i], np.zeros((~won).sum()), "x", color="C3", label="desired, failed")
    ax.axvspan(pts.low[i], pts.high[i], color="k", alpha=0.08, label="goal region")
    ax.set_xlabel(f"{pts.names[i]} ({pts.units})")
    ax.set_ylabel("achieved goals per cell")


def _heatmap_panel(fig: Figure, ax: Axes, pts: _CoveragePoints, i: int, j: int) -> None:
    from matplotlib.colors import LogNorm  # heavy: only when the audit draws its PNGs
    from matplotlib.patches import Rectangle  # heavy: only when the audit draws its PNGs

    achieved, desired, won, low, high = pts.achieved, pts.desired, pts.won, pts.low, pts.high
    edges_i, edges_j = pts.edges(i), pts.edges(j)
    if len(achieved):
        counts, _, _ = np.histogram2d(achieved[:, i], achieved[:, j], bins=(edges_i, edges_j))
        mesh = ax.pcolormesh(
            edges_i,
            edges_j,
            np.ma.masked_equal(counts.T, 0),
            cmap="Blues",
            norm=LogNorm(vmin=1, vmax=max(1.0, float(counts.max()))),
        )
        fig.colorbar(mesh, ax=ax, label="achieved goals per cell")
    ax.add_patch(
        Rectangle(
            (low[i], low[j]),
            high[i] - low[i],
            high[j] - low[j],
            fill=False,
            ec="k",
            lw=1.2,
            ls="--",
            label="goal region",
        )
    )
    ax.scatter(
        desired[won, i],
        desired[won, j],
        marker="o",
        s=30,
        facecolors="none",
        edgecolors="C2",
        label="desired goal, success",
    )
    ax.scatter(
        desired[~won, i],
        desired[~won, j],
        marker="x",
        s=30,
        color="C3",
        label="desired goal, failed",
    )
    ax.set_xlabel(f"{pts.names[i]} ({pts.units})")
    ax.set_ylabel(f"{pts.names[j]} ({pts.units})")
    ax.set_aspect("equal", adjustable="datalim")


def write_plots(
    report: AuditReport, eps: list[AuditedEpisode], region: GoalRegion, out: Path
) -> dict[str, str]:
    """Write the audit's PNGs into ``out``; returns name -> path."""
    files = {
        SUCCESS_VS_EPISODES: _success_vs_episodes(report, out),
        REQUESTED_VS_HINDSIGHT: _requested_vs_hindsight(report, out),
        COVERAGE: _coverage(report, eps, region, out),
    }
    if report.training_log is not None:
        curve = plot_learning_curve(
            read_rows(report.training_log.path), out / LEARNING_CURVE,
            title=f"training: requested-goal success on held-out goals ({Path(report.training_log.path).name})",
        )  # fmt: skip
        if curve is not None:
            files[LEARNING_CURVE] = str(curve)
    return files
