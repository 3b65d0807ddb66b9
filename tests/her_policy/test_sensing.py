"""Honest sensing and recorded randomisation: bags hold the true state beside the measured one,
and every randomised episode's parameters; the audit counts verdicts noise changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from her_policy.app.cli import main
from her_recorder.audit import run_audit
from her_recorder.reader import read_episodes


def sim(tmp: Path, *extra: str) -> Path:
    out = tmp / "bags"
    argv = ["sim", "--task", "push", "--out", str(out), "--episodes", "6", "--split", "eval", *extra]
    assert main(argv) == 0
    return out


def test_sensing_noise_records_the_truth_beside_the_measurement_and_nominal_does_not(tmp_path: Path) -> None:
    noisy = read_episodes(sim(tmp_path / "noisy", "--perturbation", "object_position_noise_m=0.01"), log_summary=False)
    for ep in noisy.episodes:
        assert ep.true_next_achieved_goal is not None and ep.true_next_achieved_goal.shape == ep.next_achieved_goal.shape
        gap = np.abs(ep.true_next_achieved_goal - ep.next_achieved_goal)
        assert 0 < gap.max() < 0.06  # noise of 1 cm std: different, never far
        assert ep.sim_params is not None and ep.sim_params["object_position_noise_m"] == 0.01
    nominal = read_episodes(sim(tmp_path / "nominal"), log_summary=False)
    assert all(ep.true_next_achieved_goal is None and ep.sim_params is None for ep in nominal.episodes)
    report = run_audit([tmp_path / "noisy" / "bags"], out_dir=tmp_path / "audit", plots=False)
    assert report.sensing["episodes_with_true_state"] == 6
    assert report.sensing["episodes"] == 6 and report.sensing["margin_min"] <= report.sensing["margin_median"]


def test_randomised_episodes_record_their_parameters_reproducibly(tmp_path: Path) -> None:
    from her_mujoco.randomization import DEFAULT_RANDOMIZATION

    a = read_episodes(sim(tmp_path / "a", "--randomize", "default", "--seed", "3"), log_summary=False)
    b = read_episodes(sim(tmp_path / "b", "--randomize", "default", "--seed", "3"), log_summary=False)
    params_a = [ep.sim_params for ep in a.episodes]
    assert all(p is not None for p in params_a) and params_a == [ep.sim_params for ep in b.episodes]
    assert len({p["block_mass_scale"] for p in params_a if p}) == 6  # one draw per episode
    low, high = DEFAULT_RANDOMIZATION.block_mass_scale
    assert all(low <= p["block_mass_scale"] <= high for p in params_a if p)
    for x, y in zip(a.episodes, b.episodes, strict=True):
        np.testing.assert_array_equal(x.next_achieved_goal, y.next_achieved_goal)  # same physics


def test_bad_randomisation_options_are_refused(tmp_path: Path) -> None:
    import contextlib
    import io

    for extra in (["--randomize", "defualt"], ["--perturbation", "latency=2"], ["--perturbation", "block_mass_scale=-1"]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["sim", "--out", str(tmp_path / "x"), *extra]) == 2
        assert extra[1].split("=")[0] in err.getvalue() or "randomize" in err.getvalue()
    assert not (tmp_path / "x").exists()
