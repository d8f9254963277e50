"""errors.first_line and errors.run_command: the one way an exception becomes one line for a person."""

from __future__ import annotations

import pytest

from explainers.errors import XaiLensError, first_line, run_command


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


def _raises(exc: BaseException):
    def body() -> int:
        raise exc

    return body


def test_run_command_turns_a_person_error_into_one_line_and_exit_2(capsys):
    assert run_command(_raises(XaiLensError("no such image: a.png\nmore detail"))) == 2
    assert capsys.readouterr().err == "error: no such image: a.png\n"


def test_run_command_turns_ctrl_c_into_its_advice_and_exit_130(capsys):
    command = "study"
    assert run_command(_raises(KeyboardInterrupt()), interrupted=lambda: f"{command}: run again to resume") == 130
    assert capsys.readouterr().err == "study: run again to resume\n"


def test_run_command_passes_the_body_exit_code_and_lets_bugs_through():
    assert run_command(lambda: 1) == 1
    assert run_command(lambda: None) == 0
    with pytest.raises(ZeroDivisionError):
        run_command(_raises(ZeroDivisionError("a bug keeps its traceback")))
