"""Time LIME's segmentations and regressions at the caps in explainers/limits.py (a benchmark, not a test).

`python -m tools.lime_caps_bench [--image PATH]` segments a 224x224 crop (a photo when given, and
uniform noise, the worst case for quickshift) with every segmentation at its caps, and runs lime's
per-label regression (feature selection + fit) with every regressor at its iteration cap on data of the
worst shape: the library's sample cap x the superpixel cap, tol=0 and a tiny alpha so every iteration
runs. The figures written beside the caps in explainers/limits.py came from this on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from lime.lime_base import LimeBase
from PIL import Image
from sklearn.linear_model import BayesianRidge, ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.metrics import pairwise_distances

from explainers import limits
from explainers.inputs.safe_pickle import SEGMENTATION_FUNCTIONS


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = work()
    return time.perf_counter() - started, result


def segmentation_cases() -> list[tuple[str, dict[str, Any]]]:
    """Each segmentation with its costly settings at their caps."""
    cap = {name: high for name, (_low, high, _why) in limits.SEGMENTATION_CAPS.items()}
    return [
        ("quickshift", {"kernel_size": cap["kernel_size"], "max_dist": cap["max_dist"], "ratio": 1.0}),
        ("quickshift", {"kernel_size": cap["kernel_size"], "max_dist": 200, "ratio": 0.2, "sigma": cap["sigma"]}),
        ("slic", {"n_segments": cap["n_segments"], "max_num_iter": cap["max_num_iter"], "sigma": cap["sigma"]}),
        ("slic", {"n_segments": 50, "max_num_iter": cap["max_num_iter"], "slic_zero": True, "sigma": cap["sigma"]}),
        ("felzenszwalb", {"scale": cap["scale"], "sigma": cap["sigma"], "min_size": cap["min_size"]}),
        ("felzenszwalb", {"scale": 1, "sigma": 0.5, "min_size": 0}),  # the most superpixels: refused after segmenting
    ]


def regression_cases() -> list[Any]:
    """Each regressor at its iteration cap, with the settings that make it run every iteration."""
    cap = {name: value for name, (value, _why) in limits.REGRESSOR_MAX_ITER.items()}
    return [
        None,  # lime's default Ridge
        Lasso(alpha=1e-12, tol=0, max_iter=cap["Lasso"]),
        Lasso(alpha=1e-12, tol=0, max_iter=cap["Lasso"], selection="random", positive=True),
        ElasticNet(alpha=1e-12, tol=0, max_iter=cap["ElasticNet"], l1_ratio=0.01),
        BayesianRidge(max_iter=cap["BayesianRidge"], tol=1e-300),
        Ridge(solver="sag", max_iter=cap["Ridge"], tol=0),
        Ridge(solver="saga", max_iter=cap["Ridge"], tol=0),
        Ridge(solver="lbfgs", positive=True, max_iter=cap["Ridge"], tol=0),
        LinearRegression(positive=True),
    ]


def crops(image_path: str | None) -> dict[str, np.ndarray]:
    found = {"noise": np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)}
    if image_path:
        found["photo"] = np.asarray(Image.open(image_path).convert("RGB").resize((224, 224)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="a photo to segment besides uniform noise")
    parser.add_argument("--samples", type=int, default=limits.LIBRARY_MAX_SAMPLES)
    args = parser.parse_args()
    for crop_name, crop in crops(args.image).items():
        for name, settings in segmentation_cases():
            seconds, segments = _timed(lambda: SEGMENTATION_FUNCTIONS[name](crop, **settings))  # noqa: B023
            print(
                f"segment {crop_name:5} {name:12} {settings}: {seconds:.2f} s, {len(np.unique(segments))} superpixels"
            )
    rng = np.random.RandomState(0)
    data = rng.randint(0, 2, (args.samples, limits.MAX_SUPERPIXELS))
    data[0] = 1
    labels = rng.rand(args.samples, 5)
    distances = pairwise_distances(data, data[:1], metric="cosine").ravel()
    for num_features in (100_000, 6):  # highest_weights, then forward selection (6 x superpixels fits)
        for regressor in regression_cases() if num_features > 6 else [None]:
            base = LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / 0.25**2)), random_state=np.random.RandomState(0))

            def fit_one_label(base: LimeBase = base, regressor: Any = regressor, features: int = num_features) -> Any:
                return base.explain_instance_with_data(data, labels, distances, 0, features, model_regressor=regressor)

            seconds, _ = _timed(fit_one_label)
            print(
                f"regress {args.samples}x{limits.MAX_SUPERPIXELS} num_features={num_features} {regressor}: "
                f"{seconds:.2f} s"
            )


if __name__ == "__main__":
    main()
