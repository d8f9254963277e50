"""Publish the Space from space.yaml: `python -m tools.deploy [--space OWNER/NAME] [--dry-run]`.

One manifest holds the Space's id, hardware, sleep time, variables and the file set, so a deploy
is repeatable and reviewable; --dry-run prints exactly what would be uploaded and set.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "space.yaml"
REQUIRED_FRONT_MATTER = ("sdk", "sdk_version", "app_file", "python_version", "short_description")


@dataclass(frozen=True)
class DeployPlan:
    space_id: str
    hardware: str
    sleep_time: int
    private: bool
    variables: dict[str, str]
    files: list[str]


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def readme_front_matter(readme: Path) -> dict[str, Any] | None:
    """The YAML block between the leading '---' lines of README.md, or None when there is none."""
    if not readme.is_file():
        return None
    return readme_front_matter_text(readme.read_text(encoding="utf-8"))


def readme_front_matter_text(text: str) -> dict[str, Any] | None:
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---", 4)
    return yaml.safe_load(text[4:end]) if end != -1 else None


def front_matter_problems(manifest: dict[str, Any], front: dict[str, Any] | None) -> list[str]:
    """Where README front matter and space.yaml disagree (empty: they agree)."""
    if front is None:
        return ["README.md has no front matter; put space.yaml's front_matter fields at its top, between --- lines"]
    wanted = manifest["front_matter"]
    problems = [f"front matter lacks {key}" for key in REQUIRED_FRONT_MATTER if key not in front]
    problems += [
        f"{key}: README says {front.get(key)!r}, space.yaml says {value!r}"
        for key, value in wanted.items()
        if str(front.get(key)) != str(value)
    ]
    return problems


def tracked_files(root: Path = REPO_ROOT) -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    return [line for line in listed.splitlines() if line]


def select_files(candidates: Sequence[str], upload: Sequence[str], ignore: Sequence[str]) -> list[str]:
    def matches(path: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)

    return sorted(path for path in candidates if matches(path, upload) and not matches(path, ignore))


def plan(manifest: dict[str, Any], space_id: str | None = None, candidates: Sequence[str] | None = None) -> DeployPlan:
    files = select_files(
        candidates if candidates is not None else tracked_files(), manifest["upload"], manifest.get("ignore", [])
    )
    return DeployPlan(
        space_id=space_id or manifest["space_id"],
        hardware=manifest["hardware"],
        sleep_time=int(manifest["sleep_time"]),
        private=bool(manifest.get("private", False)),
        variables={str(k): str(v) for k, v in (manifest.get("variables") or {}).items()},
        files=files,
    )


def describe(deploy: DeployPlan) -> str:
    lines = [
        f"Space: {deploy.space_id} (sdk gradio, {'private' if deploy.private else 'public'})",
        f"Hardware: {deploy.hardware}; sleep after {deploy.sleep_time} s idle",
        *(f"Variable {key}={value}" for key, value in deploy.variables.items()),
        f"Upload {len(deploy.files)} files:",
        *(f"  {path}" for path in deploy.files),
    ]
    return "\n".join(lines)


def publish(deploy: DeployPlan, root: Path = REPO_ROOT) -> str:
    """Create or update the Space, upload the files, set variables, hardware and sleep time."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(deploy.space_id, repo_type="space", space_sdk="gradio", private=deploy.private, exist_ok=True)
    api.upload_folder(
        repo_id=deploy.space_id,
        repo_type="space",
        folder_path=root,
        allow_patterns=deploy.files,
        commit_message="Deploy XAI Lens",
    )
    for key, value in deploy.variables.items():
        api.add_space_variable(deploy.space_id, key, value)
    api.request_space_hardware(deploy.space_id, deploy.hardware, sleep_time=deploy.sleep_time)
    return f"https://huggingface.co/spaces/{deploy.space_id}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--space", help="OWNER/NAME (default: space_id in space.yaml)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--dry-run", action="store_true", help="print what would be uploaded and set; change nothing")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    deploy = plan(manifest, args.space)
    problems = front_matter_problems(manifest, readme_front_matter(REPO_ROOT / "README.md"))
    print(describe(deploy))
    for problem in problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    if args.dry_run:
        print("Dry run: nothing uploaded.")
        return 0
    if problems:
        print("Refusing to deploy until README front matter and space.yaml agree.", file=sys.stderr)
        return 1
    print(f"Published: {publish(deploy)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
