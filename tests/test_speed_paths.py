"""Fast paths give the reference libraries' answers: fx tail, its fallback, Score-CAM pass sharing, LIME on tensors.

Small inputs keep this file fast; speed itself is measured by `python -m tools.bench`.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from lime.lime_image import LimeImageExplainer
from pytorch_grad_cam import AblationCAM, ScoreCAM
from reference import assert_same_lime, grad_cam_map
from torch import nn

from explainers.engine.inference import fold_for_inference
from explainers.engine.models import LoadedModel
from explainers.methods import Subject, by_cost, create_method
from explainers.methods.ablationcam import AblationCAMMethod
from explainers.methods.fx_tail import TailUnavailableError, split_after
from explainers.methods.lime import BatchedLimeExplainer, LimeMethod, classifier_for
from explainers.methods.scorecam import ScoreCAMMethod, plan_passes

TARGET = 207


def _no_hooks(module: nn.Module) -> bool:
    return not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in module.modules())


@pytest.fixture(scope="module")
def small_crop(photo_crop):
    """A 64x64 crop: ResNet18's layer3 is then 4x4, so grad-cam's 256 full passes stay quick."""
    return np.ascontiguousarray(photo_crop[::3, ::3][:64, :64])


@pytest.mark.parametrize("layer", ["layer3", "layer4[0]", "layer4[0].conv2"])
def test_fx_tail_ablationcam_equals_grad_cam_mid_network(resnet18_random, reference_module, small_crop, layer):
    saliency = AblationCAMMethod(target_layer=layer).explain(Subject(resnet18_random, small_crop, TARGET))
    assert not saliency.extras["closed_form"]
    assert "torch.fx split" in saliency.extras["path"]
    tensor = resnet18_random.to_tensor(small_crop)
    theirs = grad_cam_map(AblationCAM, reference_module, layer, tensor, TARGET)
    assert np.abs(saliency.map - theirs).max() <= 1e-4
    assert _no_hooks(resnet18_random.module)


def test_fx_tail_reads_the_cached_residual_branch(resnet18_random, small_crop):
    """At layer4[0].conv2 the block's shortcut comes from before the layer: the tail takes it from the first pass."""
    layer = resnet18_random.layer("layer4[0].conv2")
    tensor = resnet18_random.to_tensor(small_crop)
    tail = split_after(resnet18_random.module, layer, tensor)
    assert tail.frontier, "the shortcut branch should be a cached input of the tail"
    with torch.inference_mode():
        expected = resnet18_random.module(tensor)
        doubled = tail(tail.activations.repeat(3, 1, 1, 1))
    torch.testing.assert_close(doubled, expected.expand(3, -1), rtol=1e-4, atol=1e-4)


class _Untraceable(nn.Module):
    """The planted net with data-dependent control flow, which torch.fx cannot trace."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.layer3, self.layer4 = inner.layer3, inner.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inner.layer3(self.inner.stem(x))
        if x.sum() > -1:  # always true, but fx cannot know
            x = self.inner.layer4(x)
        return self.inner.fc(torch.flatten(self.inner.avgpool(x), 1))


def test_untraceable_model_falls_back_to_hooks_and_says_so(planted):
    from planted import patch_image

    module = _Untraceable(copy.deepcopy(planted.module)).eval()
    model = LoadedModel(planted.spec, "planted", module, planted.categories, torch.device("cpu"))
    image, _ = patch_image(40, 100)
    layer = model.layer("layer3")
    with pytest.raises(TailUnavailableError):
        split_after(module, layer, model.to_tensor(image))
    saliency = AblationCAMMethod(target_layer="layer3", batch_size=3).explain(Subject(model, image, 1))
    assert saliency.extras["path"].startswith("whole network per ablated batch (torch.fx could not trace")
    theirs = grad_cam_map(AblationCAM, module, "layer3", model.to_tensor(image), 1)
    assert np.abs(saliency.map - theirs).max() <= 1e-4
    assert _no_hooks(module)


def test_scorecam_runs_duplicate_channels_once_and_equals_grad_cam(planted):
    """The planted net's layer3 has four identical channels (all weights 1): one pass serves all four."""
    from planted import patch_image

    image, _ = patch_image(50, 60)
    saliency = ScoreCAMMethod(target_layer="layer3").explain(Subject(planted, image, 1))
    assert saliency.extras["duplicate_channels"] == 3
    assert saliency.extras["forward_passes"] == 2  # the activations, then one masked input
    theirs = grad_cam_map(ScoreCAM, planted.module, "layer3", planted.to_tensor(image), 1)
    np.testing.assert_allclose(saliency.map, theirs, atol=1e-5)


def test_pass_plan_groups_constant_and_duplicate_channels():
    generator = torch.Generator().manual_seed(1)
    activations = torch.rand(6, 5, 5, generator=generator)
    activations[1] = activations[4]  # a duplicate
    activations[2] = activations[5] = 0.0  # dead (a non-zero constant may interpolate to one-ulp ripples)
    plan = plan_passes(activations, (20, 20))
    assert set(plan.constant.tolist()) == {2, 5}
    assert plan.distinct.numel() == 3 and plan.forward_passes == 4
    assert set(plan.distinct.tolist()) == {0, 1, 3}
    assert torch.equal(activations[plan.varying], activations[plan.distinct][plan.copies])


def _expected_forward_passes(module: nn.Module, layer: str, batch: torch.Tensor) -> int:
    """Counted the plain way: one pass for the activations, one per distinct non-constant upsampled channel
    (compared as raw bytes), and one shared by all constant channels if there are any."""
    from explainers.engine.models import resolve_layer

    outputs = []
    handle = resolve_layer(module, layer).register_forward_hook(lambda _m, _i, output: outputs.append(output))
    with torch.inference_mode():
        module(batch)
    handle.remove()
    activations = outputs[0][0]
    upsampled = torch.nn.functional.interpolate(
        activations[None], size=batch.shape[-2:], mode="bilinear", align_corners=True
    )[0]
    constant = [bool(channel.max() == channel.min()) for channel in upsampled]
    distinct = {activations[k].numpy().tobytes() for k in range(len(constant)) if not constant[k]}
    return 1 + len(distinct) + (1 if any(constant) else 0)


def test_scorecam_with_duplicates_equals_grad_cam_on_resnet(resnet18_random, reference_module, small_crop):
    """Random ResNet18 at layer4[-1]: dead channels share a pass, and the map still equals grad-cam's."""
    saliency = ScoreCAMMethod(batch_size=128).explain(Subject(resnet18_random, small_crop, TARGET))
    expected = _expected_forward_passes(reference_module, "layer4[-1]", resnet18_random.to_tensor(small_crop))
    assert saliency.extras["constant_channels"] > 0  # random weights leave dead channels: the sharing is exercised
    assert saliency.extras["forward_passes"] == expected < 1 + 512
    theirs = grad_cam_map(
        ScoreCAM, reference_module, "layer4[-1]", resnet18_random.to_tensor(small_crop), TARGET, batch_size=128
    )
    assert np.abs(saliency.map - theirs).max() <= 1e-4


def test_lime_tensor_path_equals_lime(resnet18_random, small_crop):
    """The device path (forced on the CPU here) draws the same samples and gets lime's weights."""
    params = {"num_samples": 40, "top_labels": None, "labels": (TARGET,), "random_seed": 5}
    classifier = classifier_for(resnet18_random)
    ours = BatchedLimeExplainer(random_state=2, chunk_size=16, device=torch.device("cpu"))
    theirs = LimeImageExplainer(random_state=2)
    mine = ours.explain_instance(small_crop, classifier, **params)
    plain = classifier_for(resnet18_random, batch_size=10, plain=True)  # the classifier a lime user writes
    reference = theirs.explain_instance(small_crop, plain, **params)
    assert_same_lime(mine.segments, dict(mine.local_exp[TARGET]), reference, TARGET)


def test_no_hooks_left_after_every_fast_path(resnet18_random, small_crop):
    subject = Subject(resnet18_random, small_crop, TARGET)
    for layer in (None, "layer4[0]"):
        AblationCAMMethod(target_layer=layer).explain(subject)
    ScoreCAMMethod(target_layer="layer4[0]").explain(subject)
    create_method("gradcam").explain(subject)
    create_method("lime", lime_params={"num_samples": 20}).explain(subject)
    assert _no_hooks(resnet18_random.module)
    assert _no_hooks(resnet18_random.inference_module)


def test_inference_copy_folds_batchnorm_and_gives_the_same_logits(resnet18_random, small_crop):
    """The heavy methods' copy has no BatchNorm left, equal outputs, and leaves the hookable original alone."""
    folded, original = resnet18_random.inference_module, resnet18_random.module
    assert folded is not original
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in original.modules()) == 20
    batch = resnet18_random.to_tensor(np.stack([small_crop, small_crop[::-1]]))
    with torch.inference_mode():
        expected = original(batch)
        torch.testing.assert_close(folded(batch.contiguous(memory_format=torch.channels_last)), expected)


def test_folding_leaves_untraceable_and_training_models_as_they_are(planted):
    untraceable = _Untraceable(copy.deepcopy(planted.module)).eval()
    assert fold_for_inference(untraceable) is untraceable
    training = copy.deepcopy(planted.module).train()
    assert fold_for_inference(training) is training


def test_gpu_order_puts_lime_after_scorecam():
    """On a GPU LIME's segmentation overlaps Score-CAM, so LIME comes last; on a CPU it comes before."""
    names = ["lime", "scorecam", "gradcam", "ablationcam"]
    assert by_cost(names, "cuda") == ["gradcam", "ablationcam", "scorecam", "lime"]
    assert by_cost(names, "cpu") == by_cost(names) == ["gradcam", "ablationcam", "lime", "scorecam"]


@pytest.mark.parametrize("random_seed", [None, 11])
def test_lime_prefetched_segmentation_gives_lime_s_explanation(resnet18_random, small_crop, random_seed):
    """Segments made ahead in a thread (the pipeline does this on a GPU) are the ones lime makes itself."""
    params = {"num_samples": 30, "top_labels": None, "labels": (TARGET,), "random_seed": random_seed}
    method = LimeMethod(explainer_seed=4, **params)
    subject = Subject(resnet18_random, small_crop, TARGET)
    method.prefetch(subject)
    ours = method.explain(subject)
    assert ours.extras["segmentation_s"] > 0
    plain = classifier_for(resnet18_random, batch_size=10, plain=True)
    theirs = LimeImageExplainer(random_state=4).explain_instance(small_crop, plain, **params)
    assert_same_lime(ours.extras["segments"], ours.extras["weights"], theirs, TARGET)


def test_prefetch_for_another_crop_is_not_used(resnet18_random, small_crop):
    """A prefetched segmentation belongs to one crop: explaining a different crop segments that one."""
    method = LimeMethod(num_samples=20, random_seed=1)
    method.prefetch(Subject(resnet18_random, small_crop, TARGET))
    flipped = np.ascontiguousarray(small_crop[::-1])
    saliency = method.explain(Subject(resnet18_random, flipped, TARGET))
    alone = LimeMethod(num_samples=20, random_seed=1).explain(Subject(resnet18_random, flipped, TARGET))
    np.testing.assert_array_equal(saliency.extras["segments"], alone.extras["segments"])


def test_features_view_gives_layer4_and_logits_without_hooks(resnet18_random, small_crop):
    """The hook-free (layer4 output, logits) pass through the folded copy equals a hooked pass on the original."""
    from explainers.methods.cam_common import activations_and_logits

    batch = resnet18_random.to_tensor(small_crop)
    features, logits = resnet18_random.features_module(batch.contiguous(memory_format=torch.channels_last))
    expected_features, expected_logits = activations_and_logits(
        resnet18_random.module, resnet18_random.layer("layer4[-1]"), batch
    )
    torch.testing.assert_close(features, expected_features)
    torch.testing.assert_close(logits, expected_logits)
    assert _no_hooks(resnet18_random.module) and _no_hooks(resnet18_random.features_module)


def test_features_view_is_absent_where_folding_was_skipped(planted):
    untraceable = _Untraceable(copy.deepcopy(planted.module)).eval()
    model = LoadedModel(planted.spec, "planted", untraceable, planted.categories, torch.device("cpu"))
    assert model.features_module is None  # the methods then hook the original
