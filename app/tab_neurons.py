"""Tab 3: the CLIP-dissect neuron-concept tables: search, frequencies, ImageNet vs Places365, top images.

Which tables: those built by XAI Lens (--tables, else the built-in folder), CLIP-dissect's published tables when
they are already in the cache (never fetched here: the Explain tab's concept panel fetches them), and the offline
demo tables only when nothing else is there (dissection_data.provenance.select_served). Each table's provenance
line stands above it. For the image last explained (app/panel_concepts.py's LastExplanation), the chosen unit's
activation map is drawn on that image's crop; before any explanation there is no map, only a note.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.errors import user_error
from app.panel_concepts import NEURON_TAB_ID, ConceptsLink, LastExplanation
from app.settings import AppConfig
from dissection_data import table_views
from dissection_data.provenance import DEMO, PUBLISHED, provenance_line, select_served, table_kind
from dissection_data.tables import NeuronTable, load_tables
from explainers.concepts.published import PUBLISHED_TABLES, load_published_table
from explainers.errors import XaiLensError
from explainers.outputs import render

ALL_LAYERS = "all layers"
MAX_QUERY = 200  # characters of a concept search; concept names are a few words


def no_table_message() -> str:
    return (
        "**No neuron table yet.** Build one with\n\n"
        f"`{table_views.BUILD_COMMAND}`\n\n"
        f"(or `{table_views.DEMO_COMMAND}` for an offline demo table with meaningless labels), then restart the app."
    )


def comparison_markdown(tables: list[NeuronTable]) -> str:
    pair = table_views.dataset_pair(tables)
    if pair is None:
        return "ImageNet vs Places365: needs one table of each (build both models)."
    result = table_views.compare_tables(*pair)
    lines = [
        f"### {result.first} (ImageNet) vs {result.second} (Places365)",
        f"{len(result.shared)} concepts shared, {len(result.only_first)} only in {result.first}, "
        f"{len(result.only_second)} only in {result.second}.",
        "",
        f"| layer | shared | only {result.first} | only {result.second} |",
        "|---|---|---|---|",
        *(f"| {layer} | {s} | {a} | {b} |" for layer, s, a, b in result.per_layer),
        "",
        f"**Shared:** {', '.join(result.shared[:30]) or '-'}",
        f"**Only {result.first}:** {', '.join(result.only_first[:30]) or '-'}",
        f"**Only {result.second}:** {', '.join(result.only_second[:30]) or '-'}",
    ]
    return "\n".join(lines)


def cached_published_tables() -> list[NeuronTable]:
    """CLIP-dissect's published tables that are already downloaded and verified; nothing is fetched here."""
    found = []
    for model in PUBLISHED_TABLES:
        try:
            found.append(load_published_table(model, download=False))
        except XaiLensError:  # not downloaded yet (or damaged): the Explain tab's concept panel fetches it
            continue
    return found


def served(config: AppConfig) -> list[NeuronTable]:
    """Built tables first, then the cached published ones; demo tables only when no other table is there."""
    own = load_tables(config.tables_root)
    return select_served(sorted(own + cached_published_tables(), key=lambda t: (t.is_demo, table_kind(t), t.key)))


def table_label(table: NeuronTable) -> str:
    """The dropdown's name for a table: its model, and who made it when that is not XAI Lens."""
    kind = table_kind(table)
    if kind == PUBLISHED:
        return f"{table.model} (published by CLIP-dissect's authors)"
    return f"{table.key} (demo)" if kind == DEMO else table.key


def build_neurons_tab(config: AppConfig, link: ConceptsLink | None = None, tabs: gr.Tabs | None = None) -> None:
    """Lay out tab 3 and wire it (api names: neurons_filter, neurons_table, neuron_images).

    `link` (from the Explain tab) carries the image last explained; a click on a unit there opens it here,
    switching `tabs` to this tab."""
    try:
        tables = served(config)
    except XaiLensError as exc:
        gr.Markdown(f"{exc}\n\n{no_table_message()}")
        return
    if not tables:
        gr.Markdown(no_table_message(), elem_id="no-neuron-table")
        return
    by_key = {table.key: table for table in tables}
    first = tables[0]
    warning = gr.Markdown(table_header(first), elem_id="table-provenance")
    with gr.Row():
        table_key = gr.Dropdown(
            [(table_label(table), table.key) for table in tables], value=first.key, label="Table (model)"
        )
        layer = gr.Dropdown([ALL_LAYERS, *first.layers], value=ALL_LAYERS, label="Layer")
        query = gr.Textbox(label="Search concepts (label or runner-up)", placeholder="e.g. water")
    with gr.Row():
        with gr.Column(scale=3):
            grid = gr.Dataframe(
                headers=list(table_views.RECORD_COLUMNS),
                value=table_views.row_records(first.rows),
                interactive=False,
                max_height=420,
                label="Neurons (click a row for its top images)",
            )
            count = gr.Markdown(rows_label(len(first.rows), len(first.rows)), elem_id="neuron-count")
        with gr.Column(scale=2):
            histogram = gr.Image(filtered(first, ALL_LAYERS, "")[1], label="Most frequent concepts", type="numpy")
    with gr.Row():
        neuron_layer = gr.Dropdown(first.layers, value=first.layers[0] if first.layers else None, label="Neuron layer")
        unit = gr.Number(0, label="Unit", precision=0, minimum=0)
        show = gr.Button("Show top-activating probe images")
    with gr.Row():
        thumbs = gr.Gallery(label="Top-activating probe images", columns=5, height=220, scale=3)
        with gr.Column(scale=2):
            unit_map = gr.Image(label="This unit on the image last explained", type="numpy", height=220)
            unit_note = gr.Markdown(NO_EXPLANATION, elem_id="unit-map-note")
    last = link.last if link is not None else gr.State(None)
    gr.Markdown(comparison_markdown(tables))

    def table_for(key: str) -> NeuronTable:
        if key not in by_key:
            raise user_error(f"Choose a table from the list: {', '.join(by_key)}.")
        return by_key[key]

    def filter_view(key: str, chosen_layer: str, text: str):
        table = table_for(key)
        records, histogram = filtered(table, chosen_layer, str(text or "")[:MAX_QUERY])
        return records, histogram

    def count_view(key: str, chosen_layer: str, text: str) -> str:
        table = table_for(key)
        records, _ = filtered(table, chosen_layer, str(text or "")[:MAX_QUERY])
        return rows_label(len(records), len(table.rows))

    def switch_table(key: str):
        table = table_for(key)
        layers = table.layers
        return (
            table_header(table),
            gr.update(choices=[ALL_LAYERS, *layers], value=ALL_LAYERS),
            gr.update(choices=layers, value=layers[0] if layers else None),
        )

    def top_images(key: str, chosen_layer: str, chosen_unit: float):
        table = table_for(key)
        try:
            check_unit(table, str(chosen_layer), int(chosen_unit))
            paths = table.thumbnail_paths(str(chosen_layer), int(chosen_unit))
        except XaiLensError as exc:
            raise user_error(str(exc)) from None
        except (TypeError, ValueError, OverflowError):  # NaN, infinity, not a number
            raise user_error("Unit must be a whole number of a neuron in the chosen layer.") from None
        return [(str(path), Path(path).stem) for path in paths]

    def unit_view(key: str, chosen_layer: str, chosen_unit: float, explained: LastExplanation | None):
        """The unit's map on the crop last explained, and a line saying what it shows (or why there is none)."""
        try:
            unit_number = int(chosen_unit)
        except (TypeError, ValueError, OverflowError):
            return None, NO_EXPLANATION if explained is None else ""
        return unit_on_last_image(table_for(key), str(chosen_layer), unit_number, explained)

    def pick_row(key: str, records, event: gr.SelectData):
        """Private event: the row and the table come from the browser, so anything odd is one line."""
        try:
            row = int(event.index[0])
            model_layer, model_unit = str(records.iloc[row, 1]), int(records.iloc[row, 2])
        except (TypeError, ValueError, OverflowError, IndexError, KeyError, AttributeError):
            raise user_error("Click a row of the neuron table.") from None
        return model_layer, model_unit, top_images(key, model_layer, model_unit)

    filters = [table_key, layer, query]
    for trigger in (layer.change, query.submit, table_key.change):
        trigger(filter_view, filters, [grid, histogram], api_visibility="private")
        trigger(count_view, filters, count, api_visibility="private", show_progress="hidden")
    table_key.change(switch_table, table_key, [warning, layer, neuron_layer], api_name="neurons_table")
    query.change(filter_view, filters, [grid, histogram], api_name="neurons_filter")
    query.change(count_view, filters, count, api_visibility="private", show_progress="hidden")
    unit_inputs = [table_key, neuron_layer, unit, last]
    show.click(top_images, [table_key, neuron_layer, unit], thumbs, api_name="neuron_images").success(
        unit_view, unit_inputs, [unit_map, unit_note], api_visibility="private", show_progress="hidden"
    )
    grid.select(pick_row, [table_key, grid], [neuron_layer, unit, thumbs], api_visibility="private").success(
        unit_view, unit_inputs, [unit_map, unit_note], api_visibility="private", show_progress="hidden"
    )
    if link is None:
        return

    def open_picked(key: str, explained: LastExplanation | None):
        """A unit clicked in the Explain tab's concept strip: its table, layer, unit, images and map, here."""
        if explained is None or explained.selected is None:
            return (gr.update(),) * 7
        chosen = explained.table_key if explained.table_key in by_key else key
        table = by_key[chosen]
        unit_number, where = explained.selected, explained.layer
        try:
            check_unit(table, where, unit_number)
            images = [(str(path), Path(path).stem) for path in table.thumbnail_paths(where, unit_number)]
        except XaiLensError:  # the table lacks that layer or unit: the map still shows
            images = []
        picture, note = unit_on_last_image(table, where, unit_number, explained)
        selected = gr.Tabs(selected=NEURON_TAB_ID) if tabs is not None else gr.update()
        return selected, chosen, where, unit_number, images, picture, note

    link.unit_picked.then(
        open_picked,
        [table_key, last],
        [tabs if tabs is not None else warning, table_key, neuron_layer, unit, thumbs, unit_map, unit_note],
        api_visibility="private",
        show_progress="hidden",
    )


NO_EXPLANATION = "Explain an image in the Explain tab to see where the chosen unit fires on it."


def table_header(table: NeuronTable) -> str:
    """The table's provenance line (built by XAI Lens, published by CLIP-dissect's authors, or demo); loud for
    labels that mean nothing, with the way to real ones."""
    line = provenance_line(table)
    if table.is_demo or table.is_random:
        return f"**{line}**" + ("" if table.is_demo else f" Real labels: `{table_views.BUILD_COMMAND}`.")
    if table_kind(table) == PUBLISHED:
        return f"{line} Published tables come without probe images."
    return line


def unit_on_last_image(
    table: NeuronTable, layer: str, unit: int, explained: LastExplanation | None
) -> tuple[object, str]:
    """The unit's activation on the crop last explained, when that explanation's model and layer match."""
    if explained is None:
        return None, NO_EXPLANATION
    if explained.model != table.model:
        return None, (
            f"The image last explained ('{explained.target_label}') went through {explained.model}; choose its "
            f"table to see its units there."
        )
    picture = explained.unit_overlay(layer, unit)
    if picture is None:
        return None, f"Only {explained.layer}'s units are recorded for the image last explained; choose that layer."
    return picture, f"{layer} unit {unit} on the image last explained ('{explained.target_label}'), scaled to its peak."


def rows_label(matching: int, total: int) -> str:
    """The table's label says how many rows the filters left, so an empty-looking table is not a mystery."""
    return f"**{matching} of {total} neurons match** the filters."


def check_unit(table: NeuronTable, layer: str, unit: int) -> None:
    """An out-of-range unit is refused with the range that exists, not only 'not found'."""
    units = sorted(row.unit for row in table.rows if row.layer == layer)
    if not units:
        raise XaiLensError(f"Layer '{layer[:40]}' is not in the {table.key} table; choose one from the list.")
    if unit not in set(units):
        raise XaiLensError(f"Unit {unit} is not in {layer}: choose a unit from {units[0]} to {units[-1]}.")


def filtered(table: NeuronTable, chosen_layer: str, text: str) -> tuple[list[list], object]:
    """The table's rows after the filters, and the concept histogram that follows them."""
    rows = table_views.filter_rows(table.rows, None if chosen_layer == ALL_LAYERS else chosen_layer, text)
    where = "all layers" if chosen_layer == ALL_LAYERS else chosen_layer
    title = f"{table.key}, {where}" + (f", '{text}'" if text else "")
    figure = table_views.concept_histogram(table_views.concept_counts(rows), title)
    return table_views.row_records(rows), render.figure_array(figure)
