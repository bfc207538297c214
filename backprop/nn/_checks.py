"""Argument checks of `Sequential`: input shapes, parameter trees against the model's, array
shapes and dtypes, and dtype names. Shapes and dtypes only (no host sync, safe under jax.jit)."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["float_dtype_name"]

_FLOAT_NAMES = ("float32", "float64")


def _check_input_shape(shape: Any) -> tuple[int, ...]:
    if shape is None:
        raise ValueError(
            "Sequential needs input_shape, one example's shape without the batch axis: "
            "input_shape=(n_features,) or (length, channels)"
        )
    dims = [shape] if isinstance(shape, numbers.Integral) else shape
    try:
        dims = list(dims)
    except TypeError:
        raise TypeError(
            f"input_shape must be an int or a tuple of ints, received {shape!r}"
        ) from None
    if not dims or any(
        isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims
    ):
        raise ValueError(f"input_shape must be positive ints, received {shape!r}")
    return tuple(int(d) for d in dims)


def float_dtype_name(dtype: Any) -> str:
    """A float dtype as its name: "float32"/"float64" as given; ``np.float64``,
    ``np.dtype("float32")``, ``torch.float64``... as their name. Other names pass (the backend
    refuses unknown ones); other objects are refused, naming the accepted values."""
    if isinstance(dtype, str):
        return dtype
    text = str(dtype).rsplit(".", 1)[-1]
    for name in (getattr(dtype, "name", None), getattr(dtype, "__name__", None), text):
        if isinstance(name, str) and name in _FLOAT_NAMES:
            return name
    raise ValueError(
        f"dtype must be one of {list(_FLOAT_NAMES)} (a name, or np.float32/np.float64), "
        f"received {dtype!r}"
    )


def _key_problem(got: Any, expected: Any) -> str:
    """ "lacks key 'b'", "has unexpected key 'c'" (or both) for two dicts of shapes, else ""."""
    if not isinstance(got, dict) or not isinstance(expected, dict):
        return ""
    problems = {
        "lacks": [k for k in expected if k not in got],
        "has unexpected": [k for k in got if k not in expected],
    }
    return " and ".join(
        f"{verb} key{'s' * (len(keys) > 1)} {', '.join(map(repr, keys))}"
        for verb, keys in problems.items()
        if keys
    )


def params_mismatch(
    i: int, layer: Any, got: Any, expected: Any, source: str = "model.init", what: str = "model"
) -> str:
    """The message for ``params[i]`` whose shapes ``got`` are not the layer's ``expected``."""
    problem = _key_problem(got, expected)
    has = f"{problem} (it has {_describe(got)})" if problem else f"has {_describe(got)}"
    return (
        f"params[{i}] {has}; this {what} expects {_describe(expected)} (layer {i}: {layer!r}); "
        f"pass the params {source} gives"
    )


def _shapes(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: v.shape if hasattr(v, "shape") else _shapes(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_shapes(v) for v in tree]
    shape = getattr(tree, "shape", None)
    return tuple(shape) if shape is not None else type(tree).__name__


def _describe(shapes: Any) -> str:
    if isinstance(shapes, dict):
        return (
            "no parameters"
            if not shapes
            else ", ".join(f"{k} {_describe(v)}" for k, v in shapes.items())
        )
    if isinstance(shapes, list):
        return "[" + "; ".join(_describe(v) for v in shapes) + "]"
    return str(tuple(shapes)) if isinstance(shapes, tuple) else str(shapes)


def _check_shape(name: str, arr: Any, shape: tuple[int, ...], what: str) -> None:
    got = getattr(arr, "shape", None)
    if got is None:
        raise TypeError(f"{name} must be an array, received {type(arr).__name__}")
    k = len(shape)
    if len(got) < k + 1 or tuple(got[-k:]) != tuple(shape):
        want = "(N, " + ", ".join(str(d) for d in shape) + ")"
        size = f"{what} = {shape[0]}" if k == 1 else f"{what} = {shape}"
        raise ValueError(f"{name} must have shape {want} ({size}), received {tuple(got)}")


def _check_float(xp: Any, name: str, arr: Any) -> None:
    if not xp.isdtype(arr.dtype, "real floating"):
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64), received {arr.dtype}"
        )
