"""``her fleet``: many simulated arms feeding one learner, on Ray.

``her fleet --arms N --task push --out RUN`` starts (or, with ``--address``, joins) a Ray
cluster and runs:

* **N arm actors**, each an :class:`~her_policy.app.arm_worker.ArmWorker`: the full control
  loop (action limits, IK, safety monitor) exploring around the newest policy version and
  recording its own session of bags (``RUN/arm_<i>/session``);
* **one learner actor**: the continuous learner (:mod:`her_policy.learn.continuous`) over
  every arm's session, publishing versions and checkpointing to ``RUN/learner``;
* **the driver** (this process): keeps the arms running, broadcasts each new version's
  files to every arm through Ray's object store (one ``ray.put``), which each arm installs
  into its own versions directory and swaps in between episodes, measures each version on
  held-out goals through arm 0's loop, and prints throughput.

Faults: an arm actor that dies is restarted by Ray; its completed episodes are in its bags
(fsynced at each END) and reach the learner; the fleet goes on. A learner actor that dies is
restarted and resumes from its checkpoint (no episode lost or counted twice). The learner
reads the arms' bags from ``RUN``: on several machines, ``RUN`` must be on a filesystem
every node sees (weights go through Ray; episodes go through the bags).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from her_goals.checks import Count, Fraction, NonNegativeInt, OutputDir, PositiveFloat, Range
from her_goals.errors import ConfigError
from her_goals.learning_curve import plot_learning_curve
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_goals.tasks import TaskName, get_task
from her_policy.app.arm_worker import ArmWorker
from her_policy.artefact.versions import latest_version, publish_version, published, version_number
from her_policy.errors import PolicyError
from her_policy.learn.config import build_train_config
from her_policy.learn.signals import StopSignals

ARM_CPUS = 0.5
"""Ray CPUs each arm actor asks for."""
LEARNER_CPUS = 1.0
"""Ray CPUs the learner actor asks for."""
MAX_ARMS = 256
"""The declared upper bound of --arms; the cluster's CPUs bound it further (check_arms_fit)."""


@dataclass(frozen=True)
class FleetSettings:
    """``her fleet``: N simulated arms on Ray feeding one continuous learner."""

    out: OutputDir
    """Run directory: arm_<i>/ (sessions, versions), learner/, curve.*."""
    arms: Annotated[int, Range(ge=1, le=MAX_ARMS)] = 2
    """Simulated arms (Ray actors), at most what the Ray cluster's CPUs hold (0.5 CPU per arm,
    1 for the learner; a local cluster has this machine's CPUs)."""
    task: TaskName = "reach"
    """Registered task."""
    minutes: PositiveFloat = 10.0
    """Wall-clock to run."""
    episodes_per_call: Count = 2
    """Episodes an arm runs between checks for a new version."""
    publish_every: Count = 1000
    """Learner updates between versions."""
    eval_goals: Count = 50
    """Held-out goals per evaluated version."""
    target_success: Fraction | None = None
    """Stop once a version reaches this requested-goal success."""
    address: str | None = None
    """Ray cluster to join (host:port); default: start a local one."""
    ray_timeout_s: PositiveFloat = 60.0
    """Deadline to start or join the Ray cluster (s): a head that does not answer is an error."""
    seed: NonNegativeInt = 0
    """Seed of arm i is seed + i."""
    keep_ratio: bool = True
    """Arms wait while the learner is behind the preset's updates per env step (what single-
    process training does); --no-keep-ratio lets arms run ahead of a slower learner."""



def add_fleet_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her fleet``."""
    text = (
        "Many simulated arms as Ray actors (each the full control loop, recording its own bags) "
        "feeding one continuous learner that broadcasts new policy versions."
    )
    parser: argparse.ArgumentParser = subparsers.add_parser("fleet", help=text, description=text)
    add_settings_arguments(parser, FleetSettings)
    parser.set_defaults(handler=fleet_command)
    return parser


def fleet_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(FleetSettings, args)
    summary = run_fleet(settings)
    print(summary.line())
    return 0


def check_address(address: str, timeout_s: float = 3.0) -> None:
    """Refuse a Ray address that does not answer, before Ray waits on it."""
    host, _, port = address.rpartition(":")
    if address.startswith("ray://"):
        host, _, port = address[len("ray://") :].rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--address {address!r}: give host:port of a Ray head (e.g. 10.0.0.5:6379)") from None
    try:
        with socket.create_connection((host or "127.0.0.1", number), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"--address {address}: no Ray head answers there ({exc.strerror or exc}); start one with "
            "`ray start --head` or drop --address to run a local cluster"
        ) from None


# -- the Ray cluster: bounded arms, a deadline to start or join -------------------------------
def cpus_needed(arms: int) -> float:
    """Ray CPUs a fleet of ``arms`` arms and its learner ask for."""
    return arms * ARM_CPUS + LEARNER_CPUS


def check_arms_fit(arms: int, cpus: float, where: str) -> None:
    """Refuse more arms than ``cpus`` (the cluster's) hold, before any actor starts."""
    need = cpus_needed(arms)
    if need > cpus:
        most = max(0, int((cpus - LEARNER_CPUS) // ARM_CPUS))
        fix = f"run --arms {most} or fewer, or" if most else "give"
        raise ConfigError(
            f"--arms {arms} needs {need:g} Ray CPUs ({ARM_CPUS:g} per arm, {LEARNER_CPUS:g} for the "
            f"learner); {where} has {cpus:g}: {fix} join a larger cluster with --address HOST:PORT"
        )


def local_cpus() -> float:
    """CPUs of the local cluster her fleet starts: this machine's (at least 2)."""
    return float(max(2, os.cpu_count() or 1))


PROBE = (
    "import logging, sys, ray\n"
    "ray.init(address=sys.argv[1], logging_level=logging.ERROR)\n"
    "print(ray.cluster_resources().get('CPU', 0.0), flush=True)\n"
    "ray.shutdown()\n"
)


def probe_cluster(address: str, timeout_s: float) -> float:
    """The CPUs of the Ray cluster at ``address``, asked in a child process killed after
    ``timeout_s``: Ray's own connect waits on a head that accepts and never answers (its
    retries run in C++, out of reach of a signal), so the driver never joins before this."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, address], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"--address {address}: the Ray head did not answer within {timeout_s:g} s (--ray-timeout-s); "
            "check that `ray status --address ...` answers there, or drop --address to run a local cluster"
        ) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        try:
            return float(lines[-1])
        except ValueError:
            pass
    last = next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), "no message")
    raise ConfigError(f"--address {address}: cannot join the Ray cluster there ({last[-200:]})")


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """A ConfigError if the block runs longer than ``seconds`` (SIGALRM: the main thread only;
    elsewhere the block runs unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ConfigError(f"{what} did not finish within {seconds:g} s (--ray-timeout-s)")

    old = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    began = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer > 0:  # an alarm set around this block keeps its own deadline
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, outer - (time.monotonic() - began)))


def start_ray(ray: Any, settings: FleetSettings) -> None:
    """Join ``--address`` (probed first, with its CPUs checked) or start a local cluster sized to
    this machine, within ``--ray-timeout-s``; then check the arms fit the cluster's CPUs."""
    if settings.address is not None:
        check_address(settings.address)
        check_arms_fit(settings.arms, probe_cluster(settings.address, settings.ray_timeout_s),
                       f"the Ray cluster at {settings.address}")  # fmt: skip
        with deadline(settings.ray_timeout_s, f"joining the Ray cluster at {settings.address}"):
            ray.init(address=settings.address, logging_level=logging.ERROR)
    else:
        check_arms_fit(settings.arms, local_cpus(), "this machine (a local Ray cluster)")
        try:
            with deadline(settings.ray_timeout_s, "starting a local Ray cluster"):
                ray.init(num_cpus=int(local_cpus()), include_dashboard=False, logging_level=logging.ERROR)
        except ConfigError:
            ray.shutdown()  # what had started
            raise


# -- the actors ----------------------------------------------------------------------------
class _Arm:
    """Ray actor body: one ArmWorker plus the version files the driver broadcasts."""

    def __init__(self, task: str, root: str, seed: int, noise: float, random_eps: float) -> None:
        self.root = Path(root)
        self.worker = ArmWorker(
            task, self.root / "session", self.root / "versions", seed=seed, noise=noise,
            random_eps=random_eps, eval_session=self.root / "eval",
        )  # fmt: skip

    def install(self, name: str, files: dict[str, bytes]) -> None:
        number = version_number(name)
        if number is None or number in published(self.root / "versions"):
            return
        staging = self.root / f".incoming-{name}"
        staging.mkdir(parents=True, exist_ok=True)
        episodes = json.loads(files.get("episodes.json", b"[]"))
        for fname, data in files.items():
            if fname != "episodes.json":
                (staging / fname).write_bytes(data)
        publish_version(self.root / "versions", number, staging, [tuple(e) for e in episodes])

    def run(self, n: int) -> dict[str, Any]:
        steps = self.worker.run(n)
        return {"env_steps": steps, "episodes": n, "version": self.worker.policy.version}

    def evaluate(self, n_goals: int) -> Any:
        return self.worker.evaluate(n_goals)

    def pid(self) -> int:
        return os.getpid()


class _Learner:
    """Ray actor body: the continuous learner over every arm's session."""

    def __init__(self, sessions: list[str], out: str, task: str, publish_every: int) -> None:
        # loads torch: in the learner actor only
        from her_policy.learn.continuous import continuous_learner

        self.learner = continuous_learner(
            [Path(s) for s in sessions], Path(out), task=task, publish_every=publish_every
        )

    def step(self, max_updates: int = 400) -> dict[str, Any]:
        t0 = time.perf_counter()
        n_new, n_updates, version = self.learner.step(max_updates)
        status = self.learner.status()
        return {
            "new_episodes": n_new,
            "updates": n_updates,
            "seconds": time.perf_counter() - t0,
            "version": version.name if version is not None else None,
            "total_updates": status.updates,
            "env_steps": status.env_steps,
            "episodes": status.episodes,
            "resumed": self.learner.resumed,
        }

    def latest(self) -> tuple[str, dict[str, bytes]] | None:
        path = latest_version(self.learner.versions)
        if path is None:
            return None
        return path.name, {f.name: f.read_bytes() for f in path.iterdir() if f.is_file()}

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> str:
        """Publish what it has and checkpoint (the fleet is stopping)."""
        self.learner.publish_if_due(force=True)
        return str(self.learner.checkpoint())


@dataclass
class FleetSummary:
    arms: int
    env_steps: int
    updates: int
    wall_s: float
    rows: list[dict[str, Any]]
    steps_to_target: int | None
    restarts: int

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.wall_s if self.wall_s else 0.0

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.wall_s if self.wall_s else 0.0

    def line(self) -> str:
        best = max((r["requested_success"] for r in self.rows), default=float("nan"))
        to = self.steps_to_target if self.steps_to_target is not None else "not reached"
        return (
            f"fleet arms={self.arms} env_steps_per_s={self.env_steps_per_s:.0f} "
            f"updates_per_s={self.updates_per_s:.0f} steps_to_0.9={to} best={best:.2f} "
            f"versions={len(self.rows)} restarts={self.restarts} wall_s={self.wall_s:.0f}"
        )


def run_fleet(settings: FleetSettings, *, report: Any = print, chaos: Any = None) -> FleetSummary:
    """Run the fleet; ``chaos(driver_state)`` may kill actors (tests)."""
    try:
        import ray  # heavy and optional (the fleet extra): only for her fleet
    except ImportError:
        raise PolicyError(
            "her fleet needs Ray: pip install 'her-ros[fleet]' (make test installs it)"
        ) from None
    preset = build_train_config({"task": settings.task})
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(ray, settings)
    try:
        check_arms_fit(settings.arms, float(ray.cluster_resources().get("CPU", 0.0)), "the Ray cluster")
    except ConfigError:
        if started_here:
            ray.shutdown()
        raise
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    # Ray's generated actor types are opaque to the type checker: handles are Any here.
    Arm: Any = ray.remote(max_restarts=-1, max_task_retries=0)(_Arm)
    Learner: Any = ray.remote(max_restarts=-1, max_task_retries=0)(_Learner)
    roots = [out / f"arm_{i}" for i in range(settings.arms)]
    arms: list[Any] = [
        Arm.options(num_cpus=0.5).remote(
            settings.task, str(root), settings.seed + i, preset.resolved_exploration_noise,
            preset.resolved_random_eps,
        )
        for i, root in enumerate(roots)
    ]  # fmt: skip
    learner: Any = Learner.options(num_cpus=1).remote(
        [str(r / "session") for r in roots], str(out / "learner"), settings.task, settings.publish_every
    )
    start = time.monotonic()
    env_steps = updates = restarts = 0
    rows: list[dict[str, Any]] = []
    steps_to_target: int | None = None
    installed = ""
    running = {arm.run.remote(settings.episodes_per_call): i for i, arm in enumerate(arms)}
    learning = learner.step.remote()
    # The preset's update-to-data ratio, kept across the fleet: an arm whose call ends while the
    # learner owes more than one round of calls' updates on the data it has ingested waits
    # (parked) until it has caught up. (Only owed updates count, so arms never wait for data the
    # learner lacks.) Measured on push, 2 arms on 2 cores, without it: 646 env steps/s but 19
    # updates/s against the 129 that push's 0.2 updates per step asks for; 0.04 after 9 min.
    ratio = preset.updates_per_step if settings.keep_ratio else 0.0
    slack = ratio * settings.arms * settings.episodes_per_call * get_task(settings.task).episode_steps
    parked: list[int] = []
    seen = {"env_steps": 0, "total_updates": 0}

    def behind() -> bool:
        owed = ratio * seen["env_steps"] - seen["total_updates"]
        return ratio > 0 and seen["env_steps"] >= preset.batch_size and owed > slack
    state = {"arms": arms, "learner": learner, "ray": ray}
    gone = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)

    def ask(ref: Any, what: str) -> Any:
        """The result of one call, or None when its actor died or is restarting."""
        nonlocal restarts
        try:
            return ray.get(ref)
        except gone:
            restarts += 1
            report(f"{what} died or is restarting: Ray restarts it; the fleet goes on")
            return None

    signals = StopSignals()
    try:
        signals.__enter__()
        while time.monotonic() - start < settings.minutes * 60 and not signals.requested:
            done, _ = ray.wait([*running, learning], num_returns=1, timeout=5.0)
            for ref in done:
                if ref is not learning:
                    i = running.pop(ref)
                    result = ask(ref, f"arm {i} (its completed episodes are in its bags)")
                    env_steps += result["env_steps"] if result else 0
                    if behind():
                        parked.append(i)
                    else:
                        running[arms[i].run.remote(settings.episodes_per_call)] = i
                    continue
                step = ask(ref, "the learner (it resumes from its checkpoint)") or {}
                updates += step.get("updates", 0)
                seen.update({k: step[k] for k in seen if k in step})
                learning = learner.step.remote()
                while parked and not behind():
                    i = parked.pop(0)
                    running[arms[i].run.remote(settings.episodes_per_call)] = i
                latest = ask(learner.latest.remote(), "the learner") if step.get("version") else None
                if latest is None or latest[0] == installed:
                    continue
                installed = latest[0]
                files = ray.put(latest[1])
                for i, arm in enumerate(arms):
                    ask(arm.install.remote(installed, files), f"arm {i}")
                evaluated = next(
                    (r for i, a in enumerate(arms) if (r := ask(a.evaluate.remote(settings.eval_goals), f"arm {i}"))),
                    None,
                )
                if evaluated is None:
                    continue
                row = {
                    "wall_s": round(time.monotonic() - start, 1), "env_steps": env_steps,
                    "version": evaluated.version, "requested_success": evaluated.success,
                    "ci_low": evaluated.ci_low, "ci_high": evaluated.ci_high,
                    "n_goals": evaluated.n_goals,
                }  # fmt: skip
                rows.append(row)
                report(
                    f"t={row['wall_s']:6.0f} s  env steps {env_steps:7d}  {evaluated.version}: "
                    f"requested-goal success {evaluated.success:.2f} "
                    f"[{evaluated.ci_low:.2f}, {evaluated.ci_high:.2f}]"
                )
                if steps_to_target is None and evaluated.success >= (settings.target_success or 0.9):
                    steps_to_target = env_steps
                if settings.target_success is not None and evaluated.success >= settings.target_success:
                    raise StopIteration
            if chaos is not None:
                chaos(state)
    except StopIteration:
        pass
    finally:
        signals.__exit__()
        wall = time.monotonic() - start
        if signals.requested:
            # A consistent checkpoint before the actors go: the learner resumes there.
            try:
                ray.get(learner.stop.remote(), timeout=120)
                report(f"{signals.requested}: the learner checkpointed in {out / 'learner'}; run the same command to go on")
            except Exception as exc:  # a dead learner keeps its last atomic checkpoint
                report(f"{signals.requested}: the learner could not checkpoint ({exc}); its last checkpoint is kept")
        (out / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        plot_learning_curve(rows, out / "curve.png", title=f"her fleet: {settings.arms} arms, {settings.task}")
        for actor in [*arms, learner]:
            ray.kill(actor)
        if started_here:
            ray.shutdown()
    return FleetSummary(settings.arms, env_steps, updates, wall, rows, steps_to_target, restarts)
