"""Stop means stop: one cancel token per browser session and job, set by the Stop button, checked by the work.

Gradio's own `cancels=` only drops the browser's side of an event: the thread computing the current
method keeps a core busy until that method ends (minutes for LIME on a CPU), and the results already
shown are frozen under progress overlays. Here the Stop click sets the running job's token instead;
the library checks it between batches and raises CancelledError, the job's generator ends (its
tensors freed as the exception unwinds) and the tab reports what finished before the stop.

Tokens live in this process: off ZeroGPU that is where the work runs. On ZeroGPU the work runs in a
forked worker that cannot see them, so Stop ends the stream to the browser and the worker stops at
its own deadline (the GPU lease) instead.
"""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr

from app.gpu import zero_gpu
from explainers.engine.cancel import CancelToken

STOPPED_BY_VISITOR = "stopped (you pressed Stop)"


class SessionStops:
    """The running job's token for each (job kind, session), so a Stop click finds the job it belongs to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], CancelToken] = {}
        self._stopped: set[int] = set()

    def start(self, kind: str, session: str | None, deadline_s: float | None) -> CancelToken:
        """A fresh token for a job that starts now; it also stops by itself after `deadline_s`."""
        token = CancelToken(deadline_s)
        with self._lock:
            self._tokens[(kind, session or "")] = token
        return token

    def stop(self, kind: str, session: str | None) -> bool:
        """Cancel the session's running job of this kind; False when none was running."""
        with self._lock:
            token = self._tokens.pop((kind, session or ""), None)
            if token is not None:
                self._stopped.add(id(token))
        if token is None:
            return False
        token.cancel(STOPPED_BY_VISITOR)
        return True

    def finish(self, kind: str, session: str | None, token: CancelToken) -> bool:
        """Forget a job that ended; True when it ended because the visitor pressed Stop."""
        with self._lock:
            if self._tokens.get((kind, session or "")) is token:
                del self._tokens[(kind, session or "")]
            stopped = id(token) in self._stopped
            self._stopped.discard(id(token))
        return stopped


STOPS = SessionStops()


def wire_stop_button(button: gr.Button, kind: str, running: Any) -> None:
    """Make `button` stop this session's running job of `kind` (the event `running` started).

    Off ZeroGPU the click sets the job's token and the work ends at its next batch. On ZeroGPU the work runs in a
    forked worker that cannot see the token, so the click also drops the stream to the browser.
    """

    def stop(request: gr.Request) -> None:
        STOPS.stop(kind, getattr(request, "session_hash", None))

    button.click(
        stop,
        None,
        None,
        cancels=[running] if zero_gpu() else None,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
