"""Checkpoints: several pytrees of arrays plus JSON metadata in one ``.npz`` file, no pickle.

Host-only module: arrays go through NumPy (``backend.to_numpy`` / ``backend.asarray``); no other
array library is imported. The file, written by ``np.savez`` to exactly ``path``, holds:

* one member per leaf, keyed by tree name and path (``"params/0/W"``, ``"opt_state/t"``; a tree
  that is a single array is keyed by its name alone);
* ``"__meta__"``: UTF-8 JSON as a uint8 array, ``{"format": FORMAT, "version": VERSION,
  "trees": {name: skeleton}, "meta": <user meta>, "host": [names]}``, a skeleton being the tree
  with each array replaced by its leaf key; "host" lists the trees saved from ``host_trees``
  (NumPy arrays that load back as NumPy arrays, as saved, whatever the backend).

`Checkpoint.meta` is only the user metadata, as saved; the internal keys sit beside it in the
file, never inside it. Tuples (in meta and in trees) come back as lists; ints of any size (NumPy
``bit_generator.state``) and NaN/inf floats survive. Leaves may be float32, float64 or integer.
On load floats keep their saved dtype unless ``dtype`` is given; integer leaves become int32 on a
backend (the one integer type every backend has; a value that does not fit is an error); with
``backend=None`` every leaf is the NumPy array that was saved.

Files get the mode an ordinary new file gets (0o666 less the umask); a save removes the
temporary files an interrupted save of the same file name left (``.NAME.XXXXXXXX.tmp``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import re
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "CheckpointError",
    "check_spec",
    "load_checkpoint",
    "save_checkpoint",
    "write_atomic",
]

FORMAT = "backprop-checkpoint"
VERSION = 1

_META_KEY = "__meta__"
# The header member and np.savez's own argument names cannot be tree names.
_RESERVED = frozenset({_META_KEY, "file", "allow_pickle"})
_ZIP_MAGIC = b"PK\x03\x04"
_INT32 = np.iinfo(np.int32)


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read: bad contents, damaged or foreign file."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the user ``meta`` as saved, ``trees`` (name -> pytree of arrays of
    the loading backend, NumPy arrays with ``backend=None``) and the ``path`` it was read from."""

    meta: dict
    trees: dict[str, Any]
    path: pathlib.Path


# -- saving ------------------------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike,
    trees: dict[str, Any],
    meta: dict,
    backend: Any = None,
    host_trees: dict[str, Any] | None = None,
) -> pathlib.Path:
    """Write ``trees`` (name -> pytree of ``backend`` arrays) and JSON ``meta`` to ``path``.

    ``host_trees``: more trees, of NumPy arrays, that `load_checkpoint` returns as NumPy arrays
    as saved (no backend, no dtype conversion): e.g. the float64 history of a float32 run.

    The write is atomic: a temporary file in the same directory is written, flushed, fsync'ed
    and renamed onto ``path``, so a failure leaves any earlier checkpoint there untouched.
    Parent directories are created. Returns ``path`` as a `pathlib.Path`.

    Raises `CheckpointError` for a leaf that is not an array or has an unsupported dtype, a dict
    key that is not a non-empty str without "/", metadata that is not JSON, or a failed write.
    """
    path = pathlib.Path(path)
    if not isinstance(trees, dict) or not isinstance(meta, dict):
        raise CheckpointError(
            f"trees and meta must be dicts, received {type(trees).__name__} and "
            f"{type(meta).__name__}"
        )
    host_trees = dict(host_trees or {})
    if set(host_trees) & set(trees):
        raise CheckpointError(
            f"tree names {sorted(set(host_trees) & set(trees))} are given as trees and as "
            "host_trees; give each name once"
        )
    to_host = np.asarray if backend is None else backend.to_numpy
    arrays: dict[str, np.ndarray] = {}
    skeletons = {}
    for name, tree in [*trees.items(), *host_trees.items()]:
        _check_tree_name(name)
        move = np.asarray if name in host_trees else to_host
        skeletons[name] = _flatten(tree, name, arrays, move)
    _check_json(meta, "meta")
    header = {"format": FORMAT, "version": VERSION, "trees": skeletons, "meta": meta}
    if host_trees:
        header["host"] = list(host_trees)
    arrays[_META_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    _write_atomic(path, arrays)
    return path


def _check_tree_name(name: Any) -> None:
    if not isinstance(name, str) or not name or "/" in name or name in _RESERVED:
        raise CheckpointError(
            f"tree name {name!r} cannot be saved; expected a non-empty str without '/', "
            f"other than {sorted(_RESERVED)}"
        )


def _flatten(tree: Any, key: str, arrays: dict, to_host: Any) -> Any:
    """Copy the leaves of ``tree`` into ``arrays`` under their keys; return the skeleton."""
    if isinstance(tree, dict):
        for k in tree:
            if not isinstance(k, str) or not k or "/" in k:
                raise CheckpointError(
                    f"dict key {k!r} under {key!r} cannot be saved; keys must be non-empty str "
                    "without '/'; rename the entry"
                )
        return {k: _flatten(v, f"{key}/{k}", arrays, to_host) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_flatten(v, f"{key}/{i}", arrays, to_host) for i, v in enumerate(tree)]
    if not (hasattr(tree, "shape") and hasattr(tree, "dtype")):
        raise CheckpointError(
            f"leaf {key!r} is a {type(tree).__name__}, not an array; store arrays in trees and "
            "plain numbers in meta"
        )
    host = np.asarray(to_host(tree))
    if host.dtype not in (np.float32, np.float64) and host.dtype.kind not in "iu":
        raise CheckpointError(
            f"leaf {key!r} has dtype {host.dtype}; expected float32, float64 or an integer type"
        )
    arrays[key] = host
    return key


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON would drop or change silently (non-str keys) or cannot write at all."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CheckpointError(
                    f"{where} has key {k!r} of type {type(k).__name__}; JSON keys must be str"
                )
            _check_json(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise CheckpointError(
            f"{where} is a {type(value).__name__}, which is not JSON; convert it to int, float, "
            "str, list or dict (e.g. .tolist() for NumPy values)"
        )


def _write_atomic(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f: np.savez(f, **arrays))
    except Exception as exc:  # OSError mostly; anything else still must not leave a partial file
        raise CheckpointError(
            f"could not write checkpoint {path}: {type(exc).__name__}: {exc}; check free disk "
            "space and permissions (any earlier checkpoint there is unchanged)"
        ) from exc


def write_atomic(path: pathlib.Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write a file all or nothing: ``write(f)`` fills a temporary file in ``path``'s folder,
    which is flushed, fsync'ed, given the mode an ordinary file gets (``0o666 & ~umask``, not
    mkstemp's 0o600) and renamed onto ``path``. On any failure the temporary file is removed and
    an earlier ``path`` is unchanged; after success, temporary files of ``path`` left by a
    killed process are removed. Exceptions propagate (OSError for a full disk or permissions).
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _remove_stale_temporaries(path)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _umask() -> int:
    """The process's umask (Linux: read, not set; elsewhere set and restored at once)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = pathlib.Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: pathlib.Path) -> None:
    """Delete the temporary files of earlier saves of ``path`` that never finished (a killed
    process): ``.NAME.`` + mkstemp's 8 random characters + ``.tmp``, nothing else."""
    stale = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if stale.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


# -- loading -----------------------------------------------------------------------------------
def load_checkpoint(
    path: str | os.PathLike, backend: Any = None, dtype: str | None = None
) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`.

    Arrays are moved with ``backend.asarray`` (NumPy arrays are returned when ``backend`` is
    None). ``dtype`` ("float32" or "float64") converts float leaves; None keeps the saved dtype.
    Integer leaves become int32 on a backend. Trees saved as ``host_trees`` come back as the
    NumPy arrays saved, whatever ``backend`` and ``dtype``. Raises `CheckpointError` naming the
    file for a missing, foreign, truncated, corrupt or too-new checkpoint.
    """
    if dtype not in (None, "float32", "float64"):
        raise CheckpointError(f"dtype must be None, 'float32' or 'float64', received {dtype!r}")
    path = pathlib.Path(path)
    arrays = _read_members(path)
    header = _read_header(path, arrays)
    host = header.get("host", [])
    trees = {
        name: _rebuild(
            skeleton,
            arrays,
            path,
            (lambda a, k: a) if name in host else (lambda a, k: _to_backend(a, k, backend, dtype)),
        )
        for name, skeleton in header["trees"].items()
    }
    return Checkpoint(meta=header["meta"], trees=trees, path=path)


def _read_members(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Every member of the file, each read fully (so zipfile verifies its CRC-32)."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path or run name")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file; pass the path of a .npz file")
    # np.load leaks its own file handle when the zip cannot be opened, so pass it ours.
    with open(path, "rb") as f:
        magic = f.read(len(_ZIP_MAGIC))
        if magic != _ZIP_MAGIC:
            what = "an empty file" if not magic else "not a zip/.npz file"
            raise CheckpointError(
                f"{path} is not a backprop checkpoint ({what}); pass a file written by "
                "save_checkpoint"
            )
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except Exception as exc:  # zipfile, zlib and numpy.lib.format raise many types
            raise CheckpointError(
                f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc}); "
                "use an earlier checkpoint or start a new run"
            ) from exc


def _read_header(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if _META_KEY not in arrays:
        raise CheckpointError(
            f"{path} is not a backprop checkpoint (no {_META_KEY!r} member; it holds "
            f"{sorted(arrays)[:5]}); pass a file written by save_checkpoint"
        )
    try:
        header = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise CheckpointError(
            f"{path} is not a backprop checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"checkpoint {path} has an invalid version {version!r}")
    if version > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, saved by a newer backprop (this "
            f"one reads up to version {VERSION}); upgrade backprop to load it"
        )
    if not isinstance(header.get("trees"), dict) or not isinstance(header.get("meta"), dict):
        raise CheckpointError(f"checkpoint {path} has corrupt metadata (no trees or meta)")
    host = header.get("host", [])
    if not isinstance(host, list) or not all(isinstance(h, str) for h in host):
        raise CheckpointError(f"checkpoint {path} has corrupt metadata (host {host!r})")
    return header


def _rebuild(skeleton: Any, arrays: dict, path: pathlib.Path, leaf: Any) -> Any:
    if isinstance(skeleton, dict):
        return {k: _rebuild(v, arrays, path, leaf) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [_rebuild(v, arrays, path, leaf) for v in skeleton]
    if not isinstance(skeleton, str):
        raise CheckpointError(f"checkpoint {path} has corrupt metadata (leaf {skeleton!r})")
    if skeleton not in arrays:
        raise CheckpointError(
            f"checkpoint {path} lists array {skeleton!r} but does not contain it; the file is "
            "incomplete or was edited; use an earlier checkpoint"
        )
    return leaf(arrays[skeleton], skeleton)


def _to_backend(host: np.ndarray, key: str, backend: Any, dtype: str | None) -> Any:
    if host.dtype.kind == "f":
        target = dtype or host.dtype.name
        if backend is None:
            return host.astype(target, copy=False)
        if not backend.supports_dtype(target):
            raise CheckpointError(
                f"array {key!r} is {target} but backend {backend.name!r} on "
                f"{backend.device_name} has no {target}; load with dtype='float32'"
            )
        return backend.asarray(host, target)
    if backend is None:
        return host
    if host.size and (host.min() < _INT32.min or host.max() > _INT32.max):
        raise CheckpointError(
            f"integer array {key!r} ({host.dtype}) has values outside int32, the integer type "
            "every backend has; load it with backend=None to get the NumPy array"
        )
    return backend.asarray(host.astype(np.int32, copy=False), "int32")


# -- comparing specs ---------------------------------------------------------------------------
def check_spec(saved: dict, current: dict, what: str, path: str | os.PathLike) -> None:
    """Raise `CheckpointError` if two JSON specs differ, listing each differing key's values.

    Values are compared after a JSON round trip (tuples equal lists). ``what`` names the thing
    described, e.g. "model" or "optimizer".
    """
    keys = list(dict.fromkeys([*saved, *current]))
    pairs = {k: (_canonical(saved, k), _canonical(current, k)) for k in keys}
    diff = {k: v for k, v in pairs.items() if v[0] != v[1] and _show(v[0]) != _show(v[1])}
    if not diff:
        return
    article = "an" if what[:1].lower() in "aeiou" else "a"
    was = ", ".join(f"{k}={_show(a)}" for k, (a, _) in diff.items())
    now = ", ".join(f"{k}={_show(b)}" for k, (_, b) in diff.items())
    raise CheckpointError(
        f"checkpoint {path} was saved for {article} {what} with {was} but this {what} has "
        f"{now}; load it with the same {what}, or start a new run"
    )


_ABSENT = object()


def _canonical(spec: dict, key: str) -> Any:
    """The value as JSON gives it back (tuples become lists); `_ABSENT` for a missing key."""
    return json.loads(json.dumps(spec[key], default=repr)) if key in spec else _ABSENT


def _show(value: Any) -> str:
    """JSON text: how values are shown, and a second equality test under which NaN == NaN."""
    return "<absent>" if value is _ABSENT else json.dumps(value, default=repr, sort_keys=True)
