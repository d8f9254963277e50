"""What a LIME mask is compared with: the graders' ground truth is not public, so the user picks a stand-in.

- `converged`: LIME itself at a large sample count with the trial's segmentation family (its named
  defaults) and XAI Lens's default settings, the best estimate of LIME's own answer. Its samples use a
  seed no trial uses: a trial drawing the same random stream would share its first samples with it.
- `cam-consensus`: the pixels that Grad-CAM, Score-CAM and Ablation-CAM masks all keep.
- a FILE: the user's masks, one per image key: a .npz (arrays named by key) or a folder of KEY.png /
  KEY.npy, each the size of the 224x224 crop the methods explain.
Masks come from one rule (explainers.comparison.masks), the same one applied to the trials' LIME maps.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from explainers import limits
from explainers.comparison.masks import MaskRule, masks_for, parse_rule
from explainers.errors import XaiLensError, first_line
from explainers.inputs.param_file import default_lime_params
from explainers.inputs.segmentation import NAMED_DEFAULTS
from explainers.inputs.user_files import read_limited
from explainers.methods import create_method
from explainers.methods.base import Subject
from explainers.methods.lime import LimeMethod

NAMED_REFERENCES = ("converged", "cam-consensus")
CONVERGED_SAMPLES = 5000  # lime's default is 1000; the top superpixels barely move past a few thousand
REFERENCE_SEED_OFFSET = 7919  # the converged run's explainer seed = tuning seed + this (no trial uses it)
CAM_METHODS = ("gradcam", "scorecam", "ablationcam")
MASK_SUFFIXES = (".png", ".npy")


def _bool_mask(where: str, array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., 0]
    if array.shape != shape:
        raise XaiLensError(
            f"{where}: the mask is {'x'.join(map(str, array.shape))}; it must be {shape[0]}x{shape[1]}, "
            "drawn on the centre crop the methods explain"
        )
    if array.dtype.kind not in "biuf" or (array.dtype.kind == "f" and not np.isfinite(array).all()):
        raise XaiLensError(f"{where}: the mask must hold finite numbers (nonzero = inside), got {array.dtype}")
    mask = array > (127 if array.dtype == np.uint8 and array.max() > 1 else 0)
    if not mask.any():
        raise XaiLensError(f"{where}: the mask is empty; every IoU with it would be 0")
    return mask


@dataclass
class Reference:
    """A named way to get one reference mask per image (and segmentation family, for `converged`)."""

    name: str
    description: str
    needs_family: bool = False
    _cache: dict[tuple[str, str | None], np.ndarray] = field(default_factory=dict, repr=False)

    def mask(self, key: str, subject: Subject, family: str | None = None) -> np.ndarray:
        """The reference mask for image `key` (computed once, then remembered)."""
        slot = (key, family if self.needs_family else None)
        if slot not in self._cache:
            self._cache[slot] = self._compute(key, subject, slot[1])
        return self._cache[slot]

    def check_keys(self, keys: list[str]) -> None:
        """Refuse, before any work, images this reference has no mask for (only a FILE can lack one)."""

    def _compute(self, key: str, subject: Subject, family: str | None) -> np.ndarray:
        raise NotImplementedError


@dataclass
class ConvergedReference(Reference):
    rule: MaskRule = field(default_factory=lambda: parse_rule("top:0.10"))
    samples: int = CONVERGED_SAMPLES
    seed: int = 0

    def settings(self, family: str) -> dict[str, Any]:
        """XAI Lens's default entry with this family's named segmentation and the large sample count."""
        entry = dict(next(iter(default_lime_params().values())))
        entry |= {"segmentation_fn": {"name": family, **NAMED_DEFAULTS[family]}, "num_samples": self.samples}
        entry |= {"top_labels": 1, "random_seed": self.seed}
        return entry

    def _compute(self, key: str, subject: Subject, family: str | None) -> np.ndarray:
        method = LimeMethod(explainer_seed=self.seed + REFERENCE_SEED_OFFSET, **self.settings(family or "quickshift"))
        return masks_for({"lime": method.explain(subject)}, self.rule)["lime"]


@dataclass
class CamConsensusReference(Reference):
    rule: MaskRule = field(default_factory=lambda: parse_rule("top:0.10"))

    def _compute(self, key: str, subject: Subject, family: str | None) -> np.ndarray:
        saliencies = {}
        for name in CAM_METHODS:
            subject.raise_if_cancelled()
            saliencies[name] = create_method(name).explain(subject)
        masks = masks_for(saliencies, self.rule)
        consensus = np.logical_and.reduce([masks[name] for name in CAM_METHODS])
        if not consensus.any():
            raise XaiLensError(
                f"{key}: Grad-CAM, Score-CAM and Ablation-CAM share no pixel under {self.rule}; "
                "use a wider rule (e.g. top:0.25) or another reference"
            )
        return consensus


@dataclass
class FileReference(Reference):
    masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def check_keys(self, keys: list[str]) -> None:
        missing = [key for key in keys if key not in self.masks]
        if missing:
            raise XaiLensError(
                f"The reference masks lack {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
                f"they hold: {', '.join(sorted(self.masks)[:10]) or 'none'}. Name each mask by its image key."
            )

    def _compute(self, key: str, subject: Subject, family: str | None) -> np.ndarray:
        if key not in self.masks:
            raise XaiLensError(
                f"The reference masks have no mask for '{key}'; they hold: {', '.join(sorted(self.masks)) or 'none'}"
            )
        return _bool_mask(f"reference mask '{key}'", self.masks[key], subject.crop.shape[:2])


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    data, name = read_limited(path, limit_bytes=limits.MAX_MASK_FILE_BYTES, kind="Reference mask file", advice="")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as exc:
        reason = first_line(exc, limit=80)
        raise XaiLensError(f"{name} is not a readable .npz of masks ({reason}); save it with numpy.savez") from None


def _read_one(path: Path) -> np.ndarray:
    data, name = read_limited(path, limit_bytes=limits.MAX_MASK_FILE_BYTES, kind="Reference mask", advice="")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(io.BytesIO(data), allow_pickle=False)
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            return np.asarray(image.convert("L"))
    except (ValueError, OSError) as exc:
        reason = first_line(exc, limit=80)
        raise XaiLensError(f"{name} is not a readable mask ({reason}); use a PNG or a .npy array") from None


def read_mask_files(path: Path) -> dict[str, np.ndarray]:
    """Masks by image key from a .npz or a folder of KEY.png / KEY.npy (other files are ignored)."""
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise XaiLensError(f"Reference '{path}' is a file but not a .npz; give a .npz or a folder of KEY.png masks")
        return _read_npz(path)
    masks = {item.stem: _read_one(item) for item in sorted(path.iterdir()) if item.suffix.lower() in MASK_SUFFIXES}
    if not masks:
        raise XaiLensError(f"Reference folder '{path}' holds no KEY.png or KEY.npy masks")
    return masks


def check_reference_name(text: str) -> None:
    """A cheap check before any work: a known name or an existing path, else one line saying what is known."""
    if text in NAMED_REFERENCES or Path(text).exists():
        return
    raise XaiLensError(
        f"Unknown reference {text!r:.60}: use converged, cam-consensus, or the path of a .npz or folder "
        "of masks (one per image, 224x224)"
    )


def make_reference(
    text: str, *, rule: str | MaskRule, seed: int = 0, converged_samples: int = CONVERGED_SAMPLES
) -> Reference:
    """Build the reference the user named; `converged_samples` is held to the library's per-image cap."""
    check_reference_name(text)
    parsed = parse_rule(rule)
    if text == "converged":
        cap = limits.lime_max_samples()
        if not 1 <= converged_samples <= cap:
            raise XaiLensError(
                f"The converged reference's sample count must be from 1 to {cap}, got {converged_samples!r:.20}"
            )
        return ConvergedReference(
            "converged",
            f"LIME at {converged_samples} samples with the trial's segmentation family (named defaults) and "
            f"XAI Lens's default settings, masked by {parsed}",
            needs_family=True,
            rule=parsed,
            samples=converged_samples,
            seed=seed,
        )
    if text == "cam-consensus":
        if parsed.kind == "lime-top":
            raise XaiLensError("cam-consensus needs a rule the CAMs can use alone: top:0.10, thresh:0.5 or otsu")
        return CamConsensusReference(
            "cam-consensus", f"pixels kept by all of Grad-CAM, Score-CAM and Ablation-CAM under {parsed}", rule=parsed
        )
    path = Path(text)
    return FileReference(f"file {path.name}", f"the user's masks in {path}", masks=read_mask_files(path))
