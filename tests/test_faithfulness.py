"""Faithfulness and sanity metrics: equal to torchcam's and grad-cam's, right on planted truth, one-line errors."""

from __future__ import annotations

import contextlib
from functools import partial

import numpy as np
import pytest
import torch
from lime.wrappers.scikit_image import SegmentationAlgorithm
from planted import patch_image
from pytorch_grad_cam.metrics.perturbation_confidence import RemoveLeastRelevantFirst, RemoveMostRelevantFirst
from pytorch_grad_cam.metrics.road import NoisyLinearImputer, ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from scipy.ndimage import distance_transform_edt
from torchcam.metrics import DeletionInsertionMetric

from explainers.errors import XaiLensError
from explainers.faithfulness import evaluate, parse_metrics
from explainers.faithfulness.deletion_insertion import baseline_for, check_steps, deletion_insertion
from explainers.faithfulness.randomization import (
    UNCHANGED_SPEARMAN,
    check_stages,
    default_stages,
    iter_randomized,
    randomization_cascade,
)
from explainers.faithfulness.road import PERCENTILES, road_combined, road_images
from explainers.methods import CORE_METHODS, SaliencyMethod, Subject, create_method


class FixedMap:
    """torchcam's CAM-extractor protocol, answering with a given map: its metric then scores our map."""

    def __init__(self, module: torch.nn.Module, saliency_map: np.ndarray) -> None:
        self.model = module
        self._map = torch.from_numpy(saliency_map)[None]

    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs):
        return [self._map]

    def fuse_cams(self, cams):
        return cams[0]

    @contextlib.contextmanager
    def _hooks_off(self):
        yield


def smooth_map(size: int, seed: int, plateau: float = 0.0) -> np.ndarray:
    """A smooth [0,1] map (two blobs); `plateau` > 0 ties the top values, as clipped CAMs tie."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / size
    values = np.zeros((size, size))
    for _ in range(2):
        cy, cx, width = rng.uniform(0.2, 0.8, 3)
        values += np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (0.1 * width))
    values = values / values.max()
    if plateau:
        values = np.minimum(values, 1 - plateau) / (1 - plateau)
    return values.astype(np.float32)


# --- equality with the reference libraries (random-weights ResNet18) ---


@pytest.mark.parametrize("baseline", ["zeros", "blur"])
@pytest.mark.parametrize("steps", [4, 7])
def test_deletion_insertion_equal_torchcam(resnet18_random, reference_module, photo_crop, baseline, steps):
    tensor = resnet18_random.to_tensor(photo_crop)
    saliency_map = smooth_map(224, seed=steps, plateau=0.2)
    target = int(torch.argmax(resnet18_random.probabilities(tensor)))
    probability = float(resnet18_random.probabilities(tensor)[0, target])
    ours = deletion_insertion(
        resnet18_random, tensor, saliency_map, target, probability, steps=steps, baseline=baseline
    )
    reference = DeletionInsertionMetric(
        FixedMap(reference_module, saliency_map),
        partial(torch.softmax, dim=-1),
        steps=steps,
        baseline=partial(baseline_for, baseline=baseline),
    )
    reference.update(tensor, class_idx=target)
    expected = reference.summary()
    # Within 1e-4, and (as a random model's probabilities are ~1e-3) within 0.1% of the value too.
    assert ours.deletion_auc == pytest.approx(expected["deletion_auc"], abs=1e-4)
    assert ours.deletion_auc == pytest.approx(expected["deletion_auc"], rel=1e-3)
    assert ours.insertion_auc == pytest.approx(expected["insertion_auc"], abs=1e-4)
    assert ours.insertion_auc == pytest.approx(expected["insertion_auc"], rel=1e-3)
    assert ours.passes == 2 * steps - 1  # 224*224 splits into `steps` whole intervals for these steps


def test_road_equals_grad_cam(resnet18_random, reference_module, photo_crop):
    """A 64x64 input keeps grad-cam's sparse solves quick; the map has large holes and tied top values."""
    crop = photo_crop[::2, ::2][24:88, 24:88]
    tensor = resnet18_random.to_tensor(crop)
    saliency_map = smooth_map(64, seed=3, plateau=0.05)
    target = 7
    ours, passes = road_combined(resnet18_random, tensor, saliency_map, target, seed=11)
    torch.manual_seed(11)  # grad-cam draws its imputation noise from the global generator
    expected = ROADCombined()(tensor, saliency_map[None], [ClassifierOutputSoftmaxTarget(target)], reference_module)
    assert ours == pytest.approx(float(expected[0]), abs=1e-4)
    assert ours == pytest.approx(float(expected[0]), rel=1e-3)
    assert passes == 2 * len(PERCENTILES)


def test_road_imputed_images_equal_grad_cams(photo_crop):
    """The images themselves, noise included, as grad-cam imputes them at every percentile."""
    tensor = torch.from_numpy(photo_crop[:48, :48].transpose(2, 0, 1) / 255.0).float()[None]
    saliency_map = smooth_map(48, seed=5, plateau=0.05)
    ours = road_images(tensor, saliency_map, seed=2)
    torch.manual_seed(2)
    expected = [
        removal(p, NoisyLinearImputer())(tensor[0], torch.from_numpy(cam))
        for removal, cam in ((RemoveLeastRelevantFirst, saliency_map), (RemoveMostRelevantFirst, saliency_map))
        for p in PERCENTILES
    ]
    torch.testing.assert_close(ours, torch.stack(expected), atol=1e-5, rtol=0)


def test_road_with_every_pixel_tied_still_gives_a_number(resnet18_random, photo_crop):
    """A flat map removes everything at some percentile (grad-cam returns NaN there); ours stays finite."""
    tensor = resnet18_random.to_tensor(photo_crop[:64, :64])
    images = road_images(tensor, np.zeros((64, 64), np.float32))
    assert torch.isfinite(images).all()


# --- planted truth: the map that marks the planted patch is the most faithful ---


@pytest.fixture(scope="module")
def planted_maps(planted):
    """At half size (112 px) to keep ROAD's solves quick: the planted net has only pooling between."""
    image, truth = patch_image(30, 110)
    image, truth = image[::2, ::2].copy(), truth[::2, ::2]
    true_map = (1 / (1 + distance_transform_edt(~truth))).astype(np.float32)  # 1 on the patch, falling off
    maps = {
        "true": true_map,
        "random": np.random.default_rng(0).random(truth.shape).astype(np.float32),
        "inverted": 1 - true_map,
    }
    probability = float(planted.probabilities(planted.to_tensor(image))[0, 1])
    return evaluate(planted, image, 1, probability, maps, "deletion,insertion,road")


def test_planted_true_map_wins_deletion_insertion_and_road(planted_maps):
    true, random_map, inverted = (planted_maps[name].values for name in ("true", "random", "inverted"))
    for other in (random_map, inverted):
        assert true["deletion_auc"] < other["deletion_auc"] - 0.1
        assert true["insertion_auc"] > other["insertion_auc"] + 0.1
        assert true["road"] > other["road"] + 0.1
    assert planted_maps["true"].passes == (2 * 20 - 1) + 2 * len(PERCENTILES)


class ImageBrightness(SaliencyMethod):
    """A 'method' that never asks the model: it must fail the randomisation check. (No `name`: not registered.)"""

    title, cost_rank = "Brightness", 0

    def __init__(self) -> None:
        self.name = "brightness"

    def compute(self, subject: Subject):
        return subject.crop.mean(axis=2) / 255.0, {}


STAGES = ["fc", "layer4", "layer3", "stem[0]"]


def test_planted_every_core_method_passes_randomisation_and_a_model_blind_one_fails(planted):
    """Re-initialising the network from fc down to the redness detector (which carries the planted decision)
    changes every core method's map; a method that never asks the model keeps its map exactly."""
    image, _ = patch_image(60, 40)
    grid = SegmentationAlgorithm("slic", n_segments=49, compactness=30, start_label=0)
    lime = {"num_samples": 100, "hide_color": 0, "segmentation_fn": grid, "random_seed": 1}
    methods = {name: create_method(name, lime_params=lime) for name in CORE_METHODS}
    methods["brightness"] = ImageBrightness()
    originals = {name: method.explain(Subject(planted, image, 1)).map for name, method in methods.items()}
    cascades = randomization_cascade(planted, image, 1, originals, methods, stages=STAGES)
    for name in CORE_METHODS:
        assert cascades[name].stages == STAGES and len(cascades[name].maps) == len(STAGES)
        assert cascades[name].final_spearman < UNCHANGED_SPEARMAN, name
    assert cascades["brightness"].final_spearman == pytest.approx(1.0)
    assert cascades["brightness"].final_ssim == pytest.approx(1.0)


def test_randomisation_is_seeded_cascades_and_leaves_the_model_alone(resnet18_random):
    before = {k: v.clone() for k, v in resnet18_random.module.state_dict().items()}
    stages = default_stages(resnet18_random.module)
    assert stages == ["fc", "layer4[1]", "layer4[0]"]
    first = [dict(m.module.state_dict()) for _, m in iter_randomized(resnet18_random, stages, seed=3)]
    torch.manual_seed(99)  # the global generator moves on; the seed alone must decide the weights
    torch.rand(10)
    again = [dict(m.module.state_dict()) for _, m in iter_randomized(resnet18_random, stages, seed=3)]
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    other = dict(next(iter_randomized(resnet18_random, stages, seed=4))[1].module.state_dict())
    assert not torch.equal(other["fc.weight"], first[0]["fc.weight"])
    # cumulative: the last stage keeps fc random and leaves layers below layer4 as they were
    last = first[-1]
    assert not torch.equal(last["fc.weight"], before["fc.weight"])
    assert not torch.equal(last["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])
    assert torch.equal(last["layer3.1.conv2.weight"], before["layer3.1.conv2.weight"])
    assert all(torch.equal(v, before[k]) for k, v in resnet18_random.module.state_dict().items())


# --- bad input: one line each ---


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_metrics("deletion,x"), "unknown metric 'x'; choose from deletion, insertion, road, sanity"),
        (lambda: parse_metrics(" , "), "no metric chosen"),
        (lambda: check_steps(0), "steps must be a whole number from 1 to 500"),
        (lambda: check_steps(501), "steps must be a whole number from 1 to 500"),
        (lambda: check_steps(2.5), "steps must be a whole number from 1 to 500"),
        (lambda: check_steps(True), "steps must be a whole number from 1 to 500"),
    ],
)
def test_bad_names_and_steps_get_one_line(call, message):
    with pytest.raises(XaiLensError) as error:
        call()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_bad_baseline_and_layer_get_one_line(resnet18_random, photo_crop):
    maps = {"gradcam": np.zeros((224, 224), np.float32)}
    with pytest.raises(XaiLensError, match="unknown baseline 'grey'; choose from zeros, blur"):
        evaluate(resnet18_random, photo_crop, 0, 0.5, maps, "deletion", baseline="grey")
    with pytest.raises(XaiLensError, match="Layer 'layer9' not found"):
        check_stages(resnet18_random, ["fc", "layer9"])
    with pytest.raises(XaiLensError, match="ResNet-style model"):
        default_stages(torch.nn.Sequential(torch.nn.Linear(2, 2)))
