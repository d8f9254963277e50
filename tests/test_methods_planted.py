"""Every method finds the planted red patch, wherever it is, and only there."""

from __future__ import annotations

import numpy as np
import pytest
from lime.wrappers.scikit_image import SegmentationAlgorithm
from planted import PATCH, patch_image

from explainers.comparison.agreement import iou
from explainers.comparison.masks import top_fraction_mask
from explainers.methods import Subject, create_method

POSITIONS = [(16, 24), (76, 76), (140, 136)]
CAMS = ["gradcam", "scorecam", "ablationcam", "gradcampp", "xgradcam", "layercam", "hirescam", "eigencam"]


def _explain(planted, name, position, **lime_params):
    image, truth = patch_image(*position)
    saliency = create_method(name, lime_params=lime_params).explain(Subject(planted, image, 1))
    return saliency, truth


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("name", CAMS)
def test_cam_mask_covers_the_planted_patch(planted, name, position):
    saliency, truth = _explain(planted, name, position)
    assert saliency.map.dtype == np.float32 and saliency.map.min() >= 0 and saliency.map.max() <= 1
    assert iou(top_fraction_mask(saliency.map, 0.10), truth) >= 0.5


@pytest.mark.parametrize("position", POSITIONS)
def test_lime_with_a_grid_segmentation_finds_the_patch(planted, position):
    grid = SegmentationAlgorithm("slic", n_segments=49, compactness=30, start_label=0)
    saliency, truth = _explain(
        planted, "lime", position, num_samples=300, hide_color=0, segmentation_fn=grid, random_seed=1
    )
    assert iou(top_fraction_mask(saliency.map, 0.10), truth) >= 0.5


def test_map_follows_the_patch_when_it_moves(planted):
    for name in ("gradcam", "ablationcam"):
        centres = []
        for position in POSITIONS:
            saliency, _ = _explain(planted, name, position)
            rows, cols = np.nonzero(top_fraction_mask(saliency.map, 0.10))
            centres.append((rows.mean(), cols.mean()))
        for (top, left), (row, col) in zip(POSITIONS, centres, strict=True):
            assert abs(row - (top + PATCH / 2)) < 12 and abs(col - (left + PATCH / 2)) < 12


def test_target_class_is_respected(planted):
    """Explaining "background" (which the patch never raises) must not single out the patch, as top-1 would."""
    image, truth = patch_image(76, 76)
    saliency = create_method("gradcam").explain(Subject(planted, image, 0))
    assert iou(top_fraction_mask(saliency.map, 0.10), truth) < 0.5
