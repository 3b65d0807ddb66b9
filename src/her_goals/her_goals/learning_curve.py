"""The learning curve: requested-goal success with its Wilson interval, against env steps and wall-clock.

Every training run (``her train``, ``her loop``, ``her fleet``) writes one beside its
training log, and ``her audit`` draws the same from a training log it is given. Only
requested-goal success on held-out goals is plotted as a result; nothing hindsight.

It lives beside the training log's one set of field names (:mod:`her_goals.training_log`)
because it is the log's plot, and in ``her_goals`` because the learner, the app and the audit
all draw it and ``her_goals`` is what all three may import. matplotlib is imported only when a
curve is drawn, so importing ``her_goals`` (the robot's control path does) never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_learning_curve(
    rows: Sequence[Any],
    path: Path,
    *,
    title: str,
    target: float | None = 0.9,
    x: str = "env_steps",
) -> Path | None:
    """Write a two-panel PNG (success vs ``x``: env steps, or ``updates`` for offline
    training; and vs wall-clock) from rows with ``x``, ``train_wall_s`` (or ``wall_s``),
    ``requested_success``, ``ci_low``, ``ci_high``; None when there is nothing to plot."""
    points = [r for r in rows if _get(r, "requested_success") == _get(r, "requested_success")]
    if not points:
        return None
    import matplotlib  # heavy and optional on the control path: only when a curve is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen

    steps = [float(_get(r, x)) for r in points]
    wall = [float(_get(r, "train_wall_s", _get(r, "wall_s", 0.0))) for r in points]
    success = [float(_get(r, "requested_success")) for r in points]
    low = [float(_get(r, "ci_low", s)) for r, s in zip(points, success)]
    high = [float(_get(r, "ci_high", s)) for r, s in zip(points, success)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    first = "gradient updates" if x == "updates" else x.replace("_", " ")
    for ax, xs, label in ((axes[0], steps, first), (axes[1], wall, "wall-clock (s)")):
        ax.fill_between(xs, low, high, alpha=0.25, color="tab:blue", label="Wilson 95% interval")
        ax.plot(xs, success, marker="o", color="tab:blue", label="requested-goal success")
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=0.8, label=f"{target:g}")
        ax.set_xlabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success on held-out goals")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _get(row: Any, name: str, default: Any = float("nan")) -> Any:
    if isinstance(row, dict):
        return row.get(name, default)
    return getattr(row, name, default)
