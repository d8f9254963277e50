"""One base class for every saliency method, so the pipeline, CLI and app treat them alike."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from explainers.cancel import CancelToken
from explainers.errors import XaiLensError
from explainers.models import LoadedModel


@dataclass(frozen=True)
class Subject:
    """One image as the model sees it (the 224x224 crop), and the class to explain."""

    model: LoadedModel
    crop: np.ndarray  # uint8 HxWx3, exactly what the model sees
    target: int | None  # None only for methods that read the class from their own pass (shares_prediction)
    cancel: CancelToken | None = None  # the request's token: long loops check it between batches

    def checkpoint(self) -> None:
        """Raise CancelledError if this request was stopped or ran past its deadline."""
        if self.cancel is not None:
            self.cancel.check()

    @property
    def tensor(self) -> torch.Tensor:
        """The normalised 1x3xHxW input on the model's device."""
        return self.model.to_tensor(self.crop)


@dataclass
class Saliency:
    """A method's answer: a float32 HxW map in [0,1] on the crop, and what made it."""

    method: str
    map: np.ndarray
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class SaliencyMethod(ABC):
    """A saliency method: `explain(subject)` returns a Saliency on the subject's crop."""

    name: ClassVar[str]
    title: ClassVar[str]
    family: ClassVar[str] = "cam"
    # True where compute() accepts target=None, explains the top class of its own forward pass and
    # returns that pass's "logits" and "target": the pipeline then classifies with it (no extra pass).
    shares_prediction: ClassVar[bool] = False

    @abstractmethod
    def compute(self, subject: Subject) -> tuple[np.ndarray, dict[str, Any]]:
        """Return (map, extras); the map may be any real HxW array, explain() checks it."""

    def describe(self) -> dict[str, Any]:
        """The parameters that made this explanation, JSON-friendly."""
        return {}

    def prefetch(self, subject: Subject) -> None:  # noqa: B027 (an optional hook: most methods have nothing to start)
        """Start, in the background, work that needs no model, so it overlaps the GPU work of earlier methods.

        The pipeline calls this on a GPU before running any method; explain() then picks the result up.
        """

    def explain(self, subject: Subject) -> Saliency:
        started = time.perf_counter()
        saliency_map, extras = self.compute(subject)
        seconds = time.perf_counter() - started
        saliency_map = np.asarray(saliency_map, dtype=np.float32)
        if saliency_map.shape != subject.crop.shape[:2]:
            raise XaiLensError(f"{self.title} returned a {saliency_map.shape} map for a {subject.crop.shape[:2]} crop.")
        saliency_map = np.nan_to_num(np.clip(saliency_map, 0.0, 1.0), nan=0.0)
        return Saliency(self.name, saliency_map, seconds, self.describe(), extras)
