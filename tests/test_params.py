"""The LIME parameter file: format, round trips and validation messages (hostile pickles: test_safe_pickle_attacks)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from lime.wrappers.scikit_image import SegmentationAlgorithm
from sklearn.linear_model import Lasso, Ridge

from explainers.errors import XaiLensError
from explainers.inputs.lime_kwargs import lime_call_kwargs, segmentation_from_spec, validate_explain_kwargs
from explainers.inputs.param_file import (
    MAX_FILE_BYTES,
    PRESET_KEYS,
    default_lime_params,
    load_lime_params,
    save_lime_params,
    validate_lime_params,
)


def _with(key: str, **changes) -> dict:
    """The defaults with one preset's settings changed."""
    params = default_lime_params()
    params[key] = {**params[key], **changes}
    return params


def test_defaults_cover_exactly_the_ten_presets():
    assert tuple(default_lime_params()) == PRESET_KEYS
    assert len(set(PRESET_KEYS)) == 10


@pytest.mark.parametrize("suffix", [".pkl", ".json"])
def test_save_then_load_gives_back_the_validated_defaults(tmp_path, suffix):
    path = save_lime_params(default_lime_params(), tmp_path / f"lime_params{suffix}")
    assert load_lime_params(path) == validate_lime_params(default_lime_params())


def test_json_content_is_sniffed_without_the_suffix(tmp_path):
    path = save_lime_params(default_lime_params(), tmp_path / "params.json")
    assert load_lime_params(path.read_bytes()) == default_lime_params()


def test_saved_pickle_is_the_assignment_format_usable_by_plain_lime(tmp_path):
    path = save_lime_params(default_lime_params(), tmp_path / "lime_params.pkl")
    with open(path, "rb") as handle:
        raw = pickle.load(handle)
    assert type(raw) is dict and list(raw) == list(PRESET_KEYS)
    for entry in raw.values():
        assert type(entry) is dict
        assert not {"image", "classifier_fn"} & set(entry)
        assert isinstance(entry["segmentation_fn"], SegmentationAlgorithm)
    segments = raw["kite"]["segmentation_fn"](np.zeros((32, 32, 3), dtype=np.uint8) + 128)
    assert segments.min() == 0  # lime assumes superpixel ids start at 0


def test_pickle_with_segmentation_algorithm_and_ridge_loads():
    params = default_lime_params()
    params["goldfish"] = {
        "segmentation_fn": SegmentationAlgorithm("felzenszwalb", scale=50, sigma=0.5, min_size=30),
        "model_regressor": Ridge(alpha=0.5),
        "labels": np.array([1, 2]),
        "hide_color": np.array([10, 20, 30], dtype=np.uint8),
        "num_samples": np.int64(200),
    }
    loaded = load_lime_params(pickle.dumps(params))
    goldfish = loaded["goldfish"]
    assert goldfish["segmentation_fn"] == {"name": "felzenszwalb", "scale": 50, "sigma": 0.5, "min_size": 30}
    assert goldfish["model_regressor"]["name"] == "Ridge" and goldfish["model_regressor"]["alpha"] == 0.5
    assert goldfish["labels"] == (1, 2) and goldfish["hide_color"] == (10, 20, 30)
    assert goldfish["num_samples"] == 200 and type(goldfish["num_samples"]) is int
    live = lime_call_kwargs(goldfish)
    assert isinstance(live["model_regressor"], Ridge) and live["model_regressor"].alpha == 0.5
    assert isinstance(live["segmentation_fn"], SegmentationAlgorithm)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_pickle_protocol_loads(protocol):
    params = _with("orange", hide_color=np.array([1.0, 2.0, 3.0]), model_regressor=Lasso(alpha=0.1))
    params["orange"]["segmentation_fn"] = segmentation_from_spec("slic")
    loaded = load_lime_params(pickle.dumps(params, protocol=protocol))
    assert loaded["orange"]["hide_color"] == (1.0, 2.0, 3.0)
    assert loaded["orange"]["model_regressor"]["name"] == "Lasso"
    assert loaded["orange"]["segmentation_fn"]["name"] == "slic"


def test_a_function_from_a_file_is_not_accepted_as_segmentation():
    from skimage.segmentation import slic

    with pytest.raises(XaiLensError, match="kite: segmentation_fn"):
        load_lime_params(pickle.dumps(_with("kite", segmentation_fn=slic)))
    # in-process, a callable is fine and passed through untouched
    assert validate_explain_kwargs({"segmentation_fn": slic})["segmentation_fn"] is slic


def test_tampered_segmentation_algorithm_is_refused():
    algorithm = SegmentationAlgorithm("quickshift", kernel_size=4)
    algorithm.target_fn = Ridge  # an allowed global, but not a segmentation function
    with pytest.raises(XaiLensError, match="vulture: segmentation_fn"):
        load_lime_params(pickle.dumps(_with("vulture", segmentation_fn=algorithm)))


BAD_VALUES = [
    ("kite", {"num_samples": 0}, "num_samples"),
    ("kite", {"num_samples": -1}, "num_samples"),
    ("kite", {"num_samples": 10**9}, "num_samples"),
    ("kite", {"num_samples": "100"}, "num_samples"),
    ("kite", {"num_samples": float("nan")}, "num_samples"),
    ("kite", {"num_samples": True}, "num_samples"),
    ("orange", {"batch_size": 0}, "batch_size"),
    ("orange", {"top_labels": 1001}, "top_labels"),
    ("orange", {"num_features": 2.5}, "num_features"),
    ("goldfish", {"labels": (1000,)}, "labels"),
    ("goldfish", {"labels": "21"}, "labels"),
    ("goldfish", {"labels": (True,)}, "labels"),
    ("goldfish", {"hide_color": 300}, "hide_color"),
    ("goldfish", {"hide_color": float("inf")}, "hide_color"),
    ("goldfish", {"hide_color": "black"}, "hide_color"),
    ("goldfish", {"hide_color": (1, 2)}, "hide_color"),
    ("racer", {"random_seed": -5}, "random_seed"),
    ("racer", {"random_seed": 2**32}, "random_seed"),
    ("racer", {"progress_bar": 1}, "progress_bar"),
    ("racer", {"distance_metric": "cosin"}, "distance_metric"),
    ("racer", {"model_regressor": "Ridge"}, "model_regressor"),
    ("racer", {"model_regressor": {"name": "Ridge", "alpha": -1.0}}, "model_regressor"),
    ("flamingo", {"num_sample": 100}, "did you mean 'num_samples'"),
    ("flamingo", {"image": None}, "image"),
    ("flamingo", {"segmentation_fn": "watershed"}, "segmentation"),
    ("flamingo", {"segmentation_fn": {"name": "quickshift", "kernal_size": 4}}, "did you mean 'kernel_size'"),
    ("flamingo", {"segmentation_fn": {"name": "slic", "n_segments": 10**9}}, "n_segments"),
    ("flamingo", {"segmentation_fn": {"name": "slic", "compactness": "high"}}, "slic"),
    ("flamingo", {"segmentation_fn": {"name": "quickshift", "ratio": float("nan")}}, "ratio"),
]


def test_error_message_matches_the_documented_example():
    with pytest.raises(XaiLensError, match=r"^kite: num_samples must be an integer from 1 to 10000, got -1$"):
        validate_lime_params(_with("kite", num_samples=-1))


def test_missing_and_extra_preset_keys_are_named():
    params = default_lime_params()
    del params["orange"]
    with pytest.raises(XaiLensError, match="lacks preset keys: orange"):
        validate_lime_params(params)
    params = {**default_lime_params(), "tiger shark": {}}
    with pytest.raises(XaiLensError, match=r"unknown preset keys: tiger shark \(did you mean 'tiger_shark'\?\)"):
        validate_lime_params(params)


def test_good_values_are_normalised():
    entry = validate_explain_kwargs(
        {"labels": [21], "hide_color": [0, 0, 0], "segmentation_fn": "slic", "distance_metric": "manhattan"}
    )
    assert entry["labels"] == (21,) and entry["hide_color"] == (0, 0, 0)
    assert entry["segmentation_fn"]["name"] == "slic" and entry["segmentation_fn"]["start_label"] == 0
    assert validate_explain_kwargs({"segmentation_fn": {"name": "slic", "start_label": 1}})["segmentation_fn"] == {
        "name": "slic",
        "start_label": 1,
    }


def test_a_file_over_the_size_limit_is_refused_without_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "huge.pkl"
    with open(path, "wb") as handle:
        handle.truncate(2**30)  # sparse: 1 GB on paper, nothing on disk
    monkeypatch.setattr("pathlib.Path.read_bytes", lambda self: pytest.fail("the file was read"))
    with pytest.raises(XaiLensError, match=r"is 1024\.0 MB; the limit is 1 MB") as caught:
        load_lime_params(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(XaiLensError, match="limit"):
        load_lime_params(b"\x80" * (MAX_FILE_BYTES + 1))


def test_garbage_and_missing_files_give_one_line_errors(tmp_path):
    for data in (b"not a pickle at all", b"{not json", b"\x80\x04K"):
        with pytest.raises(XaiLensError) as caught:
            load_lime_params(data)
        assert "\n" not in str(caught.value)
    with pytest.raises(XaiLensError, match="does not exist"):
        load_lime_params(tmp_path / "nope.pkl")


def test_segmentation_callable_cannot_be_saved(tmp_path):
    with pytest.raises(XaiLensError, match="cannot be stored"):
        save_lime_params(_with("kite", segmentation_fn=lambda image: image[..., 0]), tmp_path / "p.pkl")


# --- caps (explainers.limits): every work-scaling setting, the public cap read when validating -----------

CAPPED_VALUES = [
    ("kite", {"segmentation_fn": {"name": "quickshift", "kernel_size": 11}}, "kernel_size must be from 0.1 to 10"),
    ("kite", {"segmentation_fn": {"name": "felzenszwalb", "sigma": 1e7}}, "sigma must be from 0 to 100"),
    ("kite", {"segmentation_fn": {"name": "slic", "sigma": (1, 1e4)}}, "sigma must be from 0 to 100"),
    ("kite", {"segmentation_fn": {"name": "slic", "n_segments": 301}}, "n_segments must be from 1 to 300"),
    ("kite", {"segmentation_fn": {"name": "slic", "max_num_iter": 101}}, "max_num_iter must be from 1 to 100"),
    ("kite", {"segmentation_fn": {"name": "slic", "spacing": [[1, 2]]}}, "spacing must be a number"),
    ("kite", {"segmentation_fn": {"name": "quickshift", "max_dist": 1e9}}, "max_dist must be from 0 to 1000"),
    ("orange", {"top_labels": 11}, "top_labels must be an integer from 1 to 10"),
    ("orange", {"labels": list(range(11))}, "labels must name 1 to 10 class indices"),
    ("orange", {"batch_size": 257}, "batch_size must be an integer from 1 to 256"),
    ("racer", {"model_regressor": {"name": "Lasso", "max_iter": 10**7, "tol": 0.0, "alpha": 1e-12}}, "max_iter"),
    ("racer", {"model_regressor": {"name": "Lasso", "max_iter": 2**32 - 1}}, "max_iter must be from 1 to 1000"),
    ("racer", {"model_regressor": {"name": "BayesianRidge", "max_iter": 501}}, "max_iter must be from 1 to 500"),
    ("racer", {"model_regressor": {"name": "Ridge", "solver": "sag"}}, "needs max_iter from 1 to 50"),
    ("racer", {"model_regressor": {"name": "Ridge", "solver": "saga", "max_iter": 1000}}, "max_iter must be from 1"),
    ("racer", {"model_regressor": {"name": "Ridge", "positive": True}}, "needs max_iter"),
    ("racer", {"model_regressor": {"name": "LinearRegression", "n_jobs": -1}}, "n_jobs must be None or 1"),
    ("racer", {"model_regressor": ["Ridge"]}, "model_regressor must be None or one of"),
    ("racer", {"model_regressor": {"name": ["Ridge"]}}, "model_regressor 'name' must be one of"),
    ("racer", {"distance_metric": "c" * 1000}, "distance_metric"),
]


@pytest.mark.parametrize("key, change, expected", BAD_VALUES + CAPPED_VALUES)
def test_bad_and_over_the_cap_values_give_one_line_errors_naming_preset_and_parameter(key, change, expected):
    with pytest.raises(XaiLensError) as caught:
        validate_lime_params(_with(key, **change))
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and expected in message and "\n" not in message


def test_settings_at_the_caps_are_accepted():
    at_caps = {
        "segmentation_fn": {"name": "slic", "n_segments": 300, "max_num_iter": 100, "sigma": 100},
        "model_regressor": {"name": "Ridge", "solver": "sag", "max_iter": 50, "tol": 0.0},
        "top_labels": 10,
        "batch_size": 256,
        "labels": list(range(10)),
    }
    assert validate_lime_params(_with("kite", **at_caps))["kite"]["top_labels"] == 10


def test_the_public_cap_is_read_when_validating(monkeypatch):
    assert validate_lime_params(_with("kite", num_samples=2500))["kite"]["num_samples"] == 2500
    monkeypatch.setenv("XAI_LENS_LIME_MAX_SAMPLES", "2000")
    expected = r"^kite: num_samples must be an integer from 1 to 2000 \(this server's cap, XAI_LENS_LIME_MAX_SAMPLES\)"
    with pytest.raises(XaiLensError, match=expected + ", got 2500$"):
        validate_lime_params(_with("kite", num_samples=2500))
    with pytest.raises(XaiLensError, match=expected):
        load_lime_params(pickle.dumps(_with("kite", num_samples=2500)))
    assert validate_lime_params(_with("kite", num_samples=2000))["kite"]["num_samples"] == 2000


def test_a_public_cap_above_the_librarys_changes_nothing_and_a_bad_one_is_one_line(monkeypatch):
    monkeypatch.setenv("XAI_LENS_LIME_MAX_SAMPLES", "50000")
    with pytest.raises(XaiLensError, match=r"from 1 to 10000, got 10001$"):
        validate_lime_params(_with("kite", num_samples=10_001))
    monkeypatch.setenv("XAI_LENS_LIME_MAX_SAMPLES", "lots")
    with pytest.raises(XaiLensError, match=r"^XAI_LENS_LIME_MAX_SAMPLES='lots' is not a whole number"):
        validate_lime_params(default_lime_params())


def test_the_samples_of_one_run_are_capped_all_together(monkeypatch):
    heavy = {key: {**entry, "num_samples": 2500} for key, entry in default_lime_params().items()}
    with pytest.raises(XaiLensError, match=r"ask for 25000 samples over the 10 presets; one run may use at most 20000"):
        validate_lime_params(heavy)
    monkeypatch.setenv("XAI_LENS_LIME_MAX_REQUEST_SAMPLES", "30000")
    assert validate_lime_params(heavy)["kite"]["num_samples"] == 2500


# --- LIME itself: the superpixel cap, and the request's token around segmentation and regressions -------


def _coarse_segments(image: np.ndarray) -> np.ndarray:
    """Four bands of the red channel: a segmentation that needs no skimage."""
    return image[..., 0].astype(np.int64) // 64


def _lime(resnet18_random, crop, token=None, **settings):
    """(LimeMethod, Subject, list of samples reported): few samples keep these tests quick."""
    from explainers.methods.base import Subject
    from explainers.methods.lime import LimeMethod

    sampled: list[int] = []
    method = LimeMethod(progress=lambda done, total: sampled.append(done), **{"num_samples": 20, **settings})
    return method, Subject(resnet18_random, crop, 1, token), sampled


def test_too_many_superpixels_are_refused_before_any_sample(resnet18_random):
    noise = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    tiny_segments = {"name": "felzenszwalb", "scale": 1, "sigma": 0.5, "min_size": 0}  # one per pixel or so
    method, subject, sampled = _lime(resnet18_random, noise, segmentation_fn=tiny_segments)
    with pytest.raises(XaiLensError, match=r"^LIME: the segmentation made \d+ superpixels .*; at most 300 are"):
        method.compute(subject)
    assert sampled == []


def test_lime_checks_the_token_before_and_after_segmentation(resnet18_random, photo_crop):
    from explainers.engine.cancel import CancelledError, CancelToken

    token, segmented = CancelToken(), []

    def segment_then_stop(image):
        segmented.append(1)
        token.cancel("stopped")  # the visitor pressed Stop while the segmentation ran
        return _coarse_segments(image)

    method, subject, sampled = _lime(resnet18_random, photo_crop, token, segmentation_fn=segment_then_stop)
    with pytest.raises(CancelledError):
        method.compute(subject)
    assert segmented == [1] and sampled == []  # stopped right after segmenting, before sampling
    method, subject, _ = _lime(resnet18_random, photo_crop, token, segmentation_fn=segment_then_stop)
    with pytest.raises(CancelledError):
        method.compute(subject)
    assert segmented == [1]  # already stopped: no second segmentation


def test_lime_checks_the_token_between_regressions(resnet18_random, photo_crop, monkeypatch):
    from lime.lime_base import LimeBase

    from explainers.engine.cancel import CancelledError, CancelToken

    token, fitted = CancelToken(), []
    fit_one_label = LimeBase.explain_instance_with_data

    def fit_then_stop(self, *args, **kwargs):
        fitted.append(1)
        token.cancel("stopped")
        return fit_one_label(self, *args, **kwargs)

    monkeypatch.setattr(LimeBase, "explain_instance_with_data", fit_then_stop)
    method, subject, sampled = _lime(resnet18_random, photo_crop, token, top_labels=5, segmentation_fn=_coarse_segments)
    with pytest.raises(CancelledError):
        method.compute(subject)
    assert sampled and fitted == [1]  # five labels asked for; the stop came after the first fit


def test_a_failed_regression_is_one_line(resnet18_random, photo_crop, monkeypatch):
    from lime.lime_base import LimeBase

    def diverge(self, *args, **kwargs):
        raise ValueError("Input contains NaN.\nsecond line of a long sklearn message")

    monkeypatch.setattr(LimeBase, "explain_instance_with_data", diverge)
    method, subject, _ = _lime(resnet18_random, photo_crop, segmentation_fn=_coarse_segments)
    with pytest.raises(XaiLensError, match=r"^LIME: the regression failed \(Input contains NaN\.\); try lime's"):
        method.compute(subject)
