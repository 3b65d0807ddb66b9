"""The one exception family of the goal contract.

Every error names the offending thing and says what to do about it.
"""

from __future__ import annotations

import errno
import os
import shutil


class HerError(Exception):
    """Base class of every error raised by HER-ROS core packages."""


class GoalError(HerError, ValueError):
    """A goal that cannot be used: wrong shape, NaN/inf, unknown space."""


class GoalShapeError(GoalError):
    """A goal whose shape does not match its goal space or its partner goal."""


class NonFiniteGoalError(GoalError):
    """A goal that contains NaN or inf."""


class UnknownGoalSpaceError(GoalError, KeyError):
    """A goal-space name that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(HerError, ValueError):
    """A configuration file or mapping with a typo, a wrong type or a missing key."""


class StateError(HerError, ValueError):
    """Robot state that cannot be used: missing joints, NaN, stale."""


class StorageError(HerError, OSError):
    """An output that cannot be written: the disk is full, the path is read-only or not a
    directory. Its message names the path, the free space and what was kept."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno N]"
        return str(self.strerror)


def storage_error(path: object, exc: OSError, *, kept: str = "") -> StorageError:
    """The one-line :class:`StorageError` for ``exc`` raised while writing ``path``: what
    happened (disk full, permission, ...), the free space on that filesystem, and ``kept``
    (what is safe, e.g. "the 12 completed episodes are in the bag")."""
    where = os.fspath(path) if isinstance(path, str | os.PathLike) else str(path)
    probe = where
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        free = shutil.disk_usage(probe or ".").free
        space = f"{free / 2**20:.1f} MiB free on its filesystem"
    except OSError:
        space = "free space unknown"
    what = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EROFS: "the filesystem is read-only",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    tail = f"; {kept}" if kept else ""
    return StorageError(exc.errno or 0, f"cannot write {where}: {what} ({space}){tail}")
