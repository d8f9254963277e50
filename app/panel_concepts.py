"""The Explain tab's "Why, in concepts" panel, and its hook into the Neuron concepts tab.

For the explained class, `explainers.concepts.attribute_concepts` splits the logit over layer4's
units (exact for a torchvision ResNet: one forward pass) and names the strongest units with the
model's neuron table. The panel shows the top units as a bar chart, their maps on the crop (a
clickable strip), the evidence summed by concept, and where the labels came from. It runs in the
explanation's own GPU function right after the first map (`explain_concepts`); what crosses back
is plain data (`ConceptsResult`), drawn here.

Interface with the Neuron concepts tab (agreed with the helper who owns app/tab_neurons.py):

- `build_explain_tab(config)` returns a `ConceptsLink`:
  - `link.last`: a `gr.State` holding a `LastExplanation` (or None before any explanation). It is set
    after every explanation, and again when the visitor clicks a unit in the strip (`selected` = that unit).
  - `link.unit_picked`: the click's event (a gradio Dependency). The neurons tab chains on it, e.g.
    `link.unit_picked.then(show_unit, [link.last], [neuron_layer, unit, unit_map_image, thumbs])`, and the
    layout switches to the tab there (`gr.Tabs(selected=NEURON_TAB_ID)`, the tab built with `id=NEURON_TAB_ID`).
- `LastExplanation.unit_overlay(layer, unit)` -> the unit's activation on the explained crop (HxWx3 uint8),
  or None where that layer/unit was not recorded (only layer4 is; any of its units, not only the listed ones).
  `LastExplanation.table_key` names the table whose labels the panel used, so the tab can select the same one.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from dissection_data.provenance import provenance_line
from dissection_data.tables import CSV_NAME, NeuronTable
from explainers.concepts import ConceptAttribution, attribute_concepts
from explainers.concepts import render as concept_render
from explainers.concepts.attribution import NO_TABLE_WARNING, upsample
from explainers.concepts.published import PUBLISHED_TABLES, published_csv
from explainers.concepts.tables import default_table
from explainers.engine.models import MODEL_SPECS
from explainers.errors import XaiLensError, first_line
from explainers.outputs import render

NEURON_TAB_ID = "neuron-concepts"
BUILD_COMMAND = "python -m dissection_data build"
WAITING_TEXT = "Why, in concepts: the units that carried the decision appear with the first map."
log = logging.getLogger("xai_lens.app")


@dataclass(frozen=True)
class LastExplanation:
    """What the Neuron concepts tab may read about the image last explained (plain data, per session)."""

    model: str
    layer: str  # the layer whose activations are kept (layer4)
    crop: np.ndarray  # H x W x 3 uint8, the crop every map is drawn on
    activations: np.ndarray  # C x h x w float32, the layer's output for this crop
    target_label: str
    listed_units: tuple[int, ...]  # the units the panel listed, in its order
    table_key: str | None
    selected: int | None = None  # the unit the visitor last clicked

    def unit_map(self, layer: str, unit: int) -> np.ndarray | None:
        """The unit's activation upsampled onto the crop, or None where it was not recorded."""
        if layer != self.layer or not 0 <= unit < len(self.activations):
            return None
        return upsample(self.activations[unit : unit + 1], self.crop.shape[:2])[0]

    def unit_overlay(self, layer: str, unit: int) -> np.ndarray | None:
        """The unit's map on the crop, scaled by its own peak (where it fires, not how strongly)."""
        unit_map = self.unit_map(layer, unit)
        if unit_map is None:
            return None
        peak = float(unit_map.max())
        return render.overlay(self.crop, unit_map / peak if peak > 0 else np.zeros_like(unit_map))


@dataclass
class ConceptsLink:
    """Handed by the Explain tab to the layout and the Neuron concepts tab (see the module docstring)."""

    last: gr.State
    unit_picked: Any  # gradio Dependency of the strip's select event


@dataclass
class ConceptsResult:
    """Plain data back from the GPU worker: the attribution, or the one line saying why there is none."""

    model: str
    attribution: ConceptAttribution | None
    provenance: str | None  # where the labels came from, one line; None without a table
    table_key: str | None
    error: str | None = None


def no_table_line(model: str) -> str:
    """The one line shown when `model` has no neuron table on this server, naming the way to get labels."""
    spec = MODEL_SPECS.get(model)
    if model in PUBLISHED_TABLES:
        way = "CLIP-dissect's published labels for it could not be fetched (offline?)"
    else:
        kin = [
            other
            for other in PUBLISHED_TABLES
            if spec is not None and other.startswith(f"{model}-") and MODEL_SPECS[other].dataset == spec.dataset
        ]
        way = f"use {kin[0]} with CLIP-dissect's published labels" if kin else "no published labels exist for it"
    return f"No neuron table for {model}: {way}, or build one with `{BUILD_COMMAND}`; its units are unlabelled."


@functools.cache
def _tried_download(model: str) -> bool:
    """Fetch CLIP-dissect's published table for `model` into the cache, once per process (one log line if not)."""
    try:
        published_csv(PUBLISHED_TABLES[model])
    except XaiLensError as exc:
        log.info("published table for %s unavailable: %s", model, first_line(exc))
        return False
    return True


def prepare_table(model: str, tables_root: str | None) -> None:
    """Main process, before the GPU lease: where a published table fits and no own table exists, download it."""
    root = Path(tables_root) if tables_root else None
    own = root is not None and (root / model / CSV_NAME).is_file()
    if model in PUBLISHED_TABLES and not own:
        _tried_download(model)


@functools.lru_cache(maxsize=8)
def concept_table(model: str, tables_root: str | None) -> NeuronTable | None:
    """The model's table: its own build, else CLIP-dissect's cached one, else the demo; None where none exists."""
    return default_table(model, Path(tables_root) if tables_root else None)


def explain_concepts(model: Any, crop: np.ndarray, target: int, tables_root: str | None) -> ConceptsResult:
    """Worker side: the target's layer4 units, named by the model's table (one forward pass)."""
    try:
        table = concept_table(model.name, tables_root)
        attribution = attribute_concepts(model, crop, target, table)
    except XaiLensError as exc:
        return ConceptsResult(model.name, None, None, None, error=str(exc))
    where = provenance_line(table) if table is not None else None
    return ConceptsResult(model.name, attribution, where, table.key if table is not None else None)


def header_markdown(result: ConceptsResult) -> str:
    """Loud warnings first (random weights, demo labels, no table), then where the labels came from."""
    if result.attribution is None:
        return f"**Why, in concepts** is unavailable here: {result.error}"
    attribution = result.attribution
    lines = [f"**{warning}**" for warning in attribution.warnings if not _is_no_table_warning(warning, result.model)]
    if result.provenance is None:
        lines.append(f"**{no_table_line(result.model)}**")
    else:
        lines.append(f"Labels: {result.provenance}")
    how = "exact" if attribution.exact else "first order, not exact"
    lines.append(
        f"'{attribution.target_label}': logit {attribution.logit:.3g} = {attribution.total_contribution:.3g} from "
        f"{attribution.layer}'s units + bias {attribution.bias:.3g} ({how})."
    )
    lines.append("Click a unit's map to open it in the Neuron concepts tab.")
    return "\n\n".join(lines)


def _is_no_table_warning(warning: str, model: str) -> bool:
    return warning == NO_TABLE_WARNING.format(model=model)


def strip_items(result: ConceptsResult, crop: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Each listed unit's map on the crop, captioned like its bar ('unit 1234: fur (0.21)'; the bar has the sign)."""
    if result.attribution is None:
        return []
    attribution = result.attribution
    pictures = concept_render.unit_overlays(crop, attribution)
    return [(picture, unit.caption) for unit, picture in zip(attribution.units, pictures, strict=True)]


def summary_label(result: ConceptsResult) -> dict[str, float] | None:
    """Shares of the positive evidence by concept (the top ones, the rest as 'other labels'), for a gr.Label."""
    if result.attribution is None:
        return None
    return dict(concept_render.summary_items(result.attribution))


def chart_image(result: ConceptsResult) -> np.ndarray | None:
    if result.attribution is None:
        return None
    return render.figure_array(concept_render.contribution_chart(result.attribution))


def last_explanation(result: ConceptsResult, crop: np.ndarray) -> LastExplanation | None:
    if result.attribution is None:
        return None
    attribution = result.attribution
    return LastExplanation(
        model=result.model,
        layer=attribution.layer,
        crop=crop,
        activations=attribution.activations,
        target_label=attribution.target_label,
        listed_units=tuple(unit.unit for unit in attribution.units),
        table_key=result.table_key,
    )


def pick_unit(last: LastExplanation | None, event: gr.SelectData) -> LastExplanation | None:
    """A click on the strip: remember the unit (private event; the index comes from the browser)."""
    index = event.index
    if last is None or not isinstance(index, int) or isinstance(index, bool):
        return last
    if not 0 <= index < len(last.listed_units):
        return last
    return replace(last, selected=last.listed_units[index])
