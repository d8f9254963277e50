"""`python -m explainers`: explain images, run the ten-preset report, manage LIME parameter files, run the
agreement study over a data set, tune LIME's settings."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from explainers.comparison.masks import DEFAULT_RULE
from explainers.engine.models import DEFAULT_MODEL, MODEL_SPECS, RANDOM_WEIGHTS_WARNING
from explainers.errors import XaiLensError, run_command
from explainers.methods import CORE_METHODS, METHODS


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODEL_SPECS), help="classifier to explain")
    parser.add_argument(
        "--weights",
        default="published",
        help="'published' (the authors' weights, downloaded once; alias 'imagenet'), a checkpoint path, or 'random'",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")
    parser.add_argument(
        "--tf32",
        action="store_true",
        default=None,
        help="on a GPU, let convolutions use TF32: faster, maps differ from float32 by up to ~1e-2 (opt-in)",
    )
    parser.add_argument("--methods", default=",".join(CORE_METHODS), help=f"comma list of: {', '.join(METHODS)}")
    parser.add_argument("--mask", default=DEFAULT_RULE, help="top:0.10 | thresh:0.5 | otsu | lime-top:5")
    parser.add_argument("--target-layer", default=None, help="CAM layer, e.g. layer4[-1] (default) or layer3")
    parser.add_argument("--lime-params", default=None, help="LIME parameter file (.pkl or .json) with the ten keys")
    parser.add_argument("--out", default="out", type=Path, help="output folder")


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; here a bad option is one `error:` line like every other refusal."""

    def error(self, message: str) -> NoReturn:
        raise XaiLensError(f"{message}; see {self.prog} --help")


# `--concepts` given without a table: the model's own (default_table: already on this machine, never downloaded).
OWN_TABLE = True


def _add_concept_option(parser: argparse.ArgumentParser, always: bool) -> None:
    what = "the report's 'top concepts' column" if always else "DIR/<stem>/concepts.json and concepts.png"
    parser.add_argument(
        "--concepts",
        nargs=None if always else "?",
        const=None if always else OWN_TABLE,
        default=None,
        metavar="TABLE",
        help=f"why, in concepts: {what} from layer4's unit contributions (one extra forward pass an image) named by "
        "a neuron table: a table folder, a CSV in CLIP-dissect's layout, or 'published' (downloaded once); "
        "default: the model's own table" + ("" if always else " (give --concepts after the images)"),
    )


def _add_metric_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma list of: deletion, insertion, road, sanity (opt-in: faithfulness and sanity per method; "
        "deletion+insertion cost 2*steps-1 model passes a method, road 18, sanity one method re-run per stage)",
    )
    parser.add_argument("--steps", default="20", help="deletion/insertion intervals, 1-500 (default 20)")
    parser.add_argument("--baseline", default="zeros", help="what deleted pixels become: zeros (default) or blur")


def _metric_options(args: argparse.Namespace) -> dict | None:
    """The checked metric options, or None when no metric was asked for; bad values fail here, before any work."""
    if args.metrics is None:
        return None
    from explainers.faithfulness import BASELINES, check_steps, parse_metrics

    metrics = parse_metrics(args.metrics)
    steps = check_steps(int(args.steps) if args.steps.strip().lstrip("-").isdigit() else args.steps)
    if args.baseline not in BASELINES:
        raise XaiLensError(f"unknown baseline '{args.baseline}'; choose from {', '.join(BASELINES)}")
    return {"metrics": metrics, "steps": steps, "baseline": args.baseline}


def _measure(explanation, options: dict, target_layer: str | None, lime_params: dict | None) -> None:
    """Add the asked-for metrics to a finished explanation, reusing its maps, and say what they cost."""
    from explainers.faithfulness import measure_explanation
    from explainers.methods import create_method

    def make_method(name: str):
        return create_method(name, target_layer=target_layer, lime_params=lime_params)

    results = measure_explanation(explanation, **options, make_method=make_method)
    for name, result in results.items():
        values = ", ".join(f"{key}={value:.3f}" for key, value in result.values.items())
        print(f"  {METHODS[name].title}: {values} ({result.passes} model passes)")


def build_parser() -> argparse.ArgumentParser:
    from explainers.study.__main__ import add_study_arguments
    from explainers.tuning.__main__ import add_tuning_arguments

    parser = _OneLineParser(prog="python -m explainers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    explain = commands.add_parser("explain", help="explain one or more images")
    explain.add_argument("images", nargs="+", help="image files")
    explain.add_argument("--target", default=None, help="class index or name (default: the top-1 prediction)")
    explain.add_argument("--lime-key", default=None, help="which entry of --lime-params to use (default: by file name)")
    _add_model_options(explain)
    _add_metric_options(explain)
    _add_concept_option(explain, always=False)

    report = commands.add_parser("report", help="all ten presets: overlays grid, IoU chart and table")
    report.add_argument("--preset", default="imagenet10", choices=["imagenet10"])
    report.add_argument("--examples-dir", default=None, help="folder holding the preset images (else downloaded)")
    _add_model_options(report)
    _add_metric_options(report)
    _add_concept_option(report, always=True)

    params = commands.add_parser("params", help="write or check a LIME parameter file")
    params_commands = params.add_subparsers(dest="params_command", required=True)
    export = params_commands.add_parser("export", help="write the default parameter file")
    export.add_argument("path", type=Path, help="explain_params.pkl (or .json)")
    check = params_commands.add_parser("check", help="validate a parameter file (read through the restricted loader)")
    check.add_argument("path", type=Path)

    study = commands.add_parser(
        "study", help="the agreement study over a data set, on Ray (same as python -m explainers.study)"
    )
    add_study_arguments(study)
    tune = commands.add_parser(
        "tune-lime", help="search LIME's settings per preset (same as python -m explainers.tuning)"
    )
    add_tuning_arguments(tune)
    return parser


def _load_lime_params(path: str | None) -> dict | None:
    if path is None:
        return None
    from explainers.inputs.param_file import load_lime_params

    return load_lime_params(Path(path))


def _lime_entry(params: dict | None, image: Path, chosen_key: str | None) -> dict:
    """The parameter-file entry for an image: --lime-key, else the preset key found in its file name."""
    if not params:
        return {}
    if chosen_key:
        if chosen_key not in params:
            raise XaiLensError(f"--lime-key '{chosen_key}' is not in the parameter file; keys: {', '.join(params)}.")
        return params[chosen_key]
    matches = [key for key in params if key.lower() in image.stem.lower()]
    return params[max(matches, key=len)] if matches else {}


class _ConceptStep:
    """`explain --concepts`: the table is opened (or refused) once, before any image; then each image's
    target logit is split over layer4's units and written beside its maps."""

    def __init__(self, model, source: str | bool) -> None:
        from explainers.concepts.tables import open_table

        self.model = model
        self.table = open_table(None if source is OWN_TABLE else str(source), model.name)
        self.warned: set[str] = set()

    def run(self, explanation, directory: Path) -> None:
        from explainers.concepts import UNLABELLED, attribute_concepts
        from explainers.outputs.summary import write_concepts

        # One more forward pass (no backward): attribute_concepts reads layer4 itself; the CAM methods keep
        # their activations to themselves, so Grad-CAM's pass cannot be shared without changing them.
        result = attribute_concepts(self.model, explanation.crop, explanation.target.index, self.table)
        write_concepts(result, explanation.crop, directory)
        for warning in result.warnings:  # loud, once a run: demo labels, random weights, no table
            if warning not in self.warned and warning != RANDOM_WEIGHTS_WARNING:
                print(f"concepts: {warning}", file=sys.stderr)
                self.warned.add(warning)
        top = [f"{name} {share:.0%}" for name, share in result.by_concept.items() if name != UNLABELLED][:3]
        table = result.table["key"] if result.table else "no table"
        table += ", DEMO labels" if self.table is not None and self.table.is_demo else ""
        named = ", ".join(top) or f"no unit labelled above similarity {result.min_similarity:g}"
        print(f"{explanation.image_name}: concepts ({table}): {named} -> {directory / 'concepts.json'}")


def run_explain(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from explainers.engine.models import load_model
    from explainers.outputs.summary import write_iou_csv
    from explainers.pipeline import iter_explain

    metric_options = _metric_options(args)
    model = load_model(args.model, args.weights, args.device)
    params = _load_lime_params(args.lime_params)
    concepts = _ConceptStep(model, args.concepts) if args.concepts is not None else None
    if model.is_random:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    finished = []
    for image in tqdm([Path(p) for p in args.images], desc="images", unit="image", disable=len(args.images) < 2):
        lime_entry = _lime_entry(params, image, args.lime_key)
        for explanation in iter_explain(
            image,
            model,
            args.methods,
            target=args.target,
            lime_params=lime_entry,
            mask_rule=args.mask,
            target_layer=args.target_layer,
            image_name=image.name,
        ):
            latest = explanation.saliency[explanation.latest or next(reversed(explanation.saliency))]
            tqdm.write(f"{image.name}: {METHODS[latest.method].title} done in {latest.seconds:.2f} s")
        if metric_options is not None:
            print(f"{image.name}: metrics {', '.join(metric_options['metrics'])}")
            _measure(explanation, metric_options, args.target_layer, lime_entry)
        directory = explanation.save(args.out)
        if explanation.metrics:
            from explainers.faithfulness.figures import write_figures

            maps = {name: s.map for name, s in explanation.saliency.items()}
            write_figures(directory, explanation.metrics, maps, {m: METHODS[m].title for m in maps})
        if concepts is not None:
            concepts.run(explanation, directory)
        finished.append(explanation)
        target = explanation.target
        iou = ", ".join(f"{pair}={value:.2f}" for pair, value in explanation.iou.items())
        print(f"{image.name}: {target.label} ({target.probability:.2f}) -> {directory}  IoU: {iou}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_iou_csv(finished, args.out / "iou.csv")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from explainers.engine.models import load_model
    from explainers.inputs.param_file import default_lime_params
    from explainers.inputs.presets import ensure_presets
    from explainers.outputs.report import (
        answer_agreement_vs_faithfulness,
        answer_simple_vs_complex,
        build_report,
        report_concept_table,
    )

    metric_options = _metric_options(args) or {}
    metrics = metric_options.pop("metrics", None)
    model = load_model(args.model, args.weights, args.device)
    if model.is_random:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    params = _load_lime_params(args.lime_params) or default_lime_params()
    concept_table, why_not = report_concept_table(model, args.concepts)  # a wrong table fails before any image
    if concept_table is None:
        print(f"concepts column: {why_not}", file=sys.stderr)
    presets = ensure_presets(args.examples_dir)
    rows = build_report(
        model,
        presets,
        args.out,
        args.methods.split(","),
        params,
        args.mask,
        args.target_layer,
        metrics=metrics,
        metric_options=metric_options,
        concept_source=concept_table,
    )
    print(f"Report written to {args.out}/report.md")
    print(answer_simple_vs_complex(rows))
    if metrics:
        print(answer_agreement_vs_faithfulness(rows))
    return 0


def run_params(args: argparse.Namespace) -> int:
    from explainers.inputs.param_file import default_lime_params, load_lime_params, save_lime_params

    if args.params_command == "export":
        save_lime_params(default_lime_params(), args.path)
        print(f"Wrote {args.path} (ten presets, explain_instance keyword arguments).")
        return 0
    params = load_lime_params(args.path)
    print(json.dumps({key: sorted(value) for key, value in params.items()}, indent=1))
    print(f"{args.path}: valid ({len(params)} presets).")
    return 0


def run_study(args: argparse.Namespace) -> int:
    from explainers.study.__main__ import run

    return run(args)


def run_tune_lime(args: argparse.Namespace) -> int:
    from explainers.tuning.__main__ import run

    return run(args)


RUNNERS = {
    "explain": run_explain,
    "report": run_report,
    "params": run_params,
    "study": run_study,
    "tune-lime": run_tune_lime,
}


def _interrupted_message(command: str | None) -> str:
    if command == "study":
        from explainers.study.__main__ import INTERRUPTED

        return INTERRUPTED
    return "interrupted"


def main(argv: Sequence[str] | None = None) -> int:
    command: str | None = None

    def body() -> int:
        nonlocal command
        args = build_parser().parse_args(argv)
        command = args.command
        if getattr(args, "tf32", None):
            from explainers.engine import precision

            precision.configure(True)
        return RUNNERS[command](args)

    return run_command(body, interrupted=lambda: _interrupted_message(command))
