"""Model registry: architectures, weights, class names and each model's own preprocessing.

Everything downstream (CAMs, LIME, overlays) works on the exact 224x224 crop the model
sees, so preprocessing is split in two: `crop()` (resize + centre crop, uint8 RGB) and
`to_tensor()` (scale + normalise). Together they equal the weights' published transform.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from explainers.download import download_file
from explainers.engine import precision
from explainers.engine.inference import features_and_logits, fold_for_inference
from explainers.errors import XaiLensError, first_line
from explainers.limits import MAX_WEIGHTS_DOWNLOAD_BYTES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WEIGHTS_SEED = 0
RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: this model was not trained, so its predictions and explanations are meaningless "
    "(use --weights published or a checkpoint for real results)."
)
_DATA_DIR = Path(__file__).parents[1] / "data"  # explainers/data
PLACES365_URL = "http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar"


class WeightsUnavailableError(XaiLensError):
    """Published weights are neither cached nor downloadable."""


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model and prepare images for it."""

    name: str
    title: str
    build: Callable[[], torch.nn.Module]
    weights_url: str
    weights_file: str
    categories: Callable[[], list[str]]
    resize: int | tuple[int, int]
    crop: int = 224
    default_target_layer: str = "layer4[-1]"
    dataset: str = "ImageNet"


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names, as torchvision ships them (no download)."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def places365_categories() -> list[str]:
    """The 365 Places365 category names in MIT CSAIL's class order ('arena/hockey' style)."""
    return (_DATA_DIR / "places365_categories.txt").read_text().split()


def _torchvision_spec(name: str, title: str, builder: Callable, weights, resize: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        title=title,
        build=lambda: builder(weights=None),
        weights_url=weights.url,
        weights_file=weights.url.rsplit("/", 1)[-1],
        categories=imagenet_categories,
        resize=resize,
    )


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # ResNet50 IMAGENET1K_V2 prescribes resize 232 (bilinear) then crop 224.
        _torchvision_spec(
            "resnet50",
            "ResNet50 (ImageNet)",
            torchvision.models.resnet50,
            torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
            232,
        ),
        # IMAGENET1K_V1 prescribes resize 256 then crop 224. CLIP-dissect's published ResNet50 neuron labels were
        # computed on these weights, so the concept view joins them to this model and to no other.
        _torchvision_spec(
            "resnet50-v1",
            "ResNet50 V1 (ImageNet)",
            torchvision.models.resnet50,
            torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
            256,
        ),
        _torchvision_spec(
            "resnet18",
            "ResNet18 (ImageNet)",
            torchvision.models.resnet18,
            torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
            256,
        ),
        # CSAIL's demo resizes to a 256x256 square (no aspect kept), then crops 224.
        ModelSpec(
            name="resnet18-places365",
            title="ResNet18 (Places365)",
            build=lambda: torchvision.models.resnet18(weights=None, num_classes=365),
            weights_url=PLACES365_URL,
            weights_file="resnet18_places365.pth.tar",
            categories=places365_categories,
            resize=(256, 256),
            dataset="Places365",
        ),
    )
}
DEFAULT_MODEL = "resnet50"


@dataclass
class LoadedModel:
    """A model in eval mode with the preprocessing and labels that belong to it."""

    spec: ModelSpec
    weights: str
    module: torch.nn.Module
    categories: list[str]
    device: torch.device
    # Methods that hook or swap layers of the shared module hold this while they run.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    # The same network with BatchNorm folded in, for hook-free passes (Score-CAM's masks, LIME's samples).
    inference_module: torch.nn.Module = field(init=False, repr=False, compare=False)
    # A view of it returning (layer4's output, logits): the CAMs' default layer read without a hook.
    features_module: torch.nn.Module | None = field(init=False, repr=False, compare=False)
    _mean: torch.Tensor = field(init=False, repr=False)
    _std: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.inference_module = fold_for_inference(self.module)
        self.features_module = features_and_logits(self.inference_module)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_random(self) -> bool:
        return self.weights == "random"

    def crop(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop exactly as the weights prescribe; uint8 HxWx3."""
        resized = TF.resize(
            image.convert("RGB"), self.spec.resize, interpolation=InterpolationMode.BILINEAR, antialias=True
        )
        return np.asarray(TF.center_crop(resized, self.spec.crop), dtype=np.uint8).copy()

    def to_tensor(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (or [0,1] float) crops, HxWx3 or NxHxWx3 -> normalised NCHW float32 on the model's device."""
        if isinstance(crops, torch.Tensor):  # LIME's perturbations, built on the device
            array = crops.to(self.device)
        else:
            array = torch.as_tensor(np.ascontiguousarray(crops), device=self.device)
        if array.ndim == 3:
            array = array.unsqueeze(0)
        scale = 255.0 if array.dtype == torch.uint8 else 1.0
        batch = array.permute(0, 3, 1, 2).float() / scale
        return (batch - self._mean) / self._std

    @torch.inference_mode()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities for a normalised batch."""
        return torch.softmax(self.module(batch), dim=1)

    def layer(self, path: str | None = None) -> torch.nn.Module:
        """Resolve a layer path such as 'layer4[-1]', 'layer4.1' or 'layer3' (default: the spec's)."""
        return resolve_layer(self.module, path or self.spec.default_target_layer)

    def class_index(self, target: int | str) -> int:
        """A class index from an index or a (case- and underscore-insensitive) class name."""
        return resolve_class(self.categories, target)


def resolve_layer(module: torch.nn.Module, path: str) -> torch.nn.Module:
    """Walk 'layer4[-1]' / 'layer4.1' style paths; a clear error names the valid top-level layers."""
    current: Any = module  # a Sequential is indexed, anything else read by attribute
    for part in re.findall(r"[^.\[\]]+", path):
        try:
            current = current[int(part)] if re.fullmatch(r"-?\d+", part) else getattr(current, part)
        except (AttributeError, IndexError, TypeError, KeyError):
            names = ", ".join(name for name, _ in module.named_children())
            raise XaiLensError(f"Layer '{path}' not found in the model; top-level layers are: {names}.") from None
    if not isinstance(current, torch.nn.Module):
        raise XaiLensError(f"'{path}' is not a layer of the model.")
    return current


def _normalise_name(name: str) -> str:
    return re.sub(r"[\s_\-/]+", " ", name).strip().lower()


def resolve_class(categories: Sequence[str], target: int | str) -> int:
    """Class index from an int, a digit string, or a name (exact match first, then unique substring)."""
    if isinstance(target, (int, np.integer)) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
        index = int(target)
        if not 0 <= index < len(categories):
            raise XaiLensError(f"Class index {index} is out of range: this model has classes 0-{len(categories) - 1}.")
        return index
    wanted = _normalise_name(str(target))
    names = [_normalise_name(c) for c in categories]
    if wanted in names:
        return names.index(wanted)
    matches = [i for i, n in enumerate(names) if wanted and wanted in n]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise XaiLensError(f"No class is called '{target}'; give a class index or part of a class name.")
    shown = ", ".join(categories[i] for i in matches[:5])
    raise XaiLensError(f"'{target}' matches {len(matches)} classes ({shown}, ...); be more specific.")


def default_device() -> torch.device:
    """CUDA when present, else CPU; XAI_LENS_DEVICE overrides."""
    wanted = os.environ.get("XAI_LENS_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def weights_cache_dir() -> Path:
    """torch's standard checkpoint cache ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint without executing code: safetensors, or torch.load(weights_only=True).

    Accepts a bare state_dict or {'state_dict': ...}; strips DataParallel 'module.' prefixes.
    """
    if not path.is_file():
        raise XaiLensError(
            f"Checkpoint '{path}' does not exist; give the path of a .pth, .pth.tar or .safetensors file."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise XaiLensError(f"Could not read checkpoint '{path.name}': {first_line(exc, limit=200)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise XaiLensError(f"Checkpoint '{path.name}' holds no state_dict of tensors.")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _download_published(spec: ModelSpec) -> Path:
    """The published weights file: from the cache, else downloaded into it once."""
    target = weights_cache_dir() / spec.weights_file
    if target.is_file():
        return target
    try:
        download_file(spec.weights_url, target, max_bytes=MAX_WEIGHTS_DOWNLOAD_BYTES)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"The {spec.title} weights are not on this machine and could not be downloaded ({first_line(exc)}). "
            f"Expected file: {target}. Download {spec.weights_url} and put it there, "
            f"or pass a local checkpoint (--weights PATH), or use --weights random for an offline demo."
        ) from None
    return target


def _apply_state(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state_dict, turning any key or shape mismatch into one line that says what to check."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"{len(missing)} missing keys ({', '.join(missing[:3])})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])})")
        if wrong_shape:
            shapes = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong_shape[:2])
            details.append(f"{len(wrong_shape)} of another shape ({shapes})")
        raise XaiLensError(
            f"Checkpoint '{source}' does not fit this model: {'; '.join(details)}; check that --model matches it."
        )
    module.load_state_dict(state)


# The weights each model's authors published (ImageNet for the ImageNet models, Places365 for CSAIL's).
# "imagenet" was its first name, misleading for Places365; it stays an alias everywhere (CLI, XAI_LENS_WEIGHTS).
PUBLISHED = "published"
WEIGHTS_ALIASES = {"imagenet": PUBLISHED}


def canonical_weights(weights: str) -> str:
    """'published' for either of its names; anything else unchanged."""
    return WEIGHTS_ALIASES.get(weights, weights)


def build_model(name: str, weights: str = PUBLISHED) -> torch.nn.Module:
    """Construct a registered model on the CPU with its weights applied (no caching)."""
    spec = model_spec(name)
    weights = canonical_weights(weights)
    if weights == "random":
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        return spec.build().eval()
    path = _download_published(spec) if weights == PUBLISHED else Path(weights).expanduser()
    module = spec.build()
    _apply_state(module, read_state_dict(path), path.name)
    return module.eval()


def model_spec(name: str) -> ModelSpec:
    if name not in MODEL_SPECS:
        raise XaiLensError(f"Unknown model '{name}'; choose one of: {', '.join(MODEL_SPECS)}.")
    return MODEL_SPECS[name]


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, weights: str, device: str) -> LoadedModel:
    spec = model_spec(name)
    module = build_model(name, weights).to(device)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return LoadedModel(spec, weights, module, spec.categories(), torch.device(device))


def load_model(
    name: str = DEFAULT_MODEL, weights: str = PUBLISHED, device: str | torch.device | None = None
) -> LoadedModel:
    """Load once per process: `weights` is 'published' (alias 'imagenet'), 'random', or a checkpoint path."""
    weights = canonical_weights(weights)
    if weights not in (PUBLISHED, "random"):
        weights = str(Path(weights).expanduser().resolve())
    device = torch.device(device or default_device())
    if device.type == "cuda":
        precision.apply()  # exact float32 unless TF32 was asked for (explainers.engine.precision)
    return _load_cached(name, weights, str(device))


def weights_label(weights: str) -> str:
    """Short human label of a weights choice, for captions and summaries."""
    weights = canonical_weights(weights)
    return weights if weights in (PUBLISHED, "random") else f"checkpoint {Path(weights).name}"
