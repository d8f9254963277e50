"""LIME through the `lime` package, on the same 224x224 crop the CAMs explain.

lime's own loop copies the image once per sample in Python and calls the model in batches of
`batch_size` (10 by default). `BatchedLimeExplainer` draws the very same random samples from
the very same random state, builds the perturbed images with one vectorised lookup per chunk,
and feeds the model in chunks sized for the device; the kernel, the regression and the result
object are lime's own. A fresh explainer is built per explanation: lime's `random_seed` only
seeds the segmentation, the samples come from the explainer's random state (lime #477, #486).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Self

import numpy as np
import torch
from lime.lime_image import ImageExplanation, LimeImageExplainer
from lime.wrappers.scikit_image import SegmentationAlgorithm

from explainers.engine.models import LoadedModel
from explainers.engine.oom import run_with_backoff
from explainers.errors import XaiLensError, first_line
from explainers.inputs.segmentation import NAMED_DEFAULTS
from explainers.limits import MAX_SUPERPIXELS
from explainers.methods.base import MethodOptions, SaliencyMethod, Subject
from explainers.methods.cam_common import default_batch_size

DEFAULT_EXPLAINER_SEED = 0
ProgressCallback = Callable[[int, int], None]
ImageBatch = np.ndarray | torch.Tensor
Segmenter = Callable[[np.ndarray], np.ndarray]
# Segmentation started ahead (LimeMethod.prefetch) runs here; skimage's quickshift releases the GIL.
_SEGMENTATION_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lime-segmentation")


def lime_default_segmenter(random_seed: int | None) -> SegmentationAlgorithm:
    """The segmentation explain_instance builds when given none: quickshift, kernel 4, max_dist 200, ratio 0.2."""
    return SegmentationAlgorithm("quickshift", **NAMED_DEFAULTS["quickshift"], random_seed=random_seed)


def check_superpixels(segments: np.ndarray) -> None:
    """Refuse a segmentation with more superpixels than the cap: lime's work grows with their number."""
    count = len(np.unique(segments))
    if count > MAX_SUPERPIXELS:
        raise XaiLensError(
            f"LIME: the segmentation made {count} superpixels on the 224x224 crop; at most {MAX_SUPERPIXELS} are "
            "allowed. Ask for larger superpixels (a bigger kernel_size, scale or min_size, or fewer n_segments)."
        )


def guard_regressions(explainer: LimeImageExplainer, raise_if_cancelled: Callable[[], None]) -> None:
    """Check the request's token before and after each label's regression, and make a failed fit one line.

    lime fits one regression (after its feature selection) per explained label; the caps in
    explainers.limits bound each fit, and this stops a cancelled or timed-out request between them.
    """
    fit_one_label = explainer.base.explain_instance_with_data

    def guarded(*args: Any, **kwargs: Any) -> Any:
        raise_if_cancelled()
        try:
            result = fit_one_label(*args, **kwargs)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            reason = first_line(exc, limit=100)
            raise XaiLensError(f"LIME: the regression failed ({reason}); try lime's default model_regressor") from None
        raise_if_cancelled()
        return result

    explainer.base.explain_instance_with_data = guarded


def timed_segments(segmenter: Segmenter, crop: np.ndarray) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    segments = segmenter(crop)
    return segments, time.perf_counter() - started


def classifier_for(
    model: LoadedModel, batch_size: int | None = None, plain: bool = False
) -> Callable[[ImageBatch], np.ndarray]:
    """lime's classifier_fn: NxHxWx3 crops (uint8 or [0,1] float) -> NxC probabilities, in device-sized chunks.

    Also takes a torch tensor already on the device (BatchedLimeExplainer's GPU path). Inputs go
    in channels-last layout through the BatchNorm-folded copy of the model (explainers.engine.inference),
    which makes each pass faster on both CPU and GPU; `plain=True` gives the classifier a lime user
    would write (the model as loaded, default layout), for the reference runs.
    """
    step = batch_size or default_batch_size(model.device)
    module = model.module if plain else model.inference_module
    layout = torch.contiguous_format if plain else torch.channels_last

    @torch.inference_mode()
    def classify(images: ImageBatch) -> np.ndarray:
        chunks = []
        for start in range(0, len(images), step):
            batch = model.to_tensor(images[start : start + step]).contiguous(memory_format=layout)
            chunks.append(torch.softmax(module(batch), dim=1).float())
        return torch.cat(chunks).cpu().numpy()

    classify.accepts_tensors = True  # type: ignore[attr-defined]
    return classify


class BatchedLimeExplainer(LimeImageExplainer):
    """LimeImageExplainer whose neighbourhood is built without per-sample Python work.

    With a `device` (and a classifier that accepts tensors) the perturbed images are built there,
    so a GPU receives only the 0/1 sample rows, not every perturbed image.
    """

    def __init__(
        self,
        *args: Any,
        chunk_size: int = 64,
        progress: ProgressCallback | None = None,
        device: torch.device | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.chunk_size = chunk_size
        self.progress = progress
        self.device = device

    def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10):
        """Same samples as lime's (one randint draw from the same state), same images, fewer copies."""
        n_features = np.unique(segments).shape[0]
        data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
        data[0, :] = 1
        # lime masks a pixel when its segment id is the index of a zero in the row; ids at or past
        # n_features (possible when a segmentation does not start at 0) are never masked.
        keep = np.ones((num_samples, max(int(segments.max()) + 1, n_features)), dtype=bool)
        keep[:, :n_features] = data == 1
        on_device = self.device is not None and getattr(classifier_fn, "accepts_tensors", False)
        if on_device:
            keep, segments = torch.as_tensor(keep, device=self.device), torch.as_tensor(segments, device=self.device)
            image = torch.as_tensor(np.ascontiguousarray(image), device=self.device)
            fudged_image = torch.as_tensor(np.ascontiguousarray(fudged_image), device=self.device)
        where = torch.where if on_device else np.where
        labels = []
        for start in range(0, num_samples, self.chunk_size):
            kept = keep[start : start + self.chunk_size][:, segments]
            labels.append(classifier_fn(where(kept[..., None], image, fudged_image)))
            if self.progress:
                self.progress(min(start + self.chunk_size, num_samples), num_samples)
        return data, np.concatenate(labels)


def lime_saliency(explanation: ImageExplanation, target: int) -> np.ndarray:
    """Per-pixel map: each superpixel's positive weight for the target, scaled so the strongest is 1."""
    weights = np.zeros(int(explanation.segments.max()) + 1)
    for feature, weight in explanation.local_exp[target]:
        weights[feature] = weight
    positive = np.maximum(weights, 0)[explanation.segments]
    peak = positive.max()
    return positive / peak if peak > 0 else positive


class LimeMethod(SaliencyMethod):
    """LIME with every `explain_instance` parameter; same parameters and seed give the same result."""

    name, title, core, menu_rank = "lime", "LIME", True, 40
    cost_rank = 80  # segmentation and regression on the CPU; on a GPU after Score-CAM (see ScoreCAMMethod)

    @classmethod
    def from_options(cls, options: MethodOptions) -> Self:
        return cls(reference=options.reference, progress=options.progress, **dict(options.lime_params or {}))

    def __init__(
        self,
        reference: bool = False,
        model_batch_size: int | None = None,
        progress: ProgressCallback | None = None,
        explainer_seed: int | None = None,
        **explain_kwargs: Any,
    ) -> None:
        from explainers.inputs.lime_kwargs import lime_call_kwargs, validate_explain_kwargs

        self.reference = reference
        self.model_batch_size = model_batch_size
        self.progress = progress
        self.settings = validate_explain_kwargs(explain_kwargs)  # plain data, as recorded in summaries
        self.show_progress_bar = bool(self.settings.get("progress_bar", False))
        self.kwargs = lime_call_kwargs({k: v for k, v in self.settings.items() if k != "progress_bar"})
        seed = self.settings.get("random_seed")
        self.explainer_seed = explainer_seed if explainer_seed is not None else (seed or DEFAULT_EXPLAINER_SEED)
        self._prefetched: tuple[np.ndarray, Future] | None = None

    def segmenter(self) -> Segmenter:
        """The segmentation lime would run for these parameters (its default when none is given).

        Without a random_seed, lime seeds its default segmentation with the first draw of the
        explainer's random state; a fresh explainer seeded with explainer_seed makes the same draw.
        """
        if self.kwargs.get("segmentation_fn") is not None:
            return self.kwargs["segmentation_fn"]
        seed = self.kwargs.get("random_seed")
        if seed is None:
            seed = np.random.RandomState(self.explainer_seed).randint(0, high=1000)
        return lime_default_segmenter(seed)

    def prefetch(self, subject: Subject) -> None:
        """Start segmenting the crop in a background thread: it needs no model, so it overlaps GPU work."""
        if not self.reference:
            future = _SEGMENTATION_THREADS.submit(timed_segments, self.segmenter(), subject.crop)
            self._prefetched = (subject.crop, future)

    def _segments(self, subject: Subject) -> tuple[np.ndarray, float, float]:
        """(segments, seconds segmenting, seconds this call waited for them)."""
        started = time.perf_counter()
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] is subject.crop:
            segments, seconds = prefetched[1].result()
        else:
            segments, seconds = timed_segments(self.segmenter(), subject.crop)
        return segments, seconds, time.perf_counter() - started

    def describe(self) -> dict[str, Any]:
        implementation = "lime" if self.reference else "xai-lens batched (lime's sampling and regression)"
        segmentation = self.settings.get("segmentation_fn") or "quickshift (lime's default)"
        return {
            **self.settings,
            "segmentation_fn": segmentation,
            "explainer_seed": self.explainer_seed,
            "implementation": implementation,
        }

    def call_kwargs(self, probabilities: np.ndarray, target: int) -> dict[str, Any]:
        """The explain_instance kwargs for this target: make sure lime explains the target class."""
        kwargs = dict(self.kwargs)
        top_labels = kwargs.get("top_labels", 5)
        labels = tuple(kwargs.get("labels", (1,)))
        if top_labels:
            if target not in np.argsort(probabilities)[-top_labels:]:
                kwargs["top_labels"] = None
                kwargs["labels"] = (target, *[label for label in labels if label != target])
        elif target not in labels:
            kwargs["labels"] = (target, *labels)
        return kwargs

    def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        model = subject.model
        classifier = classifier_for(model, self.model_batch_size, plain=self.reference)
        probabilities = classifier(subject.crop[None])[0]
        target = subject.required_target()
        kwargs = self.call_kwargs(probabilities, target)
        extras: dict[str, Any] = {}
        if self.reference:
            explainer = LimeImageExplainer(random_state=self.explainer_seed)
            guard_regressions(explainer, subject.raise_if_cancelled)
            explanation = explainer.explain_instance(subject.crop, classifier, **kwargs)
        else:
            # The same segmentation lime would run, done here (or ahead, by prefetch) so it is timed and
            # can overlap other work; lime then receives exactly these segments. Segmentation itself cannot
            # be interrupted: its caps (explainers.limits) keep it to about a second, and the token is
            # checked on both sides of it.
            subject.raise_if_cancelled()
            segments, extras["segmentation_s"], extras["segmentation_wait_s"] = self._segments(subject)
            check_superpixels(segments)
            subject.raise_if_cancelled()
            kwargs["segmentation_fn"] = lambda _image: segments
            progress = self._progress_callback(kwargs.get("num_samples", 1000))

            def report(done: int, total: int) -> None:
                subject.raise_if_cancelled()  # a stopped request ends after the current batch
                if progress is not None:
                    progress(done, total)

            def explain(chunk_size: int) -> Any:  # a fresh, identically seeded explainer per attempt
                explainer = BatchedLimeExplainer(
                    random_state=self.explainer_seed,
                    chunk_size=chunk_size,
                    progress=report,
                    device=model.device if model.device.type != "cpu" else None,
                )
                guard_regressions(explainer, subject.raise_if_cancelled)
                return explainer.explain_instance(subject.crop, classifier_for(model, chunk_size), **kwargs)

            explanation = run_with_backoff(explain, self.model_batch_size or default_batch_size(model.device))
        extras |= {
            "segments": explanation.segments,
            "weights": dict(explanation.local_exp[subject.target]),
            "intercept": float(explanation.intercept[subject.target]),
            "score": float(np.ravel(explanation.score)[0]),
            "local_pred": float(np.ravel(explanation.local_pred)[0]),
            "explained_labels": sorted(int(k) for k in explanation.local_exp),
            "call_kwargs": {k: v for k, v in kwargs.items() if k in ("labels", "top_labels")},
        }
        return lime_saliency(explanation, target), extras

    def _progress_callback(self, total: int) -> ProgressCallback | None:
        if not self.show_progress_bar:
            return self.progress
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="LIME samples", unit="img")

        def report(done: int, of: int) -> None:
            bar.update(done - bar.n)
            if self.progress:
                self.progress(done, of)
            if done >= of:
                bar.close()

        return report
