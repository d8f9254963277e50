"""What the first click runs, chosen per device: the assignment's settings on a GPU, a fast answer on a CPU.

On a GPU the assignment's defaults (ResNet50, all four core methods, LIME's 1000 samples) answer in
seconds. On a 2-core CPU they cost minutes (LIME about 5 min, Score-CAM's 2048 passes about 1 min),
so a CPU starts with ResNet18, fewer LIME samples and Score-CAM unticked, and says so on screen with
the full settings one click away.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.gpu import zero_gpu
from explainers.engine.models import DEFAULT_MODEL, MODEL_SPECS, default_device
from explainers.methods import CORE_METHODS, METHODS

CPU_MODEL = "resnet18"
CPU_LIME_SAMPLES = 100  # about 5-10 s for ResNet18 on 2 cores, against about 1 min for lime's 1000
CPU_PRESET_SAMPLES = 50  # per preset image: the ten-preset answer for ResNet18 within a minute
FULL_LIME_SAMPLES = 1000  # lime's own default, the assignment's setting
CPU_SKIPS = ("scorecam",)  # one forward pass per activation channel: ~30 s for ResNet18 on a CPU


@dataclass(frozen=True)
class Defaults:
    """The first-click settings and the sentence that tells the visitor what was chosen."""

    model: str
    methods: tuple[str, ...]
    lime_samples: int
    preset_samples: int  # 0 = each preset's samples as in the parameter file
    on_gpu: bool

    @property
    def note(self) -> str:
        if self.on_gpu:
            return "GPU: the assignment's settings (ResNet50, all four methods, LIME 1000 samples)."
        skipped = ", ".join(METHODS[m].title for m in CORE_METHODS if m not in self.methods)
        return (
            f"CPU: fast settings ({MODEL_SPECS[self.model].title.split(' (')[0]}, LIME {self.lime_samples} samples"
            f"{f', {skipped} off' if skipped else ''}) so the first answer comes in seconds."
        )


def running_on_gpu() -> bool:
    """True where the models run on a GPU: ZeroGPU (its workers get one), or CUDA in this process."""
    return zero_gpu() or default_device().type == "cuda"


def device_defaults(on_gpu: bool | None = None) -> Defaults:
    """The assignment's defaults on a GPU, the fast CPU set otherwise."""
    gpu = running_on_gpu() if on_gpu is None else on_gpu
    if gpu:
        return Defaults(DEFAULT_MODEL, tuple(CORE_METHODS), FULL_LIME_SAMPLES, 0, True)
    methods = tuple(m for m in CORE_METHODS if m not in CPU_SKIPS)
    return Defaults(CPU_MODEL, methods, CPU_LIME_SAMPLES, CPU_PRESET_SAMPLES, False)


def full_settings() -> Defaults:
    """The assignment's settings, for the 'full settings' button on a CPU."""
    return device_defaults(on_gpu=True)


def model_choices(weights: str) -> list[tuple[str, str]]:
    """(label, name) for the model dropdowns; with random weights the label says so, not '(ImageNet)'."""
    if weights != "random":
        return [(spec.title, name) for name, spec in MODEL_SPECS.items()]
    return [(random_title(spec.title), name) for name, spec in MODEL_SPECS.items()]


def random_title(title: str) -> str:
    """'ResNet50 (ImageNet)' -> 'ResNet50 (random weights)'; 'ResNet18 (Places365)' keeps its class set."""
    if title.endswith("(ImageNet)"):
        return title.removesuffix("(ImageNet)") + "(random weights)"
    if title.endswith(")"):
        return title[:-1] + " classes, random weights)"
    return f"{title} (random weights)"
