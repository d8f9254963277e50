"""README's "Layout" section matches the tree: every folder it lists exists, and every folder that exists is listed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("```\n", 2)[1].splitlines()


def _listed() -> tuple[set[str], set[str], set[str]]:
    """(top-level folders, top-level files, explainers sub-packages) named at the start of a line."""
    folders, files, subpackages = set(), set(), set()
    for line in _layout_block():
        top = re.match(r"^([\w.]+)(/?)\s", line)
        nested = re.match(r"^  (\w+)/\s", line)
        if top:
            (folders if top.group(2) else files).add(top.group(1))
        elif nested:
            subpackages.add(nested.group(1))
    return folders, files, subpackages


def _tracked() -> list[str]:
    done = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return done.stdout.splitlines()


def test_top_level_folders_match_the_tree():
    folders, files, _ = _listed()
    present = {path.split("/", 1)[0] for path in _tracked() if "/" in path and not path.startswith(".")}
    assert folders == present
    assert all((ROOT / name).is_file() for name in files), files


def test_explainers_subfolders_match_the_tree():
    _, _, subpackages = _listed()
    present = {path.split("/")[1] for path in _tracked() if path.startswith("explainers/") and path.count("/") >= 2}
    assert subpackages == present
