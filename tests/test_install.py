"""`pip install .` gives a working package: `python -m explainers` runs from anywhere, from the installed copy."""

from __future__ import annotations

import shutil
import site
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a source checkout holds that the build does not need (and the build must not write into the checkout).
_NOT_SOURCES = shutil.ignore_patterns(".venv", ".git", "__pycache__", "build", "*.egg-info", "out", "runs", "cache")


def _fresh_venv(root: Path) -> Path:
    """A new venv without pip that reaches this venv's packages (torch, pip, setuptools) through a .pth file."""
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (Path(purelib) / "reach_test_venv.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    return python


@pytest.mark.slow
def test_pip_install_gives_python_m_explainers_from_the_installed_copy(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCES)
    python = _fresh_venv(tmp_path / "venv")
    install = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(source)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    helped = subprocess.run(
        [python, "-m", "explainers", "--help"], capture_output=True, text=True, timeout=120, cwd=elsewhere
    )
    assert helped.returncode == 0, helped.stderr
    assert "usage: python -m explainers" in helped.stdout and "explain" in helped.stdout

    code = (
        "import importlib.resources as r, explainers, dissection_data, app, explainers.methods as m;"
        "print(explainers.__file__);"
        "print(r.files('explainers').joinpath('inputs/presets.json').is_file());"
        "print(r.files('explainers').joinpath('data/places365_categories.txt').is_file());"
        "print(r.files('dissection_data').joinpath('tables/demo/resnet18').is_dir());"
        "print(','.join(m.METHODS))"
    )
    shown = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    location, manifest, categories, tables, methods = shown.stdout.split()
    assert Path(location).is_relative_to(tmp_path / "venv"), location  # the install, not the checkout
    assert (manifest, categories, tables) == ("True", "True", "True")  # the package data came along
    assert methods.split(",")[:4] == ["gradcam", "scorecam", "ablationcam", "lime"]  # every method module installed
