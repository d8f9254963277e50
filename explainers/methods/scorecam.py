"""Score-CAM: weight each activation channel by the target score of the input masked with it.

The fast path gives grad-cam's map (float32) with less work: every channel whose upsampled
activation is constant masks the input to all zeros, so those channels share one forward pass;
masked inputs are built batch by batch instead of all at once (grad-cam holds ~1.15 GiB of them
for a ResNet50), and batches are as large as the device allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.methods.base import SaliencyMethod, Subject
from explainers.methods.cam_common import activations_and_logits, default_batch_size, weighted_cam_map


def _masks_for(activations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Channels (k, h, w) -> upsampled, per-channel min-max normalised masks (k, H, W), as grad-cam makes them."""
    upsampled = F.interpolate(activations[None], size=size, mode="bilinear", align_corners=True)[0]
    flat = upsampled.view(upsampled.size(0), -1)
    maxs, mins = flat.max(dim=1).values, flat.min(dim=1).values
    return (upsampled - mins[:, None, None]) / (maxs - mins + 1e-8)[:, None, None]


class ScoreCAMMethod(SaliencyMethod):
    name, title = "scorecam", "Score-CAM"

    def __init__(self, target_layer: str | None = None, batch_size: int | None = None, reference: bool = False) -> None:
        self.target_layer = target_layer
        self.batch_size = batch_size
        self.reference = reference

    def describe(self) -> dict[str, Any]:
        return {"target_layer": self.target_layer, "batch_size": self.batch_size, "implementation": self._impl()}

    def _impl(self) -> str:
        return "grad-cam" if self.reference else "xai-lens exact fast path"

    def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        if self.reference:
            return self._reference(subject), {}
        model, layer = subject.model, subject.model.layer(self.target_layer)
        batch = subject.tensor
        with model.lock:
            activations, logits = activations_and_logits(model.module, layer, batch)
        scores = self._channel_scores(subject, activations[0], batch)
        weights = torch.softmax(scores.float(), dim=-1).cpu().numpy()
        saliency = weighted_cam_map(weights, activations[0].cpu().numpy(), subject.crop.shape[:2])
        return saliency, {"logits": logits[0].cpu().numpy()}

    @torch.inference_mode()
    def _channel_scores(self, subject: Subject, activations: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        size = tuple(batch.shape[-2:])
        module, target = subject.model.module, subject.target
        is_constant = _constant_channels(activations, size)
        scores = torch.empty(activations.size(0), device=activations.device)
        constant = is_constant.nonzero().flatten()
        varying = (~is_constant).nonzero().flatten()
        if constant.numel():
            scores[constant] = module(torch.zeros_like(batch))[0, target]
        step = self.batch_size or default_batch_size(batch.device)
        for start in range(0, varying.numel(), step):
            channels = varying[start : start + step]
            masked = batch * _masks_for(activations[channels], size)[:, None]
            scores[channels] = module(masked)[:, target]
        return scores

    def _reference(self, subject: Subject) -> np.ndarray:
        model = subject.model
        with model.lock:
            cam = ScoreCAM(model=model.module, target_layers=[model.layer(self.target_layer)])
            if self.batch_size:
                cam.batch_size = self.batch_size
            try:
                return cam(input_tensor=subject.tensor, targets=[ClassifierOutputTarget(subject.target)])[0]
            finally:
                cam.activations_and_grads.release()


def _constant_channels(activations: torch.Tensor, size: tuple[int, int], chunk: int = 256) -> torch.Tensor:
    """True where a channel's upsampled map is exactly constant, so its normalised mask is all zeros.

    Judged on the upsampled values, as grad-cam sees them: a constant non-zero channel can pick up
    one-ulp differences in interpolation, and then its mask is not zero.
    """
    flags = []
    for start in range(0, activations.size(0), chunk):
        upsampled = F.interpolate(
            activations[None, start : start + chunk], size=size, mode="bilinear", align_corners=True
        )
        flat = upsampled[0].flatten(1)
        flags.append(flat.max(dim=1).values == flat.min(dim=1).values)
    return torch.cat(flags)
