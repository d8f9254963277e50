"""What the CAM methods share: arithmetic written to match grad-cam's own post-processing step for step,
and the base of the channel-scoring CAMs (Score-CAM, Ablation-CAM)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.engine.models import LoadedModel
from explainers.methods.base import MethodOptions, SaliencyMethod, Subject


def weighted_cam_map(weights: np.ndarray, activations: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """grad-cam's finishing: ReLU(sum_k w_k A_k), min-max scale, resize to (H, W), scale again.

    weights: (K,), activations: (K, h, w); returns float32 (H, W) in [0, 1].
    """
    weights = np.asarray(weights, dtype=np.float32)[None, :]
    activations = np.asarray(activations, dtype=np.float32)[None]
    cam = (weights[:, :, None, None] * activations).sum(axis=1)
    cam = np.maximum(cam, 0)
    scaled = scale_cam_image(cam, (size[1], size[0]))[:, None, :]
    return scale_cam_image(np.maximum(scaled, 0).mean(axis=1))[0]


@contextmanager
def captured_output(layer: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record a layer's output during the forward passes inside the block; the hook never outlives it."""
    outputs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: outputs.append(output.detach()))
    try:
        yield outputs
    finally:
        handle.remove()


def activations_and_logits(
    model: torch.nn.Module, layer: torch.nn.Module, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass giving the target layer's activations and the logits."""
    with captured_output(layer) as outputs, torch.inference_mode():
        logits = model(batch)
    return outputs[0], logits


def pooled_linear_head(module: torch.nn.Module, layer: torch.nn.Module) -> torch.nn.Linear | None:
    """The final linear layer if all after `layer` is global average pooling + that layer, else None."""
    layer4 = getattr(module, "layer4", None)
    fc = getattr(module, "fc", None)
    pool = getattr(module, "avgpool", None)
    if layer4 is None or not isinstance(fc, torch.nn.Linear) or not isinstance(pool, torch.nn.AdaptiveAvgPool2d):
        return None
    if pool.output_size not in (1, (1, 1)):
        return None
    return fc if layer is layer4 or layer is layer4[-1] else None


def layer_activations(
    model: LoadedModel, layer: torch.nn.Module, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target layer's activations and the logits, from one pass.

    Where the layer is the last before global pooling (torchvision ResNets' layer4, the default),
    the pass goes through the BatchNorm-folded copy, hook-free; elsewhere a hook on the original.
    """
    if model.features_module is not None and pooled_linear_head(model.module, layer) is not None:
        with torch.inference_mode():
            return model.features_module(batch.contiguous(memory_format=torch.channels_last))
    return activations_and_logits(model.module, layer, batch)


def default_batch_size(device: torch.device) -> int:
    """Forward-pass batch for the heavy methods: large on a GPU, moderate on a CPU."""
    return 256 if device.type == "cuda" else 8  # 2-core CPU: ResNet50 49 ms/image at 8, 56 at 16, 61 at 32


class ChannelCAMMethod(SaliencyMethod):
    """A CAM that scores every activation channel with extra forward passes, in batches of `batch_size`.

    `compute` runs this project's exact fast path; with `reference=True` it runs grad-cam's own class
    (`reference_class`) instead, which the tests and the benchmark compare the fast path with.
    """

    reference_class: ClassVar[type[BaseCAM]]

    def __init__(self, target_layer: str | None = None, batch_size: int | None = None, reference: bool = False) -> None:
        self.target_layer = target_layer
        self.batch_size = batch_size
        self.reference = reference

    @classmethod
    def from_options(cls, options: MethodOptions) -> Self:
        return cls(target_layer=options.target_layer, reference=options.reference)

    def describe(self) -> dict[str, Any]:
        implementation = "grad-cam" if self.reference else "xai-lens exact fast path"
        return {"target_layer": self.target_layer, "batch_size": self.batch_size, "implementation": implementation}

    def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        if self.reference:
            return self._reference(subject), {}
        return self.fast_path(subject)

    @abstractmethod
    def fast_path(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        """The map and its extras, computed exactly as grad-cam would, with fewer or cheaper passes."""

    def _reference(self, subject: Subject) -> np.ndarray:
        model = subject.model
        with model.lock:
            cam = self.reference_class(model=model.module, target_layers=[model.layer(self.target_layer)])
            if self.batch_size:
                cam.batch_size = self.batch_size  # both classes read it when they batch their passes
            try:
                return cam(input_tensor=subject.tensor, targets=[ClassifierOutputTarget(subject.target)])[0]
            finally:
                cam.activations_and_grads.release()
