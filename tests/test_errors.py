"""errors.first_line: the one way an exception becomes one line for a person."""

from __future__ import annotations

import pytest

from explainers.errors import first_line


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad value\nTraceback (most recent call last):\n  ..."), "bad value"),
        (OSError("\n\n  the real reason  \nmore"), "the real reason"),
        (KeyError(), "KeyError"),
        (RuntimeError("   "), "RuntimeError"),
    ],
)
def test_first_non_empty_line_or_the_type(exc, expected):
    assert first_line(exc) == expected


def test_the_limit_cuts_long_lines():
    assert first_line(ValueError("x" * 500)) == "x" * 200
    assert first_line(ValueError("abcdef"), limit=3) == "abc"
