"""The Space: manifest vs README front matter, the offline dry run, and the app_file entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tools import deploy

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    """README.md's front matter (the Space reads its settings from there)."""
    found = deploy.readme_front_matter(ROOT / "README.md")
    assert found is not None, "README.md lost its front matter"
    return found


def test_front_matter_agrees_with_space_yaml():
    manifest = deploy.load_manifest()
    assert deploy.front_matter_problems(manifest, front_matter()) == []


def test_disagreement_is_reported():
    manifest = deploy.load_manifest()
    wrong = {**front_matter(), "sdk_version": "5.0.0"}
    assert any("sdk_version" in problem for problem in deploy.front_matter_problems(manifest, wrong))


def test_sdk_version_is_the_requirements_pin_and_app_file_exists():
    pin = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    front = front_matter()
    assert str(front["sdk_version"]) == pin
    assert (ROOT / front["app_file"]).is_file() and front["app_file"] != "app.py"


def test_app_file_runs_from_repo_root_without_shadowing_the_package():
    code = "import runpy; m = runpy.run_path('space_app.py', run_name='not_main'); print(m['main'])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert "function main" in done.stdout


def test_dry_run_prints_plan_and_uploads_nothing(capsys):
    assert deploy.main(["--dry-run", "--space", "someone/xai-lens-test"]) == 0
    out = capsys.readouterr().out
    assert "Space: someone/xai-lens-test" in out and "zero-a10g" in out and "Dry run" in out
    assert "  space_app.py" in out and "  app/tab_explain.py" in out
    assert "tests/" not in out and "tools/" not in out  # tooling and tests stay out of the Space


def test_file_selection_follows_patterns():
    chosen = deploy.select_files(
        ["app/a.py", "app/__pycache__/a.pyc", "tests/t.py", "x.JPEG", "README.md"],
        ["README.md", "app/**", "*.JPEG"],
        ["**/__pycache__/**", "*.JPEG"],
    )
    assert chosen == ["README.md", "app/a.py"]


def test_spaces_import_is_harmless_here():
    from app.gpu import gpu

    assert gpu(10)(lambda x: x + 1)(1) == 2


# ZeroGPU's documented support (hub-docs, docs/hub/spaces-zerogpu.md): Python 3.12.12 and 3.10.13; PyTorch
# "almost all versions from 2.8.0 to latest", listing these. A dedicated GPU Space has no such list.
ZEROGPU_PYTHONS = ("3.10", "3.12")
ZEROGPU_TORCH = ("2.8.0", "2.9.1", "2.10.0", "2.11.0")
# torchvision built against each of those torch releases
TORCHVISION_FOR = {"2.8.0": "0.23.0", "2.9.1": "0.24.1", "2.10.0": "0.25.0", "2.11.0": "0.26.0"}


def requirement_pin(name: str) -> str:
    return re.search(rf"^{name}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)


def test_hardware_is_chosen_once_and_suggested_alike():
    """space.yaml's `hardware` is what deploy requests; the front matter suggests the same to forks."""
    manifest = deploy.load_manifest()
    assert manifest["front_matter"]["suggested_hardware"] == manifest["hardware"]


def test_zerogpu_space_uses_a_documented_python_and_torch():
    manifest = deploy.load_manifest()
    if not str(manifest["hardware"]).startswith("zero-"):
        return  # a dedicated GPU Space runs any Python and torch the Space image offers
    assert str(front_matter()["python_version"]) in ZEROGPU_PYTHONS
    torch_pin = requirement_pin("torch")
    assert torch_pin in ZEROGPU_TORCH
    assert requirement_pin("torchvision") == TORCHVISION_FOR[torch_pin]


def test_on_a_space_every_model_is_fetched_at_start_and_a_missing_one_is_one_line(monkeypatch, caplog, tmp_path):
    """A dedicated-GPU or CPU Space (SPACE_ID set, not ZeroGPU) loads every served model at start, so no
    visitor waits on a weights host; where a host is down the app still starts and names the model.
    (tests/test_zerogpu.py covers the same on ZeroGPU and off a Space.)"""
    import app.__main__ as main_module
    import app.gpu
    from explainers.engine.models import MODEL_SPECS

    monkeypatch.setenv("SPACE_ID", "someone/xai-lens-test")
    monkeypatch.setattr(app.gpu, "zero_gpu", lambda: False)
    missing = str(tmp_path / "unreachable.pth")
    with caplog.at_level("WARNING", logger="xai_lens.app"):
        assert main_module.prepare_models(missing) == []  # returns: the app goes on to launch
    messages = [record.getMessage() for record in caplog.records]
    assert [message.split()[3] for message in messages] == list(MODEL_SPECS)
    assert all("unavailable at start" in m and "unreachable.pth" in m and "\n" not in m for m in messages)
    assert all(record.exc_info is None for record in caplog.records)
