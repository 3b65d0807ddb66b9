"""Desired-goal samplers with disjoint training and held-out evaluation streams.

Requested-goal success is only meaningful on goals the learner never trained
on. Instead of hoping that two random streams never collide, the goal region is
cut into small cells (1 mm by default) and a fixed hash assigns every cell to
either the training or the evaluation split, one cell in ``heldout_every``
going to evaluation. Both streams draw from the same task distribution and
reject the other split's cells, so no goal can ever appear in both, whatever
the seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import ConfigError, GoalShapeError
from her_goals.spaces import GoalSpace

Split = Literal["train", "heldout"]

# Large odd constants for a spatial hash of integer cell coordinates.
_HASH_PRIMES = np.array([73856093, 19349663, 83492791, 2654435761], dtype=np.uint64)


@dataclass(frozen=True)
class GoalRegion:
    """An axis-aligned box of desired goals, with an optional share on its floor.

    ``floor_fraction`` of the goals get their last coordinate set to ``low[-1]``
    (an object goal resting on the table); the rest are uniform in the box.
    """

    low: tuple[float, ...]
    """Lower corner, in the goal space's units and frame."""
    high: tuple[float, ...]
    """Upper corner, in the goal space's units and frame."""
    floor_fraction: float = 0.0
    """Share of goals placed on the floor of the box (last coordinate = low)."""

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        if lo.shape != hi.shape or lo.ndim != 1:
            raise ConfigError(f"goal region: low {self.low} and high {self.high} differ in length")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()) or (hi < lo).any():
            raise ConfigError(f"goal region: need finite low <= high, got {self.low} .. {self.high}")
        if not 0.0 <= self.floor_fraction <= 1.0:
            raise ConfigError(f"goal region: floor_fraction must be in [0, 1], got {self.floor_fraction}")

    @property
    def dim(self) -> int:
        return len(self.low)

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        """``n`` goals from the region, shape (n, dim)."""
        lo, hi = np.asarray(self.low), np.asarray(self.high)
        goals = rng.uniform(lo, hi, size=(n, self.dim))
        if self.floor_fraction > 0:
            on_floor = rng.random(n) < self.floor_fraction
            goals[on_floor, -1] = lo[-1]
        return goals

    def contains(self, goals: ArrayLike, margin: float = 0.0) -> NDArray[np.bool_]:
        """True for goals inside the box grown by ``margin`` on every side."""
        g = np.asarray(goals, dtype=np.float64)
        lo, hi = np.asarray(self.low) - margin, np.asarray(self.high) + margin
        return np.asarray(np.all((g >= lo) & (g <= hi), axis=-1))


def cell_split(goals: ArrayLike, cell_size: float, heldout_every: int) -> NDArray[np.bool_]:
    """True for goals whose cell belongs to the held-out evaluation split."""
    g = np.asarray(goals, dtype=np.float64)
    cells = np.floor(g / cell_size).astype(np.int64).astype(np.uint64)
    primes = np.resize(_HASH_PRIMES, g.shape[-1])
    with np.errstate(over="ignore"):
        h = np.bitwise_xor.reduce(cells * primes, axis=-1)
        h = (h ^ (h >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return np.asarray(h % np.uint64(heldout_every) == 0)


@dataclass
class GoalSampler:
    """Seeded desired-goal streams for one task: training and held-out evaluation.

    >>> sampler = GoalSampler(space, region, seed=0)
    >>> sampler.sample()              # next training goal, shape (dim,)
    >>> sampler.heldout(100)          # the first 100 evaluation goals, same every call
    """

    space: GoalSpace
    region: GoalRegion
    seed: int = 0
    cell_size: float = 1e-3
    """Edge of the hash cells that split training from evaluation, in goal units."""
    heldout_every: int = 8
    """One cell in this many belongs to the evaluation split."""
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.region.dim != self.space.dim:
            raise GoalShapeError(
                f"goal region has {self.region.dim} dimensions but goal space "
                f"{self.space.name!r} has {self.space.dim}"
            )
        if self.heldout_every < 2:
            raise ConfigError(f"heldout_every must be >= 2, got {self.heldout_every}")
        self.reset(self.seed)

    def reset(self, seed: int) -> None:
        """Restart the training stream from ``seed``.

        The held-out list keeps following the construction ``seed``, so reseeding
        training episodes never changes which goals evaluation uses.
        """
        train_seq, _ = np.random.SeedSequence(int(seed)).spawn(2)
        self._rng = np.random.default_rng(train_seq)

    def random_state(self) -> dict[str, Any]:
        """Where the training stream is (to resume a run where it stopped)."""
        return dict(self._rng.bit_generator.state)

    def set_random_state(self, state: dict[str, Any]) -> None:
        """Continue the training stream from a :meth:`random_state`."""
        self._rng.bit_generator.state = state

    def _draw(self, rng: np.random.Generator, n: int, split: Split) -> NDArray[np.float64]:
        out: list[NDArray[np.float64]] = []
        have = 0
        want_heldout = split == "heldout"
        share = 1.0 / self.heldout_every if want_heldout else 1.0 - 1.0 / self.heldout_every
        for _ in range(1000):
            batch = self.region.sample(rng, max(16, int((n - have) / share * 1.3) + 1))
            keep = batch[cell_split(batch, self.cell_size, self.heldout_every) == want_heldout]
            out.append(keep)
            have += len(keep)
            if have >= n:
                return np.concatenate(out)[:n]
        raise ConfigError(
            f"could not draw {n} {split} goals from region {self.region}; is it degenerate "
            "in every dimension? Widen it or lower heldout_every."
        )

    def sample(self, n: int | None = None) -> NDArray[np.float64]:
        """Next training goal (shape (dim,)) or ``n`` of them (shape (n, dim))."""
        goals = self._draw(self._rng, 1 if n is None else n, "train")
        return goals[0] if n is None else goals

    def heldout(self, n: int, seed: int | None = None) -> NDArray[np.float64]:
        """``n`` held-out evaluation goals; the same list for the same seed, never a training goal."""
        _, eval_seq = np.random.SeedSequence(self.seed if seed is None else seed).spawn(2)
        return self._draw(np.random.default_rng(eval_seq), n, "heldout")

    def is_heldout(self, goals: ArrayLike) -> NDArray[np.bool_]:
        """True for goals that belong to the evaluation split."""
        return cell_split(self.space.check(goals), self.cell_size, self.heldout_every)
