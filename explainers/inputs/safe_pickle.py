"""Read a LIME parameter pickle as plain data, never letting it run code or rebuild objects.

A pickle is a small program: every global it names can be called with arguments it chooses, and
BUILD hands any object a state of its choosing. So no global from the file resolves to anything
real. `find_class` hands out inert records of our own: a lime SegmentationAlgorithm or a
scikit-learn regressor becomes a record that only keeps the state the file gives it; numpy's
dtype, scalar and array rebuilders become our decoders, which read raw bytes for a handful of
plain number types and refuse everything else (object, void, sub-array and structured dtypes);
skimage's segmentations become their names. After unpickling, one bounded walk turns the result
into plain data (dict, list, tuple, str, int, float, bool, None): the SegmentationAlgorithm into
{'name': algo_type, **target_params}, a regressor into {'name': class, **its constructor
settings}. The walk counts every value it visits, each use of a shared value again, so a file
that repeats one value 2^60 times through the pickle memo is refused after a few thousand steps.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from lime.wrappers.scikit_image import SegmentationAlgorithm
from skimage.segmentation import felzenszwalb, quickshift, slic
from sklearn.linear_model import BayesianRidge, ElasticNet, Lasso, LinearRegression, Ridge

from explainers.errors import XaiLensError, first_line
from explainers.limits import MAX_PARAM_ARRAY_ELEMENTS, MAX_PARAM_FILE_DEPTH, MAX_PARAM_FILE_NODES

SEGMENTATION_FUNCTIONS = {"quickshift": quickshift, "slic": slic, "felzenszwalb": felzenszwalb}
REGRESSOR_CLASSES = {cls.__name__: cls for cls in (Ridge, Lasso, LinearRegression, ElasticNet, BayesianRidge)}
# numpy dtype name -> struct code: the only element types a parameter file's numbers may have.
_NUMBER_CODES = {
    "b1": "?",
    "i1": "b",
    "u1": "B",
    "i2": "h",
    "u2": "H",
    "i4": "i",
    "u4": "I",
    "i8": "q",
    "u8": "Q",
    "f4": "f",
    "f8": "d",
}
_BYTE_ORDERS = {"<": "<", ">": ">", "|": "<", "=": "<" if sys.byteorder == "little" else ">"}


def _refuse(message: str) -> NoReturn:
    raise XaiLensError(f"refused: the parameter file {message}")


# --- records: what the file's objects become while it is read ------------------------------------


class _Record:
    """An object named by the file: keeps the state BUILD gives it, does nothing else.

    Pickles make objects with NEWOBJ (cls.__new__(cls)) or copyreg's rebuilder, never by calling the
    class, and no allowed object takes constructor arguments; anything else is refused.
    """

    kind = "object"
    state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> _Record:
        if args or kwargs:
            _refuse(f"builds a {cls.kind} with arguments, which its pickles never do")
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse(f"calls {self.kind} like a function, which its pickles never do")

    def __setstate__(self, state: Any) -> None:
        if self.state is not None:
            _refuse(f"sets the state of a {self.kind} twice")
        self.state = state


class _SegmentationRecord(_Record):
    kind = "lime SegmentationAlgorithm"


def _regressor_record(name: str) -> type[_Record]:
    return type(f"_{name}Record", (_Record,), {"kind": f"scikit-learn {name}", "regressor": name})


_REGRESSOR_RECORDS = {name: _regressor_record(name) for name in REGRESSOR_CLASSES}


class _Frozen:
    """A stand-in shared by every load: BUILD must not change it, or one file could spoil the next."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> NoReturn:
        _refuse("tries to change one of the reader's own stand-ins")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        _refuse("tries to change one of the reader's own stand-ins")


class _FunctionName(_Frozen):
    """Stands for a skimage segmentation function; not callable, only read as a name."""

    __slots__ = ("name",)
    name: str

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "name", name)


class _Helper(_Frozen):
    """One of our decoders, callable by the file with arguments it chooses, and nothing more."""

    __slots__ = ("function",)
    function: Callable[..., Any]

    def __init__(self, function: Callable[..., Any]) -> None:
        object.__setattr__(self, "function", function)

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


class _Dtype:
    """numpy's dtype(name, align, copy) for the plain number types only; BUILD's state is checked."""

    def __init__(self, name: Any, align: Any = False, copy: Any = True) -> None:
        if name not in _NUMBER_CODES:
            _refuse(f"holds numbers of numpy type {name!r:.20}; only plain booleans, integers and floats are read")
        self.code = _NUMBER_CODES[name]
        self.order = "<"

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in _BYTE_ORDERS):
            _refuse("holds a numpy type description in an unknown layout")
        if state[2] is not None or state[3] is not None or state[4] is not None:
            _refuse("holds a numpy sub-array or structured type, which a parameter never needs")
        self.order = _BYTE_ORDERS[state[1]]

    @property
    def itemsize(self) -> int:
        return struct.calcsize(self.code)

    def decode(self, raw: Any, count: int) -> tuple:
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * self.itemsize:
            _refuse("holds numpy data whose bytes do not match its type")
        return struct.unpack(f"{self.order}{count}{self.code}", bytes(raw))


def _scalar(dtype: Any, raw: Any = None) -> bool | int | float:
    """numpy's scalar(dtype, raw bytes) for the plain number types: the Python number it holds."""
    if not isinstance(dtype, _Dtype):
        _refuse("holds a numpy scalar of an unexpected type")
    return dtype.decode(raw, 1)[0]


def _element_count(shape: Any) -> int:
    if not (isinstance(shape, tuple) and len(shape) <= 4 and all(type(n) is int and n >= 0 for n in shape)):
        _refuse("holds a numpy array with an unreadable shape")
    count = 1
    for n in shape:
        count *= n
        if count > MAX_PARAM_ARRAY_ELEMENTS:
            _refuse(f"holds an array of more than {MAX_PARAM_ARRAY_ELEMENTS} values, too large for a parameter file")
    return count


def _nested(values: tuple, shape: tuple, fortran: bool) -> tuple:
    """Flat decoded values -> nested tuples in C order (a Fortran-ordered buffer is read column-major)."""
    if len(shape) <= 1:
        return values
    if fortran:
        strides = [1]
        for n in shape[:-1]:
            strides.append(strides[-1] * n)

        def at(index: tuple) -> Any:
            return values[sum(i * s for i, s in zip(index, strides, strict=True))]

        def build(prefix: tuple, depth: int) -> tuple:
            if depth == len(shape):
                return at(prefix)
            return tuple(build((*prefix, i), depth + 1) for i in range(shape[depth]))

        return build((), 0)
    step = len(values) // shape[0] if shape[0] else 0
    return tuple(_nested(values[i * step : (i + 1) * step], shape[1:], False) for i in range(shape[0]))


class _Array:
    """An ndarray as numbers: numpy's _reconstruct makes it empty, BUILD gives shape, dtype and bytes."""

    kind = "numpy array"

    def __init__(self) -> None:
        self.values: tuple | None = None

    def __setstate__(self, state: Any) -> None:
        if self.values is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            _refuse("holds a numpy array in an unknown layout")
        shape, dtype, fortran, raw = state[-4:]
        if len(state) == 5 and state[0] != 1:
            _refuse("holds a numpy array in an unknown layout")
        if not isinstance(dtype, _Dtype):
            _refuse("holds a numpy array of an unexpected type")
        self.values = _nested(dtype.decode(raw, _element_count(shape)), shape, bool(fortran))


class _Sentinel(_Frozen):
    """Stands for a class the file may only name as an argument (numpy.ndarray, builtins.object)."""

    __slots__ = ()


_NDARRAY = _Sentinel()


def _reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> _Array:
    if subtype is not _NDARRAY or shape != (0,) or typecode != b"b":
        _refuse("rebuilds an array in an unexpected way")
    return _Array()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> tuple:
    """numpy's protocol-5 array rebuilder: the numbers, as nested tuples."""
    if not isinstance(dtype, _Dtype) or order not in ("C", "F"):
        _refuse("holds a numpy array of an unexpected type")
    return _nested(dtype.decode(buffer, _element_count(shape)), shape, order == "F")


_OBJECT = _Sentinel()  # builtins.object as the `base` of copyreg's rebuilder


def _reconstructor(cls: Any, base: Any, state: Any) -> _Record:
    """copyreg's rebuilder (pickle protocols 0 and 1), for our records only: an empty record."""
    if not (isinstance(cls, type) and issubclass(cls, _Record)) or base is not _OBJECT or state is not None:
        _refuse("rebuilds an object in an unexpected way")
    return object.__new__(cls)


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """What protocols 0-2 use to carry bytes; only the latin-1 codec is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        _refuse("asks for an unexpected text encoding")
    return text.encode("latin1")


# --- the allow-list: module and name as pickles write them -> our stand-in --------------------


def _names(obj: Any, *public_modules: str) -> list[tuple[str, str]]:
    """Where pickles may name `obj`: its defining module (current and older layouts) and public modules."""
    return [(obj.__module__, obj.__qualname__), *((module, obj.__qualname__) for module in public_modules)]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("_codecs", "encode"): _Helper(_latin1_encode),
        ("copyreg", "_reconstructor"): _Helper(_reconstructor),
        ("builtins", "object"): _OBJECT,
        ("numpy", "dtype"): _Dtype,
        ("numpy", "ndarray"): _NDARRAY,
    }
    for core in ("numpy._core", "numpy.core"):  # numpy 2 writes numpy._core, numpy 1 numpy.core
        allowed[(f"{core}.multiarray", "scalar")] = _Helper(_scalar)
        allowed[(f"{core}.multiarray", "_reconstruct")] = _Helper(_reconstruct)
        allowed[(f"{core}.numeric", "_frombuffer")] = _Helper(_frombuffer)
    for key in _names(SegmentationAlgorithm, "lime.wrappers.scikit_image"):
        allowed[key] = _SegmentationRecord
    for name, cls in REGRESSOR_CLASSES.items():
        for key in _names(cls, "sklearn.linear_model"):
            allowed[key] = _REGRESSOR_RECORDS[name]
    for name, function in SEGMENTATION_FUNCTIONS.items():
        for key in _names(function, "skimage.segmentation"):
            allowed[key] = _FunctionName(name)
    return allowed


_ALLOWED = _allowed_globals()
# Python 2 names that protocols 0-2 still write; the stock unpickler maps them the same way.
_OLD_MODULE_NAMES = {"copy_reg": "copyreg", "__builtin__": "builtins"}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in the allow-list, each to an inert stand-in; everything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        module = _OLD_MODULE_NAMES.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        _refuse(f"asks to load {module:.60}.{name:.60}, which a parameter file never needs")

    def persistent_load(self, pid: Any) -> NoReturn:
        _refuse("refers to outside objects (persistent ids)")


# --- the walk: records and containers -> plain data, bounded ------------------------------------


class _Walk:
    """One bounded conversion to plain data; every visit costs one node, shared values included."""

    def __init__(self) -> None:
        self.nodes_left = MAX_PARAM_FILE_NODES

    def plain(self, value: Any, path: tuple[str, ...]) -> Any:
        self.nodes_left -= 1
        if self.nodes_left < 0:
            _refuse(
                f"holds more than {MAX_PARAM_FILE_NODES} values (a shared value counts at each use); "
                "a parameter file holds a few hundred"
            )
        if len(path) > MAX_PARAM_FILE_DEPTH:
            _refuse(f"is nested more than {MAX_PARAM_FILE_DEPTH} levels deep; a parameter file is 4 deep")
        kind = type(value)
        if kind in (str, int, float, bool, type(None)):
            return value
        if kind in (list, tuple):
            return kind(self.plain(item, (*path, "[]")) for item in value)
        if kind is dict:
            return {self._key(key, path): self.plain(item, (*path, str(key))) for key, item in value.items()}
        if kind is _Array and value.values is not None:
            return self.plain(value.values, path)
        if kind is _SegmentationRecord:
            return self._segmentation(value, path)
        if isinstance(value, _Record) and hasattr(kind, "regressor"):
            return self._regressor(value, path)
        _refuse(f"holds {self._what(value)} at {self._where(path)}, which a parameter file never needs")

    def _key(self, key: Any, path: tuple[str, ...]) -> str:
        if type(key) is not str:
            _refuse(f"has a key that is not text ({type(key).__name__}) at {self._where(path)}")
        return key

    @staticmethod
    def _where(path: tuple[str, ...]) -> str:
        return ": ".join(path) if path else "its top level"

    @staticmethod
    def _what(value: Any) -> str:
        if isinstance(value, (_Record, _Array)):
            return f"a {value.kind} without its state"
        if isinstance(value, _FunctionName):
            return f"the function {value.name} outside a SegmentationAlgorithm"
        return f"a {type(value).__name__.lstrip('_')}"

    def _state(self, record: _Record, path: tuple[str, ...]) -> dict[str, Any]:
        state = record.state
        if type(state) is not dict:
            raise XaiLensError(f"{self._where(path)}: the {record.kind} in the file has unreadable settings")
        return state

    def _segmentation(self, record: _Record, path: tuple[str, ...]) -> dict[str, Any]:
        """lime's SegmentationAlgorithm -> {'name': algo_type, **target_params}, refusing a tampered one."""
        state = self._state(record, path)
        name, function, params = state.get("algo_type"), state.get("target_fn"), state.get("target_params")
        if name not in SEGMENTATION_FUNCTIONS or not (isinstance(function, _FunctionName) and function.name == name):
            raise XaiLensError(
                f"{self._where(path)} is a SegmentationAlgorithm that does not wrap quickshift, slic or "
                "felzenszwalb; build it with SegmentationAlgorithm('quickshift', ...)"
            )
        if type(params) is not dict:
            raise XaiLensError(f"{self._where(path)}: the SegmentationAlgorithm in the file has unreadable settings")
        return {"name": name, **self.plain(params, path)}

    def _regressor(self, record: _Record, path: tuple[str, ...]) -> dict[str, Any]:
        """A regressor -> {'name': class, **its constructor settings}; fitted results and the rest are dropped."""
        state = self._state(record, path)
        name = type(record).regressor  # type: ignore[attr-defined]
        settings = REGRESSOR_CLASSES[name]().get_params(deep=False)
        return {"name": name, **{key: self.plain(state[key], (*path, key)) for key in settings if key in state}}


def restricted_loads(data: bytes) -> Any:
    """Unpickle `data` into plain data (see the module docstring); never runs code from the file."""
    try:
        loaded = _RestrictedUnpickler(io.BytesIO(data)).load()
        return _Walk().plain(loaded, ())
    except XaiLensError:
        raise
    except (Exception, RecursionError) as exc:  # a broken or hostile file: say so in one line
        reason = first_line(exc, limit=120)
        raise XaiLensError(
            f"The parameter file is not a readable parameter pickle ({reason}); save it again with save_lime_params."
        ) from None
