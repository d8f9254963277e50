"""One base class for every saliency method, so the pipeline, CLI and app treat them alike.

A method declares what the rest of the project needs to know about it (name, title, cost rank,
core or extra) as class attributes, and defining the class registers it: adding a method is one
new file in this package, which `explainers.methods` imports on start.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import torch

from explainers.engine.cancel import CancelToken
from explainers.engine.models import LoadedModel
from explainers.errors import XaiLensError


@dataclass(frozen=True)
class Subject:
    """One image as the model sees it (the 224x224 crop), and the class to explain."""

    model: LoadedModel
    crop: np.ndarray  # uint8 HxWx3, exactly what the model sees
    target: int | None  # None only for methods that read the class from their own pass (shares_prediction)
    cancel: CancelToken | None = None  # the request's token: long loops check it between batches

    def raise_if_cancelled(self) -> None:
        """Raise CancelledError if this request was stopped or ran past its deadline."""
        if self.cancel is not None:
            self.cancel.check()

    def required_target(self) -> int:
        """The class to explain, for methods that need one given (all but the shares_prediction ones)."""
        if self.target is None:
            raise ValueError("This method explains a given class: the pipeline classifies first and passes it.")
        return self.target

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


@dataclass(frozen=True)
class MethodOptions:
    """The user-facing options a method may be built from; each method takes the ones it understands."""

    target_layer: str | None = None  # CAMs: the layer to explain (None: the model's default)
    lime_params: Mapping[str, Any] | None = None  # LIME: explain_instance keyword arguments
    progress: Callable[[int, int], None] | None = None  # LIME: (samples done, samples in all)
    reference: bool = False  # run the reference library's own implementation, not the fast path


# name -> class, filled as method classes are defined; kept sorted for menus (core first, then menu_rank).
REGISTRY: dict[str, type[SaliencyMethod]] = {}


def _register(cls: type[SaliencyMethod]) -> None:
    known = REGISTRY.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"Two saliency methods are called '{cls.name}': {known.__qualname__} and {cls.__qualname__}.")
    REGISTRY[cls.name] = cls
    ordered = sorted(REGISTRY.values(), key=lambda method: (not method.core, method.menu_rank, method.name))
    REGISTRY.clear()
    REGISTRY.update((method.name, method) for method in ordered)


class SaliencyMethod(ABC):
    """A saliency method: `explain(subject)` returns a Saliency on the subject's crop.

    A concrete subclass that sets `name` registers itself on definition. It declares:
    name and title (CLI/summary key, and the label people read); cost_rank (its place when the
    pipeline runs methods cheapest first on a CPU) and gpu_cost_rank where a GPU changes it;
    core (offered by default) or not (an extra the user opts into); menu_rank (its place in
    menus and the default method list). Ranks are spaced by ten so a new method fits between.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    cost_rank: ClassVar[int]
    gpu_cost_rank: ClassVar[int | None] = None  # None: the same as cost_rank
    core: ClassVar[bool] = False
    menu_rank: ClassVar[int] = 1000
    # True where compute() accepts target=None, explains the top class of its own forward pass and
    # returns that pass's "logits" and "target": the pipeline then classifies with it (no extra pass).
    shares_prediction: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and not inspect.isabstract(cls):
            missing = [attr for attr in ("title", "cost_rank") if not hasattr(cls, attr)]
            if missing:
                raise TypeError(f"Saliency method {cls.__qualname__} must declare {' and '.join(missing)}.")
            _register(cls)

    @classmethod
    def from_options(cls, options: MethodOptions) -> Self:
        """Build the method from the user-facing options it understands (by default: none)."""
        return cls()

    @classmethod
    def rank_on(cls, device_type: str) -> int:
        """The cost rank on a device type ("cpu", "cuda"): lower runs earlier."""
        if device_type == "cuda" and cls.gpu_cost_rank is not None:
            return cls.gpu_cost_rank
        return cls.cost_rank

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
