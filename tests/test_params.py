"""The LIME parameter file: format, round trips, validation messages, and refusing hostile pickles."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess

import numpy as np
import pytest
from lime.wrappers.scikit_image import SegmentationAlgorithm
from sklearn.linear_model import Lasso, Ridge

from explainers.errors import XaiLensError
from explainers.params import (
    MAX_FILE_BYTES,
    PRESET_KEYS,
    default_lime_params,
    lime_call_kwargs,
    load_lime_params,
    restricted_loads,
    save_lime_params,
    segmentation_from_spec,
    validate_explain_kwargs,
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


class _CallsGlobal:
    """Pickles as a call of `function(*args)`: what a hostile parameter file looks like."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def test_pickle_that_would_run_os_system_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "SOMEFILE"
    hostile = pickle.dumps({"kite": _CallsGlobal(os.system, f"touch {marker}")})
    with pytest.raises(XaiLensError, match=r"refused: .* asks to load (posix|os|nt)\.system"):
        restricted_loads(hostile)
    with pytest.raises(XaiLensError, match="refused"):
        load_lime_params(hostile)
    assert not marker.exists()
    # the same bytes through plain pickle do run the command: the test above could have failed
    pickle.loads(hostile)
    assert marker.exists()


@pytest.mark.parametrize(
    "function, args, name",
    [
        (eval, ("1+1",), "builtins.eval"),
        (subprocess.Popen, (["true"],), "subprocess.Popen"),
        (functools.partial, (print, "x"), "functools.partial"),
        (getattr, ("text", "upper"), "builtins.getattr"),
    ],
)
def test_other_dangerous_globals_are_refused(function, args, name):
    with pytest.raises(XaiLensError) as caught:
        restricted_loads(pickle.dumps(_with("kite", num_samples=_CallsGlobal(function, *args))))
    message = str(caught.value)
    assert name in message and "never needs" in message and "\n" not in message


def test_a_segmentation_function_cannot_be_called_while_loading():
    from skimage.segmentation import slic

    hostile = pickle.dumps(_CallsGlobal(slic, np.zeros((8, 8, 3))))
    with pytest.raises(XaiLensError):
        restricted_loads(hostile)


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


def test_huge_array_in_pickle_is_refused():
    class _HugeArray:
        def __reduce__(self):
            state = (1, (10**6, 10**6), np.dtype("u1"), False, b"")
            return np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state

    with pytest.raises(XaiLensError, match="too large for a parameter file"):
        restricted_loads(pickle.dumps(_HugeArray()))


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


@pytest.mark.parametrize("key, change, expected", BAD_VALUES)
def test_bad_values_give_one_line_errors_naming_preset_and_parameter(key, change, expected):
    with pytest.raises(XaiLensError) as caught:
        validate_lime_params(_with(key, **change))
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and expected in message and "\n" not in message


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
