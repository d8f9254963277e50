"""Ablation-CAM: weight each channel by the relative drop of the target score when it is ablated.

grad-cam runs one forward pass of the whole network per channel (2048 for a ResNet50). Where
everything after the target layer is global average pooling then a linear layer (torchvision
ResNets at layer4 or layer4[-1]), ablating channel k moves the pooled feature k from mean(A_k)
to the ablation value v, so the score drops by exactly W[t, k] * (mean(A_k) - v): one forward
pass in all. Elsewhere the ablated activations are fed through the network by a hook that
replaces the target layer's output, so the shared model is never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import AblationCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.methods.base import SaliencyMethod, Subject
from explainers.methods.cam_common import activations_and_logits, default_batch_size, weighted_cam_map

# grad-cam's AblationLayer: zero when the layer's minimum is 0, else (min - 1e7), re-read after
# each row it writes, so row j of a batch gets min0 - (j + 1) * 1e7.
ABLATION_OFFSET = 1e7
REFERENCE_BATCH_SIZE = 32


def ablation_values(activations: torch.Tensor, batch_size: int = REFERENCE_BATCH_SIZE) -> np.ndarray:
    """The value grad-cam's AblationLayer writes into each ablated channel, channel by channel."""
    channels = activations.size(0)
    minimum = float(activations.min())
    if minimum == 0:
        return np.zeros(channels)
    position_in_batch = np.arange(channels) % batch_size
    return minimum - (position_in_batch + 1) * ABLATION_OFFSET


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


class AblationCAMMethod(SaliencyMethod):
    name, title = "ablationcam", "Ablation-CAM"

    def __init__(self, target_layer: str | None = None, batch_size: int | None = None, reference: bool = False) -> None:
        self.target_layer = target_layer
        self.batch_size = batch_size
        self.reference = reference

    def describe(self) -> dict[str, Any]:
        impl = "grad-cam" if self.reference else "xai-lens exact fast path"
        return {"target_layer": self.target_layer, "batch_size": self.batch_size, "implementation": impl}

    def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        if self.reference:
            return self._reference(subject), {}
        model = subject.model
        layer = model.layer(self.target_layer)
        batch = subject.tensor
        with model.lock:
            activations, logits = activations_and_logits(model.module, layer, batch)
            original = float(logits[0, subject.target])
            values = ablation_values(activations[0], self.batch_size or REFERENCE_BATCH_SIZE)
            head = pooled_linear_head(model.module, layer)
            if head is not None:
                drops = self._closed_form_drops(head, activations[0], values, subject.target)
            else:
                drops = original - self._ablated_scores(subject, layer, activations[0], values)
        weights = (drops / original).astype(np.float32)
        saliency = weighted_cam_map(weights, activations[0].cpu().numpy(), subject.crop.shape[:2])
        return saliency, {"logits": logits[0].cpu().numpy(), "closed_form": head is not None}

    @staticmethod
    def _closed_form_drops(
        head: torch.nn.Linear, activations: torch.Tensor, values: np.ndarray, target: int
    ) -> np.ndarray:
        pooled = activations.double().mean(dim=(1, 2)).cpu().numpy()
        weight = head.weight[target].detach().double().cpu().numpy()
        return weight * (pooled - values)

    @torch.inference_mode()
    def _ablated_scores(
        self, subject: Subject, layer: torch.nn.Module, activations: torch.Tensor, values: np.ndarray
    ) -> np.ndarray:
        """Generic path: for each channel, the score with that channel set to its ablation value."""
        channels = activations.size(0)
        step = self.batch_size or default_batch_size(activations.device)
        scores = np.empty(channels)
        replacement: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _m, _i, _o: replacement[0])
        try:
            for start in range(0, channels, step):
                index = torch.arange(start, min(start + step, channels), device=activations.device)
                ablated = activations.unsqueeze(0).repeat(index.numel(), 1, 1, 1)
                fill = torch.as_tensor(values[index.cpu().numpy()], dtype=ablated.dtype, device=ablated.device)
                ablated[torch.arange(index.numel()), index] = fill[:, None, None]
                replacement[:] = [ablated]
                batch = subject.tensor.expand(index.numel(), -1, -1, -1)
                scores[start : start + index.numel()] = (
                    subject.model.module(batch)[:, subject.target].double().cpu().numpy()
                )
        finally:
            handle.remove()
        return scores

    def _reference(self, subject: Subject) -> np.ndarray:
        model = subject.model
        with model.lock:
            kwargs = {"batch_size": self.batch_size} if self.batch_size else {}
            cam = AblationCAM(model=model.module, target_layers=[model.layer(self.target_layer)], **kwargs)
            try:
                return cam(input_tensor=subject.tensor, targets=[ClassifierOutputTarget(subject.target)])[0]
            finally:
                cam.activations_and_grads.release()
