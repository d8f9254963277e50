"""Adding a method is one class in one file: it registers on definition and the whole library picks it up."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pytest
from planted import patch_image

from explainers.comparison.agreement import iou
from explainers.methods import CORE_METHODS, EXTRA_METHODS, METHODS, MethodOptions, SaliencyMethod, Subject, by_cost
from explainers.methods.cam_common import activations_and_logits, weighted_cam_map
from explainers.pipeline import explain_image, iter_explain


@pytest.fixture
def toy_cam():
    """A toy CAM (every channel weighted 1), declared like any method; forgotten again after the test."""

    class MeanChannelCAM(SaliencyMethod):
        name, title = "meancam", "Mean-channel CAM"
        cost_rank = 65  # after HiResCAM (60), before Ablation-CAM (70)

        def __init__(self, target_layer: str | None = None) -> None:
            self.target_layer = target_layer

        @classmethod
        def from_options(cls, options: MethodOptions) -> Self:
            return cls(target_layer=options.target_layer)

        def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
            layer = subject.model.layer(self.target_layer)
            activations, _ = activations_and_logits(subject.model.module, layer, subject.tensor)
            weights = np.ones(activations.size(1), dtype=np.float32)
            return weighted_cam_map(weights, activations[0].numpy(), subject.crop.shape[:2]), {}

    try:
        yield MeanChannelCAM
    finally:
        METHODS.pop("meancam", None)


def test_a_new_method_is_listed_runs_and_sorts_by_its_cost_rank(toy_cam, planted):
    assert METHODS["meancam"] is toy_cam
    assert list(METHODS)[-1] == "meancam"  # an extra (not core), after the extras' menu ranks
    from explainers import methods

    assert "meancam" in methods.EXTRA_METHODS and "meancam" not in methods.CORE_METHODS
    assert by_cost(["scorecam", "ablationcam", "meancam", "hirescam", "gradcam"]) == [
        "gradcam",
        "hirescam",
        "meancam",
        "ablationcam",
        "scorecam",
    ]
    image, truth = patch_image(60, 90)
    streamed = [step.latest for step in iter_explain(image, planted, "scorecam,meancam,ablationcam,gradcam", target=1)]
    assert streamed == ["gradcam", "meancam", "ablationcam", "scorecam"]

    explanation = explain_image(image, planted, "meancam", target=1, target_layer="layer4")
    assert explanation.saliency["meancam"].map.shape == (224, 224)
    assert iou(explanation.masks["meancam"], truth) >= 0.5  # the planted net only fires on the red patch
    assert "Mean-channel CAM" in explanation.caption("meancam")


def test_the_shipped_lists_come_from_the_registry():
    assert CORE_METHODS == ("gradcam", "scorecam", "ablationcam", "lime")
    assert EXTRA_METHODS == ("gradcampp", "xgradcam", "eigencam", "layercam", "hirescam")
    assert list(METHODS) == [*CORE_METHODS, *EXTRA_METHODS]


def test_a_second_method_with_a_taken_name_is_refused(toy_cam):
    with pytest.raises(TypeError, match="Two saliency methods are called 'meancam'"):

        class Impostor(SaliencyMethod):
            name, title, cost_rank = "meancam", "Impostor", 1

            def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
                raise NotImplementedError

    assert METHODS["meancam"] is toy_cam


def test_a_method_without_a_cost_rank_is_refused():
    with pytest.raises(TypeError, match="must declare cost_rank"):

        class Unranked(SaliencyMethod):
            name, title = "unranked", "Unranked"

            def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
                raise NotImplementedError

    assert "unranked" not in METHODS
