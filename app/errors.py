"""The one way the app tells a visitor what went wrong: a one-line gr.Error, and nothing in the server log."""

from __future__ import annotations

import gradio as gr


def user_error(message: str) -> gr.Error:
    """A gr.Error for an expected refusal. Gradio prints a traceback for every gr.Error unless told not to;
    a public demo refuses bad input all day, and those tracebacks would bury the log's real faults."""
    return gr.Error(message.splitlines()[0] if message else "Refused.", print_exception=False)
