"""The offline demo table: the real pipeline on random weights, a tiny random CLIP and generated images.

It exists so the app's neuron tab has something to show without network or weights; every meta.json
it writes says demo/random loudly. Rebuild with `python -m dissection_data demo`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from dissection_data.build import DEFAULT_LAYERS, DEFAULT_MODELS, BuildOptions, BuildResult, build_tables
from dissection_data.concepts import default_concept_set
from dissection_data.offline_clip import TINY, random_clip_encoder
from dissection_data.paths import TABLES_DIR
from dissection_data.probes import folder_probe_set
from dissection_data.synthetic import write_shape_probe_set

DEMO_PREFIX = "demo/"
DEMO_IMAGE_SIDE = 160


def build_demo(
    out: Path = TABLES_DIR, models: Sequence[str] = DEFAULT_MODELS, log: Callable[[str], None] = lambda m: None
) -> list[BuildResult]:
    """Write `out/demo/<model>/` for each model (random weights; no network, no cache)."""
    concept_set = default_concept_set()
    encoder = random_clip_encoder(TINY, concept_set.concepts, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        write_shape_probe_set(Path(scratch), size=DEMO_IMAGE_SIDE, sizes_per_shape=4)
        probe_set = folder_probe_set(
            Path(scratch), name="generated-shapes", source="36 generated coloured shapes (dissection_data.synthetic)"
        )
        options = BuildOptions(
            models=models,
            layers=DEFAULT_LAYERS,
            weights="random",
            out=Path(out),
            cache=None,
            device="cpu",
            table_prefix=DEMO_PREFIX,
            demo=True,
        )
        return build_tables(options, probe_set=probe_set, concept_set=concept_set, encoder=encoder, log=log)
