"""Every cap on the work one request may ask for, defined once and read by every entry point.

The library (explain, presets, the CLI) and the app (explain, presets run, parameter preview,
validate, inspect, download) all validate LIME settings through explainers.inputs.param_file, which reads
these caps; app/settings.py imports them instead of keeping copies. Caps that depend on the
environment (the public demo's LIME cap) are read when asked for, not at import, so a server
started with XAI_LENS_LIME_MAX_SAMPLES set enforces it even if this module was imported first.

Each value was chosen by measuring the worst case at the cap on a 224x224 crop (the only size
LIME ever segments here) on this project's 2-core CPU, idle; the measurement is written beside it.
`python -m tools.lime_caps_bench` repeats the measurements (on a busy machine they scale with
the load: at a load of 7 on the 2 cores they came out 3-5 times longer).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from explainers.errors import XaiLensError

# --- Images -------------------------------------------------------------------------------------
# Checked from the file's header before any pixel is decoded (explainers.inputs.images).
MAX_IMAGE_FILE_BYTES = 20 * 2**20  # a phone photo is 2-8 MB
MAX_PIXELS = 40_000_000  # e.g. 8000x5000; the app also sets Pillow's own ceiling from it
MAX_SIDE = 12_000
# Models resize the short side to ~256 before cropping: a 3x5000 strip would become 256x426666
# (330 MB, seconds of work) to show the model a few pixels. Real panoramas stay well under this.
MAX_ASPECT = 50

# --- Requests to the app (app/request_caps.py enforces them before Gradio reads a body) ------------
# No input takes more than one file, and the browser and gradio_client upload each file in its own
# request. An upload carries one file of at most MAX_IMAGE_FILE_BYTES plus its multipart headers; any
# other body (an API call's JSON) at most one image as a data: URL plus the other arguments.
MAX_FILES_PER_UPLOAD = 1
# A data: URL carries base64 (4 characters per 3 bytes) behind a short header.
MAX_DATA_URL_CHARS = 4 * -(-MAX_IMAGE_FILE_BYTES // 3) + 256
UPLOAD_REQUEST_BYTES = MAX_IMAGE_FILE_BYTES + 64 * 2**10
API_REQUEST_BYTES = MAX_DATA_URL_CHARS + 2**20

# --- Downloads (explainers.download) ---------------------------------------------------------------
DOWNLOAD_TIMEOUT_S = 30  # per request (connect, and each read), not for the whole file
MAX_PRESET_DOWNLOAD_BYTES = 5 * 2**20  # the largest preset is about 270 kB
MAX_PROBE_IMAGE_BYTES = 5 * 2**20  # ImageNet sample images, 100-300 kB each
MAX_LISTING_BYTES = 20 * 2**20  # a repository's file listing (JSON), ~2 MB for the sample images
MAX_PUBLISHED_TABLE_BYTES = 50 * 2**20  # CLIP-dissect's published CSVs are a few MB
MAX_WEIGHTS_DOWNLOAD_BYTES = 2**30  # ResNet50 is ~100 MB

# --- LIME samples -------------------------------------------------------------------------------
# Each sample is one forward pass. ResNet50 on the 2-core CPU: 1000 samples take ~59 s (README's
# speed table), so 10000 is ~10 minutes, the most a laptop user should wait for one image.
LIBRARY_MAX_SAMPLES = 10_000
PUBLIC_SAMPLES_ENV = "XAI_LENS_LIME_MAX_SAMPLES"  # the public Space sets 2000
# All LIME samples of one request together (the ten-preset run adds up ten entries). 20000 is ten
# presets at the public 2000: ~19 s of LIME on an H100 with ResNet50 (0.94 s per 1000 samples),
# ~20 minutes on the 2-core CPU. A local run that wants more sets XAI_LENS_LIME_MAX_REQUEST_SAMPLES.
LIBRARY_MAX_REQUEST_SAMPLES = 20_000
REQUEST_SAMPLES_ENV = "XAI_LENS_LIME_MAX_REQUEST_SAMPLES"
# Images one request may explain: the ten presets (an explain request takes one; the tuner uses this too).
MAX_IMAGES_PER_REQUEST = 10

# --- LIME's other work-scaling settings --------------------------------------------------------
# lime's batch_size only sets how many perturbed 224x224x3 uint8 images lime gathers before calling
# the classifier (which itself runs in device-sized chunks): 256 of them are 38 MB.
MAX_BATCH_SIZE = 256
# Labels lime explains = regressions run (top_labels, or len(labels)). At the superpixel cap with
# 10000 samples one label's feature selection plus fit takes up to ~2.1 s, so 10 labels ~21 s.
MAX_LABELS = 10
# num_features is clipped by lime to the number of superpixels; it only picks the selection method.
MAX_NUM_FEATURES = 100_000
# Superpixels one segmentation may produce (checked on the real crop, after segmenting): lime's data
# is samples x superpixels, and its forward selection (num_features <= 6) fits 6 x superpixels
# ridges: at 300 superpixels and 10000 samples that took 2.07 s per label (500: 3.55 s).
# lime's default quickshift makes 30-80 on a preset crop; felzenszwalb min_size=0 made 38433.
MAX_SUPERPIXELS = 300

# --- Segmentation settings -----------------------------------------------------------------------
# (low, high, measured reason). Worst case on a 224x224 crop, photo and uniform noise, 2-core CPU.
SEGMENTATION_CAPS: dict[str, tuple[float, float, str]] = {
    # quickshift's window grows with kernel_size squared: 4 -> 0.26 s, 10 -> 1.3 s, 20 -> 4.3 s, 50 -> ~25 s.
    "kernel_size": (0.1, 10, "quickshift at 10 took 1.3 s (20: 4.3 s)"),
    # max_dist and ratio only threshold quickshift's links: 1e6 cost the same 1.3 s as 200 at kernel 10.
    "max_dist": (0, 1000, "no cost effect; values past the crop's colour range are meaningless"),
    "ratio": (0, 1, "skimage's documented range; no cost effect"),
    # Gaussian pre-smoothing: the kernel is 8 sigma wide, so cost grows with sigma (felzenszwalb sigma=1e7:
    # 78 s and +1.8 GiB). At 100 the crop is already flat; quickshift/felzenszwalb/slic took <= 1.1 s there.
    "sigma": (0, 100, "at 100 the crop is already flat; <= 1.1 s in all three segmentations"),
    # slic: cost grows with iterations; 1000 segments x 100 iterations took 0.46 s. n_segments beyond the
    # superpixel cap would only be refused after segmenting.
    "n_segments": (1, MAX_SUPERPIXELS, "more segments than the superpixel cap are refused anyway"),
    "max_num_iter": (1, 100, "slic at 100 iterations, 1000 segments: 0.46 s"),
    "compactness": (1e-6, 1e4, "no cost effect"),
    "spacing": (1e-6, 1e3, "no cost effect"),
    "min_size_factor": (0, 1, "skimage's meaning: a fraction of the expected segment size"),
    "max_size_factor": (1, 100, "no cost effect"),
    # felzenszwalb: scale and min_size only threshold merges: scale=1e9 took 0.16 s, min_size=50176 0.04 s.
    "scale": (0, 1e6, "no cost effect (1e9 took 0.16 s)"),
    "min_size": (0, 224 * 224, "no cost effect; the crop has 50176 pixels"),
    "start_label": (0, 1, "skimage accepts 0 or 1"),
    "rng": (0, 2**32 - 1, "a seed"),
}
# slic with slic_zero=True and 100 iterations took 2.4 s at sigma 1000 and 0.27 s at sigma 100.

# --- Regressors ---------------------------------------------------------------------------------
# Iterations one fit may run: each measured at the superpixel cap (300 features), 10000 samples, tol=0
# and alpha=1e-12 (the settings that make it run every iteration), including lime's feature selection.
REGRESSOR_MAX_ITER: dict[str, tuple[int, str]] = {
    "Lasso": (1000, "1000 iterations: 0.9 s (1.7 s with selection='random', positive=True)"),
    "ElasticNet": (1000, "1000 iterations, l1_ratio=0.01: 0.9 s"),
    "BayesianRidge": (500, "500 iterations: 1.7 s (1000: 3.6 s)"),
    "Ridge": (50, "solver sag at 100 iterations: 2.7 s, at 1000: 20 s"),
}
# Ridge solvers that iterate and, with max_iter=None, run sklearn's/scipy's default (sag/saga 1000,
# lbfgs 15000, sparse_cg 10 x features): for these max_iter must be given, within the cap.
RIDGE_ITERATIVE_SOLVERS = ("sag", "saga", "sparse_cg", "lbfgs")

# --- Parameter files ----------------------------------------------------------------------------
MAX_PARAM_FILE_BYTES = 2**20  # a parameter file is a few kB; anything near this size is not one
# Values visited while reading a file, each use of a shared value counted again (a "memo bomb" of
# 60 nested doubly-shared dicts would be 2^60 visits): the default file is ~250 values.
MAX_PARAM_FILE_NODES = 20_000
MAX_PARAM_FILE_DEPTH = 16  # the format is 4 deep (file > preset > segmentation > spacing tuple)
MAX_PARAM_ARRAY_ELEMENTS = 1000  # a numpy array in a file holds a colour or a few labels

# --- The LIME tuner (explainers.tuning) -----------------------------------------------------------
# 200 trials of the fastest settings take minutes; 12 hours is a night's run of all ten presets on a CPU.
MAX_TUNING_TRIALS = 200  # per image
MAX_TUNING_BUDGET_S = 12 * 3600  # the whole run: references, search and stability re-runs
MAX_MASK_FILE_BYTES = 16 * 2**20  # a user's reference masks: ten 224x224 masks are ~0.5 MB even uncompressed


def _env_int(name: str, default: int, low: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise XaiLensError(f"{name}={raw!r:.30} is not a whole number; set it to e.g. 2000 or unset it.") from None
    if value < low:
        raise XaiLensError(f"{name}={value} is below {low}; set a positive number or unset it.")
    return value


def lime_max_samples() -> int:
    """num_samples allowed per image now: the library's cap, lowered by XAI_LENS_LIME_MAX_SAMPLES if set."""
    return min(LIBRARY_MAX_SAMPLES, _env_int(PUBLIC_SAMPLES_ENV, LIBRARY_MAX_SAMPLES, 1))


def lime_max_request_samples() -> int:
    """LIME samples allowed in one request, all images together (XAI_LENS_LIME_MAX_REQUEST_SAMPLES may change it)."""
    return _env_int(REQUEST_SAMPLES_ENV, LIBRARY_MAX_REQUEST_SAMPLES, 1)


def samples_cap_note() -> str:
    """Where the num_samples cap in force comes from, for messages: the library's, or this server's setting."""
    cap = lime_max_samples()
    return "" if cap == LIBRARY_MAX_SAMPLES else f" (this server's cap, {PUBLIC_SAMPLES_ENV})"


def check_segmentation_number(where: str, name: str, value: float) -> None:
    """Refuse a numeric segmentation setting outside its cap (the cap's reason is in SEGMENTATION_CAPS)."""
    if name in SEGMENTATION_CAPS:
        low, high, _reason = SEGMENTATION_CAPS[name]
        if not low <= value <= high:
            raise XaiLensError(f"{where}: {name} must be from {low:g} to {high:g}, got {value!r:.30}")


def check_regressor_work(where: str, name: str, settings: Mapping[str, Any]) -> None:
    """Refuse regressor settings whose fit could run past the measured bound (max_iter, n_jobs)."""
    if name not in REGRESSOR_MAX_ITER:
        if settings.get("n_jobs") not in (None, 1):
            raise XaiLensError(f"{where}: model_regressor {name}: n_jobs must be None or 1 here")
        return
    cap = REGRESSOR_MAX_ITER[name][0]
    max_iter = settings.get("max_iter")
    iterative = name != "Ridge" or settings.get("solver") in RIDGE_ITERATIVE_SOLVERS or settings.get("positive")
    if max_iter is None and iterative and name == "Ridge":
        raise XaiLensError(
            f"{where}: model_regressor Ridge with solver {settings.get('solver')!r} needs max_iter from 1 to {cap} "
            "(None lets it run 1000 or more iterations)"
        )
    if max_iter is not None and not (isinstance(max_iter, int) and 1 <= max_iter <= cap):
        raise XaiLensError(f"{where}: model_regressor {name}: max_iter must be from 1 to {cap}, got {max_iter!r:.30}")
