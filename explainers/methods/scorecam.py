"""Score-CAM: weight each activation channel by the target score of the input masked with it.

The fast path gives grad-cam's map (float32) with fewer and cheaper forward passes, all exact:
every channel whose upsampled activation is constant masks the input to all zeros, so those
channels share one masked input (scored in the last batch, not a pass of its own); channels with
identical activations make identical masks, so each distinct one runs once; masked inputs are
built batch by batch (grad-cam holds ~1.15 GiB of them at once for a ResNet50), in channels-last
layout, through the BatchNorm-folded copy of the model (explainers.engine.inference; ~1.5x faster per
pass than grad-cam's on a 2-core CPU), and scores stay on the device until the end. At the
default layer the activations come from that copy too, without a hook. Mixed precision is an
opt-in (`autocast=True`): it changes the scores slightly, and the benchmark reports the map's
difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import ScoreCAM

from explainers.engine.oom import run_with_backoff
from explainers.methods.base import Subject
from explainers.methods.cam_common import ChannelCAMMethod, default_batch_size, layer_activations, weighted_cam_map


def _masks_for(activations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Channels (k, h, w) -> upsampled, per-channel min-max normalised masks (k, H, W), as grad-cam makes them."""
    upsampled = F.interpolate(activations[None], size=size, mode="bilinear", align_corners=True)[0]
    flat = upsampled.view(upsampled.size(0), -1)
    maxs, mins = flat.max(dim=1).values, flat.min(dim=1).values
    return (upsampled - mins[:, None, None]) / (maxs - mins + 1e-8)[:, None, None]


def _masked_inputs(image_hwc: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Image (H, W, 3) times masks (k, H, W) -> (k, 3, H, W) laid out channels-last, in one write.

    Multiplying in HWC order and permuting the view gives the channels-last layout the
    convolutions want without the extra copy that `.contiguous(memory_format=...)` would make.
    """
    return (masks[..., None] * image_hwc).permute(0, 3, 1, 2)


@dataclass
class PassPlan:
    """Which channels need their own forward pass, and which reuse another's score."""

    constant: torch.Tensor  # indices of channels whose mask is all zeros (one shared pass)
    distinct: torch.Tensor  # one channel index per distinct non-constant activation map
    copies: torch.Tensor  # for each non-constant channel, the position of its map in `distinct`
    varying: torch.Tensor  # indices of the non-constant channels

    @property
    def forward_passes(self) -> int:
        return int(self.distinct.numel()) + (1 if self.constant.numel() else 0)


def plan_passes(activations: torch.Tensor, size: tuple[int, int]) -> PassPlan:
    """Group channels so that no two forward passes see the same masked input."""
    is_constant = _constant_channels(activations, size)
    varying = (~is_constant).nonzero().flatten()
    flat = activations[varying].flatten(1)
    if varying.numel():
        _, copies = torch.unique(flat, dim=0, return_inverse=True)
        first = torch.full((int(copies.max()) + 1,), varying.numel(), dtype=torch.long, device=flat.device)
        first.scatter_reduce_(0, copies, torch.arange(varying.numel(), device=flat.device), reduce="amin")
        distinct = varying[first]
    else:
        copies = distinct = varying
    return PassPlan(is_constant.nonzero().flatten(), distinct, copies, varying)


class ScoreCAMMethod(ChannelCAMMethod):
    name, title, core, menu_rank = "scorecam", "Score-CAM", True, 20
    # One masked pass per distinct channel: the heaviest on a CPU. On a GPU it goes before LIME, whose
    # CPU-bound segmentation (started ahead by prefetch) overlaps its passes.
    cost_rank, gpu_cost_rank = 90, 75
    reference_class = ScoreCAM

    def __init__(
        self,
        target_layer: str | None = None,
        batch_size: int | None = None,
        reference: bool = False,
        autocast: bool = False,
    ) -> None:
        super().__init__(target_layer, batch_size, reference)
        self.autocast = autocast

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "autocast": self.autocast}

    def fast_path(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        model, layer = subject.model, subject.model.layer(self.target_layer)
        batch = subject.tensor
        with model.lock:
            activations, logits = layer_activations(model, layer, batch)
        size = (batch.shape[-2], batch.shape[-1])
        plan = plan_passes(activations[0], size)
        scores = self._channel_scores(subject, activations[0], batch, plan)
        weights = torch.softmax(scores.float(), dim=-1).cpu().numpy()
        saliency = weighted_cam_map(weights, activations[0].cpu().numpy(), subject.crop.shape[:2])
        extras = {
            "logits": logits[0].cpu().numpy(),
            "channels": int(activations.size(1)),
            "constant_channels": int(plan.constant.numel()),
            "duplicate_channels": int(plan.varying.numel() - plan.distinct.numel()),
            "forward_passes": 1 + plan.forward_passes,
        }
        return saliency, extras

    @torch.inference_mode()
    def _channel_scores(
        self, subject: Subject, activations: torch.Tensor, batch: torch.Tensor, plan: PassPlan
    ) -> torch.Tensor:
        size = (batch.shape[-2], batch.shape[-1])
        module, target = subject.model.inference_module, subject.required_target()
        # One map per pass: each distinct varying channel, then (if any) an all-zero map standing for the
        # constant channels, whose masks are all zeros. It rides in the last batch instead of a pass of its own.
        maps = activations[plan.distinct]
        if plan.constant.numel():
            maps = torch.cat([maps, torch.zeros_like(activations[:1])])
        image_hwc = batch[0].permute(1, 2, 0).contiguous()

        def score_all(step: int) -> torch.Tensor:  # restartable: run_with_backoff may call it again, smaller
            map_scores = torch.empty(maps.size(0), device=activations.device)
            for start in range(0, maps.size(0), step):
                subject.raise_if_cancelled()
                masked = _masked_inputs(image_hwc, _masks_for(maps[start : start + step], size))
                map_scores[start : start + step] = self._scores(module, masked, target)
            return map_scores

        map_scores = run_with_backoff(score_all, self.batch_size or default_batch_size(batch.device))
        scores = torch.empty(activations.size(0), device=activations.device)
        if plan.varying.numel():
            scores[plan.varying] = map_scores[plan.copies]
        if plan.constant.numel():
            scores[plan.constant] = map_scores[-1]
        return scores

    def _scores(self, module: torch.nn.Module, inputs: torch.Tensor, target: int) -> torch.Tensor:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        if not self.autocast:
            return module(inputs)[:, target].float()
        dtype = torch.float16 if inputs.device.type == "cuda" else torch.bfloat16
        with torch.autocast(inputs.device.type, dtype=dtype):
            return module(inputs)[:, target].float()


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
