"""The dissection build's feature passes on Ray (`build --engine ray`): probe sets of any size, on a cluster.

The probe set (a folder, imagenet1000, or a streamed Hugging Face split `hf:NAME[:SPLIT[:COLUMN]]`) is
read in small blocks by the study's Ray engine (explainers.study.ray_engine); each actor holds the
target models and the CLIP image encoder once and returns, per image, the pooled activations of every
hooked layer (features.pooled_activations, the in-process pass's own function) and the CLIP image
feature. Every batch is saved as a Parquet part, so a killed build run again does each image once.

The gathered images x neurons matrices are written into the same FeatureCache entries the in-process
pass writes (features.activations_key, clip_images_key), so the rest of the build (similarity, labels,
self-check, tables) reads them as cache hits and is unchanged. An image that cannot be decoded is
skipped with one line in the log, as the study does; the probe set is then the images that were read.
Thumbnails of top images are read again from the source afterwards (`SourceProbeSet.select`): paths for
folders and imagenet1000, a second streamed pass over just the wanted ids for a Hugging Face split.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from dissection_data import features
from dissection_data.cache import FeatureCache, digest
from dissection_data.clip_encoder import ClipEncoder
from dissection_data.probes import ProbeSet
from explainers.errors import XaiLensError, first_line

PARTS_KIND = "ray_parts"  # <cache>/ray_parts/<digest of what is extracted>/parts/part-*.parquet
CLIP_COLUMN = "clip"


def activation_column(model_name: str, layer: str) -> str:
    return f"act__{model_name}__{layer}"


@dataclass(frozen=True)
class ExtractionRecipe:
    """What each actor loads once and computes per image. Models are names each actor loads itself, as a
    cluster node must; CLIP is a name too, or an encoder object shipped from the driver (a test's or the
    benchmark's offline stand-in)."""

    models: tuple[str, ...]
    weights: str
    clip: Any  # a CLIP id or folder for TransformersClip.from_pretrained, or a ClipEncoder object
    layers: tuple[str, ...]
    pooling: str

    def schema(self, model_names: Sequence[str]) -> pa.Schema:
        vector = pa.list_(pa.float32())
        fields = [("id", pa.string()), ("position", pa.int64()), ("worker", pa.string()), ("error", pa.string())]
        fields += [(CLIP_COLUMN, vector)]
        fields += [(activation_column(name, layer), vector) for name in model_names for layer in self.layers]
        return pa.schema(fields)


class ExtractActor:
    """A Ray Data actor: the target models and CLIP loaded once; per batch, every image's features or error."""

    def __init__(self, recipe: ExtractionRecipe, model_names: Sequence[str], threads: int) -> None:
        from dissection_data.clip_encoder import TransformersClip
        from explainers.engine.models import load_model

        torch.set_num_threads(max(1, threads))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.recipe = recipe
        self.models = [load_model(name, recipe.weights, device) for name in recipe.models]
        self.encoder = (
            TransformersClip.from_pretrained(recipe.clip, device) if isinstance(recipe.clip, str) else recipe.clip
        )
        self.schema = recipe.schema(model_names)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        records = batch.to_pylist()
        rows = [{"id": r["id"], "position": r["position"], "worker": self.worker} for r in records]
        images: list[Image.Image] = []
        readable: list[dict[str, Any]] = []
        for row, record in zip(rows, records, strict=True):
            try:
                images.append(decode(record))
                readable.append(row)
            except Exception as exc:  # any failure of one image: its one-line error, the build goes on
                row["error"] = first_line(exc)
        if images:
            self._features(images, readable)
        return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in self.schema.names}, self.schema)

    def _features(self, images: list[Image.Image], rows: list[dict[str, Any]]) -> None:
        columns = {CLIP_COLUMN: self.encoder.encode_images(images)}
        for model in self.models:
            pooled = features.pooled_activations(model, images, self.recipe.layers, self.recipe.pooling)
            columns.update({activation_column(model.name, layer): values for layer, values in pooled.items()})
        for name, values in columns.items():
            for row, vector in zip(rows, values.numpy(), strict=True):
                row[name] = vector


def decode(record: dict[str, Any]) -> Image.Image:
    """A record's image (its bytes, else its path) decoded as the in-process pass decodes probe images."""
    from explainers.inputs.images import load_image

    source = record.get("data") if record.get("data") is not None else record.get("path")
    if source is None:
        raise XaiLensError(f"{record['id']} has neither bytes nor a path")
    try:
        return load_image(source)
    except XaiLensError as exc:
        raise XaiLensError(f"Probe image '{record.get('path') or record['id']}' could not be used: {exc}") from None


@dataclass(frozen=True)
class SourceProbeSet(ProbeSet):
    """The probe set a Ray build labelled: the source's readable images in listing order, without a paths list.

    Its features are already cache entries when the build reads it, so only ids, len, fingerprint, describe
    and select (thumbnails) are used; reading all its images again would be the Ray pass's work, so it refuses."""

    records: Any = None  # the StudySource, read again for thumbnails
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def images(self) -> Iterator[Image.Image]:
        raise XaiLensError(f"The features of {self.name} are missing from the cache; run the build again to resume.")

    def select(self, wanted: set[str]) -> Iterator[tuple[str, Image.Image]]:
        """(id, image) for the wanted ids, reading the source again and stopping after the last one."""
        missing = set(wanted)
        if not missing:
            return
        for record in self.records.records():
            if record.id in missing:
                missing.discard(record.id)
                yield record.id, decode(record.as_row())
                if not missing:
                    return
        if missing:
            raise XaiLensError(
                f"{len(missing)} top image(s) (e.g. {min(missing)}) were not found again in {self.name}; "
                "the source changed since its features were taken: rebuild with a fresh --cache."
            )

    def describe(self) -> dict[str, object]:
        described = super().describe()
        if self.skipped:
            described["skipped_unreadable"] = self.skipped
        return described


def resolve_probe_source(probe: str, probe_dir: Path | None, cache: Path | None) -> Any:
    """The probe set as a StudySource (the study's one reader of folders, imagenet1000 and hf: splits)."""
    from explainers.study import require_scale
    from explainers.study.sources import resolve_source

    require_scale()
    return resolve_source(str(probe_dir) if probe_dir is not None else probe, cache)


def parts_folder(cache_root: Path, source: Any, recipe_key: dict[str, Any]) -> Path:
    """Where this extraction's parts are kept: one folder per source and per what is extracted."""
    return (
        Path(cache_root) / PARTS_KIND / digest({"source": source.name, "fingerprint": source.fingerprint, **recipe_key})
    )


def extract_on_ray(
    source: Any,
    recipe: ExtractionRecipe,
    driver_models: Sequence[Any],
    driver_encoder: ClipEncoder,
    cache: FeatureCache,
    *,
    address: str | None = None,
    workers: int | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    log: Callable[[str], None] = lambda message: None,
    on_batch: Callable[[pa.Table], None] | None = None,
) -> SourceProbeSet:
    """Run every pending image of `source` through Ray actors, then put the gathered features into `cache`
    under the in-process keys and return the probe set they describe. `driver_models`/`driver_encoder` are
    the driver's copies, used only for the cache keys (names, weights, preprocessing, CLIP id); `on_batch` sees
    every batch the actors return (a benchmark's clock, a test's count)."""
    from explainers.study.ray_engine import actor_batches, ray_session, save_as_they_come, source_total
    from explainers.study.results import finished_ids

    if cache.root is None:
        raise XaiLensError("The Ray engine keeps its features in the cache; drop --no-cache or give --cache DIR.")
    names = [model.name for model in driver_models]
    recipe_key = {
        "models": [features.activations_key(m, "", recipe.layers, recipe.pooling) for m in driver_models],
        "clip": driver_encoder.model_id,
    }
    out_dir = parts_folder(cache.root, source, recipe_key)
    done = finished_ids(out_dir)
    total = source_total(source, limit)
    if total is None or len(done) < total:
        with ray_session(address, workers) as plan:
            kwargs = {"recipe": recipe, "model_names": names, "threads": plan.cpus_per_worker}
            batches = actor_batches(
                source, done, plan, ExtractActor, kwargs, limit=limit, batch_size=batch_size, what="dissection build"
            )
            description = f"features ({plan.workers} {plan.device} workers)"
            # on_batch sees every row the actors return, before the parts drop any done earlier
            for saved in save_as_they_come(batches, done, out_dir, total, description, on_returned=on_batch):
                for image_id, error in zip(saved["id"].to_pylist(), saved["error"].to_pylist(), strict=True):
                    if error is not None:
                        log(f"skipped {image_id}: {error}")
    return _gather(source, recipe, driver_models, driver_encoder, cache, out_dir, limit, log)


def _gather(
    source: Any,
    recipe: ExtractionRecipe,
    models: Sequence[Any],
    encoder: ClipEncoder,
    cache: FeatureCache,
    out_dir: Path,
    limit: int | None,
    log: Callable[[str], None],
) -> SourceProbeSet:
    """The parts as images x features matrices in listing order, written to the cache under in-process keys."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from explainers.study.results import first_of_each_id, part_files

    parts = ds.dataset([str(path) for path in part_files(out_dir)], format="parquet")
    index = parts.to_table(columns=["id", "position", "error"])
    if limit is not None:
        index = index.filter(pc.less(index["position"], limit))
    index = first_of_each_id(index)
    failed = index.filter(pc.is_valid(index["error"])).num_rows
    if failed:
        log(f"{failed} unreadable probe image(s) skipped (their one-line errors are above or in an earlier run's log)")
    kept = index.filter(pc.is_null(index["error"])).sort_by("position")
    if kept.num_rows == 0:
        raise XaiLensError("No probe image could be read; check the probe set (see the skipped lines above).")
    ids = tuple(kept["id"].to_pylist())
    fingerprint = source.fingerprint if source.fingerprint and len(ids) == source.size else digest([source.name, ids])
    probe_set = SourceProbeSet(source.name, (), ids, fingerprint, source.description, source, skipped=failed)

    def matrix(column: str) -> torch.Tensor:
        table = parts.to_table(columns=["id", column], filter=pc.field("id").isin(list(ids)))
        table = first_of_each_id(table)
        by_id = dict(zip(table["id"].to_pylist(), range(table.num_rows), strict=True))
        rows = table[column].combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
        return torch.from_numpy(np.ascontiguousarray(rows[[by_id[i] for i in ids]]))

    def layer_matrices(model_name: str) -> dict[str, torch.Tensor]:
        return {layer: matrix(activation_column(model_name, layer)) for layer in recipe.layers}

    cache.get_or_compute("clip_images", features.clip_images_key(encoder, fingerprint), lambda: matrix(CLIP_COLUMN))
    for model in models:
        key = features.activations_key(model, fingerprint, recipe.layers, recipe.pooling)
        cache.get_or_compute("activations", key, functools.partial(layer_matrices, model.name))
    return probe_set
