"""The tables a public Space serves: built into a staging folder, checked, and only then promoted.

`build_and_promote` runs the ordinary build (dissection_data.build.build_tables, nothing duplicated)
into `<cache>/staged-tables/`, reads each table's fc self-check, and copies a table into the folder
the app reads only when `refusal` finds nothing wrong with it. A table that fails never lands where
the app (or a deploy) would pick it up, so a broken build cannot reach visitors by accident.

Resuming: every expensive pass (CLIP image features, CLIP text features, each model's activations)
is cached by its inputs, so a build killed halfway and started again redoes only what had not finished.

The self-check floor. CLIP-dissect reports 95.5% top-1 for ResNet-50's fc on ImageNet val (50,000
probe images), and 46.2% when the probe set (CIFAR-100) does not contain the model's classes. Our probe
set is 1,000 ImageNet images, one per class, the model a ResNet18, and the Places365 model is probed
with ImageNet images, which hold few of its scene classes: a working build is expected well below 95%.
A broken one (random or mismatched weights, a random CLIP, class names in the wrong order) sits at
chance: 0.1% for 1000 classes, 0.3% for 365. The default floor, 20% top-1, is about 70 to 200 times
chance and under half of the paper's mismatched-probe figure: it catches a broken build, not a
mediocre one. `--min-self-check` changes it; a deployer lowering it should say why.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dissection_data.build import BuildOptions, build_tables
from dissection_data.paths import TABLES_DIR, cache_dir
from dissection_data.provenance import BUILT, provenance_line, table_kind
from dissection_data.tables import CSV_NAME, META_NAME, THUMBS_DIR, NeuronTable, read_table

DEFAULT_MIN_TOP1 = 0.20
STAGING_NAME = "staged-tables"


def refusal(table: NeuronTable, min_top1: float = DEFAULT_MIN_TOP1) -> str | None:
    """Why `table` must not be published as a real table, in one line; None when it may be."""
    kind = table_kind(table)
    if kind != BUILT:
        return f"{table.key} is a {kind} table, not one built here"
    if table.meta.get("random_weights"):
        return f"{table.key} was built from random model weights"
    if (table.meta.get("clip") or {}).get("random"):
        return f"{table.key} was built with a randomly initialised CLIP"
    top1 = (table.meta.get("self_check") or {}).get("top1")
    if not isinstance(top1, (int, float)):
        return f"{table.key} has no fc self-check in its meta.json"
    if top1 < min_top1:
        return (
            f"{table.key}: fc self-check top-1 {top1:.1%} is below the floor of {min_top1:.1%} "
            "(a broken build sits near chance); check the weights, CLIP and class names, or lower "
            "--min-self-check deliberately"
        )
    return None


def table_files(directory: Path) -> list[Path]:
    """The files that make up one table folder, relative to it: neurons.csv, meta.json, thumbs/*.jpg."""
    directory = Path(directory)
    thumbs = sorted(p.relative_to(directory) for p in (directory / THUMBS_DIR).glob("*.jpg"))
    return [Path(CSV_NAME), Path(META_NAME), *thumbs]


@dataclass(frozen=True)
class SpaceBuild:
    """What `--build-tables` will do: the build options, where tables are staged and where they go."""

    options: BuildOptions
    destination: Path
    min_top1: float = DEFAULT_MIN_TOP1

    @property
    def staging(self) -> Path:
        return Path(self.options.out)


def plan_space_build(
    destination: Path = TABLES_DIR,
    cache: Path | None = None,
    min_top1: float = DEFAULT_MIN_TOP1,
    **options: Any,
) -> SpaceBuild:
    """The default build (both ResNet18s; layer3, layer4, fc; imagenet1000; 20k; ViT-B/16 CLIP; GPU if
    present), staged under the cache; keyword arguments override BuildOptions fields."""
    cache = Path(cache) if cache is not None else cache_dir()
    build_options = BuildOptions(out=cache / STAGING_NAME, cache=cache, **options)
    return SpaceBuild(build_options, Path(destination), min_top1)


def describe_build(plan: SpaceBuild) -> list[str]:
    """The dry run's lines: what would be built, how, and where each table would land."""
    o = plan.options
    how = (
        f"CLIP {o.clip}, probe set {o.probe_dir or o.probe}, concepts {o.concepts_file or o.concepts}, "
        f"layers {', '.join(o.layers)}, weights {o.weights}, {o.similarity}, device {o.device}"
    )
    return [
        f"Would build {len(o.models)} tables with the cache in {o.cache} (cached passes are reused): {how}",
        f"Published only when the fc self-check top-1 is at least {plan.min_top1:.0%} (--min-self-check).",
        *(f"  {model}: would build into {plan.destination / model} (built by XAI Lens)" for model in o.models),
    ]


@dataclass(frozen=True)
class Outcome:
    model: str
    staged: Path
    line: str  # provenance, with the self-check
    refused: str | None
    promoted: Path | None


def promote(staged: Path, destination: Path) -> Path:
    """Replace `destination` with a copy of `staged`, through a sibling temporary folder so the app
    never reads a half-copied table."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    incoming = destination.with_name(destination.name + ".incoming")
    shutil.rmtree(incoming, ignore_errors=True)
    shutil.copytree(staged, incoming)
    shutil.rmtree(destination, ignore_errors=True)
    incoming.rename(destination)
    return destination


def build_and_promote(
    plan: SpaceBuild, *, log: Callable[[str], None] = print, models: Sequence[Any] | None = None, **inputs: Any
) -> list[Outcome]:
    """Build every table into staging, print each self-check, promote those `refusal` accepts.

    `models` and `inputs` (probe_set, concept_set, encoder) go to build_tables unchanged, so tests run
    this very path on stand-ins.
    """
    options = replace(plan.options, out=plan.staging)
    names = [getattr(m, "name", str(m)) for m in models] if models is not None else list(options.models)
    log(f"Building tables for {', '.join(names)} into {plan.staging} (cached passes are reused, so a rerun resumes)")
    results = build_tables(options, models=models, log=log, **inputs)
    outcomes = []
    for result in results:
        table = read_table(result.directory, result.model)
        refused = refusal(table, plan.min_top1)
        promoted = None if refused else promote(result.directory, plan.destination / result.model)
        verdict = f"REFUSED: {refused}" if refused else f"accepted -> {promoted}"
        log(f"{result.model}: {provenance_line(table)} {verdict}")
        outcomes.append(Outcome(result.model, result.directory, provenance_line(table), refused, promoted))
    return outcomes
