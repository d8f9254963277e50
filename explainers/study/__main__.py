"""`python -m explainers.study SOURCE --model ... --methods ... --out DIR`: the agreement study over a data set.

Locally it starts a private Ray instance (nothing to install or start beyond `pip install .[scale]`);
with --address (or RAY_ADDRESS) the same command runs on a Ray cluster. Run it again with the same
arguments to resume: finished images are skipped. `main` is what `python -m explainers study` calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from explainers.comparison.masks import DEFAULT_RULE, parse_rule
from explainers.errors import XaiLensError, run_command

STUDY_METHODS = "gradcam,scorecam,ablationcam,lime"
INTERRUPTED = "interrupted: finished images are saved; run the same command to resume"


def add_study_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The study's options (shared with the `study` subcommand of `python -m explainers`)."""
    parser.add_argument("source", help="a folder of images, 'imagenet1000', or hf:NAME[:SPLIT[:COLUMN]]")
    parser.add_argument("--model", default="resnet50", help="classifier to explain (as `explain --model`)")
    parser.add_argument("--weights", default="imagenet", help="'imagenet', a checkpoint path, or 'random'")
    parser.add_argument("--methods", default=STUDY_METHODS, help="comma list of saliency methods")
    parser.add_argument("--metrics", default=None, help="comma list of faithfulness metrics (deletion, insertion, ...)")
    parser.add_argument("--steps", default=20, type=int, help="deletion/insertion intervals (with --metrics)")
    parser.add_argument("--baseline", default="zeros", help="what deleted pixels become (with --metrics)")
    parser.add_argument("--mask", default=DEFAULT_RULE, help="mask rule for IoU/Dice: top:0.10 | thresh:0.5 | otsu")
    parser.add_argument("--target-layer", default=None, help="CAM layer (default: the model's)")
    parser.add_argument("--out", default=Path("study"), type=Path, help="output folder (resumed when it exists)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    parser.add_argument("--workers", default=None, type=int, help="model actors (default: one per GPU or CPU)")
    parser.add_argument("--cpus-per-worker", default=1, type=int, help="CPU threads per actor on CPU machines")
    parser.add_argument("--batch-size", default=4, type=int, help="images per actor call and per Parquet part")
    parser.add_argument("--limit", default=None, type=int, help="only the source's first N images")
    parser.add_argument("--cache", default=None, type=Path, help="where imagenet1000 is downloaded (default: cache)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explainers.study", description=__doc__)
    return add_study_arguments(parser)


def _checked_settings(args: argparse.Namespace):
    """Every option checked here, before Ray starts or an image is read: bad input fails in one line."""
    from explainers.engine.models import load_model
    from explainers.methods import parse_methods
    from explainers.study.runner import StudySettings

    methods = tuple(parse_methods(args.methods))
    if parse_rule(args.mask).kind == "lime-top":
        raise XaiLensError("The study compares masks of equal rule; use top:0.10, thresh:0.5 or otsu, not lime-top.")
    metrics: tuple[str, ...] = ()
    if args.metrics:
        try:
            from explainers.faithfulness import BASELINES, check_steps, parse_metrics
        except ImportError:  # the faithfulness package is optional to this module: --metrics is its hook
            raise XaiLensError("--metrics needs explainers.faithfulness, which this installation lacks.") from None
        metrics = tuple(parse_metrics(args.metrics))
        check_steps(args.steps)
        if args.baseline not in BASELINES:
            raise XaiLensError(f"unknown baseline '{args.baseline}'; choose from {', '.join(BASELINES)}")
    for name, value in (("--workers", args.workers), ("--limit", args.limit)):
        if value is not None and value < 1:
            raise XaiLensError(f"{name} must be 1 or more (got {value}).")
    if args.batch_size < 1 or args.cpus_per_worker < 1:
        raise XaiLensError("--batch-size and --cpus-per-worker must be 1 or more.")
    load_model(args.model, args.weights, "cpu")  # a wrong model or missing weights fail here, once, in one line
    return StudySettings(
        model=args.model,
        weights=args.weights,
        methods=methods,
        metrics=metrics,
        mask_rule=args.mask,
        target_layer=args.target_layer,
        steps=args.steps,
        baseline=args.baseline,
    )


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the study and write results.parquet and report.md."""
    from explainers.study import require_scale

    require_scale()
    from explainers.study.report import write_study_report
    from explainers.study.runner import results_path, run_study
    from explainers.study.sources import resolve_source

    settings = _checked_settings(args)
    source = resolve_source(args.source, args.cache)
    outcome = run_study(
        source,
        settings,
        args.out,
        address=args.address,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        limit=args.limit,
        batch_size=args.batch_size,
    )
    report = write_study_report(
        outcome.table.to_pandas(), settings.methods, args.out, model=settings.model, weights=settings.weights
    )
    print(
        f"{outcome.ran} images run now ({outcome.errors} failed), {outcome.skipped} finished earlier, on "
        f"{outcome.workers} {outcome.device} workers: {outcome.images_per_second:.2f} images/s."
    )
    print(f"Results: {results_path(args.out)}  Report: {report}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), interrupted=INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
