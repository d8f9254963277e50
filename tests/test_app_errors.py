"""app.errors: a refusal of Gradio's own input checks is one log line, and a real fault keeps its traceback."""

from __future__ import annotations

import importlib
import logging
import traceback

import pytest
from gradio.exceptions import Error, InvalidPathError

from app.errors import GRADIO_MODULES_THAT_PRINT, log_gradio_refusals_in_one_line


@pytest.fixture
def quiet_gradio():
    modules = [importlib.import_module(name) for name in GRADIO_MODULES_THAT_PRINT]
    originals = [module.traceback for module in modules]
    log_gradio_refusals_in_one_line()
    log_gradio_refusals_in_one_line()  # idempotent: a second app built in the same process changes nothing
    yield modules
    for module, original in zip(modules, originals, strict=True):
        module.traceback = original


@pytest.mark.parametrize(
    ("refusal", "line"),
    [
        (Error("Value: 'x' is not in the list of choices: ['a']"), "refused: Value: 'x' is not in the list"),
        (InvalidPathError("Cannot move /etc/passwd: it was not uploaded by a user."), "refused: Cannot move"),
    ],
)
def test_gradios_own_refusals_are_one_log_line(quiet_gradio, caplog, capsys, refusal, line):
    for module in quiet_gradio:
        with caplog.at_level(logging.INFO, logger="xai_lens.app"):
            try:
                raise refusal
            except (Error, InvalidPathError):
                module.traceback.print_exc()
    assert capsys.readouterr().err == ""
    assert [record.getMessage()[: len(line)] for record in caplog.records] == [line] * len(quiet_gradio)


def test_a_real_fault_keeps_its_traceback(quiet_gradio, capsys):
    try:
        {}["missing"]
    except KeyError:
        quiet_gradio[0].traceback.print_exc()
    printed = capsys.readouterr().err
    assert printed.startswith("Traceback (most recent call last):") and "KeyError: 'missing'" in printed
    assert quiet_gradio[0].traceback.format_exc is traceback.format_exc  # the rest is the real traceback module
