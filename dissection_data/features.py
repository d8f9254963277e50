"""The expensive passes, each cached: target-model activations and CLIP image/text features.

One pass over the probe set per model hooks every requested layer at once; convolutional maps are
pooled over space (mean by default, as CLIP-dissect does; max as an option) so each neuron gives one
number per image, and fc gives its logits.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from dissection_data.cache import FeatureCache
from dissection_data.clip_encoder import ClipEncoder
from dissection_data.probes import ProbeSet
from explainers.engine.models import PUBLISHED, canonical_weights
from explainers.errors import XaiLensError

POOLINGS = ("mean", "max")


def _batches(items: Iterator[Any] | Sequence[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def weights_identity(weights: str) -> str:
    """'published'/'random', or a checkpoint's content hash (a retrained file at the same path misses the cache)."""
    weights = canonical_weights(weights)
    if weights in (PUBLISHED, "random"):
        return weights
    path = Path(weights)
    if not path.is_file():
        return weights
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return f"sha256:{hasher.hexdigest()[:20]}"


def _pool(output: torch.Tensor, pooling: str) -> torch.Tensor:
    if output.ndim == 4:
        return output.mean(dim=(2, 3)) if pooling == "mean" else output.amax(dim=(2, 3))
    if output.ndim == 2:
        return output
    return output.flatten(1)


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise XaiLensError(f"Unknown pooling '{pooling}'; choose mean or max.")


@torch.inference_mode()
def pooled_activations(
    model: Any, images: Sequence[Image.Image], layers: Sequence[str], pooling: str = "mean"
) -> dict[str, torch.Tensor]:
    """images x neurons (float32, CPU) for each layer, from one forward pass over one batch of images.

    The one place activations are taken: the in-process pass and the Ray actors (dissection_data.scale)
    both call it, so the two engines crop, pool and hook alike."""
    check_pooling(pooling)
    collected: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for layer in layers:

            def hook(_module, _inputs, output, layer=layer):
                collected[layer] = _pool(output.float(), pooling).cpu()

            handles.append(model.layer(layer).register_forward_hook(hook))
        with model.lock:
            crops = np.stack([model.crop(image) for image in images])
            model.module(model.to_tensor(crops))
    finally:
        for handle in handles:
            handle.remove()
    return collected


def compute_activations(
    model: Any, probe_set: ProbeSet, layers: Sequence[str], pooling: str = "mean", batch_size: int = 32
) -> dict[str, torch.Tensor]:
    """images x neurons (float32, CPU) for each layer over the whole probe set, batch by batch."""
    check_pooling(pooling)
    collected: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    progress = tqdm(total=len(probe_set), desc=f"{model.name}: activations", unit="img")
    for batch in _batches(probe_set.images(), batch_size):
        for layer, values in pooled_activations(model, batch, layers, pooling).items():
            collected[layer].append(values)
        progress.update(len(batch))
    progress.close()
    return {layer: torch.cat(parts) for layer, parts in collected.items()}


def activations_key(
    model: Any, fingerprint: str, layers: Sequence[str], pooling: str, identity: str | None = None
) -> dict[str, Any]:
    """What an activations cache entry is computed from (both engines write and read the same entries)."""
    return {
        "model": model.name,
        "weights": identity or weights_identity(model.weights),
        "layers": sorted(layers),
        "pooling": pooling,
        "probe": fingerprint,
        "preprocessing": [model.spec.resize, model.spec.crop],
    }


def activations(
    cache: FeatureCache,
    model: Any,
    probe_set: ProbeSet,
    layers: Sequence[str],
    pooling: str,
    batch_size: int = 32,
    identity: str | None = None,
) -> dict[str, torch.Tensor]:
    key = activations_key(model, probe_set.fingerprint, layers, pooling, identity)
    return cache.get_or_compute(
        "activations", key, lambda: compute_activations(model, probe_set, layers, pooling, batch_size)
    )


def clip_images_key(encoder: ClipEncoder, fingerprint: str) -> dict[str, Any]:
    return {"clip": encoder.model_id, "probe": fingerprint}


IMAGE_CHUNK = 128  # CLIP image features are also cached per chunk of this many probe images


def image_features(cache: FeatureCache, encoder: ClipEncoder, probe_set: ProbeSet, batch_size: int = 32):
    """images x d, L2-normalised CLIP image features (once per CLIP model and probe set).

    The longest pass of a CPU build, so it is also cached chunk by chunk: a build killed during it
    resumes at the first chunk it had not finished, instead of starting the pass again."""
    key = clip_images_key(encoder, probe_set.fingerprint)

    def encode(chunk: ProbeSet, progress: Any) -> torch.Tensor:
        parts = []
        for batch in _batches(chunk.images(), batch_size):
            parts.append(encoder.encode_images(batch))
            progress.update(len(batch))
        return torch.cat(parts)

    def compute() -> torch.Tensor:
        parts = []
        progress = tqdm(total=len(probe_set), desc="CLIP image features", unit="img")
        for start in range(0, len(probe_set), IMAGE_CHUNK):
            stop = min(start + IMAGE_CHUNK, len(probe_set))
            chunk = ProbeSet(probe_set.name, probe_set.paths[start:stop], probe_set.ids[start:stop], "", "")
            done = len(cache.hits)
            compute_chunk = functools.partial(encode, chunk, progress)
            parts.append(cache.get_or_compute("clip_image_chunks", {**key, "images": [start, stop]}, compute_chunk))
            if len(cache.hits) > done:  # reused from a run that stopped later on
                progress.update(stop - start)
        progress.close()
        return torch.cat(parts)

    return cache.get_or_compute("clip_images", key, compute)


def text_features(cache: FeatureCache, encoder: ClipEncoder, concepts: Sequence[str], batch_size: int = 256):
    """concepts x d, L2-normalised CLIP text features (once per CLIP model and concept list)."""
    fingerprint = hashlib.sha256("\n".join(concepts).encode()).hexdigest()[:20]

    def compute() -> torch.Tensor:
        parts = []
        for start in tqdm(range(0, len(concepts), batch_size), desc="CLIP text features", unit="batch"):
            parts.append(encoder.encode_texts(concepts[start : start + batch_size]))
        return torch.cat(parts)

    return cache.get_or_compute("clip_texts", {"clip": encoder.model_id, "concepts": fingerprint}, compute)


def thumbnail(image: Image.Image, model: Any, side: int) -> Image.Image:
    """A small copy of the crop the model saw (thumbnails show what the neuron was shown)."""
    return Image.fromarray(model.crop(image)).resize((side, side), Image.Resampling.BILINEAR)
