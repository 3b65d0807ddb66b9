"""HER replay buffer: relabelling semantics on hand-built episodes, ratios, eviction, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from her_policy_toys import TOY_SPACE, labelled_episode

from her_goals.errors import GoalShapeError, HerError, NonFiniteGoalError
from her_policy.errors import EmptyBufferError, EpisodeError, PolicyError
from her_policy.learn.buffer import HerReplayBuffer, relabel_probability


def make_buffer(
    strategy: str = "future", relabel_prob: float | None = 1.0, capacity: int = 10_000, **kw: object
) -> HerReplayBuffer:
    return HerReplayBuffer(
        TOY_SPACE,
        observation_dim=2,
        action_dim=2,
        capacity=capacity,
        strategy=strategy,
        relabel_prob=relabel_prob,
        seed=0,
        **kw,  # type: ignore[arg-type]
    )


def filled(
    strategy: str, relabel_prob: float | None = 1.0, lengths: tuple[int, ...] = (5, 8, 3)
) -> HerReplayBuffer:
    buf = make_buffer(strategy, relabel_prob)
    for ep, n in enumerate(lengths):
        buf.add_episode(**labelled_episode(ep, n))
    return buf


def decode(
    batch_obs: np.ndarray, goals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(episode, t) of each sample and (episode, step index) its goal came from."""
    return batch_obs[:, 0], batch_obs[:, 1], goals[:, 0], goals[:, 1]


def test_future_goals_come_from_the_same_episode_and_never_before_the_step() -> None:
    lengths = (5, 8, 3)
    buf = filled("future", lengths=lengths)
    batch = buf.sample(20_000)
    ep, t, goal_ep, goal_t = decode(batch.observation, batch.desired_goal)
    assert batch.relabelled.all()
    np.testing.assert_array_equal(goal_ep, ep)
    assert (goal_t >= t + 1).all(), "a future goal is the achieved goal after step t or later"
    ends = np.asarray(lengths)[ep.astype(int)]
    assert (goal_t <= ends).all()
    # Inclusive: the transition's own next achieved goal is drawn (reward 0), and so is the final one.
    assert (goal_t == t + 1).any() and (goal_t == ends).any()
    for e, n in enumerate(lengths):  # every allowed offset is drawn for the first step
        first = (ep == e) & (t == 0)
        assert set(goal_t[first].astype(int)) == set(range(1, n + 1))


def test_final_goal_is_the_last_next_achieved_goal() -> None:
    lengths = (5, 8, 3)
    buf = filled("final", lengths=lengths)
    batch = buf.sample(2_000)
    ep, _, goal_ep, goal_t = decode(batch.observation, batch.desired_goal)
    np.testing.assert_array_equal(goal_ep, ep)
    np.testing.assert_array_equal(goal_t, np.asarray(lengths)[ep.astype(int)])


def test_episode_goals_cover_the_whole_episode() -> None:
    lengths = (6,)
    buf = filled("episode", lengths=lengths)
    batch = buf.sample(5_000)
    _, t, _, goal_t = decode(batch.observation, batch.desired_goal)
    assert set(goal_t.astype(int)) == set(range(1, 7))
    assert (goal_t < t + 1).any(), "episode strategy also draws goals from before the step"


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_rewards_are_recomputed_with_the_goal_space(strategy: str) -> None:
    buf = filled(strategy, relabel_prob=0.5)
    batch = buf.sample(4_096)
    _, t, _, _ = decode(batch.observation, batch.desired_goal)
    np.testing.assert_array_equal(batch.next_achieved_goal[:, 1], t + 1)
    np.testing.assert_array_equal(batch.next_observation[:, 1], t + 1)
    expected = TOY_SPACE.compute_reward(batch.next_achieved_goal, batch.desired_goal)
    np.testing.assert_array_equal(batch.reward, expected)
    # Requested goals (99, 99, 99) are never reached; relabelled ones sometimes are.
    assert (batch.reward[~batch.relabelled] == -1).all()
    if strategy != "episode":
        assert (batch.reward[batch.relabelled] == 0).any()


def test_n_step_targets_sum_relabelled_rewards_up_to_the_episode_end() -> None:
    buf = make_buffer("final", relabel_prob=1.0)
    buf.add_episode(**labelled_episode(0, 5), terminated=True)
    gamma = 0.9
    batch = buf.sample(2_000, n_step=3, gamma=gamma)
    ahead = batch.n_step
    assert ahead is not None
    t = batch.observation[:, 1].astype(int)
    # goal = ag[5]; reward 0 only for the step that reaches index 5.
    m = np.minimum(5 - t, 3)
    expected = np.array([sum(-(gamma**j) * (tt + 1 + j != 5) for j in range(mm)) for tt, mm in zip(t, m)])
    np.testing.assert_allclose(ahead.returns, expected, rtol=1e-6)
    np.testing.assert_allclose(ahead.discount, gamma**m, rtol=1e-6)
    np.testing.assert_array_equal(ahead.observation[:, 1], t + m)
    np.testing.assert_array_equal(ahead.terminated, t + m == 5)
    np.testing.assert_array_equal(batch.reward, TOY_SPACE.compute_reward(batch.next_achieved_goal, batch.desired_goal))
    assert buf.sample(8).n_step is None


def test_unrelabelled_samples_keep_the_requested_goal() -> None:
    buf = filled("future", relabel_prob=0.0)
    batch = buf.sample(1_000)
    assert not batch.relabelled.any()
    np.testing.assert_array_equal(batch.desired_goal, np.full((1_000, 3), 99.0))
    assert batch.stats.hindsight_ratio == 0.0
    assert np.isnan(batch.stats.positive_fraction_relabelled)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.8, 1.0])
def test_hindsight_ratio_matches_the_setting(p: float) -> None:
    buf = filled("future", relabel_prob=p)
    ratios = [buf.sample(1024).stats.hindsight_ratio for _ in range(20)]
    assert abs(np.mean(ratios) - p) < 0.01


def test_k_sets_the_relabel_probability() -> None:
    assert relabel_probability(4) == pytest.approx(0.8)
    assert relabel_probability(0) == 0.0
    buf = make_buffer(relabel_prob=None, k=4)
    assert buf.relabel_prob == pytest.approx(0.8)
    with pytest.raises(PolicyError):
        relabel_probability(-1)


def test_batch_stats_are_consistent_with_the_batch() -> None:
    buf = filled("future", relabel_prob=0.6)
    batch = buf.sample(3_000)
    s = batch.stats
    positive = batch.reward == 0
    assert s.hindsight_ratio == pytest.approx(batch.relabelled.mean())
    assert s.positive_fraction_relabelled == pytest.approx(positive[batch.relabelled].mean())
    assert s.positive_fraction_original == pytest.approx(positive[~batch.relabelled].mean())


def test_pairs_form_equals_whole_episode_form() -> None:
    ep = labelled_episode(0, 6)
    a, b = make_buffer(), make_buffer()
    a.add_episode(**ep, truncated=True)
    b.add_episode(
        ep["observation"][:-1],
        ep["action"],
        ep["achieved_goal"][:-1],
        np.tile(ep["desired_goal"], (6, 1)),
        next_observation=ep["observation"][1:],
        next_achieved_goal=ep["achieved_goal"][1:],
        truncated=True,
    )
    assert a.data_hash == b.data_hash
    ba, bb = a.sample(64, np.random.default_rng(1)), b.sample(64, np.random.default_rng(1))
    for x, y in zip(ba[:-1], bb[:-1]):
        np.testing.assert_array_equal(x, y)


def test_flags_are_stored_per_transition() -> None:
    buf = make_buffer(relabel_prob=0.0)
    buf.add_episode(**labelled_episode(0, 4), terminated=True)
    buf.add_episode(**labelled_episode(1, 4), truncated=True)
    batch = buf.sample(2_000)
    ep, t, _, _ = decode(batch.observation, batch.desired_goal)
    last = t == 3
    np.testing.assert_array_equal(batch.terminated, last & (ep == 0))
    np.testing.assert_array_equal(batch.truncated, last & (ep == 1))


def test_eviction_keeps_counts_and_never_mixes_episodes() -> None:
    rng = np.random.default_rng(0)
    buf = make_buffer(capacity=60)
    live: list[tuple[int, int]] = []
    for ep in range(40):
        n = int(rng.integers(1, 12))
        buf.add_episode(**labelled_episode(ep, n))
        live.append((ep, n))
        batch = buf.sample(512)
        e, t, ge, gt = decode(batch.observation, batch.desired_goal)
        np.testing.assert_array_equal(ge, e)
        lengths = dict(live)
        assert (gt <= np.array([lengths[int(x)] for x in e])).all()
        assert (gt >= t + 1).all()
        assert buf.n_transitions <= 60
    # Whatever is stored is a suffix of what was added, episodes whole.
    batch = buf.sample(5_000)
    seen = set(batch.observation[:, 0].astype(int))
    assert max(seen) == 39 and len(seen) == buf.n_episodes
    counted = sum(n for ep, n in live if ep in seen)
    assert counted == buf.n_transitions


def test_moving_share_oversamples_episodes_whose_goal_moved() -> None:
    def still_episode(ep: int) -> dict[str, np.ndarray]:
        e = labelled_episode(ep, 10)
        e["achieved_goal"][:] = e["achieved_goal"][0]  # the block was never touched
        return e

    for share in (0.0, 0.5, 1.0):
        expected = share + (1 - share) * 0.1  # the rest is uniform over all 10 episodes
        buf = make_buffer(relabel_prob=0.8, moving_share=share)
        for ep in range(10):
            buf.add_episode(**(labelled_episode(ep, 10) if ep == 0 else still_episode(ep)))
        batch = buf.sample(4000)
        from_moving = (batch.observation[:, 0] == 0).mean()
        assert abs(from_moving - expected) < 0.03, (share, from_moving)
        np.testing.assert_array_equal(batch.reward, TOY_SPACE.compute_reward(batch.next_achieved_goal, batch.desired_goal))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    buf = filled("future")
    path = tmp_path / "replay.npz"
    buf.save(str(path))
    other = make_buffer()
    other.load(str(path))
    assert (other.n_transitions, other.n_episodes, other.data_hash) == (
        buf.n_transitions,
        buf.n_episodes,
        buf.data_hash,
    )
    b1, b2 = buf.sample(128, np.random.default_rng(3)), other.sample(128, np.random.default_rng(3))
    np.testing.assert_array_equal(b1.desired_goal, b2.desired_goal)


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=8),
    capacity=st.integers(32, 120),
    strategy=st.sampled_from(["future", "final", "episode"]),
)
def test_relabelled_goals_always_come_from_the_sampled_episode(
    lengths: list[int], capacity: int, strategy: str
) -> None:
    buf = make_buffer(strategy, capacity=capacity)
    for ep, n in enumerate(lengths):
        if n + 1 <= capacity:
            buf.add_episode(**labelled_episode(ep, n))
    if buf.n_transitions == 0:
        return
    batch = buf.sample(256)
    e, t, ge, gt = decode(batch.observation, batch.desired_goal)
    np.testing.assert_array_equal(ge, e)
    ends = np.array([lengths[int(x)] for x in e])
    assert (gt >= 1).all() and (gt <= ends).all()
    if strategy == "future":
        assert (gt >= t + 1).all()
    if strategy == "final":
        np.testing.assert_array_equal(gt, ends)
    np.testing.assert_array_equal(
        batch.reward, TOY_SPACE.compute_reward(batch.next_achieved_goal, batch.desired_goal)
    )


# -- bad input ---------------------------------------------------------------------
def test_empty_buffer_cannot_be_sampled() -> None:
    with pytest.raises(EmptyBufferError, match="empty replay buffer"):
        make_buffer().sample(32)


def test_mismatched_shapes_are_rejected() -> None:
    buf = make_buffer()
    ep = labelled_episode(0, 5)
    with pytest.raises(EpisodeError, match=r"needs \(6, 2\)"):
        buf.add_episode(
            ep["observation"][:-1], ep["action"], ep["achieved_goal"], ep["desired_goal"]
        )
    with pytest.raises(EpisodeError, match="action has shape"):
        buf.add_episode(
            ep["observation"], np.zeros((5, 3)), ep["achieved_goal"], ep["desired_goal"]
        )
    with pytest.raises(EpisodeError, match="achieved_goal"):
        buf.add_episode(
            ep["observation"], ep["action"], ep["achieved_goal"][:4], ep["desired_goal"]
        )
    with pytest.raises(EpisodeError, match=r"achieved_goal has shape \(6, 2\)"):
        buf.add_episode(
            ep["observation"], ep["action"], ep["achieved_goal"][:, :2], ep["desired_goal"]
        )
    with pytest.raises(GoalShapeError):
        buf.add_episode(ep["observation"], ep["action"], ep["achieved_goal"], np.zeros(2))
    with pytest.raises(EpisodeError, match="desired_goal has shape"):
        buf.add_episode(ep["observation"], ep["action"], ep["achieved_goal"], np.zeros((3, 3)))
    with pytest.raises(EpisodeError, match="not one contiguous episode"):
        nxt = ep["observation"][1:].copy()
        nxt[1] += 1
        buf.add_episode(
            ep["observation"][:-1],
            ep["action"],
            ep["achieved_goal"],
            ep["desired_goal"],
            next_observation=nxt,
        )
    assert buf.n_transitions == 0, "nothing of a rejected episode is stored"


def test_nan_is_rejected_with_its_index() -> None:
    buf = make_buffer()
    ep = labelled_episode(0, 5)
    ep["observation"][3, 1] = np.nan
    with pytest.raises(EpisodeError, match=r"observation contains NaN.*\[3, 1\]"):
        buf.add_episode(**ep)
    ep = labelled_episode(0, 5)
    ep["achieved_goal"][2, 0] = np.inf
    with pytest.raises(NonFiniteGoalError):
        buf.add_episode(**ep)
    ep = labelled_episode(0, 5)
    ep["action"][0, 0] = np.nan
    with pytest.raises(HerError, match="action contains NaN"):
        buf.add_episode(**ep)


def test_termination_only_at_the_end_and_rewards_are_checked() -> None:
    buf = make_buffer()
    ep = labelled_episode(0, 4)
    with pytest.raises(EpisodeError, match="only the last transition"):
        buf.add_episode(**ep, terminated=np.array([False, True, False, False]))
    with pytest.raises(EpisodeError, match="disagrees with goal space 'toy_point'"):
        buf.add_episode(**ep, reward=np.zeros(4))
    buf.add_episode(**ep, reward=-np.ones(4))
    assert buf.n_transitions == 4


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(PolicyError, match="unknown relabel strategy"):
        make_buffer("futur")
    with pytest.raises(PolicyError, match="relabel_prob"):
        make_buffer(relabel_prob=1.5)
    with pytest.raises(EpisodeError, match="needs 11 rows"):
        make_buffer(capacity=8).add_episode(**labelled_episode(0, 10))
