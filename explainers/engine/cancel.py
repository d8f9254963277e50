"""Cooperative cancellation: long loops ask a token whether the visitor still wants the answer.

A web request that is cancelled (tab closed, Stop pressed, timeout) cannot kill a thread; the work
has to notice. Loops over batches call `token.check()` between batches, which raises CancelledError, so
the batch tensors go out of scope and their memory is freed as the exception unwinds. There is one path
to the work: the pipeline puts the token in the `Subject` every method receives, and the methods call
`subject.raise_if_cancelled()` between batches (never a progress callback that happens to check).
"""

from __future__ import annotations

import threading
import time

from explainers.errors import XaiLensError


class CancelledError(XaiLensError):
    """The work was stopped on request; a one-line message like every other error people see."""


class CancelToken:
    """Set from anywhere (another thread, a UI event); checked by the work between batches.

    An optional deadline (seconds from now) cancels the work by itself, so no request can hold a
    worker forever even if nobody cancels it.
    """

    def __init__(self, deadline_s: float | None = None) -> None:
        self._event = threading.Event()
        self._reason = "cancelled"
        self._deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self._deadline_s = deadline_s

    def cancel(self, reason: str = "cancelled") -> None:
        self._reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set() and self._deadline is not None and time.monotonic() > self._deadline:
            self.cancel(f"stopped after the {self._deadline_s:g} s time limit")
        return self._event.is_set()

    def check(self) -> None:
        """Raise CancelledError if cancel() was called or the deadline passed; cheap enough for every batch."""
        if self.cancelled:
            raise CancelledError(f"The explanation was {self._reason}; nothing was kept. Run it again to restart.")
