"""Gradient-based CAMs (Grad-CAM and its relatives) through the grad-cam package.

Each is one forward and one backward pass. The shared model's parameters are frozen, so the
input is made to require grad instead; the activation gradients, and so the maps, are the same.
The forward pass also serves as the prediction: given no target, grad-cam explains the top class
of that pass, and the pipeline reads the class probabilities from its logits.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.methods.base import MethodOptions, SaliencyMethod, Subject


class GradientCAMMethod(SaliencyMethod):
    """A grad-cam class run once at the target layer, hooks released when it returns."""

    cam_class: ClassVar[type[BaseCAM]]
    shares_prediction = True

    def __init__(self, target_layer: str | None = None, aug_smooth: bool = False, eigen_smooth: bool = False) -> None:
        self.target_layer = target_layer
        self.aug_smooth = aug_smooth
        self.eigen_smooth = eigen_smooth

    @classmethod
    def from_options(cls, options: MethodOptions) -> Self:
        return cls(target_layer=options.target_layer)

    def describe(self) -> dict[str, Any]:
        return {"target_layer": self.target_layer, "aug_smooth": self.aug_smooth, "eigen_smooth": self.eigen_smooth}

    def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        model = subject.model
        with model.lock:
            cam = self.cam_class(model=model.module, target_layers=[model.layer(self.target_layer)])
            cam.compute_input_gradient = True
            try:
                with torch.enable_grad():
                    maps = cam(
                        input_tensor=subject.tensor,
                        targets=None if subject.target is None else [ClassifierOutputTarget(subject.target)],
                        aug_smooth=self.aug_smooth,
                        eigen_smooth=self.eigen_smooth,
                    )
                logits = cam.outputs.detach()[0].cpu().numpy()
            finally:
                cam.activations_and_grads.release()
        target = int(np.argmax(logits)) if subject.target is None else subject.target  # grad-cam's own choice
        return maps[0], {"logits": logits, "target": target}


# The family: Grad-CAM is core, the others are extras. Each class registers itself where it is defined.
class GradCAMMethod(GradientCAMMethod):
    name, title, cam_class = "gradcam", "Grad-CAM", GradCAM
    cost_rank, core, menu_rank = 10, True, 10


class GradCAMPlusPlusMethod(GradientCAMMethod):
    name, title, cam_class = "gradcampp", "Grad-CAM++", GradCAMPlusPlus
    cost_rank, menu_rank = 20, 10


class XGradCAMMethod(GradientCAMMethod):
    name, title, cam_class = "xgradcam", "XGrad-CAM", XGradCAM
    cost_rank, menu_rank = 30, 20


class EigenCAMMethod(GradientCAMMethod):
    name, title, cam_class = "eigencam", "EigenCAM", EigenCAM
    cost_rank, menu_rank = 40, 30


class LayerCAMMethod(GradientCAMMethod):
    name, title, cam_class = "layercam", "LayerCAM", LayerCAM
    cost_rank, menu_rank = 50, 40


class HiResCAMMethod(GradientCAMMethod):
    name, title, cam_class = "hirescam", "HiResCAM", HiResCAM
    cost_rank, menu_rank = 60, 50
