"""Where the ten preset images come from and how they reach the disk, checked by sha256.

The images are ImageNet's and not ours to redistribute, so the project never ships them: it
uses a folder the user points at (XAI_LENS_EXAMPLES_DIR or an explicit argument), or downloads
them once into a cache. Either way a file is used only if its sha256 matches the manifest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from explainers.download import download_or_refuse, sha256_of
from explainers.errors import XaiLensError
from explainers.limits import MAX_PRESET_DOWNLOAD_BYTES

MANIFEST_PATH = Path(__file__).with_name("presets.json")
ENV_VAR = "XAI_LENS_EXAMPLES_DIR"


@dataclass(frozen=True)
class Preset:
    """One preset image: its parameter-file key, file, ImageNet-1k class, source and checksum."""

    key: str
    filename: str
    class_index: int
    url: str
    sha256: str
    label: str
    max_bytes: ClassVar[int] = MAX_PRESET_DOWNLOAD_BYTES  # a download's size cap (explainers.download.Pinned)

    @property
    def description(self) -> str:
        return f"Preset '{self.key}' ({self.filename})"


def _load_manifest() -> tuple[Preset, ...]:
    entries = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["presets"]
    return tuple(Preset(**entry) for entry in entries)


PRESETS: tuple[Preset, ...] = _load_manifest()
PRESET_KEYS: tuple[str, ...] = tuple(preset.key for preset in PRESETS)


def find_preset(name: str | Preset) -> Preset:
    """Accept a key, a file name (with or without suffix) or a label, in any letter case."""
    if isinstance(name, Preset):
        return name
    wanted = str(name).strip().lower().removesuffix(".jpeg").replace(" ", "_")
    for preset in PRESETS:
        names = (preset.key, Path(preset.filename).stem, preset.label.replace(" ", "_"))
        if wanted in (candidate.lower() for candidate in names):
            return preset
    raise XaiLensError(f"No preset is called {name!r}; choose one of: {', '.join(PRESET_KEYS)}")


def cache_dir() -> Path:
    """Where downloaded presets live: $XDG_CACHE_HOME (or ~/.cache) /xai-lens/presets."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xai-lens" / "presets"


def examples_dir(explicit: str | Path | None = None) -> Path:
    """The folder to use: the explicit argument, else $XAI_LENS_EXAMPLES_DIR, else the download cache."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return cache_dir()


def _download(preset: Preset, target: Path) -> None:
    """Fetch through the one downloader: size-capped, sha256-checked, renamed into place only when right."""
    advice = f"try again later, or set {ENV_VAR} or --examples-dir to a folder holding the preset images."
    download_or_refuse(preset, target, advice=advice)


def preset_path(key_or_preset: str | Preset, examples_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The verified local file of one preset; downloads into the cache on first use.

    A folder the user named is used as is and never written to; only the cache is filled.
    """
    preset = find_preset(key_or_preset)
    explicit = examples_dir or os.environ.get(ENV_VAR)
    folder = _resolve(examples_dir)
    path = folder / preset.filename
    if explicit:
        if not path.is_file():
            raise XaiLensError(
                f"'{preset.filename}' is not in {folder}; put the ten preset images there or point "
                f"{ENV_VAR} / --examples-dir at the folder that holds them."
            )
        if sha256_of(path) != preset.sha256:
            raise XaiLensError(
                f"'{path}' does not match its sha256 (a different or damaged file); replace it with the original "
                f"from {preset.url}"
            )
        return path
    if path.is_file():
        if sha256_of(path) == preset.sha256:
            return path
        path.unlink()  # a damaged cache entry: fetch it again
    if not download:
        raise XaiLensError(
            f"Preset '{preset.key}' is not downloaded yet; allow downloading or set {ENV_VAR} to a folder holding it."
        )
    _download(preset, path)
    return path


def _resolve(explicit: str | Path | None) -> Path:
    """examples_dir() under another name: preset_path's argument of that name hides the function."""
    return examples_dir(explicit)


def ensure_presets(examples_dir: str | Path | None = None, progress: bool = True) -> list[tuple[Preset, Path]]:
    """Make all ten presets available locally (downloading what is missing), with a progress bar."""
    from tqdm.auto import tqdm

    bar = tqdm(PRESETS, desc="preset images", unit="image", disable=not progress)
    return [(preset, preset_path(preset, examples_dir)) for preset in bar]
