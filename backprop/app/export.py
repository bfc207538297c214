"""``backprop export``: a trained run's weights as a file other frameworks read (safetensors).

Host-only module (NumPy; the ``safetensors`` package: ``pip install 'backprop-xp[export]'``).

Every parameter array gets a plain name, its path in the parameter pytree under ``layers``:
``params[i]["W"]`` -> ``layers.{i}.W``, ``params[i]["b"]`` -> ``layers.{i}.b``; nested layers
add their own keys and indices (the j-th layer of a residual block at index i:
``layers.{i}.block.{j}.W``). Index i is the model's layer i (an MLP's dropout layers have no
arrays, so their indices are skipped). A Dense layer computes ``x @ W + b`` with W of shape
(inputs, units): a ``torch.nn.Linear`` takes ``weight = W.T``, ``bias = b``.

The metadata (safetensors allows str -> str) holds JSON text:

- ``format``: ``"backprop"``; ``backprop_version``: the package version that wrote it;
- ``model``: the model spec (``backprop.build_model(json.loads(...))`` rebuilds it);
- ``layers``: one spec per layer, index-aligned with the ``layers.{i}`` names;
- ``preprocessing``: the run's stored preprocessing (``features``: the standardizer's ``mean``
  and ``scale`` to apply to inputs first, ``targets`` for regressors, ``classes`` if stored);
- ``dtype``: the arrays' float dtype.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from backends._settings import distribution_version

from . import experiment

__all__ = ["EXPORTERS", "ExportError", "export_run", "named_arrays", "package_version"]

DISTRIBUTION = "backprop-xp"  # pyproject's project name


class ExportError(ValueError):
    """An export that cannot be made: an unknown format or a missing library."""


def package_version() -> str:
    """The installed version of the ``backprop-xp`` distribution (as the manifest records it)."""
    return distribution_version(DISTRIBUTION)


def named_arrays(params: Any, prefix: str = "layers") -> dict[str, np.ndarray]:
    """The parameter pytree flattened to ``{"layers.0.W": array, ...}``: dict keys and list
    indices joined by dots, in tree order."""
    if isinstance(params, dict):
        items = params.items()
    elif isinstance(params, list | tuple):
        items = enumerate(params)
    else:
        return {prefix: np.ascontiguousarray(params)}
    out: dict[str, np.ndarray] = {}
    for key, value in items:
        for name, array in named_arrays(value, f"{prefix}.{key}").items():
            if name in out:  # a dict key with a dot in it could collide with a nested path
                raise ExportError(f"two parameter arrays share the name {name!r}")
            out[name] = array
    return out


def metadata(run: experiment.LoadedRun, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """The str -> str metadata described in the module docstring."""
    dtypes = sorted({str(a.dtype) for a in arrays.values() if a.dtype.kind == "f"})
    return {
        "format": "backprop",
        "backprop_version": package_version(),
        "model": json.dumps(  # an ensemble: every array has the K members on axis 0
            run.model.spec()
            if run.members is None
            else {"type": "ensemble", "members": run.members, "model": run.model.spec()}
        ),
        "layers": json.dumps([layer.spec() for layer in run.model.layers]),
        "preprocessing": json.dumps(run.preprocessing),
        "dtype": ",".join(dtypes),
    }


def _safetensors(arrays: dict[str, np.ndarray], meta: dict[str, str]) -> bytes:
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ExportError(
            "--format safetensors needs the safetensors package, which is not installed; "
            "install it with: pip install 'backprop-xp[export]'"
        ) from None
    return save(arrays, metadata=meta)


EXPORTERS: dict[str, tuple[str, Callable[[dict, dict], bytes]]] = {
    "safetensors": (".safetensors", _safetensors),
}


def export_run(
    path: str | os.PathLike, fmt: str = "safetensors", out: str | os.PathLike | None = None
) -> pathlib.Path:
    """Write the run's weights (``path``: a run directory or one of its checkpoints) in
    ``fmt``; ``out`` defaults to ``RUN_DIR/model.<ext>`` (beside a checkpoint: its name with
    the format's extension). Returns the file written; an existing file is replaced whole."""
    if fmt not in EXPORTERS:
        raise ExportError(
            f"export format {fmt!r} is not supported; expected one of {sorted(EXPORTERS)}"
        )
    suffix, write = EXPORTERS[fmt]
    run = experiment.load_run(path, "numpy")
    arrays = named_arrays(run.params)
    data = write(arrays, metadata(run, arrays))
    target = pathlib.Path(out) if out is not None else run.path.with_suffix(suffix)
    _write_bytes(target, data)
    return target


def _write_bytes(target: pathlib.Path, data: bytes) -> None:
    """Write to a temporary name beside ``target``, then rename: never a half-written file.
    ``open`` gives the file the umask's mode, like any new file."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(
            f"could not write {str(target)!r}: {exc.strerror or exc}; check that its folder "
            "exists and is writable, or pass another --out"
        ) from None
