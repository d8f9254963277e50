"""Ablation-CAM: weight each channel by the relative drop of the target score when it is ablated.

grad-cam runs one forward pass of the whole network per channel (2048 for a ResNet50). Where
everything after the target layer is global average pooling then a linear layer (torchvision
ResNets at layer4 or layer4[-1]), ablating channel k moves the pooled feature k from mean(A_k)
to the ablation value v, so the score drops by exactly W[t, k] * (mean(A_k) - v): one forward
pass in all. Elsewhere only the part of the network after the target layer runs on the ablated
batches (a torch.fx split, see fx_tail); when the model cannot be traced, the ablated
activations go through the whole network by a hook that replaces the target layer's output,
and the extras say so. The shared model is never modified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import AblationCAM

from explainers.engine.oom import run_with_backoff
from explainers.methods.base import Subject
from explainers.methods.cam_common import (
    ChannelCAMMethod,
    activations_and_logits,
    default_batch_size,
    layer_activations,
    pooled_linear_head,
    weighted_cam_map,
)
from explainers.methods.fx_tail import Tail, TailUnavailableError, split_after

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


class AblationCAMMethod(ChannelCAMMethod):
    name, title, core, menu_rank = "ablationcam", "Ablation-CAM", True, 30
    cost_rank = 70  # one forward pass at the default layer (closed form), one per channel batch elsewhere
    reference_class = AblationCAM

    def fast_path(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        model, target = subject.model, subject.required_target()
        layer = model.layer(self.target_layer)
        batch = subject.tensor
        head = pooled_linear_head(model.module, layer)
        extras: dict[str, Any] = {"closed_form": head is not None}
        with model.lock:
            if head is not None:
                activations, logits = layer_activations(model, layer, batch)
                values = ablation_values(activations[0], self.batch_size or REFERENCE_BATCH_SIZE)
                drops = self._closed_form_drops(head, activations[0], values, target)
                extras["path"] = "closed form (one forward pass)"
            else:
                try:
                    tail = split_after(model.module, layer, batch)
                    activations, logits = tail.activations, tail.logits
                    run_ablated: Tail | Callable[[torch.Tensor], torch.Tensor] = tail
                    extras["path"] = "network after the target layer only (torch.fx split)"
                except TailUnavailableError as why:
                    activations, logits = activations_and_logits(model.module, layer, batch)
                    run_ablated = self._whole_network(subject, layer)
                    extras["path"] = f"whole network per ablated batch ({why})"
                values = ablation_values(activations[0], self.batch_size or REFERENCE_BATCH_SIZE)
                drops = float(logits[0, target]) - self._ablated_scores(
                    run_ablated, activations[0], values, target, subject.raise_if_cancelled
                )
        original = float(logits[0, target])
        weights = (drops / original).astype(np.float32)
        saliency = weighted_cam_map(weights, activations[0].cpu().numpy(), subject.crop.shape[:2])
        return saliency, {"logits": logits[0].cpu().numpy(), **extras}

    @staticmethod
    def _closed_form_drops(
        head: torch.nn.Linear, activations: torch.Tensor, values: np.ndarray, target: int
    ) -> np.ndarray:
        pooled = activations.double().mean(dim=(1, 2)).cpu().numpy()
        weight = head.weight[target].detach().double().cpu().numpy()
        return weight * (pooled - values)

    @staticmethod
    def _whole_network(subject: Subject, layer: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """Fallback: the whole model, its target layer's output replaced by a hook for one call."""

        def run(layer_output: torch.Tensor) -> torch.Tensor:
            handle = layer.register_forward_hook(lambda _m, _i, _o: layer_output)
            try:
                return subject.model.module(subject.tensor.expand(layer_output.size(0), -1, -1, -1))
            finally:
                handle.remove()

        return run

    @torch.inference_mode()
    def _ablated_scores(
        self,
        run_ablated: Tail | Callable[[torch.Tensor], torch.Tensor],
        activations: torch.Tensor,
        values: np.ndarray,
        target: int,
        raise_if_cancelled: Callable[[], None] | None = None,
    ) -> np.ndarray:
        """For each channel, the target score with that channel set to its ablation value."""
        channels = activations.size(0)
        fill = torch.as_tensor(values, dtype=activations.dtype, device=activations.device)

        def score_all(step: int) -> np.ndarray:  # restartable: run_with_backoff may call it again, smaller
            scores = []
            for start in range(0, channels, step):
                if raise_if_cancelled is not None:
                    raise_if_cancelled()
                count = min(step, channels - start)
                ablated = activations.unsqueeze(0).repeat(count, 1, 1, 1)
                rows = torch.arange(count, device=activations.device)
                ablated[rows, rows + start] = fill[start : start + count, None, None]
                scores.append(run_ablated(ablated)[:, target].double())
            return torch.cat(scores).cpu().numpy()

        return run_with_backoff(score_all, self.batch_size or default_batch_size(activations.device))
