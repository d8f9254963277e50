"""Read a LIME parameter pickle without letting it run code.

A pickle is a small program: every global it names can be called with arguments it chooses.
`find_class` is therefore the gate. It hands out only data constructors (containers, numpy
scalars and arrays, lime's SegmentationAlgorithm, sklearn's linear regressors). The three
skimage segmentation functions are needed only as *values* inside a SegmentationAlgorithm,
so the unpickler hands out inert, uncallable stand-ins and swaps the real functions in after
loading: a file can never make us run a segmentation (or anything else) while it is read.
"""

from __future__ import annotations

import codecs
import copyreg
import io
import pickle
from typing import Any

import numpy as np
from lime.wrappers.scikit_image import SegmentationAlgorithm
from numpy._core import multiarray as _np_multiarray
from numpy._core import numeric as _np_numeric
from skimage.segmentation import felzenszwalb, quickshift, slic
from sklearn.linear_model import BayesianRidge, ElasticNet, Lasso, LinearRegression, Ridge

from explainers.errors import XaiLensError

SEGMENTATION_FUNCTIONS = {"quickshift": quickshift, "slic": slic, "felzenszwalb": felzenszwalb}
REGRESSOR_CLASSES = {cls.__name__: cls for cls in (Ridge, Lasso, LinearRegression, ElasticNet, BayesianRidge)}
MAX_ARRAY_ELEMENTS = 100_000  # far above anything a parameter file holds (an RGB triple, a few labels)


def _qualified(obj: Any) -> tuple[str, str]:
    return obj.__module__, obj.__qualname__


class _FunctionStandIn:
    """Takes the place of a skimage function while unpickling; deliberately not callable."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _NdarrayToken:
    """Takes the place of numpy.ndarray, so a file can pass it to _reconstruct but never call it."""

    __slots__ = ()


_NDARRAY_TOKEN = _NdarrayToken()


def _bounded_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's array rebuilder, but only for plain ndarrays of a sane size (no memory bombs)."""
    if subtype is not _NDARRAY_TOKEN:
        raise XaiLensError("refused: the parameter file rebuilds an array of an unexpected type")
    size = int(np.prod(shape, dtype=np.int64)) if isinstance(shape, tuple) else -1
    if not 0 <= size <= MAX_ARRAY_ELEMENTS:
        raise XaiLensError("refused: the parameter file holds an array too large for a parameter file")
    return _np_multiarray._reconstruct(np.ndarray, shape, dtype)


_OBJECT_TOKEN = object()  # stands for builtins.object as the `base` of copyreg's rebuilder


def _plain_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg's rebuilder (pickle protocols 0 and 1), for the allowed classes only and nothing else."""
    if cls not in _DATA_CLASSES or base is not _OBJECT_TOKEN or state is not None:
        raise XaiLensError("refused: the parameter file rebuilds an object in an unexpected way")
    return object.__new__(cls)


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles use to carry bytes; only the latin-1 codec is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise XaiLensError("refused: the parameter file asks for an unexpected text encoding")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """What numpy's own pickles of scalars and arrays name, read from numpy itself.

    Older numpy wrote `numpy.core.*`; numpy 2 writes `numpy._core.*`; both are accepted.
    """
    allowed: dict[tuple[str, str], Any] = {
        _qualified(np.dtype): np.dtype,
        _qualified(np.ndarray): _NDARRAY_TOKEN,
        (_np_multiarray.__name__, "scalar"): _np_multiarray.scalar,
        (_np_multiarray.__name__, "_reconstruct"): _bounded_reconstruct,
        (_np_numeric.__name__, "_frombuffer"): _np_numeric._frombuffer,
    }
    legacy = {}
    for (module, name), value in allowed.items():
        if module.startswith("numpy._core."):
            legacy[("numpy.core." + module.removeprefix("numpy._core."), name)] = value
    return allowed | legacy


_DATA_CLASSES = (SegmentationAlgorithm, *REGRESSOR_CLASSES.values())
# Python 2 names that protocols 0-2 still write; the stock unpickler maps them the same way.
_OLD_MODULE_NAMES = {"copy_reg": "copyreg", "__builtin__": "builtins"}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("builtins", cls.__name__): cls for cls in (dict, list, tuple, set, frozenset)
    }
    allowed[_qualified(codecs.encode)] = _latin1_encode
    allowed |= _numpy_globals()
    allowed |= {_qualified(cls): cls for cls in _DATA_CLASSES}
    allowed[_qualified(copyreg._reconstructor)] = _plain_reconstructor
    allowed[_qualified(object)] = _OBJECT_TOKEN
    return allowed


_ALLOWED = _allowed_globals()
_STAND_IN_NAMES = {_qualified(fn): name for name, fn in SEGMENTATION_FUNCTIONS.items()}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in the allow-list; everything else is refused by name."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.stand_ins: dict[int, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _OLD_MODULE_NAMES.get(module, module)
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if key in _STAND_IN_NAMES:
            stand_in = _FunctionStandIn(_STAND_IN_NAMES[key])
            self.stand_ins[id(stand_in)] = (stand_in, SEGMENTATION_FUNCTIONS[stand_in.name])
            return stand_in
        raise XaiLensError(
            f"refused: the parameter file asks to load {module}.{name}, which a parameter file never needs"
        )


def _swap_in_functions(value: Any, stand_ins: dict[int, Any]) -> Any:
    """Put the real skimage function back where a SegmentationAlgorithm holds a stand-in."""
    if isinstance(value, dict):
        for item in value.values():
            _swap_in_functions(item, stand_ins)
    elif isinstance(value, SegmentationAlgorithm):
        entry = stand_ins.get(id(getattr(value, "target_fn", None)))
        if entry is not None and entry[0] is value.target_fn:
            value.target_fn = entry[1]
    return value


def restricted_loads(data: bytes) -> Any:
    """Unpickle `data`, allowing only what a LIME parameter file can hold; never runs other code."""
    unpickler = _RestrictedUnpickler(io.BytesIO(data))
    try:
        loaded = unpickler.load()
    except XaiLensError:
        raise
    except (Exception, RecursionError) as exc:  # a broken or hostile file: say so in one line
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise XaiLensError(
            f"The parameter file is not a readable parameter pickle ({reason}); save it again with save_lime_params."
        ) from None
    return _swap_in_functions(loaded, unpickler.stand_ins)
