"""Where a study's images come from: a folder, the 1000 ImageNet sample images, or a Hugging Face dataset.

Every source is listed (or, for a streamed dataset, opened) in the driver first, so a wrong name fails
in one line before Ray starts; the images themselves are read later, one record at a time, inside a
Ray read task (`records()`), so a set of 50,000 images is never held in memory. Folders and
`imagenet1000` reuse dissection_data.probes (the project's one listing and downloader of those images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explainers.errors import XaiLensError, first_line

HF_PREFIX = "hf:"
HF_DEFAULT_SPLIT = "validation"
HF_DEFAULT_COLUMN = "image"
HF_LABEL_COLUMN = "label"


@dataclass(frozen=True)
class StudyRecord:
    """One image to study: a unique id, its true class when the source knows it, and its bytes or path."""

    id: str
    true_class: str | None = None
    class_index: int | None = None
    path: str | None = None
    data: bytes | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StudyRecord:
        """A record from an Arrow row, whatever other columns the row carries (e.g. its position)."""
        return cls(row["id"], row.get("true_class"), row.get("class_index"), row.get("path"), row.get("data"))

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "true_class": self.true_class,
            "class_index": self.class_index,
            "path": self.path,
            "data": self.data,
        }


@dataclass(frozen=True)
class StudySource:
    """A named, picklable image source: `records()` yields StudyRecords in a stable order (ids never repeat)."""

    name: str
    description: str
    fingerprint: str | None
    listed: tuple[StudyRecord, ...] = ()  # folders and imagenet1000: the whole (small, path-only) listing
    stream: Callable[[], Iterator[StudyRecord]] | None = field(default=None, compare=False)
    size: int | None = None  # images in the source when known (None: a streamed dataset)

    def records(self) -> Iterator[StudyRecord]:
        if self.stream is not None:
            yield from self.stream()
        else:
            yield from self.listed


def folder_source(directory: Path) -> StudySource:
    """Every image under `directory`, with the probe-set ids (class = the sub-folder, when there is one)."""
    from dissection_data.probes import folder_probe_set

    probes = folder_probe_set(Path(directory))
    records = []
    for path, image_id in zip(probes.paths, probes.ids, strict=True):
        parent = path.parent.relative_to(Path(directory).expanduser())
        records.append(StudyRecord(image_id, true_class=parent.as_posix() if parent.parts else None, path=str(path)))
    return StudySource(probes.name, probes.source, probes.fingerprint, tuple(records), size=len(records))


def imagenet1000_source(cache: Path | None = None) -> StudySource:
    """The 1000 ImageNet sample images (one per class, in class order), downloaded once by dissection_data."""
    from dissection_data.paths import cache_dir
    from dissection_data.probes import imagenet1000_probe_set
    from explainers.engine.models import imagenet_categories

    probes = imagenet1000_probe_set(cache or cache_dir())
    categories = imagenet_categories()
    records = tuple(
        StudyRecord(image_id, true_class=categories[index], class_index=index, path=str(path))
        for index, (path, image_id) in enumerate(zip(probes.paths, probes.ids, strict=True))
    )
    return StudySource(probes.name, probes.source, probes.fingerprint, records, size=len(records))


@dataclass(frozen=True)
class HuggingFaceSpec:
    """`hf:NAME[:SPLIT[:COLUMN]]`, e.g. hf:ILSVRC/imagenet-1k:validation:image."""

    name: str
    split: str = HF_DEFAULT_SPLIT
    column: str = HF_DEFAULT_COLUMN

    @classmethod
    def parse(cls, text: str) -> HuggingFaceSpec:
        parts = text.removeprefix(HF_PREFIX).split(":")
        if not parts[0] or len(parts) > 3 or any(not part for part in parts):
            raise XaiLensError(
                f"'{text}' is not a Hugging Face source; write hf:NAME[:SPLIT[:COLUMN]], "
                f"e.g. hf:ILSVRC/imagenet-1k:{HF_DEFAULT_SPLIT}:{HF_DEFAULT_COLUMN}."
            )
        return cls(*parts)

    def open(self) -> Any:
        """The split as a streaming datasets.IterableDataset whose image column gives bytes, not decoded images."""
        import datasets

        try:
            stream = datasets.load_dataset(self.name, split=self.split, streaming=True)
        except Exception as exc:  # datasets raises many types (hub, network, missing split): one line for all
            raise XaiLensError(
                f"Could not open the Hugging Face dataset {self.name} (split {self.split}): {first_line(exc)}"
            ) from None
        features = stream.features or {}
        if features and self.column not in features:
            raise XaiLensError(
                f"The dataset {self.name} has no column '{self.column}'; its columns: {', '.join(features)}. "
                "Name the image column: hf:NAME:SPLIT:COLUMN."
            )
        return stream.cast_column(self.column, datasets.Image(decode=False))

    def records(self) -> Iterator[StudyRecord]:
        stream = self.open()
        label_feature = (stream.features or {}).get(HF_LABEL_COLUMN)
        names = getattr(label_feature, "names", None)
        for index, example in enumerate(stream):
            image = example.get(self.column) or {}
            label = example.get(HF_LABEL_COLUMN)
            true_class = names[label] if names is not None and isinstance(label, int) and label >= 0 else None
            yield StudyRecord(
                f"{self.split}-{index:08d}",
                true_class=true_class if true_class is not None else (None if label is None else str(label)),
                class_index=label if names is not None and isinstance(label, int) and label >= 0 else None,
                path=image.get("path"),
                data=image.get("bytes"),
            )


def huggingface_source(text: str) -> StudySource:
    """A streamed Hugging Face split: opened here once (so a wrong name fails now), read later in a Ray task."""
    spec = HuggingFaceSpec.parse(text)
    spec.open()
    return StudySource(
        f"{spec.name}:{spec.split}",
        f"https://huggingface.co/datasets/{spec.name} (split {spec.split}, column {spec.column}, streamed)",
        None,
        stream=spec.records,
    )


def resolve_source(source: str, cache: Path | None = None) -> StudySource:
    """SOURCE as the command line gives it: `imagenet1000`, `hf:NAME[:SPLIT[:COLUMN]]`, or a folder."""
    from dissection_data.probes import IMAGENET1000

    if source == IMAGENET1000:
        return imagenet1000_source(cache)
    if source.startswith(HF_PREFIX):
        return huggingface_source(source)
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise XaiLensError(
            f"'{source}' is neither a folder of images, '{IMAGENET1000}', nor hf:NAME[:SPLIT[:COLUMN]]; "
            "give one of those."
        )
    return folder_source(folder)
