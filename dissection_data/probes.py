"""Probe sets: the images every neuron and CLIP look at.

Either any folder of images (`--probe-dir`), or the default `imagenet1000`: one ImageNet sample per
class from the public repository EliSchwartz/imagenet-sample-images, downloaded once into the cache.
Its file names (`n01443537_goldfish.JPEG`) start with the WordNet id, and sorting by that id gives the
ImageNet class order; the listing comes from GitHub's git-trees API once and is cached with the images.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from explainers.download import download_file, fetch_bytes
from explainers.errors import XaiLensError, first_line
from explainers.inputs.images import load_image
from explainers.limits import MAX_LISTING_BYTES, MAX_PROBE_IMAGE_BYTES

IMAGENET1000 = "imagenet1000"
SAMPLE_REPO = "EliSchwartz/imagenet-sample-images"
SAMPLE_LISTING_URL = f"https://api.github.com/repos/{SAMPLE_REPO}/git/trees/master"
SAMPLE_RAW_URL = f"https://raw.githubusercontent.com/{SAMPLE_REPO}/master/{{name}}"
SAMPLE_FILE = re.compile(r"^(n\d{8})_.+\.JPEG$")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class ProbeSetUnavailableError(XaiLensError):
    """The default probe images are neither cached nor downloadable."""


@dataclass(frozen=True)
class ProbeSet:
    """Ordered probe images; `ids` are unique, file-name-safe names used in tables and thumbnails."""

    name: str
    paths: tuple[Path, ...]
    ids: tuple[str, ...]
    fingerprint: str
    source: str

    def __len__(self) -> int:
        return len(self.paths)

    def images(self) -> Iterator[Image.Image]:
        """Decode one image at a time (safe decoding, RGB, EXIF-upright)."""
        for path in self.paths:
            try:
                yield load_image(path)
            except XaiLensError as exc:
                raise XaiLensError(f"Probe image '{path}' could not be used: {exc}") from None

    def select(self, wanted: set[str]) -> Iterator[tuple[str, Image.Image]]:
        """(id, image) for the wanted ids only, in id order (e.g. a table's top images, for thumbnails)."""
        paths = dict(zip(self.ids, self.paths, strict=True))
        subset = ProbeSet(self.name, tuple(paths[i] for i in sorted(wanted)), tuple(sorted(wanted)), "", "")
        yield from zip(subset.ids, subset.images(), strict=True)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "images": len(self), "fingerprint": self.fingerprint, "source": self.source}


def _safe_id(relative: Path) -> str:
    stem = "__".join((*relative.parent.parts, relative.stem))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"


def _fingerprint(paths: Sequence[Path], root: Path) -> str:
    """Hash of names and bytes: a probe set whose files change gets new cache entries."""
    hasher = hashlib.sha256()
    for path in paths:
        hasher.update(path.relative_to(root).as_posix().encode() + b"\0")
        hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return hasher.hexdigest()[:20]


def folder_probe_set(directory: Path, name: str | None = None, source: str | None = None) -> ProbeSet:
    """Every image file under `directory` (recursively), in sorted path order."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise XaiLensError(f"Probe folder '{directory}' does not exist; give a folder of images with --probe-dir.")
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise XaiLensError(f"Probe folder '{directory}' holds no images ({suffixes}); add some or pick another.")
    ids: list[str] = []
    seen: set[str] = set()
    for path in paths:
        candidate = base = _safe_id(path.relative_to(directory))
        counter = 1
        while candidate in seen:
            counter += 1
            candidate = f"{base}-{counter}"
        seen.add(candidate)
        ids.append(candidate)
    return ProbeSet(
        name=name or directory.name,
        paths=tuple(paths),
        ids=tuple(ids),
        fingerprint=_fingerprint(paths, directory),
        source=source or str(directory),
    )


def _offline_error(what: str, reason: object, target: Path) -> ProbeSetUnavailableError:
    return ProbeSetUnavailableError(
        f"Could not download {what} ({reason}); the {IMAGENET1000} probe set needs the network once "
        f"(it is cached in {target}). Connect and retry, or pass --probe-dir DIR with your own images."
    )


def imagenet_sample_names(target: Path) -> list[str]:
    """The 1000 sample file names in ImageNet class order (listing cached in `target/listing.json`)."""
    listing = target / "listing.json"
    if listing.is_file():
        return json.loads(listing.read_text())
    try:
        tree = json.loads(fetch_bytes(SAMPLE_LISTING_URL, max_bytes=MAX_LISTING_BYTES))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _offline_error(f"the file list of {SAMPLE_REPO}", getattr(exc, "reason", exc), target) from None
    names = select_sample_names(entry.get("path", "") for entry in tree.get("tree", []))
    target.mkdir(parents=True, exist_ok=True)
    listing.write_text(json.dumps(names, indent=0))
    return names


def select_sample_names(paths: Iterator[str] | Sequence[str]) -> list[str]:
    """Keep `nXXXXXXXX_name.JPEG` files, one per WordNet id, sorted by id (= ImageNet class order)."""
    by_wnid: dict[str, str] = {}
    for path in paths:
        match = SAMPLE_FILE.match(path)
        if match:
            by_wnid.setdefault(match.group(1), path)
    names = [by_wnid[wnid] for wnid in sorted(by_wnid)]
    if len(names) != 1000:
        raise ProbeSetUnavailableError(
            f"{SAMPLE_REPO} lists {len(names)} sample images, not 1000; the repository changed. "
            "Pass --probe-dir DIR with your own images."
        )
    return names


def imagenet1000_probe_set(cache: Path) -> ProbeSet:
    """Download (once) and return the 1000 ImageNet sample images, in class order."""
    target = Path(cache) / "probes" / IMAGENET1000
    names = imagenet_sample_names(target)
    missing = [name for name in names if not (target / name).is_file()]
    for name in tqdm(missing, desc="Downloading ImageNet sample images", unit="img", disable=not missing):
        url = SAMPLE_RAW_URL.format(name=urllib.parse.quote(name))
        try:
            download_file(url, target / name, max_bytes=MAX_PROBE_IMAGE_BYTES, progress=False)
        except (OSError, ValueError) as exc:
            raise _offline_error(name, first_line(exc, limit=100), target) from None
    paths = tuple(target / name for name in names)
    return ProbeSet(
        name=IMAGENET1000,
        paths=paths,
        ids=tuple(Path(name).stem for name in names),
        fingerprint=_fingerprint(paths, target),
        source=f"https://github.com/{SAMPLE_REPO} (one image per ImageNet class)",
    )


def resolve_probe_set(probe: str, probe_dir: Path | None, cache: Path) -> ProbeSet:
    """`--probe-dir` wins; otherwise the named default set."""
    if probe_dir is not None:
        return folder_probe_set(probe_dir)
    if probe == IMAGENET1000:
        return imagenet1000_probe_set(cache)
    if probe.startswith("hf:"):
        raise XaiLensError(
            f"'{probe}' is a streamed Hugging Face split, which only the Ray engine reads: add --engine ray."
        )
    raise XaiLensError(f"Unknown probe set '{probe}'; use --probe {IMAGENET1000} or --probe-dir DIR.")
