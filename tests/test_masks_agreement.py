"""Binarisation rules and agreement metrics on maps and masks whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from explainers.comparison.agreement import dice, iou, matrix, pairwise
from explainers.comparison.masks import MaskRule, masks_for, parse_rule, top_fraction_mask
from explainers.errors import XaiLensError
from explainers.methods import Saliency


def _box(top, left, height, width, shape=(20, 20)):
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_iou_and_dice_of_overlapping_boxes():
    a, b = _box(0, 0, 10, 10), _box(5, 0, 10, 10)  # 100 px each, 50 shared, 150 in the union
    assert iou(a, b) == pytest.approx(50 / 150)
    assert dice(a, b) == pytest.approx(2 * 50 / 200)
    assert iou(a, a) == 1.0 and iou(a, _box(12, 12, 5, 5)) == 0.0


def test_pairwise_and_matrix_agree():
    masks = {"a": _box(0, 0, 10, 10), "b": _box(5, 0, 10, 10), "c": _box(0, 0, 10, 10)}
    pairs = pairwise(masks)
    names, values = matrix(masks)
    assert list(pairs) == ["a|b", "a|c", "b|c"] and names == ["a", "b", "c"]
    assert values[0, 1] == values[1, 0] == pairs["a|b"] and values[0, 2] == 1.0
    assert np.all(np.diag(values) == 1.0)


def test_top_fraction_keeps_that_share_of_a_ramp():
    ramp = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    mask = top_fraction_mask(ramp, 0.10)
    assert mask.sum() == 40 and mask.ravel()[-40:].all()


def test_top_fraction_keeps_ties_whole():
    plateau = np.zeros((10, 10), dtype=np.float32)
    plateau[:3] = 1.0  # 30% of pixels share the top value
    assert top_fraction_mask(plateau, 0.10).sum() == 30


def test_otsu_splits_a_bimodal_map():
    saliency = np.full((20, 20), 0.1, dtype=np.float32)
    saliency[_box(4, 4, 8, 8)] = 0.9
    masks = masks_for({"m": Saliency("m", saliency, 0.0)}, "otsu")
    np.testing.assert_array_equal(masks["m"], _box(4, 4, 8, 8))


def test_lime_top_matches_the_cam_area_to_limes():
    segments = np.repeat(np.arange(4), 100).reshape(20, 20)  # four 5-row bands
    lime = Saliency(
        "lime",
        np.zeros((20, 20), np.float32),
        0.0,
        extras={"segments": segments, "weights": {0: 0.5, 1: -0.2, 2: 0.9, 3: 0.1}},
    )
    ramp = Saliency("gradcam", np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20), 0.0)
    masks = masks_for({"gradcam": ramp, "lime": lime}, "lime-top:2")
    np.testing.assert_array_equal(masks["lime"], np.isin(segments, [0, 2]))
    assert masks["gradcam"].sum() == masks["lime"].sum() == 200


@pytest.mark.parametrize("text", ["top", "top:0", "top:1.5", "thresh:2", "lime-top:0", "lime-top:1.5", "best", "top:x"])
def test_bad_rules_are_one_line_errors(text):
    with pytest.raises(XaiLensError) as error:
        parse_rule(text)
    assert "\n" not in str(error.value)


def test_rules_parse():
    assert parse_rule("top:0.10") == MaskRule("top", 0.1)
    assert str(parse_rule("lime-top:5")) == "lime-top:5" and parse_rule("OTSU") == MaskRule("otsu")
