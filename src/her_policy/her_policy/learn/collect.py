"""Experience collection: several envs stepped in lockstep, in-process or in a worker process.

A collection cycle runs one episode in each of ``n_envs`` envs with the
exploring policy of an :class:`~her_policy.artefact.weights.ActorWeights` (numpy forward
pass, no torch) and returns whole episodes, ready for
:meth:`~her_policy.learn.buffer.HerReplayBuffer.add_episode`.

:class:`ProcessCollector` runs the same collector in a second process, so on a
2-core machine the simulator steps while the learner does gradient updates. The
pipeline is one cycle deep and deterministic: the episodes of cycle ``c + 1``
are collected with the weights the learner had when cycle ``c``'s episodes were
handed over, whatever the timing.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from dataclasses import asdict, dataclass
from typing import Any

import colorednoise
import numpy as np
from numpy.typing import NDArray

from her_goals.episode_arrays import EpisodeArrays
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.numpy_actor import NumpyActor
from her_policy.artefact.weights import ActorWeights
from her_policy.errors import EnvContractError, PolicyError
from her_policy.learn.envs import EnvFactory, episode_length, training_seed


@dataclass(frozen=True)
class Exploration:
    """How the collector perturbs the policy (see :meth:`~her_policy.artefact.numpy_actor.NumpyActor.batch`)."""

    noise: float = 0.0
    random_eps: float = 0.0
    uniform: bool = False
    """Ignore the policy: uniformly random actions (warm-up)."""
    color: float = 0.0
    """Exponent beta of the Gaussian action noise's power spectrum 1/f^beta over each episode
    (0: white, drawn afresh each step; 1: pink; 2: red). Coloured noise keeps its per-step std but
    is correlated in time, so an exploring tool wanders further from where it starts (over 50
    steps the summed noise of beta 1 has 2.5x the std of white noise's)."""


def episode_noise(color: float, n_envs: int, action_dim: int, rng: np.random.Generator, steps: int) -> NDArray[np.float64]:
    """(n_envs, action_dim, steps) unit-variance Gaussian noise with power spectrum 1/f^color
    along the steps: one episode's exploration noise per env (colorednoise, Timmer and Koenig's
    method), drawn from ``rng`` so that a seeded run stays deterministic."""
    return np.asarray(colorednoise.powerlaw_psd_gaussian(color, (n_envs, action_dim, steps), random_state=rng))


class Collector:
    """``n_envs`` training envs stepped in lockstep in this process."""

    def __init__(
        self, env_factory: EnvFactory, n_envs: int, seed: int, layout: PolicyLayout
    ) -> None:
        if n_envs < 1:
            raise PolicyError(f"n_envs must be >= 1, got {n_envs}")
        self.envs = [env_factory() for _ in range(n_envs)]
        self.layout = layout
        self.seed = seed
        self.rng = np.random.default_rng([seed, 0x5EED])
        self._seeded = False

    def collect(self, snapshot: ActorWeights | None, exploration: Exploration) -> list[EpisodeArrays]:
        """One episode per env with the exploring policy (uniform actions if no snapshot)."""
        actor = NumpyActor(snapshot) if snapshot is not None and not exploration.uniform else None
        n = len(self.envs)
        obs_lists: list[list[Any]] = [[] for _ in range(n)]
        ag_lists: list[list[Any]] = [[] for _ in range(n)]
        dg_lists: list[list[Any]] = [[] for _ in range(n)]
        act_lists: list[list[Any]] = [[] for _ in range(n)]
        cost_lists: list[list[float]] = [[] for _ in range(n)]
        flag_lists: list[list[int]] = [[] for _ in range(n)]
        ends: list[tuple[bool, bool, float]] = [(False, False, 0.0)] * n
        current = []
        params: list[dict[str, Any] | None] = []
        for i, env in enumerate(self.envs):
            # Seed once: later resets continue each env's own random stream.
            kwargs = {"seed": training_seed(self.seed, i)} if not self._seeded else {}
            o, reset_info = env.reset(**kwargs)
            params.append(reset_info.get("sim_params"))  # domain randomisation, into the bag
            current.append(o)
            obs_lists[i].append(o["observation"])
            ag_lists[i].append(o["achieved_goal"])
        self._seeded = True
        coloured = None
        if actor is not None and exploration.color > 0 and exploration.noise > 0:
            steps = episode_length(self.envs[0])
            coloured = episode_noise(exploration.color, n, self.layout.action_dim, self.rng, steps)
        active = list(range(n))
        while active:
            if actor is None:
                unit = self.rng.uniform(-1.0, 1.0, (len(active), self.layout.action_dim))
            else:
                o_b = np.stack([current[i]["observation"] for i in active])
                g_b = np.stack([current[i]["desired_goal"] for i in active])
                # Each env's coloured sequence at its own step (the last one past its length).
                draws = None if coloured is None else np.stack(
                    [coloured[i, :, min(len(act_lists[i]), coloured.shape[2] - 1)] for i in active]
                )
                unit = actor.batch(
                    o_b,
                    g_b,
                    rng=self.rng,
                    noise=exploration.noise,
                    random_eps=exploration.random_eps,
                    unit_noise=draws,
                )
            actions = self.layout.to_env_action(unit)
            still = []
            for row, i in enumerate(active):
                dg_lists[i].append(current[i]["desired_goal"])
                o, _, terminated, truncated, info = self.envs[i].step(actions[row])
                act_lists[i].append(actions[row])
                cost_lists[i].append(float(info.get("cost", 0.0)))  # the safety layer's channel
                flag_lists[i].append(int(info.get("safety_flags", 0)))
                obs_lists[i].append(o["observation"])
                ag_lists[i].append(o["achieved_goal"])
                current[i] = o
                if terminated or truncated:
                    ends[i] = (
                        bool(terminated),
                        bool(truncated),
                        float(info.get("is_success", np.nan)),
                    )
                else:
                    still.append(i)
            active = still
        episodes = []
        for i in range(n):
            obs = np.asarray(obs_lists[i], np.float64)
            if not np.isfinite(obs).all():
                raise EnvContractError(
                    f"training env {i} produced a NaN/inf observation; the simulation diverged "
                    "without ending the episode"
                )
            episodes.append(
                EpisodeArrays.from_rollout(
                    obs,
                    np.asarray(act_lists[i], np.float64),
                    np.asarray(ag_lists[i], np.float64),
                    np.asarray(dg_lists[i], np.float64),
                    terminated=ends[i][0],
                    truncated=ends[i][1],
                    success=ends[i][2],
                    sim_params=params[i],
                    safety_cost=np.asarray(cost_lists[i], np.float32),
                    safety_flags=np.asarray(flag_lists[i], np.uint32),
                )
            )
        return episodes

    def state(self) -> dict[str, Any]:
        """Every random stream of the collector and its envs between cycles: a run stopped
        here continues exactly as it would have (:meth:`restore`)."""
        return {
            "seeded": self._seeded,
            "rng": dict(self.rng.bit_generator.state),
            "envs": [env_random_state(env) for env in self.envs],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state` of a collector with the same envs and seed."""
        if len(state["envs"]) != len(self.envs):
            raise PolicyError(
                f"collector state of {len(state['envs'])} envs cannot resume {len(self.envs)} envs"
            )
        self._seeded = bool(state["seeded"])
        self.rng.bit_generator.state = state["rng"]
        for env, env_state in zip(self.envs, state["envs"]):
            set_env_random_state(env, env_state)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def env_random_state(env: Any) -> dict[str, Any]:
    """An env's random streams between episodes: its own ``random_state()`` (our tasks: goal
    sampler, randomisation, simulator noise) or, for another Gymnasium env, its ``np_random``
    (which a Gymnasium env's reset draws everything from)."""
    base = env.unwrapped
    if hasattr(base, "random_state"):
        return {"own": base.random_state()}
    return {"np_random": dict(base.np_random.bit_generator.state)}


def set_env_random_state(env: Any, state: dict[str, Any]) -> None:
    base = env.unwrapped
    if "own" in state:
        base.set_random_state(state["own"])
    else:
        base.np_random.bit_generator.state = state["np_random"]


def exploration_dict(exploration: Exploration) -> dict[str, Any]:
    return asdict(exploration)


def _worker_main(
    conn: Any, env_factory: EnvFactory, n_envs: int, seed: int, layout: PolicyLayout
) -> None:
    """Worker process loop: build the collector, then serve collect requests until 'close'.

    Ctrl-C reaches the whole process group: the worker ignores it, so the trainer (which
    stops at the next cycle and checkpoints) decides when collection ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        collector = Collector(env_factory, n_envs, seed, layout)
    except BaseException as exc:  # report start-up failures instead of dying silently
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    try:
        while True:
            command, payload = conn.recv()
            if command == "close":
                break
            try:
                if command == "state":
                    conn.send(("ok", collector.state()))
                elif command == "restore":
                    collector.restore(payload)
                    conn.send(("ok", None))
                else:
                    conn.send(("ok", collector.collect(*payload)))
            except BaseException as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        collector.close()
        conn.close()


class ProcessCollector:
    """A :class:`Collector` in a worker process; ``submit`` then ``result``, one request in flight."""

    def __init__(
        self, env_factory: EnvFactory, n_envs: int, seed: int, layout: PolicyLayout
    ) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process holding torch threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_worker_main, args=(child, env_factory, n_envs, seed, layout), daemon=True
        )
        self._proc.start()
        child.close()
        self._pending = False
        self._receive()

    def _receive(self) -> Any:
        try:
            status, payload = self._conn.recv()
        except EOFError:
            raise PolicyError(
                f"collector process exited unexpectedly (exit code {self._proc.exitcode})"
            ) from None
        if status == "error":
            raise PolicyError(f"collector process failed: {payload}")
        return payload

    def submit(self, snapshot: ActorWeights | None, exploration: Exploration) -> None:
        if self._pending:
            raise PolicyError("collector already has a request in flight; call result() first")
        self._conn.send(("collect", (snapshot, exploration)))
        self._pending = True

    def result(self) -> list[EpisodeArrays]:
        if not self._pending:
            raise PolicyError("no collect request in flight")
        self._pending = False
        episodes: list[EpisodeArrays] = self._receive()
        return episodes

    def collect(self, snapshot: ActorWeights | None, exploration: Exploration) -> list[EpisodeArrays]:
        self.submit(snapshot, exploration)
        return self.result()

    def state(self) -> dict[str, Any]:
        """The worker's :meth:`Collector.state` (no request may be in flight)."""
        if self._pending:
            raise PolicyError("collector state asked while a request is in flight")
        self._conn.send(("state", None))
        state: dict[str, Any] = self._receive()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        if self._pending:
            raise PolicyError("collector restore while a request is in flight")
        self._conn.send(("restore", state))
        self._receive()

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                if self._pending:
                    self._conn.recv()
                self._conn.send(("close", None))
            except (OSError, EOFError):
                pass
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.terminate()
        self._conn.close()
