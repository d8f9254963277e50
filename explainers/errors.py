"""The one exception type people see, and the one way to shorten any exception to a line for them."""

from __future__ import annotations

import sys
from collections.abc import Callable


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


def run_command(body: Callable[[], int | None], interrupted: str | Callable[[], str] = "interrupted") -> int:
    """Run a command-line body the way every XAI Lens command ends: an XaiLensError becomes one
    `error: ...` line and exit 2, Ctrl-C one line and exit 130; never a traceback for a person.

    `interrupted` may be a callable, for commands whose advice on resuming depends on what was running.
    """
    try:
        return body() or 0
    except XaiLensError as error:
        print(f"error: {first_line(error, limit=1000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted() if callable(interrupted) else interrupted, file=sys.stderr)
        return 130
