"""Build neuron-concept tables, the CLIP-dissect way: probe images + concept words -> one label per neuron.

Order of work: resolve the probe and concept sets, load every target model and CLIP first (so missing
weights or network fail in seconds, not after an hour), then the cached passes (CLIP image features,
CLIP text features, each model's activations), then per layer the similarity matrix and labels, the
fc self-check, and the table files.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dissection_data import features
from dissection_data.cache import FeatureCache
from dissection_data.clip_encoder import ClipEncoder, TransformersClip, resolve_device
from dissection_data.concepts import WORDS_20K, ConceptSet, class_name_concepts, resolve_concept_set
from dissection_data.labels import label_layer, self_check
from dissection_data.paths import TABLES_DIR, cache_dir
from dissection_data.probes import IMAGENET1000, ProbeSet, resolve_probe_set
from dissection_data.similarity import DEFAULT_PARAMS, DEFAULT_SIMILARITY, similarity_function
from dissection_data.tables import DEMO_WARNING, write_table
from explainers.engine.models import RANDOM_WEIGHTS_WARNING, load_model, weights_label
from explainers.engine.provenance import library_versions
from explainers.errors import XaiLensError

DEFAULT_MODELS = ("resnet18", "resnet18-places365")
DEFAULT_LAYERS = ("layer3", "layer4", "fc")
DEFAULT_CLIP = "openai/clip-vit-base-patch16"
SELF_CHECK_LAYER = "fc"
THUMBNAIL_SIDE = 80
LOCAL_ENGINE, RAY_ENGINE = "local", "ray"
ENGINES = (LOCAL_ENGINE, RAY_ENGINE)
LARGE_PROBE_SET = 5000  # above this many images the in-process engine suggests --engine ray
VERSIONED_PACKAGES = ("torch", "torchvision", "transformers", "tokenizers", "wordfreq", "numpy", "pillow")


@dataclass
class BuildOptions:
    """Everything `python -m dissection_data build` can set."""

    models: Sequence[str] = DEFAULT_MODELS
    layers: Sequence[str] = DEFAULT_LAYERS
    weights: str = "published"
    probe: str = IMAGENET1000
    probe_dir: Path | None = None
    concepts: str = WORDS_20K
    concepts_file: Path | None = None
    clip: str = DEFAULT_CLIP
    device: str = "auto"
    out: Path = TABLES_DIR
    cache: Path | None = field(default_factory=cache_dir)  # None: no caching
    similarity: str = DEFAULT_SIMILARITY
    similarity_params: dict[str, Any] = field(default_factory=dict)
    pooling: str = "mean"
    batch_size: int = 32
    top_images: int = 5
    table_prefix: str = ""  # e.g. "demo/" -> out/demo/<model>
    demo: bool = False
    engine: str = LOCAL_ENGINE  # or RAY_ENGINE: the feature passes on Ray (dissection_data.scale)
    address: str | None = None  # Ray cluster address (default $RAY_ADDRESS, else a private local instance)
    workers: int | None = None  # Ray actors (default one per GPU, else per spare CPU)
    limit: int | None = None  # Ray engine: only the probe source's first N images


@dataclass
class BuildResult:
    model: str
    directory: Path
    meta: dict[str, Any]


class StageTimer:
    """Seconds per named stage (summed when a stage repeats), for meta.json and the benchmark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _similarity_params(options: BuildOptions) -> dict[str, Any]:
    similarity_function(options.similarity)  # unknown names fail before any work
    params = {**DEFAULT_PARAMS[options.similarity], **options.similarity_params}
    unknown = set(params) - set(DEFAULT_PARAMS[options.similarity])
    if unknown:
        raise XaiLensError(f"{options.similarity} has no parameter(s) {', '.join(sorted(unknown))}.")
    return params


def _effective_params(params: dict[str, Any], n_images: int) -> dict[str, Any]:
    """What actually ran: top_k is capped at the number of probe images."""
    if "top_k" in params and params["top_k"] > n_images:
        return {**params, "top_k": n_images}
    return params


def _thumbnails(model: Any, probe_set: ProbeSet, wanted: set[str]) -> dict[str, Any]:
    images = tqdm(probe_set.select(wanted), total=len(wanted), desc=f"{model.name}: thumbnails", unit="img")
    return {image_id: features.thumbnail(image, model, THUMBNAIL_SIDE) for image_id, image in images}


def _class_text_features(
    cache: FeatureCache,
    encoder: ClipEncoder,
    class_concepts: Sequence[str],
    concept_set: ConceptSet,
    text_feats: torch.Tensor,
) -> torch.Tensor:
    """Class-name text features, reusing rows already encoded for the concept set (the default set holds them)."""
    row_of = {concept: i for i, concept in enumerate(concept_set.concepts)}
    missing = list(dict.fromkeys(name for name in class_concepts if name not in row_of))
    if missing:
        extra = features.text_features(cache, encoder, missing)
        text_feats = torch.cat([text_feats, extra])
        row_of.update({name: len(concept_set) + i for i, name in enumerate(missing)})
    return text_feats[[row_of[name] for name in class_concepts]]


def build_tables(
    options: BuildOptions,
    *,
    probe_set: ProbeSet | None = None,
    concept_set: ConceptSet | None = None,
    encoder: ClipEncoder | None = None,
    models: Sequence[Any] | None = None,
    log: Callable[[str], None] = lambda message: None,
    timer: StageTimer | None = None,
) -> list[BuildResult]:
    """Build one table per model; the keyword arguments let tests, the benchmark and the demo plug in
    their own probe set, concept set, CLIP stand-in or models (LoadedModel-like objects). Pass a
    StageTimer to read the seconds spent per stage afterwards."""
    started = time.perf_counter()
    timer = timer if timer is not None else StageTimer()
    device = resolve_device(options.device)
    cache = FeatureCache(options.cache)
    params = _similarity_params(options)
    layers = list(dict.fromkeys(options.layers))
    hooked = list(dict.fromkeys([*layers, SELF_CHECK_LAYER]))
    ray_source = None
    with timer.stage("probe set"):
        if options.engine == RAY_ENGINE:
            from dissection_data import scale  # needs the scale extra (pyarrow, ray): imported only here

            ray_source = scale.resolve_probe_source(options.probe, options.probe_dir, options.cache or cache_dir())
        else:
            probe_set = probe_set or resolve_probe_set(options.probe, options.probe_dir, options.cache or cache_dir())
            if len(probe_set) > LARGE_PROBE_SET:
                log(f"{len(probe_set)} probe images: --engine ray spreads the feature passes over Ray workers.")
    with timer.stage("concept set"):
        concept_set = concept_set or resolve_concept_set(options.concepts, options.concepts_file)
    with timer.stage("load models"):
        models = (
            list(models) if models is not None else [load_model(m, options.weights, device) for m in options.models]
        )
        for model in models:
            for layer in hooked:
                model.layer(layer)  # an unknown layer fails now, not after the CLIP pass
    with timer.stage("load CLIP"):
        shipped_clip = encoder  # a stand-in given here is what the Ray actors use too
        encoder = encoder or TransformersClip.from_pretrained(options.clip, device)
    if ray_source is not None:
        from dissection_data import scale

        with timer.stage("Ray feature passes"):
            recipe = scale.ExtractionRecipe(
                tuple(options.models), options.weights, shipped_clip or options.clip, tuple(hooked), options.pooling
            )
            probe_set = scale.extract_on_ray(
                ray_source,
                recipe,
                models,
                encoder,
                cache,
                address=options.address,
                workers=options.workers,
                limit=options.limit,
                batch_size=options.batch_size,
                log=log,
            )
    assert probe_set is not None
    with timer.stage("CLIP image features"):
        image_feats = features.image_features(cache, encoder, probe_set, options.batch_size)
    with timer.stage("CLIP text features"):
        text_feats = features.text_features(cache, encoder, concept_set.concepts)
    clip_scores = image_feats @ text_feats.T  # images x concepts: cosine of normalised features
    similarity = similarity_function(options.similarity)
    effective = _effective_params(params, len(probe_set))
    shared_seconds = dict(timer.seconds)

    results = []
    for model in models:
        model_timer = StageTimer()
        with model_timer.stage("activations"):
            acts = features.activations(cache, model, probe_set, hooked, options.pooling, options.batch_size)
        labels = []
        for layer in layers:
            with model_timer.stage(f"similarity {layer}"):
                scores = similarity(clip_scores, acts[layer], **params)
                labels += label_layer(
                    layer, scores, concept_set.concepts, acts[layer], probe_set.ids, 5, options.top_images
                )
        with model_timer.stage("self-check"):
            class_concepts = class_name_concepts(model.categories)
            class_feats = _class_text_features(cache, encoder, class_concepts, concept_set, text_feats)
            fc_scores = similarity(image_feats @ class_feats.T, acts[SELF_CHECK_LAYER], **params)
            check = self_check(fc_scores, class_concepts, model.categories)
        log(
            f"{model.name}: fc self-check with class names as concepts: top-1 {check['top1']:.1%}, "
            f"top-5 {check['top5']:.1%} of {check['neurons']} neurons"
        )
        with model_timer.stage("write table"):
            wanted = {image_id for label in labels for image_id in label.top_images}
            thumbs = _thumbnails(model, probe_set, wanted)
            meta = _meta(options, model, encoder, probe_set, concept_set, effective, layers, acts, check)
            meta["timings_s"] = {k: round(v, 3) for k, v in {**shared_seconds, **model_timer.seconds}.items()}
            meta["time_s"] = round(time.perf_counter() - started, 3)
            directory = write_table(
                Path(options.out) / f"{options.table_prefix}{model.name}", model.name, labels, meta, thumbs
            )
        timer.seconds.update({f"{model.name}: {k}": v for k, v in model_timer.seconds.items()})
        results.append(BuildResult(model.name, directory, meta))
        log(f"{model.name}: wrote {directory}")
    return results


def _meta(
    options: BuildOptions,
    model: Any,
    encoder: ClipEncoder,
    probe_set: ProbeSet,
    concept_set: ConceptSet,
    params: dict[str, Any],
    layers: Sequence[str],
    acts: dict[str, torch.Tensor],
    check: dict[str, Any],
) -> dict[str, Any]:
    random_weights = bool(getattr(model, "is_random", False))
    warnings = [DEMO_WARNING] if options.demo else []
    if random_weights:
        warnings.append(RANDOM_WEIGHTS_WARNING)
    if encoder.is_random:
        warnings.append(
            "RANDOM CLIP: the CLIP model was randomly initialised, so its image-text similarities mean nothing."
        )
    return {
        "model": model.name,
        "model_title": model.spec.title,
        "dataset": getattr(model.spec, "dataset", ""),
        "demo": options.demo,
        "weights": weights_label(model.weights),
        "random_weights": random_weights,
        "warning": " ".join(warnings) or None,
        "clip": {"id": encoder.model_id, "random": encoder.is_random},
        "probe": probe_set.describe(),
        "concepts": concept_set.describe(),
        "similarity": {"name": options.similarity, "params": params},
        "pooling": options.pooling,
        "layers": {layer: int(acts[layer].shape[1]) for layer in layers},
        "top_images_per_neuron": options.top_images,
        "thumbnail_side": THUMBNAIL_SIDE,
        "self_check": check,
        "versions": library_versions(VERSIONED_PACKAGES),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
