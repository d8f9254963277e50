"""The parameter-file reader against the attacks of issue #19, and the legacy files it must still read.

Each hostile payload is built here, the way an attacker would build it (a `__reduce__` that makes
pickle write exactly the opcodes wanted). Every one must end in a one-line XaiLensError within a
safety bound. The bounds are generous ceilings against hangs, not speed claims: the memo bomb took
hours with a walk that followed every shared reference, and numpy's rebuilders crashed the process.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from lime.wrappers.scikit_image import SegmentationAlgorithm
from numpy._core.multiarray import _reconstruct
from sklearn.linear_model import BayesianRidge, ElasticNet, Lasso, Ridge

from explainers.errors import XaiLensError
from explainers.inputs.lime_kwargs import lime_call_kwargs
from explainers.inputs.param_file import (
    PRESET_KEYS,
    default_lime_params,
    load_lime_params,
    restricted_loads,
    save_lime_params,
    validate_lime_params,
)

REPO = Path(__file__).resolve().parents[1]
SAFETY_BOUND_S = 10.0  # a ceiling against hangs; a refusal takes milliseconds


class _Reduces:
    """Pickles as `function(*args)`, with BUILD `state` after it when given."""

    def __init__(self, function, args, state=None):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        if self.state is None:
            return self.function, self.args
        return self.function, self.args, self.state


def refusal(payload: bytes, loader=restricted_loads) -> str:
    """The one-line refusal of `payload`, which must come within SAFETY_BOUND_S.

    The loader runs in a daemon thread, so a reader that never finishes fails this test instead of
    hanging the whole run.
    """
    outcome: list = []

    def load() -> None:
        try:
            loader(payload)
            outcome.append(None)
        except Exception as exc:  # reported below, whatever it is
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(SAFETY_BOUND_S)
    if not outcome:
        pytest.fail(f"no answer within {SAFETY_BOUND_S} s (the work is not bounded)")
    error = outcome[0]
    if error is None:
        pytest.fail("the hostile payload was accepted")
    assert isinstance(error, XaiLensError), f"not a one-line refusal: {type(error).__name__}: {error}"
    message = str(error)
    assert message and "\n" not in message
    return message


def memo_bomb(levels: int = 60) -> dict:
    """n = {}; n = {"k0": n, "k1": n} `levels` times: 974 bytes as a pickle, 2^levels values when walked."""
    node: dict = {}
    for _ in range(levels):
        node = {"k0": node, "k1": node}
    return node


# --- attack 1: numpy's array rebuilder ----------------------------------------------------------------


def test_reconstruct_with_object_state_is_refused_and_the_process_survives(tmp_path):
    """The 151-byte file that segfaulted the server: _reconstruct + state with an object dtype and a list."""
    payload = pickle.dumps(
        _Reduces(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1000,), np.dtype("O"), False, [1])), protocol=2
    )
    assert len(payload) < 200
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    code = (
        "import sys\nfrom explainers.errors import XaiLensError\n"
        "from explainers.inputs.param_file import load_lime_params\n"
        "try:\n    load_lime_params(sys.argv[1])\nexcept XaiLensError as exc:\n    print('REFUSED', exc)\n"
    )
    # in a child process: if the reader crashed, it would take only the child down, and this test would say so
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"the reader died (exit {done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.startswith("REFUSED refused: the parameter file") and done.stdout.count("\n") == 1
    assert "numpy type 'O8'" in done.stdout


def test_reconstruct_without_state_does_not_leak_memory():
    """Ten keys of _reconstruct(ndarray, (100000,), u1): 1,000,000 uninitialised bytes went to the editor."""
    hostile = _Reduces(_reconstruct, (np.ndarray, (100000,), np.dtype("u1")))
    payload = pickle.dumps({key: {"labels": hostile} for key in PRESET_KEYS})
    assert "rebuilds an array in an unexpected way" in refusal(payload, load_lime_params)


@pytest.mark.parametrize("protocol", [2, 5])
def test_sub_array_dtype_cannot_bypass_the_size_cap(protocol):
    """350 elements of a 1000x1000 sub-array dtype were 350 MB from a 391-byte file."""
    state = (1, (350,), np.dtype(("u1", (1000, 1000))), False, b"")
    payload = pickle.dumps(_Reduces(_reconstruct, (np.ndarray, (0,), b"b"), state), protocol=protocol)
    assert len(payload) < 500
    tracemalloc.start()
    try:
        message = refusal(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "numpy type 'V1000000'" in message
    assert peak < 5 * 2**20, f"reading a 391-byte file allocated {peak / 2**20:.0f} MB"


@pytest.mark.parametrize(
    "dtype",
    [np.dtype("O"), np.dtype("U3"), np.dtype("M8[s]"), np.dtype("c16"), np.dtype([("a", "i4")])],
    ids=["object", "unicode", "datetime", "complex", "structured"],
)
def test_only_plain_number_dtypes_are_read(dtype):
    state = (1, (1,), dtype, False, b"\x00" * dtype.itemsize)
    message = refusal(pickle.dumps(_Reduces(_reconstruct, (np.ndarray, (0,), b"b"), state)))
    assert message.startswith("refused: the parameter file holds numbers of numpy type")


def test_arrays_beyond_the_element_cap_are_refused_before_decoding():
    state = (1, (10**6, 10**6), np.dtype("u1"), False, b"")
    message = refusal(pickle.dumps(_Reduces(_reconstruct, (np.ndarray, (0,), b"b"), state)))
    assert "more than 1000 values, too large for a parameter file" in message


def test_array_bytes_must_match_the_declared_shape():
    state = (1, (4,), np.dtype("i8"), False, b"\x00" * 8)
    assert "do not match" in refusal(pickle.dumps(_Reduces(_reconstruct, (np.ndarray, (0,), b"b"), state)))


# --- attack 2: shared references ----------------------------------------------------------------------


def test_memo_bomb_is_refused():
    payload = pickle.dumps(memo_bomb(60))
    assert len(payload) < 1000
    assert "refused" in refusal(payload)


def test_wide_memo_bomb_within_the_depth_cap_is_refused_by_counting_each_use():
    """Ten uses of one list per level, twelve levels: shallow, tiny, and 10^12 values when walked."""
    node: list = [0]
    for _ in range(12):
        node = [node] * 10
    message = refusal(pickle.dumps({key: {"labels": node} for key in PRESET_KEYS}))
    assert "holds more than 20000 values (a shared value counts at each use)" in message


def test_memo_bomb_through_the_file_loader_is_refused():
    payload = pickle.dumps({key: {"segmentation_fn": memo_bomb(60)} for key in PRESET_KEYS})
    assert "refused" in refusal(payload, load_lime_params)


# --- the allow-list still holds ------------------------------------------------------------------------


def test_pickle_that_would_run_os_system_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "SOMEFILE"
    hostile = pickle.dumps({"kite": _Reduces(os.system, (f"touch {marker}",))})
    message = refusal(hostile)
    assert re.match(r"refused: .* asks to load (posix|os|nt)\.system", message), message
    assert "refused" in refusal(hostile, load_lime_params)
    assert not marker.exists()
    # the same bytes through plain pickle do run the command: the test above could have failed
    pickle.loads(hostile)
    assert marker.exists()


@pytest.mark.parametrize(
    "function, args, name",
    [
        (os.system, ("true",), "system"),
        (eval, ("1+1",), "builtins.eval"),
        (getattr, ("text", "upper"), "builtins.getattr"),
        (subprocess.Popen, (["true"],), "subprocess.Popen"),
        (functools.partial, (print, "x"), "functools.partial"),
        (np.load, ("x.npy",), "numpy.load"),
        (np.frombuffer, (b"\x00",), "frombuffer"),
    ],
)
def test_code_running_globals_are_refused_by_name(function, args, name):
    message = refusal(pickle.dumps({"kite": _Reduces(function, args)}))
    assert name in message and "never needs" in message


def test_allowed_objects_cannot_be_called_with_arguments():
    message = refusal(pickle.dumps(_Reduces(SegmentationAlgorithm, ("quickshift",))))
    assert "SegmentationAlgorithm" in message


def test_a_segmentation_function_cannot_be_called_while_loading():
    from skimage.segmentation import slic

    assert "not callable" in refusal(pickle.dumps(_Reduces(slic, (np.zeros((8, 8, 3)),))))  # read as a name only


def test_the_readers_own_stand_ins_cannot_be_changed_by_a_file():
    """BUILD on a shared stand-in would let one visitor's file change how the next file is read."""
    tamper = b"\x80\x04c_codecs\nencode\n}X\x07\x00\x00\x00__doc__K\x01sb."
    assert "stand-ins" in refusal(tamper)
    slots = b"\x80\x04cskimage.segmentation\nslic\nN}X\x04\x00\x00\x00nameX\x04\x00\x00\x00quuxs\x86b."
    assert "stand-ins" in refusal(slots)
    params = default_lime_params()
    params["kite"]["segmentation_fn"] = SegmentationAlgorithm("slic", n_segments=40, start_label=0)
    assert load_lime_params(pickle.dumps(params))["kite"]["segmentation_fn"]["name"] == "slic"


def test_a_record_state_set_twice_is_refused():
    twice = pickle.dumps(Ridge())[:-1] + b"}b."  # one more BUILD on the regressor record
    assert "twice" in refusal(twice)


def test_a_function_outside_a_segmentation_algorithm_is_refused():
    from skimage.segmentation import quickshift

    assert "the function quickshift outside a SegmentationAlgorithm" in refusal(pickle.dumps({"kite": quickshift}))


# --- legacy files: what save_lime_params wrote and what students write --------------------------------


def _student_params() -> dict:
    """What a student pickles with lime and sklearn in hand (objects, numpy numbers)."""
    params = {key: {"num_samples": 500, "top_labels": 5, "hide_color": 0} for key in PRESET_KEYS}
    params["kite"]["segmentation_fn"] = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2)
    params["goldfish"]["segmentation_fn"] = SegmentationAlgorithm("felzenszwalb", scale=100, sigma=0.5, min_size=50)
    params["orange"]["segmentation_fn"] = SegmentationAlgorithm("slic", n_segments=60, compactness=10.0, start_label=0)
    params["kite"]["model_regressor"] = Ridge(alpha=0.5)
    params["goldfish"]["model_regressor"] = Lasso(alpha=0.01, max_iter=500)
    params["orange"]["model_regressor"] = ElasticNet(alpha=0.1, l1_ratio=0.3)
    params["vulture"]["model_regressor"] = BayesianRidge()
    params["vulture"]["num_samples"] = np.int64(700)
    params["racer"]["hide_color"] = np.array([10, 20, 30], dtype=np.uint8)
    params["flamingo"]["labels"] = np.array([130, 1], dtype=">i4")
    return params


def _dict_form(params: dict) -> dict:
    """The same settings written as plain data, by hand: what the reader must turn the objects into."""
    plain = {key: dict(entry) for key, entry in params.items()}
    for entry in plain.values():
        for name, value in list(entry.items()):
            if isinstance(value, SegmentationAlgorithm):
                entry[name] = {"name": value.algo_type, **value.target_params}
            elif hasattr(value, "get_params"):
                entry[name] = {"name": type(value).__name__, **value.get_params()}
            elif isinstance(value, np.ndarray):
                entry[name] = value.tolist()
            elif isinstance(value, np.generic):
                entry[name] = value.item()
    return plain


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_students_pickle_loads_to_the_same_canonical_params(protocol):
    params = _student_params()
    loaded = load_lime_params(pickle.dumps(params, protocol=protocol))
    assert loaded == validate_lime_params(_dict_form(params))
    assert loaded["vulture"]["num_samples"] == 700 and type(loaded["vulture"]["num_samples"]) is int
    assert loaded["flamingo"]["labels"] == (130, 1)
    live = lime_call_kwargs(loaded["goldfish"])
    assert live["model_regressor"].get_params() == params["goldfish"]["model_regressor"].get_params()
    assert live["segmentation_fn"].target_params == params["goldfish"]["segmentation_fn"].target_params


def test_a_fitted_regressor_gives_only_its_settings():
    fitted = Ridge(alpha=2.0).fit(np.eye(3), [1.0, 2.0, 3.0])
    params = default_lime_params()
    params["kite"]["model_regressor"] = fitted
    loaded = load_lime_params(pickle.dumps(params))
    assert loaded["kite"]["model_regressor"] == {"name": "Ridge", **Ridge(alpha=2.0).get_params()}


@pytest.mark.parametrize("suffix", [".pkl", ".json"])
def test_the_files_save_lime_params_wrote_still_load(tmp_path, suffix):
    params = validate_lime_params(_dict_form(_student_params()))
    path = save_lime_params(params, tmp_path / f"explain_params{suffix}")
    assert load_lime_params(path) == params


@pytest.mark.parametrize("dtype", ["?", "i1", "u1", "<i2", ">u2", "<i4", ">i4", "<u4", "<i8", ">u8", "<f4", ">f8"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_numpy_numbers_decode_as_numpy_reads_them(dtype, protocol):
    rng = np.random.default_rng(1)
    array = (rng.random((2, 3)) * 100).astype(dtype)
    fortran = np.asfortranarray(array)
    loaded = restricted_loads(pickle.dumps([array, fortran, array[0, 1], array[:, 0]], protocol=protocol))
    as_tuples = tuple(map(tuple, array.tolist()))
    assert loaded == [as_tuples, as_tuples, array[0, 1].item(), tuple(array[:, 0].tolist())]
