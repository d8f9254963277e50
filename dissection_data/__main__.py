"""Command line: `python -m dissection_data build | demo | compare | bench` (see dissection_data/README.md).

Errors meant for people print as one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from tqdm.auto import tqdm

from dissection_data.build import (
    DEFAULT_CLIP,
    DEFAULT_LAYERS,
    DEFAULT_MODELS,
    ENGINES,
    LOCAL_ENGINE,
    RAY_ENGINE,
    BuildOptions,
    build_tables,
)
from dissection_data.concepts import WORD_COUNT, WORDS_20K
from dissection_data.paths import TABLES_DIR, cache_dir
from dissection_data.probes import IMAGENET1000
from dissection_data.similarity import DEFAULT_SIMILARITY, SIMILARITY_FUNCTIONS
from explainers.errors import run_command


def _names(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name (comma-separated)")
    return names


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number of 1 or more")
    return number


def _param(value: str) -> tuple[str, float]:
    key, sep, number = value.partition("=")
    try:
        if not sep:
            raise ValueError
        return key.strip(), float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not KEY=NUMBER (e.g. top_k=50)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dissection_data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="label every neuron of the chosen layers with a concept")
    build.add_argument("--models", type=_names, default=list(DEFAULT_MODELS), help="comma-separated model names")
    build.add_argument("--layers", type=_names, default=list(DEFAULT_LAYERS), help="comma-separated layers")
    build.add_argument("--weights", default="published", help="published (alias imagenet), random, or a PATH")
    build.add_argument(
        "--probe", default=IMAGENET1000, help=f"named probe set ({IMAGENET1000}), or hf:NAME[:SPLIT[:COLUMN]] with Ray"
    )
    build.add_argument("--probe-dir", type=Path, help="use every image under this folder as the probe set")
    build.add_argument("--concepts", default=WORDS_20K, help=f"named concept set ({WORDS_20K})")
    build.add_argument("--concepts-file", type=Path, help="UTF-8 file with one concept per line")
    build.add_argument("--clip", default=DEFAULT_CLIP, help="Hugging Face CLIP id or a local model folder")
    build.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    build.add_argument("--out", type=Path, default=TABLES_DIR, help="tables are written to OUT/<model>/")
    build.add_argument("--cache", type=Path, default=None, help="feature cache folder (default dissection_data/cache)")
    build.add_argument("--no-cache", action="store_true", help="recompute everything, store nothing")
    build.add_argument("--similarity", default=DEFAULT_SIMILARITY, choices=sorted(SIMILARITY_FUNCTIONS))
    build.add_argument("--param", type=_param, action="append", default=[], help="similarity parameter KEY=NUMBER")
    build.add_argument("--pooling", default="mean", choices=["mean", "max"], help="spatial pooling of conv layers")
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument("--top-images", type=int, default=5, help="most activating probe images kept per neuron")
    build.add_argument("--push-to-hub", metavar="DATASET", help="publish the tables to this HF dataset repo")
    build.add_argument("--engine", default=LOCAL_ENGINE, choices=ENGINES, help="ray: feature passes on Ray (.[scale])")
    build.add_argument("--address", help="with --engine ray: a Ray cluster (default $RAY_ADDRESS, else local)")
    build.add_argument("--workers", type=_positive, help="with --engine ray: actors (default one per GPU or CPU)")
    build.add_argument("--limit", type=_positive, help="with --engine ray: only the probe source's first N images")

    demo = commands.add_parser("demo", help="rebuild the offline DEMO tables (random weights, random tiny CLIP)")
    demo.add_argument("--out", type=Path, default=TABLES_DIR, help="written to OUT/demo/<model>/")

    compare = commands.add_parser("compare", help="per layer, how often our labels match CLIP-dissect's published ones")
    compare.add_argument("ours", type=Path, help="our table folder (with neurons.csv)")
    compare.add_argument("published", help="a published model name (resnet50-v1, resnet18-places365) or its CSV")
    compare.add_argument("--json", type=Path, help="also write the comparison here")

    bench = commands.add_parser("bench", help="time a full uncached build with random weights and a random CLIP")
    bench.add_argument("--probes", type=int, default=1000, help="number of probe images")
    bench.add_argument("--words", type=int, default=WORD_COUNT, help="wordfreq words (class names are added)")
    bench.add_argument("--models", type=_names, default=list(DEFAULT_MODELS))
    bench.add_argument("--layers", type=_names, default=list(DEFAULT_LAYERS))
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--json", type=Path, help="also write the report here")
    return parser


def _similarity_params(pairs: Sequence[tuple[str, float]]) -> dict[str, float]:
    return {key: int(value) if key in ("top_k", "seed") else value for key, value in pairs}


def _build(args: argparse.Namespace) -> None:
    if args.engine == RAY_ENGINE and args.no_cache:  # Ray's features and resume parts live in a cache: a passing one
        with tempfile.TemporaryDirectory(prefix="dissection-cache-") as scratch:
            args.no_cache, args.cache = False, Path(scratch)
            _build(args)
        return
    same_named = {field.name: getattr(args, field.name) for field in fields(BuildOptions) if hasattr(args, field.name)}
    options = BuildOptions(
        **{
            **same_named,  # --models, --layers ... --engine, --workers: the option is the field of the same name
            "cache": None if args.no_cache else (args.cache or cache_dir()),
            "similarity_params": _similarity_params(args.param),
        }
    )
    results = build_tables(options, log=tqdm.write)
    if args.push_to_hub:
        from dissection_data.hub import push_tables

        url = push_tables([result.directory for result in results], args.push_to_hub)
        tqdm.write(f"published to {url}")


def _compare(args: argparse.Namespace) -> None:
    from dissection_data.compare import agreement_json, compare_tables, format_agreement, open_published
    from dissection_data.tables import read_table

    ours, published = read_table(args.ours), open_published(args.published)
    results = compare_tables(ours, published)
    print(format_agreement(results, ours, published))
    if args.json:
        args.json.write_text(json.dumps(agreement_json(results, ours, published), indent=2) + "\n")


def _bench(args: argparse.Namespace) -> None:
    from dissection_data.bench import format_report, run_benchmark

    report = run_benchmark(args.probes, args.words, args.models, args.layers, args.device)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def _demo(args: argparse.Namespace) -> None:
    from dissection_data.demo import build_demo

    build_demo(args.out, log=tqdm.write)


COMMANDS = {"build": _build, "compare": _compare, "demo": _demo, "bench": _bench}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
