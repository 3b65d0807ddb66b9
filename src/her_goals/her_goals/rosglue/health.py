"""What is wrong with a node right now, for its log and for ``/diagnostics``.

Every node core keeps one :class:`Health`. Bad input (wrong joint names, a
missing object pose, out-of-order stamps, a bad parameter, an artefact for
another arm) is *reported* under a key instead of raised: :meth:`Health.report`
returns True only when the message for that key changed, so the node logs each
problem once rather than at the control rate, and :meth:`Health.diagnostic` folds
everything into one ``diagnostic_msgs/DiagnosticStatus`` (the worst level wins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from her_goals.rosglue.msgconv import Diagnostic

OK, WARN, ERROR, STALE = 0, 1, 2, 3
# Severity for combining levels: ERROR > STALE > WARN > OK (diagnostic_msgs numbers STALE 3).
_SEVERITY = {OK: 0, WARN: 1, STALE: 2, ERROR: 3}


def worst(levels: Any) -> int:
    """The most severe of some diagnostic levels (OK when there are none)."""
    return max(levels, key=lambda lv: _SEVERITY[lv], default=OK)


@dataclass
class Health:
    """Named problems of one node, each with a level and a message; counters beside them."""

    name: str
    """DiagnosticStatus name, e.g. ``her_goals: goals_node``."""
    hardware_id: str = ""
    problems: dict[str, tuple[int, str]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    on_change: Callable[[int, str], None] | None = None
    """Called with (level, message) when a problem appears or changes, and with (OK,
    "resolved: ...") when it clears: the node's logger."""

    def report(self, key: str, level: int, message: str) -> bool:
        """Set problem ``key``; True when it is new or its message changed (logged then)."""
        old = self.problems.get(key)
        self.problems[key] = (level, message)
        changed = old != (level, message)
        if changed and self.on_change is not None:
            self.on_change(level, message)
        return changed

    def clear(self, key: str) -> bool:
        """Remove problem ``key``; True when it was set (the recovery is logged then)."""
        old = self.problems.pop(key, None)
        if old is not None and self.on_change is not None:
            self.on_change(OK, f"resolved: {old[1]}")
        return old is not None

    def count(self, key: str, n: int = 1) -> int:
        """Add to counter ``key`` (shown in the diagnostic's values); returns the new total."""
        self.counters[key] = self.counters.get(key, 0) + n
        return self.counters[key]

    @property
    def level(self) -> int:
        return worst(level for level, _ in self.problems.values())

    def diagnostic(self, values: Mapping[str, Any] | None = None, ok_message: str = "ok") -> Diagnostic:
        """One status: the worst level, every problem's message, counters and ``values``."""
        ordered = sorted(self.problems.items(), key=lambda kv: -_SEVERITY[kv[1][0]])
        message = "; ".join(msg for _, (_, msg) in ordered) or ok_message
        merged: dict[str, Any] = {**self.counters, **(values or {})}
        return Diagnostic(self.level, self.name, message, self.hardware_id, merged)


def log_to(logger: Any) -> Callable[[int, str], None]:
    """A :attr:`Health.on_change` that writes to an rclpy (or ``logging``) logger."""

    # One call site per severity: rclpy's logger refuses a severity change at a call site.
    def log(level: int, message: str) -> None:
        if level == OK:
            logger.info(message)
        elif level == ERROR:
            logger.error(message)
        else:  # WARN, STALE (waiting for data)
            logger.warning(message)

    return log
