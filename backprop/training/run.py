"""`Run`: the state of one `backprop.fit` call, handed to callbacks, and its checkpoints.

A checkpoint (`Run.save_checkpoint`) holds everything needed to continue the run exactly: the
parameters, the optimizer state, the callbacks' arrays (early stopping's best parameters), the
history as float64 arrays (`History.to_arrays`: 8 bytes a value, exact), and as JSON the model,
optimizer and schedule specs, the schedule state, the position (epoch, step, samples seen), the
host RNG states, the history's layout and the callbacks' counters.

`Run.restore` checks all of it before using any: a model file (``model.npz``, parameters only),
an edited or foreign checkpoint raises `CheckpointError` naming the file, what is missing or
wrong, and what to resume from instead.
"""

from __future__ import annotations

import numbers
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

from ..data import _host
from ..nn.sequential import Params, Sequential
from .callbacks import Callback
from .checkpoint import CheckpointError, check_spec, load_checkpoint, save_checkpoint
from .history import History
from .optimizers import Optimizer
from .schedules import Schedule

__all__ = ["RESUME_KEYS", "Run", "tree_mismatch"]

# fit settings a resumed run must share with the saved one (else the batches would differ)
RESUME_KEYS = ("batch_size", "seed", "shuffle", "validation_split", "stratify")
# what `restore` reads from a checkpoint's meta, and the JSON type each must have
_META_TYPES = {
    "model": dict,
    "optimizer": dict,
    "schedule": dict,
    "fit": dict,
    "callbacks": list,
    "position": dict,
    "schedule_state": dict,
    "rng": dict,
    "history": dict,
}
# the history columns every epoch of fit has (the summary line reads them)
_COLUMNS = ["epoch", "loss", "lr", "time", "samples_per_s"]
_HOOKS = ("on_train_begin", "on_batch_end", "on_epoch_end", "after_epoch", "on_train_end")


class Run:
    """The state of one `fit` call; callbacks receive it (see `backprop.callbacks`)."""

    def __init__(
        self,
        model: Sequential,
        backend: Any,
        optimizer: Optimizer,
        schedule: Schedule,
        settings: dict[str, Any],
        callbacks: Callback | Iterable[Callback],
    ) -> None:
        self.model, self.backend, self.optimizer, self.schedule = (
            model,
            backend,
            optimizer,
            schedule,
        )
        self.settings, self.callbacks = settings, _callback_list(callbacks)
        self.params: Params = []
        self.opt_state: Any = None
        self.history = History()
        self.epoch = self.step = self.samples = 0
        self.schedule_state = self.initial_schedule_state()
        seed = settings["seed"]
        self.rngs = {"order": _host.np_rng(seed + 1), "dropout": _host.np_rng(seed + 3)}
        self.stop_training = False
        self.stop_reason: str | None = None
        self.best_epoch: int | None = None

    def initial_schedule_state(self) -> dict[str, Any]:
        """The schedule's starting state, ``schedule.init()`` (an ensemble run: one per member);
        `restore` checks a saved state against it."""
        return self.schedule.init()

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, path: Any) -> Any:
        """Write everything needed to continue this run exactly (atomic; see `ModelCheckpoint`)."""
        trees, meta, host = self._checkpoint_parts()
        return save_checkpoint(path, trees, meta, self.backend, host)

    def _checkpoint_parts(self) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """``(trees, meta, host trees)`` that `save_checkpoint` writes (ensemble runs add)."""
        trees = {"params": self.params, "opt_state": self.opt_state}
        for i, cb in enumerate(self.callbacks):
            trees.update({f"callback{i}_{k}": v for k, v in cb.trees().items()})
        stored = self.history.to_arrays()  # None: a value JSON keeps and arrays do not
        history, host = (
            (self.history.to_dict(), None)
            if stored is None
            else (stored[0], {"history": stored[1]})
        )
        meta = {
            "model": self.model.spec(),
            "optimizer": self.optimizer.spec(),
            "schedule": self.schedule.spec(),
            "schedule_state": self.schedule_state,
            "position": {"epoch": self.epoch, "step": _plain(self.step), "samples": self.samples},
            "stop_reason": self.stop_reason if self.stop_training else None,
            "rng": {k: rng.bit_generator.state for k, rng in self.rngs.items()},
            "fit": self._fit_settings(),
            "dtype": self.settings["dtype"],
            "backend": self.backend.name,
            "history": history,
            "callbacks": [
                {"type": _qualified(cb), "state": cb.state_dict()} for cb in self.callbacks
            ],
            "config": self.settings.get("config"),
        }
        return trees, meta, host

    def _fit_settings(self) -> dict[str, Any]:
        """`RESUME_KEYS` as JSON: NumPy integers (``seed=np.int64(3)``) as ints; and a mixed
        precision run's compute dtype (the saved parameters are its float32 master weights, so
        only this key tells a bfloat16 run from a float32 one: resuming it in another dtype
        would silently train something else)."""
        out = {k: _plain(self.settings[k]) for k in RESUME_KEYS}
        if self.settings.get("compute_dtype"):
            out["compute_dtype"] = self.settings["compute_dtype"]
        return out

    def restore(self, path: Any) -> None:
        """Continue from a checkpoint written by `save_checkpoint` (any backend wrote it).

        Everything is checked before anything is set: a file that cannot continue this run
        raises `CheckpointError` saying why."""
        ckpt = load_checkpoint(path, self.backend, self.settings["dtype"])
        meta, trees = ckpt.meta, ckpt.trees
        _check_resumable(path, meta, trees)
        check_spec(meta["model"], self.model.spec(), "model", path)
        check_spec(meta["optimizer"], self.optimizer.spec(), "optimizer", path)
        check_spec(meta["schedule"], self.schedule.spec(), "schedule", path)
        check_spec(meta["fit"], self._fit_settings(), "fit setting", path)
        saved = _check_callbacks(path, meta["callbacks"], self.callbacks)
        params, opt_state = trees["params"], trees["opt_state"]
        self._check_trees(path, params, opt_state)
        position = _check_position(path, meta["position"])
        history = _check_history(path, meta["history"], trees.get("history"), position[0])
        fresh_schedule = self.initial_schedule_state()
        _check_state(path, meta["schedule_state"], fresh_schedule, "schedule_state")
        rngs = _check_rngs(path, meta["rng"], self.rngs)
        stop_reason = meta.get("stop_reason")
        if stop_reason is not None and not isinstance(stop_reason, str):
            _refuse(path, f"'stop_reason' is {stop_reason!r}", "a str or null")
        self.params, self.opt_state = params, opt_state
        for i, (cb, saved_cb) in enumerate(zip(self.callbacks, saved, strict=True)):
            prefix = f"callback{i}_"
            cb_trees = {k[len(prefix) :]: v for k, v in trees.items() if k.startswith(prefix)}
            try:
                cb.load_state_dict(saved_cb["state"], cb_trees)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                _refuse(
                    path,
                    f"the state of callback {i} ({saved_cb['type']}) does not load "
                    f"({type(exc).__name__}: {exc})",
                    "the state that callback saved",
                )
        self.epoch, self.step, self.samples = position
        self.schedule_state = meta["schedule_state"]
        for k, state in rngs.items():
            self.rngs[k].bit_generator.state = state
        self.history = history
        if stop_reason:  # the run had stopped (early stopping, schedule): stay stopped
            self.stop_training, self.stop_reason = True, stop_reason
        self._restore_extra(path, meta, trees)

    def _restore_extra(self, path: Any, meta: dict, trees: dict) -> None:
        """What a subclass saved besides (an ensemble's members); nothing for one model."""

    def _check_trees(self, path: Any, params: Any, opt_state: Any) -> None:
        """The saved parameters fit the model and the optimizer state fits the optimizer."""
        try:
            self.model._check_params(params)
        except ValueError as exc:
            _refuse(path, f"its parameters do not fit the model: {exc}", "model.init's params")
        problem = tree_mismatch(self.optimizer.init(params), opt_state, "opt_state")
        if problem:
            name = type(self.optimizer).__name__
            _refuse(path, problem, f"the state {name}.init(params) builds")


# -- checking a checkpoint before resuming -------------------------------------------------------
def _refuse(path: Any, problem: str, expected: str) -> None:
    raise CheckpointError(
        f"checkpoint {path} cannot be resumed: {problem}; expected {expected}. The file was "
        "edited or not written by fit's ModelCheckpoint: resume from an unedited checkpoint "
        "(a run directory's last.npz or best.npz) or start a new run"
    )


def _check_resumable(path: Any, meta: dict, trees: dict) -> None:
    """Every meta key and tree `restore` reads is there, with the right JSON type."""
    missing = [k for k in _META_TYPES if k not in meta]
    missing += [k for k in ("params", "opt_state") if k not in trees]
    if "params" in trees and {"opt_state", "position"} <= set(missing):
        last = pathlib.Path(path).parent / "last.npz"
        raise CheckpointError(
            f"{path} is a model file (parameters only, like a run directory's model.npz), not a "
            "training checkpoint: it has no optimizer state, position or RNG state to continue "
            f"from; resume from the run's training checkpoint {last} (ModelCheckpoint and "
            "`backprop train` write it), or start a new run from these weights with "
            f"fit(..., params=load_checkpoint({str(path)!r}).trees['params'])"
        )
    if missing:
        _refuse(
            path,
            f"it lacks {missing}",
            f"meta keys {list(_META_TYPES)} and trees params, opt_state",
        )
    for key, kind in _META_TYPES.items():
        if not isinstance(meta[key], kind):
            _refuse(
                path,
                f"{key!r} is {_show(meta[key])}",
                f"a {'JSON object' if kind is dict else 'list'}",
            )


def _check_callbacks(path: Any, saved: list, callbacks: list[Callback]) -> list[dict]:
    for i, entry in enumerate(saved):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("type"), str)
            and isinstance(entry.get("state"), dict)
        ):
            _refuse(path, f"callbacks[{i}] is {_show(entry)}", '{"type": str, "state": {...}}')
    names = [entry["type"] for entry in saved]
    if not _same_callbacks(names, callbacks):
        raise CheckpointError(
            f"checkpoint {path} was saved with callbacks {names} but this run has "
            f"{[_qualified(cb) for cb in callbacks]}; resume with the same callbacks"
        )
    for i, (entry, cb) in enumerate(zip(saved, callbacks, strict=True)):
        _check_state(path, entry["state"], cb.state_dict(), f"callbacks[{i}]['state']")
    return saved


def _check_position(path: Any, position: dict) -> tuple[int, int, int]:
    values = []
    for key in ("epoch", "step", "samples"):
        value = position.get(key)
        if type(value) is not int or value < 0:
            _refuse(path, f"position[{key!r}] is {_show(value)}", "an int >= 0")
        values.append(value)
    return values[0], values[1], values[2]


def _check_history(path: Any, stored: dict, arrays: Any, epoch: int) -> History:
    """The history: arrays (`History.to_arrays`) or, in checkpoints written before them and
    histories with other values, JSON (`History.to_dict`)."""
    if arrays is not None:
        try:
            history = History.from_arrays(stored, arrays)
        except ValueError as exc:
            _refuse(path, f"its history is malformed ({exc})", "the history fit saved")
    else:
        records, steps = stored.get("records"), stored.get("step_losses")
        if not (
            isinstance(records, list)
            and all(isinstance(r, dict) for r in records)
            and isinstance(steps, list)
            and all(map(_is_number, steps))
        ):
            _refuse(
                path,
                "its history is malformed",
                '{"records": [{column: value}], "step_losses": [number]}',
            )
        history = History.from_dict(stored)
    if len(history) != epoch:
        _refuse(
            path,
            f"its history has {len(history)} epochs but its position epoch {epoch}",
            "one record per finished epoch",
        )
    for i, record in enumerate(history.records):
        bad = [c for c in _COLUMNS if not _is_number(record.get(c))]
        if bad:
            _refuse(path, f"its history's epoch {i + 1} lacks {bad}", f"numbers for {_COLUMNS}")
    return history


def _check_state(path: Any, saved: Any, fresh: Any, where: str) -> None:
    """``saved`` has every key of the freshly made state ``fresh``, each of the same JSON kind
    (a number for a number; a number or null where the fresh state has null); where ``fresh``
    holds a list of JSON objects (an ensemble's per-member states), as many, each checked."""
    if isinstance(fresh, list) and fresh and all(isinstance(f, dict) for f in fresh):
        if not isinstance(saved, list) or len(saved) != len(fresh):
            _refuse(path, f"{where} is {_show(saved)}", f"a list of {len(fresh)} JSON objects")
        for i, (s, f) in enumerate(zip(saved, fresh, strict=True)):
            _check_state(path, s, f, f"{where}[{i}]")
        return
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or not set(fresh) <= set(saved):
            _refuse(path, f"{where} is {_show(saved)}", f"a JSON object with keys {sorted(fresh)}")
        for key, value in fresh.items():
            _check_state(path, saved[key], value, f"{where}[{key!r}]")
        return
    kinds = [_kind(fresh)] + (["number"] if fresh is None else [])
    if _kind(saved) not in kinds:
        _refuse(path, f"{where} is {_show(saved)}", f"a {' or '.join(kinds)}")


def _check_rngs(path: Any, saved: dict, rngs: dict) -> dict:
    """Each RNG state loads into a generator of the run's kind (checked on a spare one)."""
    if set(saved) != set(rngs):
        _refuse(path, f"its rng states are {sorted(saved)}", f"states for {sorted(rngs)}")
    for key, state in saved.items():
        spare = type(rngs[key].bit_generator)(0)
        try:
            spare.state = state
        except Exception as exc:  # NumPy's setter raises TypeError, ValueError, KeyError...
            _refuse(
                path,
                f"rng[{key!r}] is not a {type(spare).__name__} state ({type(exc).__name__}: {exc})",
                "the state NumPy's bit_generator.state gives",
            )
    return saved


def tree_mismatch(expected: Any, given: Any, where: str) -> str | None:
    """The first difference between two trees (nesting, then leaf shapes), or None."""
    if isinstance(expected, dict):
        if not isinstance(given, dict) or set(given) != set(expected):
            return f"{where} should be a dict with keys {sorted(expected)}, received {_tree(given)}"
        children = [(expected[k], given[k], f"{where}[{k!r}]") for k in expected]
    elif isinstance(expected, (list, tuple)):
        if not isinstance(given, (list, tuple)) or len(given) != len(expected):
            return f"{where} should be a list of {len(expected)}, received {_tree(given)}"
        children = [(e, given[i], f"{where}[{i}]") for i, e in enumerate(expected)]
    else:
        shape = getattr(given, "shape", None)
        if shape is not None and tuple(shape) == tuple(expected.shape):
            return None
        expected_shape = tuple(expected.shape)
        return f"{where} should be an array of shape {expected_shape}, received {_tree(given)}"
    return next((p for p in (tree_mismatch(*c) for c in children) if p), None)


def _tree(tree: Any) -> str:
    if isinstance(tree, dict):
        return f"a dict with keys {sorted(tree)}"
    if isinstance(tree, (list, tuple)):
        return f"a list of {len(tree)}"
    shape = getattr(tree, "shape", None)
    return type(tree).__name__ if shape is None else f"shape {tuple(shape)}"


def _kind(value: Any) -> str:
    """The JSON kind: "null", "bool", "number", "str", "list" or "dict"."""
    if value is None:
        return "null"
    if _is_number(value):
        return "number"
    return {bool: "bool", str: "str", list: "list", dict: "dict"}.get(
        type(value), type(value).__name__
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return (
        f"{text[:60]}... ({type(value).__name__})"
        if len(text) > 60
        else f"{text} ({type(value).__name__})"
    )


def _plain(value: Any) -> Any:
    """NumPy integers (any `numbers.Integral` but bool) as ints; anything else as it is."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _callback_list(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list: a single callback is wrapped; anything else must be an
    iterable of objects with the callback hooks."""
    try:
        out = [callbacks] if all(hasattr(callbacks, h) for h in _HOOKS) else list(callbacks)
    except TypeError:
        raise TypeError(
            f"fit: callbacks must be a list of Callback objects, received {_show(callbacks)}; "
            "pass e.g. callbacks=[EarlyStopping()]"
        ) from None
    for i, cb in enumerate(out):
        if isinstance(cb, type):
            raise TypeError(
                f"fit: callbacks[{i}] is the class {cb.__name__}, not an instance; pass "
                f"{cb.__name__}(...)"
            )
        if not all(hasattr(cb, h) for h in _HOOKS):
            raise TypeError(
                f"fit: callbacks[{i}] is {_show(cb)}, not a callback; pass instances of "
                "backprop.Callback subclasses (EarlyStopping(), ModelCheckpoint(...), "
                "LambdaCallback(...))"
            )
    return out


def _qualified(cb: Any) -> str:
    """The callback class's name as checkpoints store it: ``backprop.Name`` for the project's
    own (its public name, stable when modules move), ``module.QualifiedName`` for anyone
    else's, so a user's class that shares a bare name with ours (``ModelCheckpoint``) is a
    different callback."""
    cls = type(cb)
    if cls.__module__.split(".")[0] == "backprop":
        return f"backprop.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _same_callbacks(saved: list[str], callbacks: Sequence[Callback]) -> bool:
    """Saved names against this run's callbacks; a bare name (a checkpoint written before
    qualified names were stored) is compared with the class's bare name."""
    if len(saved) != len(callbacks):
        return False
    return all(
        s == (_qualified(cb) if "." in s else type(cb).__name__)
        for s, cb in zip(saved, callbacks, strict=True)
    )
