"""Every ``her`` subcommand answers malformed input with one clear line, fast, and harms no data.

The malformed inputs are generated from each command's settings dataclass (its fields'
types and declared ranges), plus hand-written cases for paths and files a user may point
at by mistake. Each case asserts: a non-zero exit, no traceback, a message that names
the input, an answer within the time limit, and the good bags and artefact it was pointed
at unchanged. ``test_bad_input_counts`` prints how many inputs each command got.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import os
import signal
import typing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from her_goals.checks import PathKind, Range, constraints_of
from her_policy.app import cli
from her_policy.app.demo import DemoSettings
from her_policy.app.fleet import FleetSettings
from her_policy.app.learn_command import LearnSettings
from her_policy.app.robustness import RobustnessSettings
from her_policy.app.sim import SimSettings
from her_policy.app.train_command import EvalSettings, TrainCommandSettings
from her_policy.learn.config import TrainConfig
from her_recorder.audit.cli import AuditSettings
from her_recorder.cli import BagCheckSettings, BagInfoSettings, BagRecoverSettings
from her_recorder.datasets.cli import ExportSettings

TIME_LIMIT_S = 30


# -- good data the bad inputs must leave alone ---------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small recorded session and a policy artefact, built once."""
    from her_goals.spaces import get_goal_space
    from her_policy.artefact.layout import PolicyLayout
    from her_policy.artefact.store import save_artefact
    from her_policy.artefact.weights import ActorWeights
    from her_recorder import EpisodeRecorder

    root = tmp_path_factory.mktemp("good")
    space = get_goal_space("ee_position")
    with EpisodeRecorder(root / "bags", goal_space=space, task="reach") as rec:
        rng = np.random.default_rng(0)
        for _ in range(2):
            rec.start_episode(rng.uniform(0.3, 0.5, 3), stamp_ns=1)
            for t in range(3):
                rec.record_step(
                    observation=rng.normal(size=8),
                    next_observation=rng.normal(size=8),
                    action_raw=np.zeros(4),
                    achieved_goal=rng.uniform(0.3, 0.5, 3),
                    next_achieved_goal=rng.uniform(0.3, 0.5, 3),
                    truncated=t == 2,
                    stamp_ns=10 + t,
                )
            rec.end_episode(stamp_ns=20)
    artefact = save_artefact(
        root / "run" / "policy",
        snapshot=ActorWeights.random(8, 3, 4, (16,)),
        layout=PolicyLayout(8, 3, 4, (-1.0,) * 4, (1.0,) * 4),
        goal_space=space,
        algorithm="ddpg",
        config={"task": "reach"},
        seeds={},
        data_hashes={},
        provenance={"env": "task:reach"},
    )
    foreign = root / "foreign.bin"
    foreign.write_bytes(np.random.default_rng(1).bytes(4096))
    text = root / "notes.txt"
    text.write_text("not a bag, not an artefact\n")
    report = root / "report"  # a directory holding every kind of report already
    report.mkdir()
    for name in ("report.md", "report.json", "robustness.md", "robustness.json", "demo.json"):
        (report / name).write_text("a report someone cites\n")
    (report / "bags").mkdir()
    truncated = root / "truncated_policy"
    truncated.mkdir()
    (truncated / "policy.json").write_text((artefact / "policy.json").read_text())
    (truncated / "actor.npz").write_bytes((artefact / "actor.npz").read_bytes()[:100])
    return {
        "bags": root / "bags",
        "artefact": artefact,
        "foreign": foreign,
        "text": text,
        "truncated": truncated,
        "report": report,
        "root": root,
    }


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


# -- running a command -------------------------------------------------------------------
@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``her ARGV``, in process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            with time_limit(TIME_LIMIT_S):
                status = cli.main(argv)
        except SystemExit as exc:  # argparse: a wrong type, a missing or unknown argument
            status = int(exc.code or 0)
    return status, err.getvalue()


# -- generated cases ---------------------------------------------------------------------
def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def bad_values(annotation: Any, good: dict[str, Path]) -> list[str]:
    """Values a field of this type and range must refuse, as a user would type them."""
    hints: list[Any] = [annotation]
    constraints: list[Any] = []
    base: Any = None
    while hints:
        a = hints.pop()
        if typing.get_origin(a) is typing.Annotated:
            constraints += constraints_of(a.__metadata__)
            hints.append(typing.get_args(a)[0])
        elif typing.get_args(a) and typing.get_origin(a) is not typing.Literal:
            hints.extend(x for x in typing.get_args(a) if x is not type(None) and x is not Ellipsis)
        else:
            base = base or a
    out: list[str] = []
    if base in (int, float):
        out += ["abc", "", "1,5"]
        if base is float:
            out += ["nan", "inf", "-inf"]
    for c in constraints:
        if isinstance(c, Range):
            for bound, below in ((c.gt, True), (c.ge, True), (c.lt, False), (c.le, False)):
                if bound is None:
                    continue
                step = 1 if base is int else 1e-3
                value = bound - step if below else bound + step
                if c.gt is not None and below and bound == c.gt:
                    value = bound
                if c.lt is not None and not below and bound == c.lt:
                    value = bound
                out.append(str(int(value)) if base is int else repr(float(value)))
        if isinstance(c, PathKind):
            missing = str(good["root"] / "does" / "not" / "exist")
            out += {
                "file": [missing, str(good["root"])],
                "dir": [missing, str(good["text"])],
                "any": [missing],
                "output_dir": [str(good["text"]), str(good["text"] / "sub")],
            }[c.kind]
    if typing.get_origin(base) is typing.Literal:
        out += ["not-a-choice", ""]
    return out


def base_argv(command: str, good: dict[str, Path], out: Path) -> list[str]:
    """The smallest valid command line of each subcommand."""
    return {
        "train": ["train", "--task", "reach", "--print-config"],
        "eval": ["eval", str(good["artefact"]), "--episodes", "1"],
        "sim": ["sim", "--out", str(out), "--episodes", "1"],
        "demo": ["demo", "--out", str(out), "--eval-goals", "1"],
        "bag info": ["bag", "info", str(good["bags"])],
        "bag check": ["bag", "check", str(good["bags"])],
        "bag recover": ["bag", "recover", str(good["bags"]), "--dry-run"],
        "learn": ["learn", "--watch", str(good["bags"]), "--out", str(out), "--max-wall-s", "1"],
        "audit": ["audit", str(good["bags"]), "--out", str(out)],
        "robustness": ["robustness", "scripted", "--task", "reach", "--goals", "1", "--out", str(out)],
        "fleet": ["fleet", "--out", str(out), "--minutes", "0.01"],
        "export": ["export", str(good["bags"]), "--format", "lerobot", "--out", str(out)],
    }[command]


SETTINGS: dict[str, tuple[type, ...]] = {
    "train": (TrainCommandSettings, TrainConfig),
    "eval": (EvalSettings,),
    "sim": (SimSettings,),
    "demo": (DemoSettings,),
    "bag info": (BagInfoSettings,),
    "bag check": (BagCheckSettings,),
    "bag recover": (BagRecoverSettings,),
    "learn": (LearnSettings,),
    "audit": (AuditSettings,),
    "robustness": (RobustnessSettings,),
    "fleet": (FleetSettings,),
    "export": (ExportSettings,),
}


def generated_cases(good: dict[str, Path], out: Path) -> list[tuple[str, list[str], str]]:
    """(command, argv, what the message must name) for every field of every command."""
    cases: list[tuple[str, list[str], str]] = []
    for command, classes in SETTINGS.items():
        base = base_argv(command, good, out)
        for cls in classes:
            hints = typing.get_type_hints(cls, include_extras=True)
            for f in dataclasses.fields(cls):
                positional = bool(f.metadata.get("positional"))
                for value in bad_values(hints[f.name], good):
                    if positional:
                        words = command.split()
                        argv = [*words, value, *base[len(words) + 1 :]]
                        named = value if value else f.name.upper()
                    else:
                        argv = [*base, flag(f.name), value]
                        named = flag(f.name)
                    cases.append((command, argv, named))
    return cases


HAND_WRITTEN: list[tuple[str, list[str], str]] = [
    # command, argv (with {placeholders} from the good-data fixture), what the message names
    ("train", ["train"], "--task"),
    ("train", ["train", "--task", "rech"], "reach"),
    ("train", ["train", "--task", "reach", "--env", "FetchReach-v4"], "task"),
    ("train", ["train", "--config", "{text}"], "{text}"),
    ("train", ["train", "--config", "{foreign}"], "{foreign}"),
    ("train", ["train", "--bags", "{text}", "--task", "reach"], "{text}"),
    ("train", ["train", "--bags", "{bags}", "--task", "push"], "--task"),
    ("train", ["train", "--bags", "{foreign}"], "{foreign}"),
    ("train", ["train", "--task", "reach", "--hidden", "64", "0"], "--hidden"),
    ("train", ["train", "--task", "reach", "--prest", "x"], "--prest"),
    ("eval", ["eval", "{text}"], "{text}"),
    ("eval", ["eval", "{foreign}"], "{foreign}"),
    ("eval", ["eval", "{truncated}"], "{truncated}"),
    ("eval", ["eval", "{bags}"], "{bags}"),
    ("eval", ["eval"], "artefact"),
    ("eval", ["eval", "{artefact}", "--task", "push"], "goal space"),
    ("sim", ["sim"], "--out"),
    ("sim", ["sim", "--out", "{out}", "--policy", "{foreign}"], "{foreign}"),
    ("sim", ["sim", "--out", "{out}", "--policy", "{text}"], "{text}"),
    ("sim", ["sim", "--out", "{out}", "--policy", "{truncated}"], "{truncated}"),
    ("sim", ["sim", "--out", "{out}", "--policy", "{artefact}", "--task", "push"], "goal space"),
    ("sim", ["sim", "--out", "{out}", "--task", "puhs"], "push"),
    ("demo", ["demo", "--task", "drawr", "--out", "{out}"], "--task"),
    ("bag info", ["bag", "info", "{text}"], "{text}"),
    ("bag info", ["bag", "info", "{foreign}"], "{foreign}"),
    ("bag info", ["bag", "info", "{root}/nope"], "nope"),
    ("bag check", ["bag", "check", "{foreign}"], "{foreign}"),
    ("bag check", ["bag", "check", "{artefact}"], "{artefact}"),
    ("bag check", ["bag", "check", "{bags}", "--goal-space", "object_position"], "object_position"),
    ("bag recover", ["bag", "recover", "{text}"], "{text}"),
    ("bag recover", ["bag", "recover", "{artefact}"], "{artefact}"),
    ("learn", ["learn", "--watch", "{text}", "--out", "{out}"], "{text}"),
    ("learn", ["learn", "--watch", "{root}", "--out", "{out}"], "not a recording session"),
    ("learn", ["learn", "--watch", "{bags}", "--out", "{out}", "--task", "push"], "push"),
    ("learn", ["learn", "--out", "{out}"], "--watch"),
    ("audit", ["audit", "{bags}", "--out", "{out}", "--region", "1", "2"], "--region"),
    ("audit", ["audit", "{bags}", "--out", "{out}", "--region", "1,2,3"], "--region"),
    ("audit", ["audit", "{bags}", "--out", "{out}", "--region", "a,b", "c,d"], "--region"),
    ("audit", ["audit", "{bags}", "--out", "{out}", "--region", "nan,0,0", "1,1,1"], "--region"),
    ("audit", ["audit", "{foreign}", "--out", "{out}"], "{foreign}"),
    ("audit", ["audit", "{bags}", "--out", "{out}", "--artefact", "{truncated}"], "{truncated}"),
    ("audit", ["audit", "{bags}", "--out", "{out}", "--artefact", "{text}"], "{text}"),
    ("audit", ["audit", "{bags}", "--out", "{out}", "--training-log", "{foreign}"], "{foreign}"),
    ("audit", ["audit", "{root}", "--out", "{out}"], "{root}"),
    ("bag", ["bag"], "bag"),
    ("export", ["export", "{bags}", "--format", "lerobt", "--out", "{out}"], "lerobot"),
    ("export", ["export", "{bags}", "--format", "parquet", "--out", "{out}"], "--format"),
    ("export", ["export", "{bags}", "--out", "{out}"], "--format"),
    ("export", ["export", "{text}", "--format", "minari", "--out", "{out}"], "{text}"),
    ("export", ["export", "{artefact}", "--format", "minari", "--out", "{out}"], "{artefact}"),
    ("export", ["export", "{bags}", "--format", "lerobot", "--out", "{bags}/ds"], "outside the bags"),
    ("bag", ["bag", "inf", "{bags}"], "inf"),
    # counts that start processes or allocate: refused before anything starts
    ("fleet", ["fleet", "--arms", "100000", "--out", "{out}"], "--arms"),
    ("fleet", ["fleet", "--arms", "64", "--out", "{out}"], "CPUs"),
    ("sim", ["sim", "--out", "{out}", "--episodes", "1000000000"], "--episodes"),
    ("demo", ["demo", "--out", "{out}", "--eval-goals", "1000000000"], "--eval-goals"),
    ("robustness", ["robustness", "scripted", "--goals", "1000000000", "--out", "{out}"], "--goals"),
    # outputs that exist already (the report fixture): refused without --overwrite
    ("audit", ["audit", "{bags}", "--out", "{report}"], "--overwrite"),
    ("robustness", ["robustness", "scripted", "--task", "reach", "--out", "{report}"], "--overwrite"),
    ("demo", ["demo", "--out", "{report}"], "--overwrite"),
    ("export", ["export", "{bags}", "--format", "minari", "--out", "{report}"], "--overwrite"),
    # --overwrite replaces a dataset `her export` wrote, never a directory of other files
    ("export", ["export", "{bags}", "--format", "minari", "--out", "{report}", "--overwrite"], "another --out"),
]


def hand_written_cases(good: dict[str, Path], out: Path) -> list[tuple[str, list[str], str]]:
    values = {k: str(v) for k, v in good.items()} | {"out": str(out)}
    return [
        (c, [a.format(**values) for a in argv], named.format(**values))
        for c, argv, named in HAND_WRITTEN
    ]


def all_cases(good: dict[str, Path], out: Path) -> list[tuple[str, list[str], str]]:
    return generated_cases(good, out) + hand_written_cases(good, out)


def test_every_malformed_input_is_one_clear_line_fast_and_harmless(
    good: dict[str, Path], tmp_path: Path
) -> None:
    before = {k: tree_digest(good[k]) for k in ("bags", "artefact", "report")}
    failures = []
    for _command, argv, named in all_cases(good, tmp_path / "out"):
        status, err = run(argv)
        problems = []
        if status == 0:
            problems.append("exit 0")
        if "Traceback" in err:
            problems.append("traceback")
        if named.lower() not in err.lower():
            problems.append(f"message does not name {named!r}")
        if len(err.strip().splitlines()) > 3:
            problems.append("more than a usage line and one error line")
        if problems:
            failures.append(f"her {' '.join(argv)}: {', '.join(problems)}\n    {err.strip()[-300:]}")
    assert not failures, "\n".join(failures)
    assert {k: tree_digest(good[k]) for k in ("bags", "artefact", "report")} == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.mcap"))


def test_bad_input_counts(good: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter(c for c, _, _ in all_cases(good, tmp_path))
    with capsys.disabled():
        print("\nmalformed inputs tried per command:", dict(sorted(counts.items())), sum(counts.values()))
    assert set(counts) >= set(SETTINGS) and all(counts[c] >= 3 for c in SETTINGS)


# -- properties: a number is accepted exactly when it is in its declared range -------------
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, 0.5]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=NUMBERS, name=st.sampled_from(["actor_lr", "tau", "exploration_noise", "moving_share", "target_success"]))
def test_train_accepts_a_float_exactly_when_its_range_allows_it(value: float, name: str) -> None:
    hints = typing.get_type_hints(TrainConfig, include_extras=True)
    ranges = [c for a in typing.get_args(hints[name]) or (hints[name],) for c in constraints_of(getattr(a, "__metadata__", ()))]
    ranges += constraints_of(getattr(hints[name], "__metadata__", ()))
    allowed = np.isfinite(value) and all(c.problem(value) is None for c in ranges if isinstance(c, Range))
    status, err = run(["train", "--task", "reach", "--print-config", flag(name), repr(value)])
    assert status == (0 if allowed else 2), (name, value, err)
    if not allowed:
        assert flag(name) in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("loop:\n  rate_hz: 0\n", "rate_hz"),
        ("loop:\n  rate_hz: .nan\n", "rate_hz"),
        ("limits:\n  max_ee_step_m: -1\n", "max_ee_step_m"),
        ("safety:\n  workspace_low_m: [0, 0]\n", "workspace_low_m"),
        ("safty:\n  table_top_z_m: 0\n", "safety"),
        ("loop: [1, 2]\n", "loop"),
        ("- 1\n- 2\n", "mapping"),
        ("loop:\n  rate_hz: 25\n  rate_hz_: 1\n", "rate_hz_"),
    ],
)
def test_a_bad_safety_yaml_names_the_file_and_key(tmp_path: Path, text: str, named: str) -> None:
    from her_goals.errors import ConfigError
    from her_policy.deploy.settings import load_safety_config

    path = tmp_path / "safety.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_safety_config(path)
    assert str(path) in str(err.value) and named in str(err.value), str(err.value)


# -- faults injected mid-run --------------------------------------------------------------------
class FillingFile:
    """A file whose ``write`` raises ENOSPC once the shared byte budget is spent (a disk filling)."""

    def __init__(self, real: Any, budget: list[int]) -> None:
        self._real, self._budget = real, budget

    def write(self, data: Any) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self._budget[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= n
        return int(self._real.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_her_sim_on_a_disk_that_fills_says_what_was_kept_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from her_recorder.reader import read_episodes
    from her_recorder.recover import recover

    budget = [120_000]  # a few reach episodes with their raw topics, then the disk is full
    real_open = Path.open

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real_open(self, mode, *args, **kwargs)
        return FillingFile(fh, budget) if self.suffix == ".mcap" and "x" in mode else fh

    monkeypatch.setattr(Path, "open", open_)
    out = tmp_path / "x"
    status, err = run(["sim", "--out", str(out), "--episodes", "30"])
    last = err.strip().splitlines()[-1]
    assert status == 2 and "Traceback" not in err, err
    assert last.startswith(f"her sim: error: cannot write {out / 'bag_0000'}"), last
    assert "the disk is full" in last and "MiB free" in last and f"her bag recover {out}" in last
    kept = int(last.split("the ", 2)[2].split(" completed")[0])
    assert kept >= 1 and f"are in {out / 'bag_0000'}" in last
    budget[0] = 10**12
    recover([out])
    read = read_episodes(out, log_summary=False)
    assert len(read.episodes) == kept and not read.report.errors()


def test_sigterm_at_a_random_point_of_her_sim_leaves_every_completed_episode_readable(tmp_path: Path) -> None:
    import random
    import subprocess
    import sys
    import time

    from her_recorder import interfaces as ifc
    from her_recorder.reader import read_episodes, read_events
    from her_recorder.recover import recover

    rng = random.Random(20)
    for trial in range(2):
        out = tmp_path / f"run{trial}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "her_policy.app.cli", "sim", "--out", str(out), "--episodes", "200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not any(out.glob("bag_*/*.mcap")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)  # until it records: a SIGTERM during the imports tests nothing
        time.sleep(rng.uniform(0.0, 4.0))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert "her sim: interrupted: the" in err and "completed episodes of this run are in" in err, err
        ended = sum(
            1 for bag in out.glob("bag_*") for ev in read_events(bag) if int(ev.event) == ifc.EventKind.END
        )
        recover([out])
        read = read_episodes(out, log_summary=False)
        assert len(read.episodes) == ended and not read.report.errors(), (trial, ended)
        said = int(err.split("interrupted: the ")[1].split(" completed")[0])
        assert said == ended, err


def test_a_ray_head_that_never_answers_is_an_error_within_the_deadline(tmp_path: Path) -> None:
    import socket
    import threading
    import time

    pytest.importorskip("ray")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:  # accepts every connection and never says a word
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    start = time.monotonic()
    status, err = run(["fleet", "--out", str(tmp_path / "f"), "--address", address, "--ray-timeout-s", "4"])
    elapsed = time.monotonic() - start
    server.close()
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert address in err and "did not answer within 4 s" in err and "--ray-timeout-s" in err
    assert elapsed < 20
    assert not (tmp_path / "f").exists()


def test_more_arms_than_the_clusters_cpus_are_refused_naming_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from her_policy.app import fleet

    pytest.importorskip("ray")
    monkeypatch.setattr(fleet, "check_address", lambda address, timeout_s=3.0: None)
    monkeypatch.setattr(fleet, "probe_cluster", lambda address, timeout_s: 4.0)
    status, err = run(["fleet", "--out", str(tmp_path / "f"), "--address", "10.0.0.5:6379", "--arms", "7"])
    assert status == 2 and "Traceback" not in err, err
    assert "--arms 7 needs 4.5 Ray CPUs" in err and "10.0.0.5:6379 has 4" in err and "--arms 6 or fewer" in err
    status, err = run(["fleet", "--out", str(tmp_path / "f"), "--arms", "100000"])
    assert status == 2 and "--arms" in err and "256" in err
