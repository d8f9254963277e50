"""Faults a public demo meets: GPU out of memory, a visitor who cancels, missing weights.

(Network down while fetching published weights is covered in test_models.py.)
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
import time
import weakref

import numpy as np
import pytest
import torch

from explainers.engine.cancel import CancelledError, CancelToken
from explainers.engine.oom import is_out_of_memory, run_with_backoff
from explainers.errors import XaiLensError
from explainers.pipeline import explain_image

# ---------------------------------------------------------------- out of memory -> smaller batch


def _batched_sum_of_squares(values: np.ndarray, fits: int, seen: list[int]):
    """A batched computation that 'runs out of memory' for batches larger than `fits`, like a GPU would."""

    def work(batch_size: int) -> float:
        seen.append(batch_size)
        total = 0.0
        for start in range(0, len(values), batch_size):
            if batch_size > fits:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            total += float((values[start : start + batch_size] ** 2).sum())
        return total

    return work


@pytest.mark.parametrize("fits", [1, 5, 16, 64])
def test_out_of_memory_halves_the_batch_and_gives_the_same_answer(fits):
    values = np.random.default_rng(0).normal(size=1000)
    seen: list[int] = []
    retried: list[int] = []
    result = run_with_backoff(_batched_sum_of_squares(values, fits, seen), 64, on_retry=retried.append)
    assert result == pytest.approx(float((values**2).sum()), rel=1e-12)  # the un-failing answer
    assert seen[-1] <= fits and all(b > fits for b in seen[:-1])  # stopped shrinking once it fitted
    assert seen == [64, *retried] and all(b == a // 2 for a, b in itertools.pairwise(seen))


def test_out_of_memory_at_the_smallest_batch_is_one_clear_line():
    seen: list[int] = []
    with pytest.raises(XaiLensError, match="Out of GPU memory even with a batch of 4") as caught:
        run_with_backoff(_batched_sum_of_squares(np.ones(10), 0, seen), 32, min_batch=4)
    assert seen == [32, 16, 8, 4] and "\n" not in str(caught.value)


def test_runtime_error_spelled_out_of_memory_counts_and_other_errors_pass_through():
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    calls: list[int] = []

    def broken(batch_size: int) -> None:
        calls.append(batch_size)
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        run_with_backoff(broken, 64)
    assert calls == [64]  # a real bug is not retried


# ---------------------------------------------------------------- cancelling


def test_token_cancels_from_another_thread_and_by_deadline():
    token = CancelToken()
    token.check()
    threading.Thread(target=token.cancel).start()
    time.sleep(0.05)
    with pytest.raises(CancelledError, match="cancelled"):
        token.check()
    timed = CancelToken(deadline_s=0.01)
    time.sleep(0.05)
    with pytest.raises(CancelledError, match="time limit") as caught:
        timed.check()
    assert isinstance(caught.value, XaiLensError) and "\n" not in str(caught.value)


def _is_batch(obj: object) -> bool:
    """A stack of several images or masks: larger than one 224x224 RGB image (and not a weight)."""
    if isinstance(obj, torch.nn.Parameter) or not isinstance(obj, (torch.Tensor, np.ndarray)):
        return False
    size = obj.numel() if isinstance(obj, torch.Tensor) else obj.size
    return obj.ndim >= 3 and size > 224 * 224 * 3


@pytest.mark.slow
def test_cancelled_lime_stops_after_the_current_batch_and_frees_its_memory(resnet18_random, photo_crop):
    """Through the public pipeline: the visitor cancels after the first progress report. The token goes in as
    `cancel` only (the progress callback itself checks nothing): it must reach LIME's batches through the Subject."""
    token = CancelToken()
    reports: list[tuple[int, int]] = []
    tracked: list[weakref.ref] = []

    def visitor_sees(done: int, total: int) -> None:
        reports.append((done, total))
        # every image batch alive now (LIME's samples, the model's input): none may outlive the cancel
        frame = sys._getframe(1)
        while frame is not None:  # the locals of every caller up the stack: LIME's loop holds its batches
            tracked.extend(weakref.ref(value) for value in frame.f_locals.values() if _is_batch(value))
            frame = frame.f_back
        token.cancel("cancelled by the visitor")

    params = {"num_samples": 400, "batch_size": 20}
    with pytest.raises(CancelledError, match="cancelled by the visitor"):
        explain_image(
            photo_crop,
            resnet18_random,
            "lime",
            lime_params=params,
            lime_progress=visitor_sees,
            cancel=token,
        )
    assert len(reports) == 1 and reports[0][0] < 400  # work stopped at the first check
    gc.collect()
    assert tracked  # the check below looked at something
    alive = [ref() for ref in tracked if ref() is not None]
    assert not alive, [tuple(t.shape) for t in alive]
    # the shared model is usable again at once (no lock or hook left behind)
    finished = explain_image(photo_crop, resnet18_random, "gradcam")
    assert finished.saliency["gradcam"].map.shape == (224, 224)


# --- the methods themselves: out of memory mid-run, and a request stopped mid-loop ---------------------------


def _oom_above(limit, real):
    """Wrap a batched call so batches larger than `limit` fail as CUDA's out-of-memory would."""
    import torch

    calls = []

    def wrapped(self, module, inputs, *rest):
        calls.append(len(inputs))
        if len(inputs) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, module, inputs, *rest)

    return wrapped, calls


def test_scorecam_out_of_memory_retries_smaller_and_gives_the_same_map(planted, monkeypatch):
    from planted import patch_image

    from explainers.methods import Subject
    from explainers.methods.scorecam import ScoreCAMMethod

    image, _ = patch_image(50, 50)
    subject = Subject(planted, image, 1)
    expected = ScoreCAMMethod(target_layer="layer4", batch_size=4).explain(subject).map
    wrapped, calls = _oom_above(2, ScoreCAMMethod._scores)
    monkeypatch.setattr(ScoreCAMMethod, "_scores", wrapped)
    again = ScoreCAMMethod(target_layer="layer4", batch_size=4).explain(subject).map
    assert calls == [4, 2, 2, 2, 2]  # 8 distinct channels: the batch of 4 failed, then four batches of 2
    np.testing.assert_array_equal(again, expected)


def test_lime_out_of_memory_retries_smaller_and_gives_the_same_explanation(resnet18_random, photo_crop, monkeypatch):
    import torch

    from explainers.methods import Subject, create_method
    from explainers.methods import lime as lime_module

    params = {"num_samples": 48, "random_seed": 5}
    subject = Subject(resnet18_random, photo_crop, 3)
    expected = create_method("lime", lime_params=params).explain(subject)
    real = lime_module.classifier_for
    sizes = []

    def fragile(model, batch_size=None, plain=False):
        classify = real(model, batch_size, plain)

        def run(images):
            sizes.append(len(images))
            if len(images) > 4:  # the CPU's default chunk is 8: the first attempt fails
                raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
            return classify(images)

        return run

    monkeypatch.setattr(lime_module, "classifier_for", fragile)
    again = create_method("lime", lime_params=params).explain(subject)
    assert max(sizes) > 4 and sizes[-1] <= 4
    assert again.extras["weights"] == pytest.approx(expected.extras["weights"], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", ["scorecam", "lime"])
def test_a_stopped_request_ends_inside_the_method(planted, name):
    from planted import patch_image

    from explainers.engine.cancel import CancelledError, CancelToken
    from explainers.methods import Subject, create_method

    image, _ = patch_image(50, 50)
    token = CancelToken()
    token.cancel()
    subject = Subject(planted, image, 1, token)
    with pytest.raises(CancelledError):
        create_method(name, target_layer="layer3", lime_params={"num_samples": 64}).explain(subject)
    assert not any(m._forward_hooks for m in planted.module.modules())


def test_a_stopped_sanity_check_ends_inside_the_re_run_method(resnet18_random, photo_crop, monkeypatch):
    """The trust panel's sanity check re-runs each method on randomised models. Stop must reach inside those
    runs (through the Subject they get), not wait for a LIME run to finish all its batches."""
    from app.panel_trust import TrustRequest, measure_trust
    from explainers.methods import lime as lime_module

    params = {"num_samples": 64, "batch_size": 8}
    explanation = explain_image(photo_crop, resnet18_random, "lime", lime_params=params)
    token = CancelToken()
    real = lime_module.classifier_for
    calls: list[int] = []
    after_stop: list[int] = []

    def stopped_at_the_first_batch(model, batch_size=None, plain=False):
        classify = real(model, batch_size, plain)

        def run(images):
            (after_stop if token.cancelled else calls).append(len(images))
            if len(calls) == 2:  # the first call classifies the crop; the second is LIME's first batch
                token.cancel("cancelled by the visitor")
            return classify(images)

        return run

    monkeypatch.setattr(lime_module, "classifier_for", stopped_at_the_first_batch)
    with pytest.raises(CancelledError, match="cancelled by the visitor"):
        measure_trust(explanation, TrustRequest(("sanity",)), params, token)
    assert len(calls) == 2 and after_stop == []  # no batch ran once Stop was pressed
