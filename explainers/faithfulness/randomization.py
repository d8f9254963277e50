"""Sanity check by model-parameter randomisation (Adebayo et al., 2018).

An explanation of the model should change when the model does. Each method's map is recomputed
on copies of the model whose top layers are re-initialised in a cascade (fc, then layer4's blocks
from the last to the first, each stage keeping the earlier ones random), and compared with the
original map by Spearman rank correlation and SSIM. Values near 1 at the end of the cascade mean
the method draws nearly the same map for a model that no longer knows the class: it is showing
the image (edges, blobs), not what the model uses. Re-initialisation is seeded, so it repeats.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from explainers.engine.cancel import CancelToken
from explainers.engine.models import LoadedModel, resolve_layer
from explainers.errors import XaiLensError
from explainers.methods import SaliencyMethod, Subject

DEFAULT_SEED = 0
# Above this rank correlation with the original at the end of the cascade, a map has not really changed:
# the method is drawing the image, not the model (the report flags it; the planted test holds methods to it).
UNCHANGED_SPEARMAN = 0.5


@dataclass
class Cascade:
    """One method's maps down the cascade, and how much each still resembles the original."""

    stages: list[str]
    maps: list[np.ndarray] = field(default_factory=list)
    spearman: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    @property
    def final_spearman(self) -> float:
        """Similarity once every stage is random: the number to read (1 = unchanged, 0 = unrelated)."""
        return self.spearman[-1]

    @property
    def final_ssim(self) -> float:
        return self.ssim[-1]


def default_stages(module: torch.nn.Module) -> list[str]:
    """fc, then each of layer4's blocks (or parameterised layers) from the output backwards."""
    layer4 = getattr(module, "layer4", None)
    if not isinstance(getattr(module, "fc", None), torch.nn.Module) or not isinstance(layer4, torch.nn.Sequential):
        raise XaiLensError("The sanity check needs a ResNet-style model (fc and layer4); choose a ResNet model.")
    blocks = [f"layer4[{i}]" for i, block in enumerate(layer4) if any(True for _ in block.parameters())]
    return ["fc", *reversed(blocks)]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps; a map that went flat shares no ranking with anything, so it counts 0."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two [0,1] maps (scikit-image, data range 1)."""
    return float(structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64), data_range=1.0))


def _reinitialise(module: torch.nn.Module, seed: int) -> None:
    """Reset every layer inside `module` to fresh default initial weights, drawn on the CPU from `seed`.

    Drawing on the CPU makes the same seed give the same weights on any device.
    """
    fresh = copy.deepcopy(module).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in fresh.modules():
            reset = getattr(layer, "reset_parameters", None)
            if callable(reset):
                reset()
            reset_stats = getattr(layer, "reset_running_stats", None)
            if callable(reset_stats):
                reset_stats()
    module.load_state_dict(fresh.state_dict())


def check_stages(model: LoadedModel, stages: Sequence[str] | None = None) -> list[str]:
    """The cascade's layer paths ('fc', 'layer4[2]', 'layer3', ...), checked against the model in one line each."""
    stages = list(stages) if stages is not None else default_stages(model.module)
    if not stages:
        raise XaiLensError("The sanity check needs at least one layer to re-initialise.")
    for path in stages:
        resolve_layer(model.module, path)
    return stages


def iter_randomized(
    model: LoadedModel, stages: Sequence[str], seed: int = DEFAULT_SEED
) -> Iterator[tuple[str, LoadedModel]]:
    """(stage, a model with that stage and every earlier one re-initialised), one at a time.

    Only one randomised copy is alive at once; the original model is never touched.
    """
    module = copy.deepcopy(model.module)
    for index, path in enumerate(stages):
        _reinitialise(resolve_layer(module, path), seed + index)
        label = f"{model.weights}, {path} randomised"
        yield path, LoadedModel(model.spec, label, copy.deepcopy(module).eval(), model.categories, model.device)


def randomization_cascade(
    model: LoadedModel,
    crop: np.ndarray,
    target: int,
    originals: Mapping[str, np.ndarray],
    methods: Mapping[str, SaliencyMethod],
    *,
    stages: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
    cancel: CancelToken | None = None,
) -> dict[str, Cascade]:
    """For each method, its map at every cascade stage and the similarity to its original map.

    The methods run on the randomised copies only (the originals are the maps already computed).
    """
    stages = check_stages(model, stages)
    results = {name: Cascade(list(stages)) for name in methods}
    for _path, randomized in iter_randomized(model, stages, seed):
        subject = Subject(randomized, crop, target, cancel)
        for name, method in methods.items():
            if cancel is not None:
                cancel.check()
            changed = method.explain(subject).map
            cascade = results[name]
            cascade.maps.append(changed)
            cascade.spearman.append(spearman(originals[name], changed))
            cascade.ssim.append(ssim(originals[name], changed))
    return results
