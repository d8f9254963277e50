"""Tab 1: one image, chosen methods side by side, streamed as each method finishes."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
from matplotlib.figure import Figure

from app import panel_concepts, panel_trust, settings
from app.compute import ExplainRequest, explain_stream
from app.defaults import device_defaults, full_settings, model_choices, random_title
from app.errors import user_error
from app.file_inputs import UploadedImage
from app.lime_form import LimeForm, lime_form
from app.panel_concepts import ConceptsLink, ConceptsResult
from app.panel_trust import TrustRequest, TrustResult
from app.settings import AppConfig
from app.stops import STOPS, wire_stop_button
from explainers.comparison.masks import DEFAULT_RULE, parse_rule
from explainers.engine.cancel import CancelledError
from explainers.engine.models import MODEL_SPECS, model_spec
from explainers.errors import XaiLensError
from explainers.faithfulness import BASELINES, DEFAULT_STEPS
from explainers.inputs.param_file import default_lime_params
from explainers.inputs.presets import PRESETS, ensure_presets
from explainers.methods import CORE_METHODS, EXTRA_METHODS, METHODS, parse_methods
from explainers.outputs import render
from explainers.outputs.snapshot import ExplanationView

TOP1 = "top-1 (the model's prediction)"
log = logging.getLogger("xai_lens.app")


def method_choices(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(METHODS[name].title, name) for name in names]


def target_choices(model_name: str, first: list[int] | tuple[int, ...] = ()) -> list[str]:
    """TOP1, then `first` (the top-5 after a run), then every class as 'index: name' (type to search)."""
    categories = model_spec(model_name).categories()
    order = [*first, *(i for i in range(len(categories)) if i not in set(first))]
    return [TOP1, *(f"{i}: {categories[i]}" for i in order)]


def parse_target(choice: str | None) -> int | None:
    if not choice or choice == TOP1:
        return None
    head = str(choice).split(":", 1)[0].strip()
    if not head.isdigit() or len(head) > 6:
        raise XaiLensError(f"Target class {choice!r:.40} is not in the list; pick one, or top-1.")
    return int(head)


def available_presets(config: AppConfig) -> list[tuple[str, str]]:
    """(path, label) of the presets found locally or downloadable; empty when they cannot be had."""
    try:
        return [(str(path), preset.label) for preset, path in ensure_presets(config.examples_dir, progress=False)]
    except XaiLensError:
        return []


def _model_title(view: ExplanationView) -> str:
    """The model as the visitor should read it: with random weights, not '(ImageNet)'."""
    return random_title(view.model_title) if view.is_random else view.model_title


def _status(view: ExplanationView, measuring: bool = False) -> str:
    done = ", ".join(f"{view.titles[m]} {view.seconds[m]:.2f} s" for m in view.methods)
    waiting = ", ".join(METHODS[m].title for m in view.pending)
    target = f"Explaining **{view.target['label']}** (p = {view.target['probability']:.3f}) with {view.model_title}."
    state = f" Still running: {waiting}." if waiting else " Done."
    if measuring and not waiting:
        state = " Maps done; measuring which explanation to trust (below)."
    return f"{target} Finished: {done}.{state} Maps {render.CROP_CAPTION}."


def stopped_status(view: ExplanationView | None, reason: str) -> str:
    """What a stop leaves on screen: which methods finished (their results stay), and why it stopped."""
    if view is None or not view.methods:
        return f"**Stopped** before any method finished ({reason}). Press Explain to run again."
    finished = ", ".join(view.titles[m] for m in view.methods)
    return f"**Stopped after {finished}** ({reason}); their results stay below. Press Explain to run again."


def projector_fonts(figure: Figure) -> Figure:
    """IoU numbers readable from the back of a room: the app's copy of the heatmap gets larger text."""
    for axis in figure.axes[:1]:
        for text in axis.texts:
            text.set_fontsize(17)
            text.set_fontweight("bold")
        axis.tick_params(labelsize=12)
        axis.title.set_fontsize(14)
    figure.tight_layout()
    return figure


def view_outputs(view: ExplanationView, model_name: str, measuring: bool = False) -> tuple[Any, ...]:
    """One explanation view -> values of the tab's map outputs (the panels have their own)."""
    if view.is_random:
        view = replace(view, model_title=_model_title(view))
    overlays = [(view.overlays[m], view.captions[m]) for m in view.methods]
    masks = [(render.mask_image(view.masks[m]), f"{view.titles[m]} mask ({view.mask_rule})") for m in view.masks]
    figure = view.iou_figure()
    predictions = {f"{p['index']}: {p['label']}": p["probability"] for p in view.top5}
    choices = gr.update(choices=target_choices(model_name, [p["index"] for p in view.top5])) if view.done else None
    return (
        _status(view, measuring),
        predictions,
        overlays,
        masks,
        render.figure_array(projector_fonts(figure)) if figure is not None else None,
        view.superpixels,
        view.summary if view.done else None,
        choices or gr.update(),
        render.figure_array(view.side_by_side_figure()) if view.methods else None,
    )


def checked_request(
    image_path: str | None,
    model_name: str,
    target_choice: str | None,
    core: list[str] | None,
    extra: list[str] | None,
    rule: str,
    lime_values: tuple[Any, ...],
    metric_values: tuple[Any, ...] = ((), DEFAULT_STEPS, "zeros"),
) -> tuple[list[str], int | None, dict[str, Any], TrustRequest | None]:
    """Every input checked before any output changes: a refusal leaves the earlier results as they were."""
    if not image_path:
        raise XaiLensError("Choose an image first: drop one, upload, paste, use the webcam or click a preset.")
    if model_name not in MODEL_SPECS:
        raise XaiLensError("Choose a model from the list.")
    chosen = [*(core or []), *(extra or [])]
    if not chosen:
        raise XaiLensError("Tick at least one method.")
    parse_methods(chosen)
    if parse_rule(str(rule or "")).kind == "lime-top" and "lime" not in chosen:
        raise XaiLensError(f"The mask rule {rule} needs LIME among the methods; tick LIME or use top:0.10.")
    trust = panel_trust.check_trust_request(*metric_values)
    return chosen, parse_target(target_choice), LimeForm.to_kwargs(*lime_values), trust


# Phones and projectors: larger text on request (a class on <body>, set in the browser; nothing is recomputed).
PRESENTATION_JS = "(on) => { document.body.classList.toggle('presenting', Boolean(on)); return []; }"


def picture_strip(label: str, elem_id: str, columns: int, visible: bool = True) -> gr.Gallery:
    """A panel's row of pictures at their own height: no preview or buttons over them, and the label is
    for screen readers only (the panel's heading already says what they are)."""
    return gr.Gallery(
        label=label,
        show_label=False,
        columns=columns,
        height="auto",
        object_fit="contain",
        allow_preview=False,
        buttons=[],
        visible=visible,
        elem_id=elem_id,
    )


def build_explain_tab(config: AppConfig) -> ConceptsLink:
    """Lay out tab 1 and wire its events (api name: explain); returns the hook the Neuron concepts tab reads.

    At 1280x720 the Explain button, the presets and the first result share the first screen; progress
    has a line of its own, so results that are done stay visible while slower methods run. Below the
    maps, "Why, in concepts" and "Which explanation to trust" (app/panel_concepts.py, app/panel_trust.py).
    """
    presets = available_presets(config)
    defaults = device_defaults()
    default_lime = {**default_lime_params()[PRESETS[0].key], "num_samples": defaults.lime_samples}
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            image = UploadedImage(
                type="filepath",
                sources=["upload", "webcam", "clipboard"],
                label="Image: drop, upload, paste or a preset",
                elem_id="input-image",
                height=210,
            )
            with gr.Row():
                run = gr.Button("Explain", variant="primary", scale=3, elem_id="explain-button")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop-button")
            if presets:
                gallery = gr.Gallery(
                    presets,
                    label="Presets: click one",
                    show_label=False,  # a label chip would cover the first thumbnail
                    columns=5,
                    rows=2,
                    height="auto",
                    object_fit="cover",
                    allow_preview=False,
                    elem_id="presets",
                    buttons=[],
                )
                gallery.select(_pick_preset(gallery_copies(gallery)), None, image, api_visibility="private")
            else:
                gr.Markdown(
                    "Preset images are unavailable offline; set XAI_LENS_EXAMPLES_DIR to their folder.",
                    elem_id="no-presets",
                )
            chosen_note = gr.Markdown(defaults.note, elem_id="defaults-note")
            full = gr.Button(
                "Use the full settings (ResNet50, all four methods, LIME 1000 samples)",
                size="sm",
                visible=not defaults.on_gpu,
                elem_id="full-settings",
            )
            model = gr.Dropdown(model_choices(config.weights), value=defaults.model, label="Model")
            target = gr.Dropdown(
                target_choices(defaults.model),
                value=None,
                label="Target class",
                info="Empty: the model's top-1 prediction. Type to search.",
                filterable=True,
                elem_id="target-class",
            )
            methods = gr.CheckboxGroup(method_choices(CORE_METHODS), value=list(defaults.methods), label="Methods")
            with gr.Accordion("More CAM methods", open=False):
                extras = gr.CheckboxGroup(method_choices(EXTRA_METHODS), value=[], label="Extra methods")
            mask_rule = gr.Dropdown(
                list(settings.MASK_RULES), value=DEFAULT_RULE, label="Mask rule (for IoU)", allow_custom_value=True
            )
            metrics = gr.CheckboxGroup(
                panel_trust.METRIC_CHOICES,
                value=[],
                label="Which explanation to trust (opt-in, measured after the maps)",
                elem_id="trust-metrics",
            )
            cost = gr.Markdown(
                panel_trust.cost_line([], DEFAULT_STEPS, defaults.methods, defaults.model), elem_id="trust-cost"
            )
            with gr.Accordion("Deletion/insertion settings", open=False):
                steps = gr.Slider(
                    *panel_trust.steps_limits(), value=DEFAULT_STEPS, step=1, label="Deletion/insertion steps"
                )
                baseline = gr.Dropdown(list(BASELINES), value="zeros", label="Deletion/insertion baseline")
            with gr.Accordion("LIME parameters (explain_instance)", open=False):
                form = lime_form(default_lime)
            presenting = gr.Checkbox(False, label="Presentation mode (larger text)", elem_id="presentation-mode")
        with gr.Column(scale=2):
            status = gr.Markdown(
                "Choose an image and press Explain. Grad-CAM appears first; slower methods follow.",
                elem_id="explain-status",
            )
            progress_line = gr.Markdown("", elem_id="explain-progress", min_height=28)
            side_by_side = gr.Image(
                label="Side by side",
                type="numpy",
                interactive=False,
                elem_id="side-by-side",
                show_label=False,
                buttons=[],
                height=360,
            )
            with gr.Row(equal_height=False):
                with gr.Column(min_width=200):
                    gr.Markdown("**Top-5 predictions**")
                    predictions = gr.Label(num_top_classes=5, show_label=False, elem_id="top5")
                iou = gr.Image(
                    label="IoU matrix", type="numpy", elem_id="iou-matrix", show_label=False, buttons=[], height=300
                )
                superpixels = gr.Image(
                    label="LIME superpixels", type="numpy", elem_id="superpixels", buttons=[], height=300
                )
            # The two panels span the results column: at 1280x720 a half column would shrink their figures and
            # cut the unit strip. Titles sit in Markdown above each figure, so no label chip covers one.
            with gr.Column(elem_id="concepts-panel"):
                gr.Markdown("### Why, in concepts")
                concepts_header = gr.Markdown(panel_concepts.WAITING_TEXT, elem_id="concepts-header")
                with gr.Row(equal_height=False):
                    concepts_chart = gr.Image(
                        label="Top units",
                        type="numpy",
                        show_label=False,
                        buttons=[],
                        elem_id="concepts-chart",
                        scale=3,
                    )
                    with gr.Column(scale=2):
                        gr.Markdown("**By concept**: share of the positive evidence")
                        concepts_summary = gr.Label(
                            label="By concept: share of the positive evidence",
                            show_label=False,  # its chip would cover the leading concept's name
                            num_top_classes=9,
                            elem_id="concepts-summary",
                        )
                gr.Markdown("Their maps on the crop (click one to open it in **Neuron concepts**):")
                concepts_strip = picture_strip("Their maps on the crop", "concepts-strip", columns=5)
                with gr.Accordion("Numbers (as concepts.json)", open=False):
                    concepts_json = gr.JSON(label="concepts")
            with gr.Column(elem_id="trust-panel"):
                gr.Markdown("### Which explanation to trust")
                trust_text = gr.Markdown(panel_trust.OFF_TEXT, elem_id="trust-text")
                trust_table = gr.Dataframe(
                    label="Faithfulness and sanity per method",
                    interactive=False,
                    visible=False,
                    wrap=True,
                    elem_id="trust-table",
                )
                trust_curves = gr.Image(
                    label="Deletion and insertion curves",
                    show_label=False,
                    type="numpy",
                    buttons=[],
                    visible=False,
                    elem_id="trust-curves",
                )
                trust_strips = picture_strip(
                    "Sanity: each method's map as the model is randomised", "trust-strips", columns=1, visible=False
                )
            last_explained = gr.State(None)
            with gr.Accordion("Each overlay and mask on its own (full size, downloadable)", open=False):
                overlays = gr.Gallery(
                    label="Saliency overlays", columns=4, object_fit="contain", allow_preview=True, elem_id="overlays"
                )
                masks = gr.Gallery(label="Masks", columns=4, object_fit="contain", allow_preview=True)
            with gr.Accordion("Summary (what made these maps)", open=False):
                summary = gr.JSON(label="summary")
    model.change(_switch_model, model, target, api_visibility="private")
    image.upload(_accept_upload, image, None, api_visibility="private", show_progress="hidden").failure(
        lambda: None, None, image, api_visibility="private", show_progress="hidden"
    )
    presenting.change(None, presenting, None, js=PRESENTATION_JS, api_visibility="private")
    full.click(_full_settings, None, [model, methods, form.components[0], chosen_note], api_visibility="private")
    cost_inputs = [metrics, steps, methods, extras, model]
    for control in cost_inputs:
        control.change(_cost, cost_inputs, cost, api_visibility="private", show_progress="hidden")
    tables_root = str(config.tables_root) if config.tables_root else None

    def explain(
        request: gr.Request,  # first: gradio passes it by position, and the LIME form's values follow as *args
        image_path,
        model_name,
        target_choice,
        core,
        extra,
        rule,
        *values,  # the LIME form's values, then the metrics' (metrics, steps, baseline)
        progress=gr.Progress(),  # noqa: B008 (gradio injects it)
    ):
        lime_values, metric_values = values[: len(form.components)], values[len(form.components) :]
        try:
            chosen, target_index, lime_kwargs, trust = checked_request(
                image_path, model_name, target_choice, core, extra, rule, lime_values, tuple(metric_values)
            )
        except XaiLensError as exc:
            raise user_error(str(exc)) from None
        session = getattr(request, "session_hash", None)
        token = STOPS.start("explain", session, settings.EXPLAIN_DEADLINE_S)
        last = None
        try:
            panel_concepts.prepare_table(model_name, tables_root)  # a published table downloads here, off the lease
            progress(0, desc="classifying")
            lime_progress = (
                None
                if settings.ON_SPACES
                else (lambda done, total: progress(done / total, desc=f"LIME: {done}/{total} samples"))
            )
            explain_request = ExplainRequest(
                image_path,
                model_name,
                config.weights,
                chosen,
                target_index,
                lime_kwargs,
                rule,
                image_name=Path(image_path).name,
                deadline_s=settings.EXPLAIN_DEADLINE_S,
                trust=trust,
                concepts_root=tables_root,
                concepts=True,
            )
            stream = explain_stream(explain_request, lime_progress, cancel=token)
            # Every yield carries every output's current value: an API client reads only the last one.
            current: list[Any] = []
            for item in stream:
                if isinstance(item, ConceptsResult):
                    current[len(map_outputs) : -len(trust_outputs)] = concept_values(item, last)
                elif isinstance(item, TrustResult):
                    current[0] = _status(last) if last is not None else current[0]
                    current[-len(trust_outputs) :] = trust_values(item)
                else:
                    if last is None:  # a new run: the panels of the previous image go
                        current = [None] * len(map_outputs)
                        current += [*concept_values(None, item), *waiting_trust_values(trust, item, model_name)]
                    last = item
                    current[: len(map_outputs)] = view_outputs(item, model_name, measuring=trust is not None)
                yield tuple(current)
                token.check()  # on ZeroGPU the worker cannot see the token: stop between methods here
        except CancelledError:
            by_visitor = STOPS.finish("explain", session, token)
            reason = "you pressed Stop" if by_visitor else f"the {settings.EXPLAIN_DEADLINE_S:g} s time limit passed"
            log.info("explain stopped: %s", reason)
            measuring = trust is not None and last is not None and last.done
            note = f"Stopped while measuring ({reason}); press Explain to measure again." if measuring else gr.update()
            yield (stopped_status(last, reason), *_unchanged(all_outputs[1:-4]), note, *_unchanged(range(3)))
        except XaiLensError as exc:
            raise user_error(str(exc)) from None
        finally:
            STOPS.finish("explain", session, token)

    map_outputs = [status, predictions, overlays, masks, iou, superpixels, summary, target, side_by_side]
    concept_outputs = [concepts_header, concepts_chart, concepts_strip, concepts_summary, concepts_json, last_explained]
    trust_outputs = [trust_text, trust_table, trust_curves, trust_strips]
    all_outputs = map_outputs + concept_outputs + trust_outputs
    running = run.click(
        explain,
        [image, model, target, methods, extras, mask_rule, *form.components, metrics, steps, baseline],
        all_outputs,
        api_name="explain",
        concurrency_limit=1,
        concurrency_id=settings.HEAVY_CONCURRENCY_ID,
        show_progress_on=[progress_line],  # results that are done are never covered by a progress overlay
        trigger_mode="always_last",  # a click while a stopped run winds down runs right after it
    )

    # Stop sets this session's token: the running method ends at its next batch and the tab says what finished.
    wire_stop_button(stop, "explain", running)
    picked = concepts_strip.select(
        panel_concepts.pick_unit, last_explained, last_explained, api_visibility="private", show_progress="hidden"
    )
    return ConceptsLink(last=last_explained, unit_picked=picked)


def _unchanged(outputs) -> tuple[Any, ...]:
    return tuple(gr.update() for _ in outputs)


def concept_values(result: ConceptsResult | None, view: ExplanationView | None) -> tuple[Any, ...]:
    """Values of the concepts panel's outputs (header, chart, strip, summary, JSON, the neurons tab's state)."""
    if result is None or view is None:
        return (panel_concepts.WAITING_TEXT, None, [], None, None, None)
    json_value = result.attribution.to_json() if result.attribution is not None else None
    return (
        panel_concepts.header_markdown(result),
        panel_concepts.chart_image(result),
        panel_concepts.strip_items(result, view.crop),
        panel_concepts.summary_label(result),
        json_value,
        panel_concepts.last_explanation(result, view.crop),
    )


def waiting_trust_values(trust: TrustRequest | None, view: ExplanationView, model_name: str) -> tuple[Any, ...]:
    """The trust panel while the maps stream: what will be measured and its cost, or how to turn it on."""
    if trust is None:
        return (panel_trust.OFF_TEXT, gr.update(visible=False), gr.update(visible=False), gr.update(visible=False))
    cost = panel_trust.cost_line(trust.metrics, trust.steps, [*view.methods, *view.pending], model_name)
    text = f"Measuring {', '.join(trust.metrics)} once every map is out. {cost}"
    return (text, gr.update(visible=False), gr.update(visible=False), gr.update(visible=False))


def trust_values(result: TrustResult) -> tuple[Any, ...]:
    """Values of the trust panel's outputs: the headline and verdict, the table, the curves, the sanity strips."""
    curves = panel_trust.curves_image(result)
    strips = panel_trust.cascade_gallery(result)
    return (
        panel_trust.headline(result),
        gr.update(value=panel_trust.styled_table(panel_trust.table_frame(result)), visible=True),
        gr.update(value=curves, visible=curves is not None),
        gr.update(value=strips, visible=bool(strips)),
    )


def _cost(metrics, steps, core, extra, model_name) -> str:
    """The metrics' cost for the ticked methods and model (private event; bad values read as their one line)."""
    chosen = [*(core or []), *(extra or [])]
    return panel_trust.cost_line(metrics or [], steps, chosen, str(model_name))


def _accept_upload(path: str | None) -> None:
    """Runs only when UploadedImage.preprocess accepted the file (it reads the header); a refusal clears it."""


def _full_settings():
    full = full_settings()
    samples = min(full.lime_samples, settings.lime_max_samples())
    return (
        gr.update(value=full.model),
        gr.update(value=list(full.methods)),
        gr.update(value=samples),
        f"Full settings: {MODEL_SPECS[full.model].title.split(' (')[0]}, all four methods, LIME {samples} samples "
        "(minutes on a CPU; Stop ends a run).",
    )


def gallery_copies(gallery: gr.Gallery) -> list[str]:
    """The copies of the preset files Gradio made in its cache to show the gallery.

    A click hands the image input one of these, not the original: Gradio lets an output name only
    files in its cache, the working directory or the temp directory, and the preset folder may be
    anywhere (--examples-dir, XAI_LENS_EXAMPLES_DIR, ~/.cache/xai-lens/presets). The copies are kept
    for the app's life (keep_in_cache), so nothing beyond the ten images already shown is served.
    """
    return [item["image"]["path"] for item in gallery.value or []]


def _pick_preset(copies: list[str]):
    def pick(event: gr.SelectData) -> str:
        index = event.index
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(copies):
            raise user_error("Click one of the preset images.")
        return copies[index]

    return pick


def _switch_model(name: str):
    """Model changed: the target list follows (private event; the dropdown admits only listed models)."""
    if name not in MODEL_SPECS:
        raise user_error("Choose a model from the list.")
    return gr.update(choices=target_choices(name), value=None)
