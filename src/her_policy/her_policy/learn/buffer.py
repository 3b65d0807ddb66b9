"""HER replay buffer: whole episodes in, relabelled batches out.

Episodes are stored whole, one row per observation: an episode of ``T``
transitions occupies ``T + 1`` consecutive rows, row ``s + t`` holding the
observation and achieved goal *before* action ``t`` (and action ``t``), row
``s + T`` the final observation and achieved goal. So transition ``t`` reads its
next observation and next achieved goal from row ``s + t + 1``, and no
observation is stored twice.

Relabelling happens at sample time, never at insertion: a sampled transition
keeps its own desired goal with probability ``1 - relabel_prob`` and otherwise
gets an achieved goal of the same episode, chosen by the strategy. Worked
example, an episode of ``T = 3`` transitions stored in rows 10..13, achieved
goals ``ag[10..13]``; for transition ``t = 1`` (row 11):

* ``future`` draws uniformly from ``ag[12], ag[13]``: the achieved goals *after*
  steps 1 and 2. It is inclusive like Stable-Baselines3's and OpenAI baselines'
  (``future_t = t + 1 + U{0..T-t-1}``): ``ag[12]`` is this transition's own
  next achieved goal, so such a sample always has reward 0. Never a goal from
  before the current step.
* ``final`` takes ``ag[13]``, the last next-achieved goal.
* ``episode`` draws uniformly from ``ag[11..13]``, the next-achieved goals of
  every transition of the episode (steps before the current one included).

Rewards are recomputed for the whole batch with one vectorised call of the goal
space's pure function, relabelled or not::

    reward = goal_space.compute_reward(next_achieved_goal, desired_goal)

Sampling draws row indices uniformly and rejects the few rows that are not
transitions (final observations and evicted leftovers), so its cost depends on
the batch size only, never on how much is stored.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.episode_arrays import EpisodeArrays
from her_goals.spaces import GoalSpace
from her_policy.errors import EmptyBufferError, EpisodeError, GoalSpaceMismatchError, PolicyError

_SAVED_ARRAYS = (
    "obs",
    "action",
    "achieved",
    "desired",
    "terminated",
    "truncated",
    "ep_start",
    "ep_end",
    "is_transition",
    "moving",
)


class RelabelStrategy(str, Enum):
    """Where a relabelled goal comes from (see the module docstring)."""

    FUTURE = "future"
    FINAL = "final"
    EPISODE = "episode"


def relabel_probability(k: float) -> float:
    """Share of relabelled samples for ``k`` relabelled goals per real one (k=4 -> 0.8)."""
    if not k >= 0:
        raise PolicyError(f"replay k must be >= 0, got {k}")
    return float(k) / (float(k) + 1.0)


class BatchStats(NamedTuple):
    """What a batch says about hindsight: its relabelled share and positive rewards."""

    hindsight_ratio: float
    """Fraction of the batch whose desired goal was relabelled."""
    positive_fraction_original: float
    """Fraction with reward 0 among samples that kept their requested goal (NaN if none)."""
    positive_fraction_relabelled: float
    """Fraction with reward 0 among relabelled samples (NaN if none)."""


class NStepTarget(NamedTuple):
    """What an n-step TD target needs, with rewards scored against the batch's goals.

    For a transition at step t of an episode of T steps, m = min(n, T - t) steps are
    used: ``returns = sum_{j<m} gamma^j * compute_reward(ag[t+1+j], desired_goal)``,
    bootstrapping from ``observation`` = obs[t+m] with factor ``discount`` = gamma^m
    unless ``terminated`` (the episode terminated at step t+m-1).
    """

    returns: NDArray[np.float32]
    observation: NDArray[np.float32]
    discount: NDArray[np.float32]
    terminated: NDArray[np.bool_]


class HerBatch(NamedTuple):
    """A sampled batch of transitions with (possibly relabelled) desired goals."""

    observation: NDArray[np.float32]
    """(B, observation_dim) observation before the action."""
    action: NDArray[np.float32]
    """(B, action_dim) action taken, in the env's units."""
    next_observation: NDArray[np.float32]
    """(B, observation_dim) observation after the action."""
    desired_goal: NDArray[np.float64]
    """(B, goal_dim) goal the sample is scored against: the requested one or a relabelled one."""
    next_achieved_goal: NDArray[np.float64]
    """(B, goal_dim) achieved goal after the action."""
    reward: NDArray[np.float32]
    """(B,) ``goal_space.compute_reward(next_achieved_goal, desired_goal)``."""
    terminated: NDArray[np.bool_]
    """(B,) the episode ended in a terminal state here: no bootstrapping."""
    truncated: NDArray[np.bool_]
    """(B,) the episode was cut here (time limit): the TD target still bootstraps."""
    relabelled: NDArray[np.bool_]
    """(B,) True where ``desired_goal`` is a hindsight goal, not the requested one."""
    stats: BatchStats
    n_step: NStepTarget | None = None
    """Multi-step target data when sampled with ``n_step > 1``; None for one-step TD."""
    prior: NDArray[np.bool_] | None = None
    """(B,) True where the sample comes from prior data (demonstrations) rather than the
    learner's own experience; None when the batch has no prior data."""
    cost: NDArray[np.float32] | None = None
    """(B,) safety cost of each sampled step (never relabelled: it is the step's, not the
    goal's); ``reward`` already has ``cost_weight x cost`` subtracted when sampled with one."""


def concat_batches(batches: list[HerBatch]) -> HerBatch:
    """One batch of the rows of ``batches`` in order (e.g. demonstrations + own experience).

    The hindsight figures are the sample-weighted means of the parts' (NaN parts skipped).
    """
    if not batches:
        raise PolicyError("concat_batches needs at least one batch")
    sizes = np.array([b.action.shape[0] for b in batches], np.float64)

    def weighted(values: list[float], weights: NDArray[np.float64]) -> float:
        keep = [(v, w) for v, w in zip(values, weights) if not np.isnan(v) and w > 0]
        if not keep:
            return float("nan")
        return float(sum(v * w for v, w in keep) / sum(w for _, w in keep))

    relabelled = np.array([np.count_nonzero(b.relabelled) for b in batches], np.float64)
    stats = BatchStats(
        hindsight_ratio=float(relabelled.sum() / sizes.sum()),
        positive_fraction_original=weighted(
            [b.stats.positive_fraction_original for b in batches], sizes - relabelled
        ),
        positive_fraction_relabelled=weighted(
            [b.stats.positive_fraction_relabelled for b in batches], relabelled
        ),
    )
    steps = [b.n_step for b in batches]
    if any(s is None for s in steps) and not all(s is None for s in steps):
        raise PolicyError("concat_batches: every batch must be n-step, or none")
    n_step = None
    if steps[0] is not None:
        n_step = NStepTarget(*(np.concatenate(parts) for parts in zip(*steps)))
    prior = np.concatenate(
        [b.prior if b.prior is not None else np.zeros(b.action.shape[0], bool) for b in batches]
    )

    def cat(name: str) -> Any:
        return np.concatenate([getattr(b, name) for b in batches])

    return HerBatch(
        observation=cat("observation"),
        action=cat("action"),
        next_observation=cat("next_observation"),
        desired_goal=cat("desired_goal"),
        next_achieved_goal=cat("next_achieved_goal"),
        reward=cat("reward"),
        terminated=cat("terminated"),
        truncated=cat("truncated"),
        relabelled=cat("relabelled"),
        stats=stats,
        n_step=n_step,
        prior=prior if prior.any() else None,
        cost=cat("cost") if all(b.cost is not None for b in batches) else None,
    )


def _flags(value: ArrayLike | bool, n: int, what: str) -> NDArray[np.bool_]:
    arr = np.asarray(value)
    if arr.ndim == 0:
        out = np.zeros(n, dtype=bool)
        out[-1] = bool(arr)
        return out
    if arr.shape != (n,):
        raise EpisodeError(
            f"{what} must be one flag or one per transition ({n},), got shape {arr.shape}"
        )
    out = arr.astype(bool)
    if out[:-1].any():
        first = int(np.flatnonzero(out[:-1])[0])
        raise EpisodeError(
            f"{what} is set at step {first} of {n}: only the last transition of an episode "
            "can end it; split the data into episodes first"
        )
    return out


def _finite(arr: NDArray[Any], what: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise EpisodeError(
            f"{what} contains NaN or inf (first at index {bad}); the episode is not stored. "
            "Drop or repair the episode (a diverged simulation or a sensor dropout)."
        )


def hindsight_goal_rows(
    strategy: RelabelStrategy,
    rows: NDArray[np.int64],
    episode_start: NDArray[np.int64],
    episode_end: NDArray[np.int64],
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """The rows whose achieved goals replace the desired goals of relabelled transitions.

    ``rows`` are the sampled transitions' rows, ``episode_start``/``episode_end`` the
    first and the last row of each one's episode (the last row holds the final
    observation). In the module docstring's example (rows 10..13, transition row 11):
    ``future`` draws from 12..13, ``final`` takes 13, ``episode`` draws from 11..13.
    """
    if strategy is RelabelStrategy.FINAL:
        return episode_end.copy()
    first = rows + 1 if strategy is RelabelStrategy.FUTURE else episode_start + 1
    # Uniform over rows first..end inclusive (np.minimum guards float rounding).
    source = first + (rng.random(rows.size) * (episode_end - first + 1)).astype(np.int64)
    np.minimum(source, episode_end, out=source)
    return source


class HerReplayBuffer:
    """Episodic replay with hindsight relabelling at sample time.

    >>> buf = HerReplayBuffer(goal_space, observation_dim=25, action_dim=4)
    >>> buf.add_episode(obs, actions, achieved_goals, desired_goal, truncated=True)
    >>> batch = buf.sample(256)   # batch.reward == goal_space.compute_reward(...)
    """

    def __init__(
        self,
        goal_space: GoalSpace,
        observation_dim: int,
        action_dim: int,
        *,
        capacity: int = 1_000_000,
        strategy: RelabelStrategy | str = RelabelStrategy.FUTURE,
        k: float = 4.0,
        relabel_prob: float | None = None,
        moving_share: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        """``capacity`` counts stored rows: ``T + 1`` per episode of ``T`` transitions.

        ``relabel_prob`` overrides the share derived from ``k`` (k/(k+1)).
        ``moving_share`` is the share of each batch drawn from *moving* episodes,
        those whose achieved goal got at least one tolerance away from where it
        started (a pushed block; every reaching arm); the rest of the batch is
        uniform over all transitions. With 0 (default) sampling is uniform. In
        push-like tasks most episodes never touch the object, and their
        relabelled goals teach nothing but "the block stays put".
        """
        if observation_dim < 1 or action_dim < 1:
            raise PolicyError(
                f"observation_dim and action_dim must be >= 1, got {observation_dim}, {action_dim}"
            )
        if capacity < 2:
            raise PolicyError(f"buffer capacity must be >= 2 rows, got {capacity}")
        try:
            self.strategy = RelabelStrategy(strategy)
        except ValueError:
            raise PolicyError(
                f"unknown relabel strategy {strategy!r}; use one of "
                f"{[s.value for s in RelabelStrategy]}"
            ) from None
        p = relabel_probability(k) if relabel_prob is None else float(relabel_prob)
        if not 0.0 <= p <= 1.0:
            raise PolicyError(f"relabel_prob must be in [0, 1], got {relabel_prob}")
        self.relabel_prob = p
        if not 0.0 <= moving_share <= 1.0:
            raise PolicyError(f"moving_share must be in [0, 1], got {moving_share}")
        self.moving_share = float(moving_share)
        self.goal_space = goal_space
        self.observation_dim = int(observation_dim)
        self.action_dim = int(action_dim)
        self.goal_dim = goal_space.dim
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        n, g = self.capacity, self.goal_dim
        # np.zeros maps pages lazily: a large capacity costs memory only once filled.
        self._obs = np.zeros((n, self.observation_dim), np.float32)
        self._action = np.zeros((n, self.action_dim), np.float32)
        self._achieved = np.zeros((n, g), np.float64)
        self._desired = np.zeros((n, g), np.float64)
        self._terminated = np.zeros(n, bool)
        self._truncated = np.zeros(n, bool)
        self._cost = np.zeros(n, np.float32)
        """Safety cost of each transition row (0 where none was recorded)."""
        self._ep_start = np.full(n, -1, np.int64)
        self._ep_end = np.full(n, -1, np.int64)
        """Row of the episode's final observation; -1 for rows holding no episode."""
        self._is_transition = np.zeros(n, bool)
        self._moving = np.zeros(n, bool)
        """Transition rows of moving episodes (see ``moving_share``)."""
        self._n_moving = 0
        self._pos = 0
        self._high = 0
        self._n_transitions = 0
        self._n_episodes = 0
        self._episodes_added = 0
        self._chain = hashlib.sha256().digest()
        """The data hash so far: h_n = sha256(h_(n-1) + sha256(episode n)), so a buffer saved
        and loaded goes on with the same hash as one that never stopped."""

    @staticmethod
    def bytes_per_row(observation_dim: int, action_dim: int, goal_dim: int) -> int:
        """Memory one stored row takes when the buffer is full (observation and action float32,
        achieved and desired goal float64, episode bounds int64, four flags)."""
        return 4 * (observation_dim + action_dim) + 16 * goal_dim + 16 + 4

    # -- bookkeeping -----------------------------------------------------------
    @property
    def n_transitions(self) -> int:
        """Transitions currently stored (evicted episodes excluded)."""
        return self._n_transitions

    @property
    def n_episodes(self) -> int:
        """Episodes currently stored."""
        return self._n_episodes

    @property
    def moving_fraction(self) -> float:
        """Share of stored transitions whose episode moved its achieved goal (see moving_share)."""
        return self._n_moving / self._n_transitions if self._n_transitions else 0.0

    @property
    def episodes_added(self) -> int:
        """Episodes ever added, evicted ones included."""
        return self._episodes_added

    @property
    def data_hash(self) -> str:
        """sha256 over every episode ever added, in order: names the data a policy saw."""
        return self._chain.hex()

    def __len__(self) -> int:
        return self._n_transitions

    def __repr__(self) -> str:
        return (
            f"HerReplayBuffer({self.goal_space.name!r}, {self._n_episodes} episodes, "
            f"{self._n_transitions} transitions, capacity {self.capacity} rows, "
            f"{self.strategy.value} p={self.relabel_prob:g})"
        )

    # -- writing ---------------------------------------------------------------
    def add(self, episode: EpisodeArrays) -> int:
        """Store one :class:`~her_goals.episode_arrays.EpisodeArrays` (its executed actions);
        returns its number of transitions. A recorded reward is checked against the goal space."""
        return self.add_episode(
            episode.observation,
            episode.action,
            episode.achieved_goal,
            episode.desired_goal,
            next_observation=episode.next_observation,
            next_achieved_goal=episode.next_achieved_goal,
            terminated=episode.terminated,
            truncated=episode.truncated,
            reward=episode.reward,
            cost=episode.safety_cost,
        )

    def add_episode(
        self,
        observation: ArrayLike,
        action: ArrayLike,
        achieved_goal: ArrayLike,
        desired_goal: ArrayLike,
        *,
        next_observation: ArrayLike | None = None,
        next_achieved_goal: ArrayLike | None = None,
        terminated: ArrayLike | bool = False,
        truncated: ArrayLike | bool = False,
        reward: ArrayLike | None = None,
        cost: ArrayLike | None = None,
    ) -> int:
        """Store one episode of ``T`` transitions; returns ``T``.

        ``cost`` (T,) is each step's safety cost (a training env's safety layer, a bag's
        ``safety_cost``): it belongs to the step, so a relabelled sample keeps it.

        ``observation`` is (T+1, obs_dim), or (T, obs_dim) with ``next_observation``
        (T, obs_dim); likewise ``achieved_goal`` (T+1, g), or (T, g) with
        ``next_achieved_goal``. ``desired_goal`` is one goal (g,) or one per
        transition (T, g) ((T+1, g) is accepted; the last row is unused).
        ``terminated``/``truncated`` are one flag for the last transition or (T,)
        flags of which only the last may be set. ``reward``, if given (e.g. from a
        bag), is checked against the goal space's ``compute_reward``.
        """
        act = np.asarray(action, dtype=np.float32)
        if act.ndim != 2 or act.shape[0] < 1 or act.shape[1] != self.action_dim:
            raise EpisodeError(
                f"action has shape {act.shape}; expected (T, {self.action_dim}) with T >= 1"
            )
        n_steps = act.shape[0]
        obs = self._rows(
            observation, next_observation, n_steps, self.observation_dim, "observation"
        )
        ag = self._rows(achieved_goal, next_achieved_goal, n_steps, self.goal_dim, "achieved_goal")
        _finite(obs, "observation")
        _finite(act, "action")
        ag = self.goal_space.check(ag, "achieved_goal")
        dg = self.goal_space.check(desired_goal, "desired_goal")
        if dg.ndim == 1:
            dg = np.broadcast_to(dg, (n_steps, self.goal_dim))
        elif dg.ndim == 2 and dg.shape[0] in (n_steps, n_steps + 1):
            dg = dg[:n_steps]
        else:
            raise EpisodeError(
                f"desired_goal has shape {dg.shape}; expected ({self.goal_dim},) or "
                f"({n_steps}, {self.goal_dim}) for an episode of {n_steps} transitions"
            )
        term = _flags(terminated, n_steps, "terminated")
        trunc = _flags(truncated, n_steps, "truncated")
        if reward is not None:
            recorded = np.asarray(reward, dtype=np.float32).reshape(-1)
            if recorded.shape != (n_steps,):
                raise EpisodeError(f"reward has shape {recorded.shape}; expected ({n_steps},)")
            recomputed = self.goal_space.compute_reward(ag[1:], dg)
            bad = np.flatnonzero(recorded != recomputed)
            if bad.size:
                t = int(bad[0])
                raise EpisodeError(
                    f"recorded reward {recorded[t]} at step {t} disagrees with goal space "
                    f"{self.goal_space.name!r} (compute_reward gives {recomputed[t]}) at "
                    f"{bad.size} of {n_steps} steps: the data was made with another goal "
                    "space or tolerance, or the recorder computed rewards differently"
                )
        step_cost = np.zeros(n_steps, np.float32) if cost is None else np.asarray(cost, np.float32).reshape(-1)
        if step_cost.shape != (n_steps,) or not np.isfinite(step_cost).all():
            raise EpisodeError(f"cost has shape {step_cost.shape} or is not finite; expected ({n_steps},) finite values")
        n_rows = n_steps + 1
        if n_rows > self.capacity:
            raise EpisodeError(
                f"an episode of {n_steps} transitions needs {n_rows} rows; the buffer holds "
                f"{self.capacity}"
            )
        if self._pos + n_rows > self.capacity:
            self._pos = 0
        lo, hi = self._pos, self._pos + n_rows
        self._evict(lo, hi)
        self._obs[lo:hi] = obs
        self._action[lo : hi - 1] = act
        self._action[hi - 1] = 0.0
        self._achieved[lo:hi] = ag
        self._desired[lo : hi - 1] = dg
        self._desired[hi - 1] = dg[-1]
        self._terminated[lo : hi - 1] = term
        self._truncated[lo : hi - 1] = trunc
        self._terminated[hi - 1] = self._truncated[hi - 1] = False
        self._cost[lo : hi - 1] = step_cost
        self._cost[hi - 1] = 0.0
        self._ep_start[lo:hi] = lo
        self._ep_end[lo:hi] = hi - 1
        self._is_transition[lo : hi - 1] = True
        self._is_transition[hi - 1] = False
        start = np.broadcast_to(ag[0], ag.shape)
        moved = bool(self.goal_space.distance(ag, start).max() >= self.goal_space.tolerance)
        self._moving[lo : hi - 1] = moved
        self._moving[hi - 1] = False
        self._n_moving += n_steps if moved else 0
        self._pos = hi
        self._high = max(self._high, hi)
        self._n_transitions += n_steps
        self._n_episodes += 1
        self._episodes_added += 1
        episode = hashlib.sha256()
        for arr in (obs, act, ag, dg, term, trunc):
            episode.update(np.ascontiguousarray(arr).tobytes())
        self._chain = hashlib.sha256(self._chain + episode.digest()).digest()
        return n_steps

    def _rows(
        self, first: ArrayLike, second: ArrayLike | None, n_steps: int, dim: int, what: str
    ) -> NDArray[Any]:
        """The T+1 rows of ``what``: given whole, or as (current, next) pairs."""
        dtype = np.float32 if what == "observation" else np.float64
        arr = np.asarray(first, dtype=dtype)
        if second is None:
            if arr.shape != (n_steps + 1, dim):
                hint = f" (or ({n_steps}, {dim}) with next_{what})"
                raise EpisodeError(
                    f"{what} has shape {arr.shape}; an episode of {n_steps} transitions needs "
                    f"({n_steps + 1}, {dim}){hint}"
                )
            return arr
        nxt = np.asarray(second, dtype=dtype)
        if arr.shape != (n_steps, dim) or nxt.shape != (n_steps, dim):
            raise EpisodeError(
                f"{what} {arr.shape} and next_{what} {nxt.shape} must both be ({n_steps}, {dim})"
            )
        if not np.array_equal(arr[1:], nxt[:-1], equal_nan=True):
            t = int(np.flatnonzero(np.any(arr[1:] != nxt[:-1], axis=-1))[0])
            raise EpisodeError(
                f"next_{what}[{t}] differs from {what}[{t + 1}]: the steps are not one "
                "contiguous episode (a reset or a dropped message in the middle?)"
            )
        return np.concatenate([arr, nxt[-1:]])

    def _evict(self, lo: int, hi: int) -> None:
        """Forget every stored episode that overlaps rows [lo, hi)."""
        ends = self._ep_end[lo:hi]
        used = ends >= 0
        if not used.any():
            return
        first = int(self._ep_start[lo:hi][used].min())
        last = int(ends[used].max())
        region = slice(first, last + 1)
        self._n_transitions -= int(np.count_nonzero(self._is_transition[region]))
        self._n_moving -= int(np.count_nonzero(self._moving[region]))
        self._moving[region] = False
        starts = self._ep_start[region]
        self._n_episodes -= int(np.count_nonzero(starts == np.arange(first, last + 1)))
        self._is_transition[region] = False
        self._ep_start[region] = -1
        self._ep_end[region] = -1

    def stored(self) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
        """Copies of the stored observations, desired goals and next achieved goals of every
        live transition (e.g. to fit a normaliser before training offline)."""
        rows = np.flatnonzero(self._is_transition[: self._high])
        return (
            self._obs.take(rows, axis=0),
            self._desired.take(rows, axis=0),
            self._achieved.take(rows + 1, axis=0),
        )

    # -- sampling --------------------------------------------------------------
    def sample_rows(
        self, batch_size: int, rng: np.random.Generator | None = None
    ) -> NDArray[np.int64]:
        """Rows of ``batch_size`` transitions drawn with replacement: ``moving_share`` of them
        uniformly among transitions of moving episodes, the rest uniformly among all."""
        if self._n_transitions == 0:
            raise EmptyBufferError(
                "cannot sample from an empty replay buffer: add episodes first "
                "(collect with the env, or fill it from bags)"
            )
        if batch_size < 1:
            raise PolicyError(f"batch_size must be >= 1, got {batch_size}")
        rng = self.rng if rng is None else rng
        out = np.empty(batch_size, np.int64)
        n_moving = round(self.moving_share * batch_size) if self._n_moving else 0
        have = self._draw(self._moving, self._n_moving, out[:n_moving], rng, max_rounds=64)
        self._draw(self._is_transition, self._n_transitions, out[have:], rng)
        return out

    def _draw(
        self,
        mask: NDArray[np.bool_],
        count: int,
        out: NDArray[np.int64],
        rng: np.random.Generator,
        max_rounds: int | None = None,
    ) -> int:
        """Fill ``out`` with rows drawn uniformly among those where ``mask`` is set.

        floor(U * high) is uniform over the used rows [0, high); rows outside the
        mask are rejected. The number of candidates drawn depends on the batch size
        and the mask's share of rows, never on how many rows are stored. With
        ``max_rounds`` it may give up early; returns how many rows it filled.
        """
        share = max(count / max(self._high, 1), 1e-3)
        have = 0
        rounds = 0
        while have < out.size and (max_rounds is None or rounds < max_rounds):
            rounds += 1
            need = out.size - have
            cand = (rng.random(int(need / share * 1.2) + 8) * self._high).astype(np.int64)
            cand = cand[mask.take(cand)][:need]
            out[have : have + cand.size] = cand
            have += cand.size
        return have

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator | None = None,
        *,
        n_step: int = 1,
        gamma: float = 0.98,
        prior: bool = False,
        rows: NDArray[np.int64] | None = None,
        relabel_prob: float | None = None,
        cost_weight: float = 0.0,
    ) -> HerBatch:
        """A batch of transitions, relabelled by the buffer's strategy and probability.

        With ``n_step > 1`` the batch also carries an :class:`NStepTarget` (``gamma``
        discounts its rewards); all rewards still come from one vectorised
        ``compute_reward`` call. ``prior`` marks every sample as prior data
        (:attr:`HerBatch.prior`: a demonstration buffer's batches). ``rows`` (from
        :meth:`sample_rows`) and ``relabel_prob`` override what is drawn (diagnostics).
        ``cost_weight`` > 0 subtracts ``cost_weight x`` each step's safety cost from its reward
        *after* the goal space scored it against the (relabelled) goal (``TrainConfig.cost_penalty``;
        the n-step returns subtract every summed step's cost the same way).
        """
        rng = self.rng if rng is None else rng
        rows = self.sample_rows(batch_size, rng) if rows is None else rows
        p = self.relabel_prob if relabel_prob is None else relabel_prob
        relabel = rng.random(batch_size) < p
        goal = self._desired.take(rows, axis=0)
        idx = np.flatnonzero(relabel)
        if idx.size:
            r = rows.take(idx)
            source = hindsight_goal_rows(
                self.strategy, r, self._ep_start.take(r), self._ep_end.take(r), rng
            )
            goal[idx] = self._achieved.take(source, axis=0)
        next_rows = rows + 1
        next_ag = self._achieved.take(next_rows, axis=0)
        n_step_target = None
        if n_step > 1:
            reward, n_step_target = self._n_step(rows, goal, n_step, gamma, cost_weight)
        else:
            reward = self.goal_space.compute_reward(next_ag, goal)
        positive = reward == 0.0  # the goal's verdict, before any cost penalty
        step_cost = self._cost.take(rows)
        if cost_weight:
            reward = (reward - np.float32(cost_weight) * step_cost).astype(np.float32)
        n_rel = idx.size
        n_orig = batch_size - n_rel
        stats = BatchStats(
            hindsight_ratio=n_rel / batch_size,
            positive_fraction_original=(
                float(np.count_nonzero(positive & ~relabel)) / n_orig if n_orig else float("nan")
            ),
            positive_fraction_relabelled=(
                float(np.count_nonzero(positive & relabel)) / n_rel if n_rel else float("nan")
            ),
        )
        return HerBatch(
            observation=self._obs.take(rows, axis=0),
            action=self._action.take(rows, axis=0),
            next_observation=self._obs.take(next_rows, axis=0),
            desired_goal=goal,
            next_achieved_goal=next_ag,
            reward=reward,
            terminated=self._terminated.take(rows),
            truncated=self._truncated.take(rows),
            relabelled=relabel,
            stats=stats,
            n_step=n_step_target,
            prior=np.ones(batch_size, bool) if prior else None,
            cost=step_cost,
        )

    def return_to_go(
        self, rows: NDArray[np.int64], goal: NDArray[np.float64], gamma: float
    ) -> NDArray[np.float64]:
        """The data's own discounted return from each transition row to its episode's end,
        scored against ``goal`` (B, goal_dim): what a critic of the behaviour policy should
        approach (a lower bound where the episode was cut by its time limit)."""
        end = self._ep_end.take(rows)
        longest = int((end - rows).max()) if rows.size else 0
        offsets = np.arange(1, longest + 1)
        ahead = np.minimum(rows[:, None] + offsets, end[:, None])
        achieved = self._achieved.take(ahead, axis=0)
        rewards = self.goal_space.compute_reward(achieved, np.broadcast_to(goal[:, None], achieved.shape))
        used = offsets[None, :] <= (end - rows)[:, None]
        return (rewards * used * gamma ** (offsets - 1)).sum(axis=1)

    def _n_step(
        self, rows: NDArray[np.int64], goal: NDArray[np.float64], n: int, gamma: float, cost_weight: float = 0.0
    ) -> tuple[NDArray[np.float32], NStepTarget]:
        """One-step rewards and the n-step target of ``rows`` against ``goal``."""
        end = self._ep_end.take(rows)
        steps = np.minimum(end - rows, n)  # m: steps available before the episode ends
        offsets = np.arange(1, n + 1)
        ahead = np.minimum(rows[:, None] + offsets, end[:, None])  # (B, n) rows of ag[t+1..t+n]
        achieved = self._achieved.take(ahead, axis=0)
        rewards = self.goal_space.compute_reward(achieved, np.broadcast_to(goal[:, None], achieved.shape))
        used = offsets[None, :] <= steps[:, None]
        if cost_weight:  # ahead - 1: the transition row of each summed step
            rewards_used = rewards - cost_weight * self._cost.take(ahead - 1)
        else:
            rewards_used = rewards
        returns = (rewards_used * used * gamma ** (offsets - 1)).sum(axis=1).astype(np.float32)
        last = rows + steps
        target = NStepTarget(
            returns=returns,
            observation=self._obs.take(last, axis=0),
            discount=(gamma**steps).astype(np.float32),
            terminated=self._terminated.take(last - 1),
        )
        return rewards[:, 0], target

    # -- persistence -----------------------------------------------------------
    def save(self, path: str) -> None:
        """Write the stored rows and settings to ``path`` (.npz), to train again later."""
        used = slice(0, self._high)
        np.savez_compressed(
            path,
            obs=self._obs[used],
            action=self._action[used],
            achieved=self._achieved[used],
            desired=self._desired[used],
            terminated=self._terminated[used],
            truncated=self._truncated[used],
            cost=self._cost[used],
            ep_start=self._ep_start[used],
            ep_end=self._ep_end[used],
            is_transition=self._is_transition[used],
            moving=self._moving[used],
            meta=np.array(
                [self._pos, self._high, self._n_transitions, self._n_episodes, self._episodes_added]
            ),
            goal_space=np.array(repr(sorted(self.goal_space.spec().items()))),
            data_hash=np.array(self.data_hash),
        )

    def load(self, path: str) -> None:
        """Replace the contents with those saved by :meth:`save` (same goal space and sizes)."""
        with np.load(path, allow_pickle=False) as data:
            theirs = str(data["goal_space"])
            ours = repr(sorted(self.goal_space.spec().items()))
            if theirs != ours:
                raise GoalSpaceMismatchError(
                    f"saved buffer {path} holds goal space {theirs}, this buffer uses {ours}"
                )
            high = int(data["meta"][1])
            if (
                high > self.capacity
                or data["obs"].shape[1:] != self._obs.shape[1:]
                or (data["action"].shape[1:] != self._action.shape[1:])
            ):
                raise PolicyError(
                    f"saved buffer {path} does not fit: {high} rows of obs "
                    f"{data['obs'].shape[1:]} / action {data['action'].shape[1:]}"
                )
            self._ep_start[:] = -1
            self._ep_end[:] = -1
            self._is_transition[:] = False
            self._moving[:] = False
            for name in _SAVED_ARRAYS:
                getattr(self, f"_{name}")[:high] = data[name]
            self._cost[:] = 0.0
            if "cost" in data:  # a buffer saved before costs were kept has none
                self._cost[:high] = data["cost"]
            self._pos, self._high, self._n_transitions, self._n_episodes, self._episodes_added = (
                int(v) for v in data["meta"]
            )
            self._n_moving = int(np.count_nonzero(self._moving))
            self._chain = bytes.fromhex(str(data["data_hash"]))
