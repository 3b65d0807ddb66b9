"""Stopping a long run cleanly: SIGINT (Ctrl-C) and SIGTERM as a request, honoured at the next
safe point (between training cycles, between episodes), never mid-update.

No torch here: the ``her`` commands import it at start-up.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

__all__ = ["StopSignals"]


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM as a request to stop at the next safe point.

    Inside ``with StopSignals() as stop:`` the first signal sets ``stop.requested`` (a
    training loop checks it between cycles and checkpoints); a second SIGINT raises
    ``KeyboardInterrupt`` at once. Outside the main thread (no signal handlers there) it
    does nothing.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(
            f"\n{self.requested}: stopping at the next safe point (a checkpoint is written); "
            "press Ctrl-C again to stop at once", file=sys.stderr, flush=True,
        )  # fmt: skip

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}
