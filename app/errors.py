"""The one way the app tells a visitor what went wrong: a one-line gr.Error, and one line in the server log."""

from __future__ import annotations

import logging

import gradio as gr

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
