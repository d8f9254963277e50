"""ExplanationView: the plain-data result ZeroGPU functions return must pickle and carry the pictures."""

from __future__ import annotations

import pickle

import pytest

from explainers.exports import zip_folder
from explainers.pipeline import iter_explain
from explainers.snapshot import snapshot


def test_views_pickle_and_track_pending(resnet18_random, photo_crop):
    views = []
    for explanation in iter_explain(photo_crop, resnet18_random, ["lime", "gradcam"], lime_params={"num_samples": 30}):
        views.append(pickle.loads(pickle.dumps(snapshot(explanation, pending=["lime"] if not views else []))))
    first, last = views
    assert first.methods == ["gradcam"] and first.pending == ["lime"] and first.iou_figure() is None
    assert last.methods == ["lime", "gradcam"] and last.done
    assert last.overlays["lime"].shape == (224, 224, 3) and last.superpixels.shape == (224, 224, 3)
    assert last.iou_names == ["lime", "gradcam"]
    assert last.iou_values[0, 1] == pytest.approx(last.summary["iou"]["lime|gradcam"], abs=1e-6)
    assert last.iou_figure() is not None


def test_zip_folder_holds_every_file(tmp_path):
    import zipfile

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    (tmp_path / "y.csv").write_text("y")
    with zipfile.ZipFile(zip_folder(tmp_path, tmp_path / "all.zip")) as archive:
        assert sorted(archive.namelist()) == ["a/x.txt", "y.csv"]
