"""The fast paths on a GPU: same maps as grad-cam and lime there, in exact float32, no hooks left.

Skipped where there is no CUDA device (CI has none); run on a GPU machine with
`python -m pytest tests/test_cuda.py`. Speed is the benchmark's business, not this file's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lime.lime_image import LimeImageExplainer
from pytorch_grad_cam import AblationCAM, GradCAM, ScoreCAM
from reference import assert_same_lime, grad_cam_map, trainable_copy

from explainers.engine import precision
from explainers.methods import Subject, create_method
from explainers.methods.ablationcam import AblationCAMMethod
from explainers.methods.lime import LimeMethod, classifier_for
from explainers.methods.scorecam import ScoreCAMMethod

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TARGET = 207


@pytest.fixture(scope="module")
def cuda_model():
    from explainers.engine.models import load_model

    return load_model("resnet18", "random", "cuda")


def _no_hooks(module: torch.nn.Module) -> bool:
    return not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in module.modules())


def test_loading_on_cuda_turns_tf32_off(cuda_model):
    """PyTorch's default lets cuDNN use TF32; the maps must be float32's, so loading turns it off."""
    from explainers.engine.models import load_model

    assert not precision.tf32_enabled()
    precision.configure(True)
    try:
        load_model("resnet18", "random", "cuda")
        assert torch.backends.cudnn.allow_tf32
    finally:
        precision.configure(None)
        load_model("resnet18", "random", "cuda")
    assert not precision.tf32_enabled()


@pytest.mark.parametrize(
    ("method", "cam_class"),
    [("gradcam", GradCAM), ("ablationcam", AblationCAM), ("scorecam", ScoreCAM)],
)
def test_cams_equal_grad_cam_on_cuda(cuda_model, photo_crop, method, cam_class):
    ours = create_method(method).explain(Subject(cuda_model, photo_crop, TARGET))
    tensor = cuda_model.to_tensor(photo_crop)
    theirs = grad_cam_map(cam_class, trainable_copy(cuda_model.module), "layer4[-1]", tensor, TARGET)
    assert np.abs(ours.map - theirs).max() <= 1e-4
    assert _no_hooks(cuda_model.module) and _no_hooks(cuda_model.inference_module)


def test_scorecam_and_ablationcam_mid_network_on_cuda(cuda_model, photo_crop):
    """layer4[0]: Score-CAM's general path and Ablation-CAM's torch.fx tail, on the device."""
    tensor = cuda_model.to_tensor(photo_crop)
    reference = trainable_copy(cuda_model.module)  # grad-cam's users hold the network with trainable parameters
    for cls, cam_class in ((ScoreCAMMethod, ScoreCAM), (AblationCAMMethod, AblationCAM)):
        ours = cls(target_layer="layer4[0]").explain(Subject(cuda_model, photo_crop, TARGET))
        theirs = grad_cam_map(cam_class, reference, "layer4[0]", tensor, TARGET)
        assert np.abs(ours.map - theirs).max() <= 1e-4, cls.__name__


def test_lime_on_cuda_equals_lime(cuda_model, photo_crop):
    """Perturbations built on the GPU, segmentation prefetched: lime's segments, weights and intercept."""
    params = {"num_samples": 300, "top_labels": None, "labels": (TARGET,), "random_seed": 3}
    method = LimeMethod(**params)
    subject = Subject(cuda_model, photo_crop, TARGET)
    method.prefetch(subject)
    ours = method.explain(subject)
    plain = classifier_for(cuda_model, batch_size=10, plain=True)  # the classifier a lime user writes
    reference = LimeImageExplainer(random_state=3).explain_instance(photo_crop, plain, **params)
    assert_same_lime(ours.extras["segments"], ours.extras["weights"], reference, TARGET, rel=1e-3, tol=1e-5)
    assert ours.extras["intercept"] == pytest.approx(reference.intercept[TARGET], rel=1e-3, abs=1e-5)
