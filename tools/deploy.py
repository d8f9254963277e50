"""Publish the Space from space.yaml: `python -m tools.deploy [--space OWNER/NAME] [--build-tables] [--dry-run]`.

One manifest holds the Space's id, hardware, sleep time, variables and the file set, so a deploy
is repeatable and reviewable; --dry-run prints exactly what would be built, uploaded and set.
`--build-tables` first builds the real neuron tables (dissection_data.space_tables), and the tables
travel in the Space's own repository, in the folder the app reads: the Space then needs no second
repository, downloads nothing at start for them, and always serves tables that came with its code.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dissection_data.paths import TABLES_DIR
from dissection_data.provenance import BUILT, provenance_line, select_served, table_kind
from dissection_data.space_tables import (
    DEFAULT_MIN_TOP1,
    build_and_promote,
    describe_build,
    plan_space_build,
    refusal,
    table_files,
)
from dissection_data.tables import CSV_NAME, META_NAME, THUMBS_DIR, load_tables
from explainers.errors import XaiLensError, first_line, run_command

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "space.yaml"
REQUIRED_FRONT_MATTER = ("sdk", "sdk_version", "app_file", "python_version", "short_description")
TABLES_IN_REPO = TABLES_DIR.relative_to(REPO_ROOT).as_posix()  # where the app reads tables, in the Space too


@dataclass(frozen=True)
class TableUpload:
    """One table folder to publish: its files (repo path -> local path), provenance and any refusal."""

    key: str
    sources: dict[str, Path]
    line: str
    refused: str | None = None
    shown: bool = True  # False: a demo the app hides because a real table is there


@dataclass(frozen=True)
class DeployPlan:
    space_id: str
    hardware: str
    sleep_time: int
    private: bool
    variables: dict[str, str]
    files: list[str]  # code and data from git, relative to the repository root
    tables: list[TableUpload] = field(default_factory=list)

    @property
    def upload_paths(self) -> list[str]:
        """Every path the Space repository receives."""
        return sorted([*self.files, *(path for table in self.tables for path in table.sources)])


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


def table_uploads(tables_root: Path = TABLES_DIR, min_top1: float = DEFAULT_MIN_TOP1) -> list[TableUpload]:
    """Every table under `tables_root`, as it would be published (built tables checked by `refusal`;
    the demo travels as the fallback the app shows only when no real table is there)."""
    tables = load_tables(tables_root)
    shown = {table.key for table in select_served(tables)}
    uploads = []
    for table in tables:
        repo_dir = f"{TABLES_IN_REPO}/{table.key}"
        sources = {f"{repo_dir}/{name.as_posix()}": table.root / name for name in table_files(table.root)}
        refused = refusal(table, min_top1) if table_kind(table) == BUILT else None
        uploads.append(TableUpload(table.key, sources, provenance_line(table), refused, table.key in shown))
    return uploads


def plan(
    manifest: dict[str, Any],
    space_id: str | None = None,
    candidates: Sequence[str] | None = None,
    tables_root: Path = TABLES_DIR,
    min_top1: float = DEFAULT_MIN_TOP1,
) -> DeployPlan:
    tables = table_uploads(tables_root, min_top1)
    table_dirs = tuple(f"{TABLES_IN_REPO}/{table.key}/" for table in tables)
    files = select_files(
        candidates if candidates is not None else tracked_files(), manifest["upload"], manifest.get("ignore", [])
    )
    return DeployPlan(
        space_id=space_id or manifest["space_id"],
        hardware=manifest["hardware"],
        sleep_time=int(manifest["sleep_time"]),
        private=bool(manifest.get("private", False)),
        variables={str(k): str(v) for k, v in (manifest.get("variables") or {}).items()},
        files=[path for path in files if not path.startswith(table_dirs)],  # tables travel as their own entries
        tables=tables,
    )


def describe_table(table: TableUpload) -> str:
    state = f"REFUSED ({table.refused})" if table.refused else "upload" if table.shown else "upload, hidden by the app"
    return f"Table {table.key}: {state}, {len(table.sources)} files. {table.line}"


def describe(deploy: DeployPlan) -> str:
    lines = [
        f"Space: {deploy.space_id} (sdk gradio, {'private' if deploy.private else 'public'})",
        f"Hardware: {deploy.hardware}; sleep after {deploy.sleep_time} s idle",
        *(f"Variable {key}={value}" for key, value in deploy.variables.items()),
        *(describe_table(table) for table in deploy.tables),
        f"Upload {len(deploy.upload_paths)} files:",
        *(f"  {path}" for path in deploy.upload_paths),
    ]
    return "\n".join(lines)


def would_build_paths(models: Sequence[str]) -> list[str]:
    """The files a --build-tables run adds to the upload (thumbnail names depend on the build)."""
    return [
        f"  {TABLES_IN_REPO}/{model}/{name}"
        for model in models
        for name in (CSV_NAME, META_NAME, f"{THUMBS_DIR}/*.jpg (each neuron's top probe images)")
    ]


def _operations(api: Any, deploy: DeployPlan, root: Path) -> list[Any]:
    """Add every file; delete what an earlier deploy left inside the folders of the tables sent now
    (old thumbnails), so a table on the Space is exactly the one built."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    adds = {path: root / path for path in deploy.files}
    adds.update({path: source for table in deploy.tables for path, source in table.sources.items()})
    table_dirs = tuple(f"{TABLES_IN_REPO}/{table.key}/" for table in deploy.tables)
    remote = api.list_repo_files(deploy.space_id, repo_type="space")
    stale = [path for path in remote if path.startswith(table_dirs) and path not in adds]
    return [
        *(CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(source)) for path, source in sorted(adds.items())),
        *(CommitOperationDelete(path_in_repo=path) for path in stale),
    ]


def publish(deploy: DeployPlan, root: Path = REPO_ROOT, api: Any = None) -> str:
    """Create or update the Space in one commit (code and tables), set variables, hardware and sleep time."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        api.create_repo(deploy.space_id, repo_type="space", space_sdk="gradio", private=deploy.private, exist_ok=True)
        api.create_commit(
            repo_id=deploy.space_id,
            repo_type="space",
            operations=_operations(api, deploy, root),
            commit_message="Deploy XAI Lens",
        )
        for key, value in deploy.variables.items():
            api.add_space_variable(deploy.space_id, key, value)
        api.request_space_hardware(deploy.space_id, deploy.hardware, sleep_time=deploy.sleep_time)
    except Exception as exc:  # network, auth and validation errors all become one line for the deployer
        raise XaiLensError(
            f"Publishing to the Space {deploy.space_id} failed ({first_line(exc, limit=200)}); check the network "
            "and log in with `hf auth login` (or set HF_TOKEN)."
        ) from None
    return f"https://huggingface.co/spaces/{deploy.space_id}"


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"'{value}' is not a fraction between 0 and 1 (e.g. 0.2 for 20%)")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--space", help="OWNER/NAME (default: space_id in space.yaml)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--dry-run", action="store_true", help="print what would be built, uploaded and set; do none")
    tables = parser.add_argument_group("neuron tables")
    tables.add_argument("--build-tables", action="store_true", help="build both ResNet18s' tables first (network)")
    tables.add_argument(
        "--min-self-check",
        type=_fraction,
        default=DEFAULT_MIN_TOP1,
        help=f"refuse a table whose fc self-check top-1 is below this fraction (default {DEFAULT_MIN_TOP1}: "
        "a broken build sits near chance; see dissection_data/space_tables.py)",
    )
    tables.add_argument("--tables", type=Path, default=TABLES_DIR, help="the folder the app reads tables from")
    tables.add_argument("--cache", type=Path, default=None, help="feature cache (default dissection_data/cache)")
    tables.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda or cuda:N")
    tables.add_argument("--clip", default=None, help="CLIP id or folder (default openai/clip-vit-base-patch16)")
    return parser


def _deploy(args: argparse.Namespace, manifest: Any, build_inputs: dict[str, Any] | None, api: Any) -> int:
    """Build the tables when asked, check them, and upload; the part of main() that may raise."""
    if args.build_tables:
        overrides = {"device": args.device, **({"clip": args.clip} if args.clip else {})}
        space_build = plan_space_build(args.tables, args.cache, args.min_self_check, **overrides)
        if args.dry_run:
            print("\n".join(describe_build(space_build)))
        else:
            outcomes = build_and_promote(space_build, **(build_inputs or {}))
            refused = [outcome for outcome in outcomes if outcome.refused]
            if refused:
                for outcome in refused:
                    print(f"Refusing to publish {outcome.refused}.", file=sys.stderr)
                print("Nothing uploaded; tables that passed are in place for the next deploy.", file=sys.stderr)
                return 1
    deploy = plan(manifest, args.space, tables_root=args.tables, min_top1=args.min_self_check)
    print(describe(deploy))
    if args.build_tables and args.dry_run:
        print("Upload after the build, besides the files above:")
        print("\n".join(would_build_paths(space_build.options.models)))
    if args.dry_run:
        print("Dry run: nothing built, nothing uploaded.")
        return 0
    refused_tables = [table for table in deploy.tables if table.refused]
    if refused_tables:
        for table in refused_tables:
            print(f"Refusing to publish {table.refused}.", file=sys.stderr)
        return 1
    print(f"Published: {publish(deploy, api=api)}")
    return 0


def main(argv: Sequence[str] | None = None, *, build_inputs: dict[str, Any] | None = None, api: Any = None) -> int:
    """`build_inputs` (models, probe_set, concept_set, encoder) and `api` let tests run this path offline."""
    args = _parser().parse_args(argv)
    manifest = load_manifest(args.manifest)
    problems = front_matter_problems(manifest, readme_front_matter(REPO_ROOT / "README.md"))
    for problem in problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    if problems and not args.dry_run:
        print("Refusing to deploy until README front matter and space.yaml agree.", file=sys.stderr)
        return 1
    return run_command(
        lambda: _deploy(args, manifest, build_inputs, api),
        interrupted="interrupted; run the same command again to resume from the cached passes",
    )


if __name__ == "__main__":
    sys.exit(main())
