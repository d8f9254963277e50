"""The one way the app tells a visitor what went wrong: a one-line gr.Error, and one line in the server log."""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
import types
from typing import Any

import gradio as gr
from gradio.exceptions import Error as GradioError
from gradio.exceptions import InvalidPathError

log = logging.getLogger("xai_lens.app")


def one_line(message: str) -> str:
    """The first line of a message, or a plain word when there is none."""
    return message.splitlines()[0] if message and message.strip() else "Refused."


def for_browser(message: str) -> str:
    """Gradio shows toasts as HTML: '<urlopen error ...>' would vanish as an unknown tag, and the hint after it."""
    return message.replace("<", "&lt;")  # only '<' opens a tag; API callers read the rest unchanged


def user_error(message: str) -> gr.Error:
    """A gr.Error for an expected refusal, logged as one line.

    Gradio prints a traceback for every gr.Error unless told not to (print_exception); a public demo
    refuses bad input all day, and those tracebacks would bury the log's real faults.
    """
    line = one_line(message)
    log.info("refused: %s", line)
    return gr.Error(for_browser(line), print_exception=False)


def user_warning(message: str) -> None:
    """A one-line toast for a refusal that keeps the page as it was (no output changes), logged as one line."""
    line = one_line(message)
    log.info("refused: %s", line)
    gr.Warning(for_browser(line))


# Where Gradio prints a traceback for an event's exception: for its own input checks (a value off a dropdown's
# list, a number past its bound, a path that was not uploaded) too, which a public demo meets all day.
GRADIO_MODULES_THAT_PRINT = ("gradio.queueing", "gradio.routes", "gradio.utils")


class _RefusalsInOneLine(types.ModuleType):
    """The `traceback` module as Gradio's event loop sees it: a refusal of Gradio's own becomes one `refused:`
    line, like the app's own; anything else (a real fault) keeps its whole traceback."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def print_exc(*args: Any, **kwargs: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, GradioError | InvalidPathError):
            log.info("refused: %s", one_line(str(getattr(error, "message", error))))
        else:
            traceback.print_exc(*args, **kwargs)


def log_gradio_refusals_in_one_line() -> None:
    """Make Gradio's own input refusals one log line each; idempotent, called when the app is built."""
    for name in GRADIO_MODULES_THAT_PRINT:
        module = importlib.import_module(name)
        if not isinstance(module.traceback, _RefusalsInOneLine):
            module.traceback = _RefusalsInOneLine("traceback")
