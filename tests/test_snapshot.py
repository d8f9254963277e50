"""ExplanationView: the plain-data result ZeroGPU functions return must pickle and carry the pictures."""

from __future__ import annotations

import pickle

import pytest

from explainers.outputs.exports import zip_folder
from explainers.outputs.snapshot import snapshot
from explainers.pipeline import iter_explain


def test_views_pickle_and_report_what_the_pipeline_still_has_to_run(resnet18_random, photo_crop):
    """On a CPU the documented run order is Grad-CAM, then LIME, then Score-CAM (README, "cheapest first"):
    after each map, the pipeline reports the methods still to come, and the view carries that across a pickle."""
    views, pending = [], []
    for explanation in iter_explain(
        photo_crop, resnet18_random, ["lime", "scorecam", "gradcam"], lime_params={"num_samples": 30}
    ):
        pending.append((explanation.latest, list(explanation.pending)))
        views.append(pickle.loads(pickle.dumps(snapshot(explanation))))
    assert pending == [("gradcam", ["lime", "scorecam"]), ("lime", ["scorecam"]), ("scorecam", [])]
    assert [view.pending for view in views] == [names for _, names in pending]
    first, second, last = views
    assert first.methods == ["gradcam"] and not first.done and first.iou_figure() is None
    assert second.methods == ["lime", "gradcam"] and second.iou_figure() is not None
    assert last.methods == ["lime", "scorecam", "gradcam"] and last.done
    assert last.overlays["lime"].shape == (224, 224, 3) and last.superpixels.shape == (224, 224, 3)
    assert last.iou_names == ["lime", "scorecam", "gradcam"]
    assert last.iou_values[0, 2] == pytest.approx(last.summary["iou"]["lime|gradcam"], abs=1e-6)


def test_a_caller_may_override_the_pending_list(planted):
    from planted import patch_image

    (explanation,) = iter_explain(patch_image(10, 10)[0], planted, ["gradcam"], target=1)
    assert snapshot(explanation).pending == [] and snapshot(explanation, pending=["lime"]).pending == ["lime"]


def test_zip_folder_holds_every_file(tmp_path):
    import zipfile

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    (tmp_path / "y.csv").write_text("y")
    with zipfile.ZipFile(zip_folder(tmp_path, tmp_path / "all.zip")) as archive:
        assert sorted(archive.namelist()) == ["a/x.txt", "y.csv"]
