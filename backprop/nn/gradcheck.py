"""Central finite differences against a hand-written ``loss_and_grad``, on any backend.

For each parameter element w_i: fd_i = (J(w + h e_i) - J(w - h e_i)) / (2h), compared with the
analytic gradient. Truncation error is O(h**2 J''') and rounding error O(eps_64 * |J| / h); with
float64 and h = 1e-6 the largest relative error of a correct gradient, measured over the 62
networks of tests/test_gradients.py (every accepted output/loss pair) on numpy and torch, is
3e-10 to 5e-8 (median 1.4e-9; the largest with sigmoid layers): below the 1e-7 tolerance, which
a wrong derivative (a missing factor, a transposed matrix) exceeds by orders of magnitude (a
gradient off by 1% gives 1e-2).

Kinks. ReLU-like activations (relu, leaky_relu, max pooling, abs) have a corner where the
derivative jumps; backprop takes one side's slope there (relu: 0 at z = 0), while a central
difference whose step crosses the corner averages both sides and is off by up to half the jump
(a relative error near 1, a false failure: all-zero inputs with zero biases sit exactly on the
ReLU corner). Two defences, neither of which lets a wrong derivative pass:

- `offset_biases` moves every bias ``b`` by a small seeded offset (``backprop gradcheck`` does
  this), so no pre-activation sits *exactly* on a corner; one lands within h of one with
  probability ~h.
- An element whose central difference disagrees (``|g - fd| > tol * scale / sqrt(n)``, the
  share of the tolerance one of n elements may take) is looked at again from each side
  separately, with second-order one-sided differences (Richardson: error O(h**2), two more loss
  evaluations): fd+ = (4 (J(w + h/2) - J(w)) - (J(w + h) - J(w))) / h, and fd- likewise below
  w. One corner within h spoils at most one side (one at w itself spoils neither), so the other
  side's estimate is the true one-sided derivative, which a correct gradient equals. The
  element is *at a kink* and left out of the error only when the two sides differ and g equals
  one of them within ``slack = max(10 * tol * scale, 100 * eps_64 * |J| / h)`` (the estimates'
  truncation and rounding). A wrong derivative matches neither side, so it still fails: an
  error at a kink can hide only if it is below that slack. `GradcheckResult.kinks` counts them.

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

__all__ = ["GradcheckResult", "gradcheck", "offset_biases"]

_KINK_MATCH = 10.0  # g must equal a one-sided estimate within 10 * tol * scale (or rounding)
_EPS64 = 2.220446049250313e-16
BIAS_OFFSET = 0.1  # standard deviation of `offset_biases`


@dataclasses.dataclass(frozen=True)
class GradcheckResult:
    """Per-array relative errors ``||g - fd|| / scale``, keyed by path such as ``"[1].W"``.

    ``scale`` = max(||g||, ||fd||, 1e-3 * ||g_all||), so arrays whose true gradient is ~0 are
    judged against the whole gradient rather than against rounding noise.

    ``kinks``: per array (only those with any), how many checked elements sat within h of a
    kink and were left out of the error (see the module docstring); ``checked``: how many
    elements of each array were compared. ``rows``: the number of data rows the check used,
    when the caller records it (``backprop gradcheck`` does).
    """

    errors: dict[str, float]
    tol: float
    kinks: dict[str, int] = dataclasses.field(default_factory=dict)
    checked: dict[str, int] = dataclasses.field(default_factory=dict)
    rows: int | None = None

    @property
    def n_kinks(self) -> int:
        return sum(self.kinks.values())

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tol

    def __str__(self) -> str:
        lines = [f"{path:>12}  {err:.3e}" for path, err in self.errors.items()]
        verdict = "ok" if self.ok else "FAILED"
        if self.kinks:
            lines.append(self.kink_note())
        return "\n".join(
            [*lines, f"max relative error {self.max_error:.3e} (tol {self.tol:g}): {verdict}"]
        )

    def kink_note(self) -> str:
        """One line: how many elements sat within h of a kink and were left out."""
        total = sum(self.checked.values())
        where = ", ".join(f"{k} {v}" for k, v in self.kinks.items())
        return (
            f"{self.n_kinks} of {total} checked element(s) sat within h of a kink (ReLU-like "
            f"corner; {where}): backprop equals the derivative from one side there (second-order "
            "one-sided differences), so they are left out of the error"
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

    Elements whose step crosses a kink of the loss (a ReLU corner) and whose gradient equals
    one side's derivative (second-order one-sided differences, two more loss evaluations for
    each element that disagrees) are left out of the error and counted in ``kinks`` (module
    docstring); pass parameters through `offset_biases` first so that few are.
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
    j0 = float(loss_fn(params, *args))
    probes = []
    for which, (path, leaf) in enumerate(leaves):
        probe = _Probe(params, path, leaf, lambda p: float(loss_fn(p, *args)), j0, eps)
        chosen = _sample(probe.size, max_per_array, seed, which)
        probes.append((probe, chosen, probe.sides(chosen), _host(grad_leaves[path], chosen)))
    return _compare(probes, j0, eps, tol)


def _compare(probes: list, j0: float, eps: float, tol: float) -> GradcheckResult:
    """Per-array relative errors of the central differences, leaving out the elements at a
    kink (module docstring). ``probes``: ``(probe, chosen, [(J+, J-)], g)`` per array."""
    total = _hypot([v for *_, g in probes for v in g])
    errors, kinks, checked = {}, {}, {}
    for probe, chosen, sides, g in probes:
        fd = [(up - down) / (2.0 * eps) for up, down in sides]
        scale = max(_hypot(g), _hypot(fd), 1e-3 * total, 1e-300)
        slack = max(_KINK_MATCH * tol * scale, 100.0 * _EPS64 * abs(j0) / eps)
        limit = tol * scale / math.sqrt(max(len(chosen), 1))
        at_kink = {
            k
            for k, i in enumerate(chosen)
            if abs(g[k] - fd[k]) > limit and probe.at_kink(i, *sides[k], g[k], slack)
        }
        name = _name(probe.path)
        errors[name] = _hypot([g[k] - fd[k] for k in range(len(g)) if k not in at_kink]) / scale
        checked[name] = len(chosen)
        if at_kink:
            kinks[name] = len(at_kink)
    return GradcheckResult(errors=errors, tol=tol, kinks=kinks, checked=checked)


class _Probe:
    """Loss values at one array's elements moved by +-delta (the other arrays shared)."""

    def __init__(self, params, path, leaf, loss_at, j0: float, eps: float) -> None:
        self.params, self.path, self.leaf, self.loss_at = params, path, leaf, loss_at
        self.j0, self.eps = j0, eps
        self.xp = array_namespace(leaf)
        self.flat = self.xp.reshape(leaf, (-1,))
        self.size = int(self.flat.shape[0])
        self.index = self.xp.arange(self.size, device=leaf.device)

    def loss(self, i: int, delta: float) -> float:
        xp, flat = self.xp, self.flat
        moved = xp.where(self.index == i, flat + delta, flat)
        return self.loss_at(_replace(self.params, self.path, xp.reshape(moved, self.leaf.shape)))

    def sides(self, chosen: list[int]) -> list[tuple[float, float]]:
        """``(J(w + h e_i), J(w - h e_i))`` for each chosen element i."""
        return [(self.loss(i, self.eps), self.loss(i, -self.eps)) for i in chosen]

    def at_kink(self, i: int, j_up: float, j_down: float, g: float, slack: float) -> bool:
        """Whether element i's step crosses a corner that backprop took one side of: the
        second-order one-sided differences differ and g equals one of them (module docstring).
        ``j_up``, ``j_down``: J(w +- h e_i), already known."""
        h, j0 = self.eps, self.j0
        up2, down2 = self.loss(i, h / 2) - j0, j0 - self.loss(i, -h / 2)
        forward, backward = (4.0 * up2 - (j_up - j0)) / h, (4.0 * down2 - (j0 - j_down)) / h
        differ = abs(forward - backward) > 2.0 * slack
        return differ and min(abs(g - forward), abs(g - backward)) <= slack


def _host(x: Any, chosen: list[int]) -> list[float]:
    xp = array_namespace(x)
    flat = xp.reshape(x, (-1,))
    return [float(flat[i]) for i in chosen]


def _hypot(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def offset_biases(params: Any, scale: float = BIAS_OFFSET, seed: int = 0) -> Any:
    """A copy of ``params`` with every array named ``b`` moved by seeded N(0, scale**2) noise.

    Biases start at exactly zero, which puts a ReLU unit fed an all-zero input row exactly on
    its kink; a gradient check at offset biases avoids that (module docstring). The offsets come
    from Python's ``random.Random(seed)``: the same numbers on every backend.
    """
    rng = random.Random(seed)
    out = params
    for path, leaf in _leaves(params):
        if path and path[-1] == "b":
            xp = array_namespace(leaf)
            noise = [rng.gauss(0.0, scale) for _ in range(math.prod(leaf.shape))]
            delta = xp.asarray(noise, dtype=leaf.dtype, device=leaf.device)
            out = _replace(out, path, leaf + xp.reshape(delta, leaf.shape))
    return out
