"""The small public API in explainers/__init__.py: every name it promises exists, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import explainers


def test_every_public_name_resolves_to_its_home():
    assert sorted(explainers.__all__) == sorted(explainers._PUBLIC)
    for name in explainers.__all__:
        value = getattr(explainers, name)
        assert value == getattr(__import__(explainers._PUBLIC[name], fromlist=[name]), name)


def test_errors_and_limits_do_not_load_torch():
    code = "import sys, explainers, explainers.errors, explainers.limits; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-300:]
