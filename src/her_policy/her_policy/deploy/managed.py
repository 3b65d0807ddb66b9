"""policy_node's lifecycle (a ROS 2 managed node), without rclpy.

The node is an ``rclpy.lifecycle`` node; what each transition *does* is here, so it is
tested without ROS (ARCHITECTURE.md, rule 1):

* **configure** reads the parameters (:class:`PolicyConfig`, strictly), builds the
  :class:`PolicyCore`, which loads and checks the artefact against the task, the arm's
  observation layout and the action size, and checks the arm's joint names against the
  latest ``joint_states`` when one has arrived. Any failure leaves the node
  *unconfigured* with the reason in its log and on ``/diagnostics``; fix the parameter
  (``ros2 param set``) and configure again.
* **activate** re-checks the joint names and starts commanding: the node then listens to
  the episode topic, so the goals node starts episodes only for an active policy.
* **deactivate** stops commanding after one last command that holds the arm at its
  measured position; the running episode is dropped (the goals node aborts it, as the
  policy stopped listening).
* **cleanup** drops the core (artefact unloaded); **errors** (an exception in a transition
  or a tick) end in a state the user sees and can leave: the node deactivates (from a tick)
  or returns to unconfigured (``on_error``), saying why.

The software e-stop works in every state: a stop received while no core exists is kept
and latched into the core at configure; the latch survives cleanup and reconfigure.

What the node publishes and logs is decided here too: :meth:`ManagedPolicy.publications` (the
publishers a configured node creates), :meth:`ManagedPolicy.messages` (a tick's output as
``(publisher key, message)`` pairs), and the :class:`Log` lines of the e-stop, the services and
the transitions; the node only hands them to rclpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from her_goals.errors import HerError
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_goals.rosglue.frames import Lookup
from her_goals.rosglue.health import ERROR, OK, WARN, Health, worst
from her_goals.rosglue.msgconv import Diagnostic, joint_state_fields
from her_goals.rosglue.params import config_from_parameters
from her_goals.rosglue.topics import check_topic
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore, TickOut

_INPUT_TOPICS = ("joint_states_topic", "object_pose_topic", "estop_topic")


class Log(NamedTuple):
    """One line for the node's log; ``level`` is a health level (OK: info, WARN: warning, ERROR: error)."""

    level: int
    message: str


class Answer(NamedTuple):
    """A ``std_srvs/Trigger`` reply and the line the node logs with it."""

    success: bool
    message: str
    log: Log


class Publication(NamedTuple):
    """A publisher of a configured node: the key :meth:`ManagedPolicy.messages` names it by."""

    key: str
    """``command``, ``gripper`` or ``step``."""
    type_name: str
    topic: str
    qos: qos.QosSpec


class ManagedPolicy:
    """The policy node's state machine and e-stop, around a :class:`PolicyCore`; see the module docstring."""

    def __init__(self, name: str = "her_policy: policy_node") -> None:
        self.health = Health(name)
        self.core: PolicyCore | None = None
        self.active = False
        self.estop_signal = False
        self.estop_latched = False
        """The e-stop latch while there is no core (handed to each new core)."""
        self._joint_state: Any = None
        self._joint_names: tuple[str, ...] | None = None
        self.health.report("lifecycle", WARN, "unconfigured: no command is sent (configure, then activate)")

    # -- inputs, in every state ----------------------------------------------------------------
    @staticmethod
    def input_topics(values: Mapping[str, Any], report: Health | None = None) -> dict[str, str]:
        """The topics the node subscribes to at startup; a bad name falls back to the default, reported."""
        defaults = PolicyConfig()
        out = {}
        for name in _INPUT_TOPICS:
            try:
                out[name] = check_topic(values.get(name, getattr(defaults, name)), f"policy_node: {name}")
            except HerError as exc:
                out[name] = getattr(defaults, name)
                if report is not None:
                    report.report(name, ERROR, f"{exc}; using {out[name]!r}")
        return out

    def on_joint_state(self, msg: Any) -> None:
        self._joint_state = msg
        try:
            self._joint_names = joint_state_fields(msg)[0]
        except HerError:
            self._joint_names = None
        if self.core is not None:
            self.core.on_joint_state(msg)

    def on_object_pose(self, msg: Any, lookup: Lookup | None = None) -> None:
        if self.core is not None:
            self.core.on_object_pose(msg, lookup)

    def on_episode_event(self, msg: Any) -> None:
        """An ``EpisodeEvent`` message (the node listens only while active)."""
        if self.core is not None:
            self.core.on_event(mc.episode_event_data(msg))

    def estop_topic(self, active: bool) -> list[Log]:
        """The e-stop topic's message: what to log (a stop newly engaged)."""
        return [Log(ERROR, "e-stop: holding the arm until ~/reset_estop")] if self.on_estop(active) else []

    def estop_service(self) -> Answer:
        """The ``~/estop`` service's reply."""
        success, message = self.engage_estop()
        return Answer(success, message, Log(ERROR, f"e-stop: {message}"))

    def reset_estop_service(self) -> Answer:
        """The ``~/reset_estop`` service's reply: logged as info when released, as a warning when refused."""
        success, message = self.reset_estop()
        return Answer(success, message, Log(OK if success else WARN, message))

    def on_estop(self, active: bool) -> bool:
        """The e-stop topic; True when this engaged a stop that was not engaged."""
        new = bool(active) and not self.estop_engaged
        self.estop_signal = bool(active)
        if self.core is not None:
            self.core.on_estop(active)
        elif active:
            self.estop_latched = True
        return new

    def engage_estop(self) -> tuple[bool, str]:
        """The ``~/estop`` service."""
        if self.core is not None:
            return self.core.engage_estop()
        self.estop_latched = True
        return True, "engaged by the ~/estop service: no command is sent until ~/reset_estop"

    def reset_estop(self) -> tuple[bool, str]:
        if self.core is not None:
            return self.core.reset_estop()
        if self.estop_signal:
            return False, "the e-stop signal is still true; release it first"
        self.estop_latched = False
        return True, "e-stop released"

    @property
    def state_label(self) -> str:
        """The lifecycle state this object is in: unconfigured, inactive or active."""
        return "active" if self.active else "inactive" if self.core is not None else "unconfigured"

    @property
    def estop_engaged(self) -> bool:
        return self.core.monitor.estop_latched if self.core is not None else self.estop_latched

    # -- transitions ---------------------------------------------------------------------------
    def configure(self, values: Mapping[str, Any]) -> tuple[bool, str]:
        """Build the core from parameter ``values``; (False, why) leaves the node unconfigured."""
        self.health.clear("configure")
        self.health.clear("fault")
        try:
            config = config_from_parameters(PolicyConfig, values, where="policy_node")
            core = PolicyCore(config)
        except (HerError, OSError) as exc:
            return self._refuse("configure", f"configure failed, no command is sent: {exc}")
        if core.artefact_error:
            return self._refuse("configure", f"configure failed: {core.artefact_error}")
        missing = self._missing_joints(core)
        if missing:
            return self._refuse("configure", f"configure failed: {missing}")
        for key, (level, message) in core.health.problems.items():
            self.health.report(key, level, message)
        self.health.counters.update(core.health.counters)
        core.health = self.health  # one set of problems for the node, whatever its state
        if self.estop_latched or self.estop_signal:
            core.on_estop(self.estop_signal)
            core.monitor.trigger_estop()
        if self._joint_state is not None:
            core.on_joint_state(self._joint_state)
        self.core = core
        checked = "checked against joint_states" if self._joint_names is not None else \
            "not checked yet (no joint_states received; checked again on activate)"
        self.health.report("lifecycle", WARN, "inactive: no command is sent (activate to run)")
        return True, (f"configured: task {config.task}, actor {core.actor_kind}, {1.0 / core.period_s:g} Hz, "
                      f"commands on {config.topic}; joint names {checked}")

    def activate(self) -> tuple[bool, str]:
        if self.core is None:
            return False, "not configured"
        missing = self._missing_joints(self.core)
        if missing:
            return self._refuse("activate", f"activate refused: {missing}")
        self.health.clear("activate")
        self.active = True
        self.health.clear("lifecycle")
        return True, "active: commanding the arm" + (" (e-stop engaged: holding)" if self.estop_engaged else "")

    def deactivate(self, now_ns: int) -> TickOut:
        """Stop commanding; the returned command (if any) holds the arm at its measured position."""
        self.active = False
        self.health.report("lifecycle", WARN, "inactive: no command is sent (activate to run)")
        core = self.core
        if core is None:
            return TickOut(None, None, [])
        core.episode = None
        state = core.state(now_ns)
        command = core.monitor.hold(state, now_ns).command if state is not None else None
        return TickOut(command, None, [])

    def stop_commanding(self, types: mc.MessageTypes, now_ns: int) -> tuple[list[tuple[str, Any]], list[Log]]:
        """Deactivate if active (on deactivate, shutdown and error): the command holding the arm,
        to publish while the publishers are still active, then the line to log."""
        if not self.active:
            return [], []
        held = self.messages(types, self.deactivate(now_ns))
        return held, [Log(OK, "inactive: holding at the measured position, no further command")]

    @staticmethod
    def transition_error(state_label: str) -> Log:
        """What ``on_error`` logs first; the node then stops commanding and cleans up (unconfigured)."""
        return Log(ERROR, f"error while leaving {state_label}: back to unconfigured")

    def cleanup(self) -> None:
        """Drop the core (the e-stop latch is kept)."""
        if self.core is not None:
            self.estop_latched = self.core.monitor.estop_latched
        self.core, self.active = None, False
        for key in [k for k in self.health.problems if k not in (*_INPUT_TOPICS, "fault")]:
            self.health.problems.pop(key)
        self.health.report("lifecycle", WARN, "unconfigured: no command is sent (configure, then activate)")

    def fault(self, where: str, exc: BaseException) -> str:
        """Report an unexpected exception (a bug or a broken input): the node leaves the active state."""
        message = f"{where} failed ({type(exc).__name__}: {exc}); the node stops commanding"
        self.health.report("fault", ERROR, message)
        return message

    # -- per tick ------------------------------------------------------------------------------
    def tick(self, now_ns: int) -> TickOut:
        if self.core is None or not self.active:
            return TickOut(None, None, [])
        return self.core.tick(now_ns)

    def publications(self) -> list[Publication]:
        """The publishers of the configured node: the command (JointTrajectory for the trajectory
        interface, else Float64MultiArray), the gripper (when it has a topic) and the steps."""
        if self.core is None:
            return []
        config = self.core.config
        command = mc.JOINT_TRAJECTORY if config.command_interface == "trajectory" else mc.FLOAT64_MULTI_ARRAY
        out = [Publication("command", command, config.topic, qos.DEFAULT)]
        if config.gripper_topic:
            out.append(Publication("gripper", mc.FLOAT64_MULTI_ARRAY, config.gripper_topic, qos.DEFAULT))
        return [*out, Publication("step", mc.STEP, topics.STEP, qos.RELIABLE)]

    def messages(self, types: mc.MessageTypes, out: TickOut) -> list[tuple[str, Any]]:
        """What ``out`` becomes: ``(publication key, message)`` pairs, in publishing order.

        The command is a one-point JointTrajectory reaching its positions in one control period
        (trajectory interface) or a Float64MultiArray; the gripper opening (m) goes out only when
        the node has a gripper topic; then every completed step. Nothing without a core.
        """
        core = self.core
        if core is None:
            return []
        pairs: list[tuple[str, Any]] = []
        if out.command is not None:
            if core.config.command_interface == "trajectory":
                pairs.append(("command", mc.joint_trajectory_msg(types, core.joint_names, out.command, core.period_s)))
            else:
                pairs.append(("command", mc.float64_multi_array_msg(types, out.command)))
        if out.gripper_m is not None and core.config.gripper_topic:
            pairs.append(("gripper", mc.float64_multi_array_msg(types, [out.gripper_m])))
        return pairs + [("step", mc.step_msg(types, step)) for step in out.steps]

    @staticmethod
    def diagnostics_period_s(values: Mapping[str, Any]) -> float:
        """The /diagnostics timer's period from the startup parameters (2 Hz if the rate is not a number)."""
        rate = values.get("diagnostics_rate_hz")
        return 1.0 / max(rate if isinstance(rate, float) else 2.0, 0.1)

    def diagnostic(self, state_label: str) -> Diagnostic:
        values: dict[str, Any] = {"lifecycle_state": state_label, "estop_latched": self.estop_engaged,
                                  "estop_signal": self.estop_signal}
        core = self.core
        if core is None:
            return self.health.diagnostic(values)
        status = self.health.diagnostic({**core.status_values(), **values})
        status = status._replace(level=worst([core.diagnostic_level(), self.health.level]))
        if core.last is not None and core.last.details:
            status = status._replace(message=f"{status.message}; {'; '.join(core.last.details)}")
        return status

    # -- internals -----------------------------------------------------------------------------
    def _missing_joints(self, core: PolicyCore) -> str:
        if self._joint_names is None:
            return ""
        missing = [n for n in core.required if n not in self._joint_names]
        if not missing:
            return ""
        return (f"joint_states lacks the arm's joint(s) {missing} (it has {list(self._joint_names)}); "
                "fix the arm config's joint names or remap the driver")

    def _refuse(self, key: str, message: str) -> tuple[bool, str]:
        self.health.report(key, ERROR, message)
        return False, message
