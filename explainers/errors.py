"""The one exception type people see, and the one way to shorten any exception to a line for them."""

from __future__ import annotations


class XaiLensError(ValueError):
    """A problem with the user's input or environment, phrased for a person (never a traceback)."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, at most `limit` characters; its type name if it has none.

    Third-party messages can run to pages (tracebacks, reprs of whole arrays); a person gets one line.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__[:limit]
