"""The pipeline and the command line honour the output contract other tools rely on."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from planted import patch_image

from explainers.cli import main
from explainers.comparison.agreement import iou
from explainers.errors import XaiLensError
from explainers.methods import Subject, create_method
from explainers.pipeline import explain_image, iter_explain, predict


def explain_cli(image, out, *options):
    """`python -m explainers explain IMAGE` with ResNet18 random weights, in a fresh process."""
    command = [sys.executable, "-m", "explainers", "explain", str(image), "--model", "resnet18", "--weights", "random"]
    return subprocess.run([*command, "--out", str(out), *options], capture_output=True, text=True, timeout=300)


def test_pipeline_streams_cheapest_first_and_agrees_with_planted_truth(planted):
    image, truth = patch_image(60, 90)
    finished = []
    for step in iter_explain(image, planted, "scorecam,gradcam,ablationcam", target=1):
        finished.append(step.latest)
        assert list(step.masks) == list(step.saliency)  # masks always match the maps so far
        final = step
    assert finished == ["gradcam", "ablationcam", "scorecam"]
    assert list(final.saliency) == ["scorecam", "gradcam", "ablationcam"]  # shown in the order asked
    assert set(final.iou) == {"scorecam|gradcam", "scorecam|ablationcam", "gradcam|ablationcam"}
    assert min(final.iou.values()) > 0.7  # all three find the same patch
    assert all(iou(mask, truth) >= 0.5 for mask in final.masks.values())  # and it is the planted one
    assert final.target.label == "red patch" and final.top5[0].index == 1


@pytest.mark.parametrize("target", [None, 3])
def test_grad_cams_forward_pass_is_the_prediction(resnet18_random, tmp_path, target):
    """With Grad-CAM first, the model runs once for the class and the map; the answer equals a separate pass."""
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 260, 3), dtype=np.uint8)).save(path)
    calls = []
    handle = resnet18_random.module.register_forward_hook(lambda *_: calls.append(1))
    try:
        explanation = explain_image(path, resnet18_random, "gradcam", target=target)
    finally:
        handle.remove()
    assert len(calls) == 1
    probabilities = predict(resnet18_random, explanation.crop)
    expected = int(np.argmax(probabilities)) if target is None else target
    assert explanation.target.index == expected
    assert explanation.target.probability == pytest.approx(float(probabilities[expected]), rel=1e-5)
    assert [p.index for p in explanation.top5] == list(np.argsort(probabilities)[::-1][:5])
    alone = create_method("gradcam").explain(Subject(resnet18_random, explanation.crop, expected))
    np.testing.assert_array_equal(explanation.saliency["gradcam"].map, alone.map)


def test_lime_top_rule_without_lime_is_refused_before_work(planted):
    image, _ = patch_image(0, 0)
    with pytest.raises(XaiLensError, match="needs LIME"):
        explain_image(image, planted, "gradcam", mask_rule="lime-top:5")


def test_cli_explain_writes_the_contract(tmp_path):
    image, _ = patch_image(20, 20)
    path = tmp_path / "red_patch.png"
    Image.fromarray(image).save(path)
    out = tmp_path / "out"
    result = explain_cli(
        path, out, "--methods", "gradcam,ablationcam,eigencam", "--mask", "otsu", "--target", "goldfish", "--tf32"
    )
    assert result.returncode == 0, result.stderr
    assert "RANDOM WEIGHTS" in result.stderr
    folder = out / "red_patch"
    for method in ("gradcam", "ablationcam", "eigencam"):
        saliency = np.load(folder / f"{method}.npy")
        assert saliency.dtype == np.float32 and saliency.shape == (224, 224)
        assert saliency.min() >= 0 and saliency.max() <= 1
        assert Image.open(folder / f"{method}_mask.png").size == (224, 224)
        assert Image.open(folder / f"{method}_overlay.png").mode == "RGB"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["model"] == "resnet18" and summary["weights"] == "random" and "RANDOM WEIGHTS" in summary["warning"]
    assert summary["target"]["index"] == 1 and summary["target"]["label"] == "goldfish"
    assert len(summary["top5"]) == 5 and set(summary["timings_s"]) == {"gradcam", "ablationcam", "eigencam"}
    assert set(summary["iou"]) == {"gradcam|ablationcam", "gradcam|eigencam", "ablationcam|eigencam"}
    assert summary["mask_rule"] == "otsu" and summary["params"]["gradcam"]["target_layer"] is None
    assert summary["precision"] == "float32"  # --tf32 is a GPU matter: on a CPU the record stays float32
    with open(out / "iou.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method_a"], r["method_b"]) for r in rows] == [tuple(p.split("|")) for p in summary["iou"]]
    assert all(r["image"] == "red_patch" for r in rows)
    assert float(rows[0]["iou"]) == pytest.approx(summary["iou"]["gradcam|ablationcam"], abs=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "gradcam,magic"], "Unknown method 'magic'"),
        (["--mask", "top:7"], "fraction must be in"),
        (["--target", "no-such-class-xyz"], "No class is called"),
        (["--target-layer", "layer9"], "Layer 'layer9' not found"),
        (["--model", "vgg16"], "invalid choice: 'vgg16'"),  # argparse's own refusals are one line too
        (["--steps"], "expected one argument"),
    ],
)
def test_cli_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    """In-process: the options fail in the library, before any work, whichever process runs it."""
    path = tmp_path / "img.png"
    Image.new("RGB", (50, 40), (10, 200, 30)).save(path)
    argv = ["explain", str(path), "--model", "resnet18", "--weights", "random", "--out", str(tmp_path / "o")]
    code = main([*argv, "--methods", "gradcam", *args])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert message in err
    assert err.strip().splitlines()[-1].startswith("error:")


def test_a_cancelled_run_stops_at_the_next_method(planted):
    from explainers.engine.cancel import CancelledError, CancelToken

    image, _ = patch_image(10, 10)
    token = CancelToken()
    finished = []
    with pytest.raises(CancelledError, match="nothing was kept"):
        for step in iter_explain(image, planted, "gradcam,ablationcam,scorecam", target=1, cancel=token):
            finished.append(step.latest)
            token.cancel()  # the visitor presses Stop once the first map is shown
    assert finished == ["gradcam"]


def test_the_app_worker_stops_past_its_deadline(tmp_path):
    from app.compute import ExplainRequest, explain_views
    from explainers.engine.cancel import CancelledError

    path = tmp_path / "img.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(path)
    request = ExplainRequest(str(path), "resnet18", "random", ["gradcam"], None, {}, "top:0.10", deadline_s=0)
    with pytest.raises(CancelledError, match="time limit"):
        list(explain_views(request))
