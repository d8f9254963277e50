"""Our maps equal the reference libraries' on the same inputs (random-weights ResNet18, planted net)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lime.lime_image import LimeImageExplainer
from pytorch_grad_cam import AblationCAM, GradCAM, ScoreCAM
from pytorch_grad_cam.ablation_layer import AblationLayer
from reference import assert_same_lime, grad_cam_map

from explainers.methods import Subject, create_method
from explainers.methods.ablationcam import AblationCAMMethod, ablation_values
from explainers.methods.lime import classifier_for
from explainers.methods.scorecam import ScoreCAMMethod

TARGET = 207


def test_gradcam_equals_grad_cam(resnet18_random, reference_module, photo_crop):
    ours = create_method("gradcam").explain(Subject(resnet18_random, photo_crop, TARGET)).map
    theirs = grad_cam_map(GradCAM, reference_module, "layer4[-1]", resnet18_random.to_tensor(photo_crop), TARGET)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_ablationcam_closed_form_equals_grad_cam(resnet18_random, reference_module, photo_crop):
    method = AblationCAMMethod()
    saliency = method.explain(Subject(resnet18_random, photo_crop, TARGET))
    assert saliency.extras["closed_form"]
    theirs = grad_cam_map(AblationCAM, reference_module, "layer4[-1]", resnet18_random.to_tensor(photo_crop), TARGET)
    assert np.abs(saliency.map - theirs).max() <= 1e-4


@pytest.mark.parametrize("layer", ["layer3", "layer4"])
def test_ablationcam_generic_path_equals_grad_cam(planted, layer):
    from planted import patch_image

    image, _ = patch_image(40, 100)
    ours = AblationCAMMethod(target_layer=layer, batch_size=3)
    saliency = ours.explain(Subject(planted, image, 1))
    assert saliency.extras["closed_form"] == (layer == "layer4")
    theirs = grad_cam_map(AblationCAM, planted.module, layer, planted.to_tensor(image), 1)
    assert np.abs(saliency.map - theirs).max() <= 1e-4


@pytest.mark.parametrize("minimum", [0.0, -2.5])
def test_ablation_values_match_grad_cams_ablation_layer(minimum):
    generator = torch.Generator().manual_seed(0)
    activations = torch.rand(40, 3, 3, generator=generator) + 0.1
    activations[5, 1, 1] = minimum
    layer = AblationLayer()
    layer.activations_to_be_ablated(activations.numpy())
    written = []
    for start in range(0, 40, 32):
        count = min(32, 40 - start)
        layer.set_next_batch(0, activations[None], count)
        output = layer(None)
        written += [float(output[i, layer.indices[i]].mean()) for i in range(count)]
        layer.indices = layer.indices[count:]
    np.testing.assert_allclose(ablation_values(activations), written, rtol=1e-6)


def test_scorecam_fast_path_equals_grad_cam(resnet18_random, reference_module, photo_crop):
    ours = ScoreCAMMethod(batch_size=64).explain(Subject(resnet18_random, photo_crop, TARGET)).map
    theirs = grad_cam_map(ScoreCAM, reference_module, "layer4[-1]", resnet18_random.to_tensor(photo_crop), TARGET)
    assert np.abs(ours - theirs).max() <= 1e-4


def test_scorecam_shares_one_pass_between_constant_channels(planted):
    """Three of the planted net's eight layer4 channels are switched off (constant zero): the five live ones get
    a masked pass each, the three dead ones share one, and the map still equals grad-cam's (which runs all eight)."""
    import copy

    from planted import patch_image

    from explainers.engine.models import LoadedModel

    module = copy.deepcopy(planted.module)
    with torch.no_grad():
        module.layer4[0].weight[:3] = 0.0
    model = LoadedModel(planted.spec, "planted", module, planted.categories, torch.device("cpu"))
    image, _ = patch_image(40, 120)
    images_seen = []
    watched = {id(m): m for m in (model.module, model.inference_module, model.features_module) if m is not None}
    count = lambda _module, inputs, _output: images_seen.append(len(inputs[0]))  # noqa: E731
    handles = [m.register_forward_hook(count) for m in watched.values()]
    try:
        saliency = ScoreCAMMethod(target_layer="layer4").explain(Subject(model, image, 1))
    finally:
        for handle in handles:
            handle.remove()
    assert saliency.extras["constant_channels"] == 3
    assert sum(images_seen) == 1 + 5 + 1 == saliency.extras["forward_passes"]  # activations, live, shared dead
    theirs = grad_cam_map(ScoreCAM, module, "layer4", model.to_tensor(image), 1)
    assert theirs.max() > 0.5  # a real map, not zero by construction
    np.testing.assert_allclose(saliency.map, theirs, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        {"num_samples": 120, "random_seed": 3, "top_labels": 5},
        {"num_samples": 90, "hide_color": 0, "top_labels": None, "labels": (TARGET,), "batch_size": 7},
    ],
)
def test_lime_equals_lime(resnet18_random, photo_crop, params):
    ours = create_method("lime", lime_params=params).explain(Subject(resnet18_random, photo_crop, TARGET))
    method = create_method("lime", lime_params=params)
    probabilities = classifier_for(resnet18_random)(photo_crop[None])[0]
    kwargs = method.call_kwargs(probabilities, TARGET)
    explainer = LimeImageExplainer(random_state=method.explainer_seed)
    theirs = explainer.explain_instance(photo_crop, classifier_for(resnet18_random, batch_size=10), **kwargs)
    assert_same_lime(ours.extras["segments"], ours.extras["weights"], theirs, TARGET)
    assert ours.extras["intercept"] == pytest.approx(float(theirs.intercept[TARGET]), rel=1e-4, abs=1e-6)


def test_lime_same_seed_same_result_different_seed_different_samples(resnet18_random, photo_crop):
    params = {"num_samples": 60, "random_seed": 11}
    first = create_method("lime", lime_params=params).explain(Subject(resnet18_random, photo_crop, TARGET))
    second = create_method("lime", lime_params=params).explain(Subject(resnet18_random, photo_crop, TARGET))
    other = create_method("lime", lime_params={**params, "random_seed": 12}).explain(
        Subject(resnet18_random, photo_crop, TARGET)
    )
    np.testing.assert_array_equal(first.map, second.map)
    assert first.extras["weights"] != other.extras["weights"]


def test_no_hooks_left_on_the_shared_model(planted):
    from planted import patch_image

    image, _ = patch_image(30, 30)
    for name in ("gradcam", "scorecam", "ablationcam", "eigencam", "layercam"):
        create_method(name).explain(Subject(planted, image, 1))
    hooked = [m for m in planted.module.modules() if m._forward_hooks or m._backward_hooks or m._forward_pre_hooks]
    assert not hooked
