"""`python -m explainers.tuning`: tune LIME's settings for the presets and write the front and a parameter file.

python -m explainers.tuning --preset imagenet10 --reference converged --trials 20 --budget-s 3600 --out tuned/

Every input is checked before a model or an image is loaded; a bad one is one line on stderr (exit 2).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from explainers.comparison.masks import DEFAULT_RULE, parse_rule
from explainers.engine.cancel import CancelToken
from explainers.engine.models import DEFAULT_MODEL, MODEL_SPECS, RANDOM_WEIGHTS_WARNING
from explainers.errors import XaiLensError, run_command
from explainers.tuning.objective import IMPLEMENTATIONS, check_implementation
from explainers.tuning.references import CONVERGED_SAMPLES, check_reference_name
from explainers.tuning.study import Progress, check_budget, check_seed, check_trials


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; here a bad option is one line like every other refusal."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise XaiLensError(f"{message}; see {self.prog} --help")


def add_tuning_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The tuner's options (shared with the `tune-lime` subcommand of `python -m explainers`)."""
    parser.add_argument("--preset", default="imagenet10", choices=["imagenet10"], help="the images to tune for")
    parser.add_argument("--images", default=None, help="comma list of preset keys to tune (default: all ten)")
    parser.add_argument("--examples-dir", default=None, help="folder holding the preset images (else downloaded)")
    parser.add_argument(
        "--reference", required=True, help="converged | cam-consensus | a .npz or folder of KEY.png masks (224x224)"
    )
    parser.add_argument("--trials", required=True, help="trials per image (1-200)")
    parser.add_argument("--budget-s", required=True, help="seconds for the whole run (1-43200)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", default="0", help="seed of the search and of LIME (default 0)")
    parser.add_argument("--mask", default=DEFAULT_RULE, help="top:0.10 | thresh:0.5 | otsu | lime-top:5")
    parser.add_argument("--min-iou", default=None, type=float, help="choose the fastest setting at or above this IoU")
    parser.add_argument(
        "--time-with", default="lime", choices=IMPLEMENTATIONS, help="time lime's own loop (default) or XAI Lens's"
    )
    parser.add_argument("--converged-samples", default=CONVERGED_SAMPLES, type=int, help="samples of `converged`")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODEL_SPECS), help="classifier to explain")
    parser.add_argument("--weights", default="imagenet", help="'imagenet', a checkpoint path, or 'random'")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when present)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    return add_tuning_arguments(_OneLineParser(prog="python -m explainers.tuning", description=__doc__.splitlines()[0]))


def _preset_images(examples_dir: str | None, wanted: str | None) -> dict[str, Path]:
    from explainers.inputs.presets import PRESET_KEYS, find_preset, preset_path

    keys = PRESET_KEYS if wanted is None else tuple(find_preset(k.strip()).key for k in wanted.split(",") if k.strip())
    if not keys:
        raise XaiLensError("--images names no preset; give comma-separated preset keys, e.g. goldfish,kite")
    return {key: preset_path(key, examples_dir) for key in dict.fromkeys(keys)}


def _print_progress(progress: Progress) -> None:
    print(
        f"[{progress.image_index + 1}/{progress.images} {progress.elapsed_s:6.0f} s] {progress.message}",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    """Check every input, tune, and write the front and the parameter file (lime's own progress bars off)."""
    # lime 0.2.0.1 draws a progress bar per explanation; the tuner reports per trial instead.
    quiet_before = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        return _run(args)
    finally:
        if quiet_before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = quiet_before


def _run(args: argparse.Namespace) -> int:
    trials, budget_s, seed = check_trials(args.trials), check_budget(args.budget_s), check_seed(args.seed)
    check_reference_name(args.reference)
    rule = parse_rule(args.mask)
    check_implementation(args.time_with)
    from explainers.engine.models import load_model
    from explainers.tuning.export import check_min_iou, export
    from explainers.tuning.study import tune

    min_iou = check_min_iou(args.min_iou)
    images = _preset_images(args.examples_dir, args.images)
    model = load_model(args.model, args.weights, args.device)
    if model.is_random:
        print(f"warning: {RANDOM_WEIGHTS_WARNING}", file=sys.stderr)
    token = CancelToken()  # Ctrl-C stops the trial under way at its next batch; what was found is still written
    previous = signal.signal(signal.SIGINT, lambda *_: token.cancel("stopped by Ctrl-C"))
    try:
        result = tune(
            {key: str(path) for key, path in images.items()},
            model,
            args.reference,
            trials=trials,
            budget_s=budget_s,
            seed=seed,
            mask_rule=rule,
            implementation=args.time_with,
            converged_samples=args.converged_samples,
            progress=_print_progress,
            cancel=token,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    paths = export(result, args.out, min_iou)
    ended = {None: "finished", "budget": "stopped by the budget", "cancelled": "stopped"}[result.stopped]
    print(f"Tuning {ended} after {result.elapsed_s:.0f} s; wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
