"""CLIP-dissect's own published neuron descriptions, fetched on demand and read as neuron tables.

The authors ship two result tables in their repository (columns layer, unit, description,
similarity): ResNet50 on torchvision's IMAGENET1K_V1 weights and ResNet18-Places365, both probed on
ImageNet val + Broden. The files are pinned to one commit and checked by sha256, cached outside the
repository and never committed. Each table names the one model whose weights it describes; joining
it to any other model is refused.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from dissection_data.tables import NeuronRow, NeuronTable
from explainers.download import download_or_refuse, sha256_of
from explainers.errors import XaiLensError, first_line
from explainers.limits import MAX_PUBLISHED_TABLE_BYTES

REPOSITORY = "Trustworthy-ML-Lab/CLIP-dissect"
COMMIT = "21e7697feaea3bf7d7bc2d2cc8e4047d5f5fd502"  # "added our results", 2023-11-06
RAW_BASE = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/data/CLIP_Dissect_results"
COLUMNS = ("layer", "unit", "description", "similarity")
SOURCE = "published by CLIP-dissect's authors"
CACHE_ENV = "XAI_LENS_PUBLISHED_CACHE"


@dataclass(frozen=True)
class PublishedTable:
    """One pinned published file and the model (in XAI Lens's registry) whose weights it labels."""

    model: str
    file: str
    sha256: str
    url: str
    dataset: str
    probe: str = "ImageNet val + Broden"
    max_bytes: ClassVar[int] = MAX_PUBLISHED_TABLE_BYTES  # a download's size cap (explainers.download.Pinned)

    @property
    def key(self) -> str:
        return f"published/{self.model}"

    @property
    def description(self) -> str:
        return f"CLIP-dissect's {self.model} table"


PUBLISHED_TABLES: dict[str, PublishedTable] = {
    table.model: table
    for table in (
        # Computed on torchvision's IMAGENET1K_V1 ResNet50 (resize 256, crop 224), hence resnet50-v1.
        PublishedTable(
            model="resnet50-v1",
            file="resnet50_imagenet_broden.csv",
            sha256="a0c70fd97000a8ca278a14f4adb0f5afdb6fef1b3dd19bd064cbd39699f0635f",
            url=f"{RAW_BASE}/resnet50_imagenet_broden.csv",
            dataset="ImageNet",
        ),
        PublishedTable(
            model="resnet18-places365",
            file="resnet18_places_imagenet_broden.csv",
            sha256="9fb69f315fc98a5249ba236fc6d32f08f4950f75b9198266cd820047b26c5263",
            url=f"{RAW_BASE}/resnet18_places_imagenet_broden.csv",
            dataset="Places365",
        ),
    )
}
# Models people may reach for whose published labels belong to another registered model.
_NEAREST = {"resnet50": "resnet50-v1"}


def cache_dir() -> Path:
    """$XAI_LENS_PUBLISHED_CACHE, else $XDG_CACHE_HOME (or ~/.cache) /xai-lens/clip-dissect."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xai-lens" / "clip-dissect"


def published_for(model: str) -> PublishedTable:
    """The pinned table for `model`, or one line naming the model that has one."""
    if model in PUBLISHED_TABLES:
        return PUBLISHED_TABLES[model]
    if model in _NEAREST:
        right = _NEAREST[model]
        raise XaiLensError(
            f"CLIP-dissect's published labels were computed for {right} (other weights than {model}); "
            f"use --model {right} to see them."
        )
    raise XaiLensError(
        f"CLIP-dissect publishes no table for {model} (only {', '.join(PUBLISHED_TABLES)}); use {model}'s own "
        "table (python -m dissection_data build)."
    )


def published_csv(spec: PublishedTable, directory: Path | None = None, *, download: bool = True) -> Path:
    """The verified local CSV: from the cache, else downloaded, checked, then renamed into place.

    A download lands under a staging name and becomes `<file>` only once its sha256 matches, so a
    damaged or substituted file never sits where the next run would trust it.
    """
    folder = Path(directory) if directory is not None else cache_dir()
    target = folder / spec.file
    if target.is_file():
        if sha256_of(target) == spec.sha256:
            return target
        target.unlink()  # damaged or replaced: fetch again
    if not download:
        raise XaiLensError(f"{spec.description} is not downloaded yet; allow downloading to fetch it.")
    advice = f"try again later, or on a machine without network put {spec.file} from {spec.url} into {folder}."
    return download_or_refuse(spec, target, advice=advice)


def read_published_csv(path: Path, spec: PublishedTable) -> NeuronTable:
    """Parse a CSV in CLIP-dissect's layout into the neuron-table rows the app already shows."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"columns {reader.fieldnames} are not {list(COLUMNS)}")
            for record in reader:
                similarity = float(record["similarity"])
                rows.append(
                    NeuronRow(
                        model=spec.model,
                        layer=record["layer"],
                        unit=int(record["unit"]),
                        concept=record["description"],
                        similarity=similarity,
                        top_concepts=((record["description"], similarity),),
                        top_images=(),
                    )
                )
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise XaiLensError(f"'{path}' is not a CLIP-dissect results table ({first_line(exc, limit=120)}).") from None
    if not rows:
        raise XaiLensError(f"'{path}' has the CLIP-dissect columns but no rows.")
    meta = {
        "model": spec.model,
        "source": SOURCE,
        "url": spec.url,
        "commit": COMMIT,
        "sha256": sha256_of(Path(path)),
        "pinned_sha256": spec.sha256,
        "file": spec.file,
        "dataset": spec.dataset,
        "probe": spec.probe,
        "weights": "published",
        "published": True,
    }
    return NeuronTable(key=spec.key, root=Path(path).parent, meta=meta, rows=rows)


def load_published_table(model: str, directory: Path | None = None, *, download: bool = True) -> NeuronTable:
    """CLIP-dissect's table for `model` (downloaded on first use); one line where there is none."""
    spec = published_for(model)
    return read_published_csv(published_csv(spec, directory, download=download), spec)


def spec_for_file(path: Path) -> PublishedTable:
    """Which model a CSV in the published layout labels, told by its pinned file name."""
    for spec in PUBLISHED_TABLES.values():
        if Path(path).name == spec.file:
            return spec
    names = ", ".join(spec.file for spec in PUBLISHED_TABLES.values())
    raise XaiLensError(
        f"Cannot tell which model '{Path(path).name}' labels; a published table keeps its published name ({names})."
    )
