"""How much batching K members can save on NumPy at W3's size, measured without backprop.

``python -m benchmarks.ensemble_bound [--members 64] [--steps 50] [--rounds 8]``

The same SGD step of W3's 64-64-10 ReLU/softmax MLP (batch 32, float32, cross-entropy), written
directly in NumPy twice: for one member ((64, 64) weights) and for K members stacked on a leading
axis ((K, 64, 64) weights, batched matmuls). No library code, no checks, no Python layers: what
is left of a step is NumPy's own per-call cost and the arithmetic. The ratio ``K x one-member
step / K-member step`` is what an ensemble can gain over K sequential fits when the sequential
fits carry no overhead of their own; backprop's W3 ratio (benchmarks/README.md) is higher only
because each of its single fits also pays the library's per-step Python work, which the
ensemble pays once for all K.

Prints the fastest and the median round of each, in microseconds per step, and the ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .ensemble_worker import load_w3

__all__ = ["main", "measure"]


def _row_max(z: np.ndarray) -> np.ndarray:
    out = z[..., 0:1]
    for i in range(1, z.shape[-1]):
        out = np.maximum(out, z[..., i : i + 1])
    return out


def _params(k: int | None, rng: np.random.Generator) -> list[np.ndarray]:
    """W1, b1, W2, b2: one member's 2-D arrays (``k`` None), else K stacked."""
    shapes = [(64, 64), (1, 64), (64, 10), (1, 10)]
    lead = () if k is None else (k,)
    return [(rng.random((*lead, *s), dtype=np.float32) - 0.5) * 0.3 for s in shapes]


def _step(params: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: float) -> list:
    """One SGD step; ``params``: one member's leaves, or K members' stacked (K, ...)."""
    w1, b1, w2, b2 = params
    n = x.shape[0]
    z1 = x @ w1 + b1
    a1 = np.maximum(z1, np.zeros_like(z1))
    z2 = a1 @ w2 + b2
    shifted = z2 - _row_max(z2)
    e = np.exp(shifted)
    a2 = e / np.sum(e, axis=-1, keepdims=True)
    log_p = shifted - np.log(np.sum(e, axis=-1, keepdims=True))
    _loss = -np.sum(y * log_p, axis=(-2, -1)) / n
    d2 = (a2 - y) * (1.0 / n)
    g_w2, g_b2 = np.matrix_transpose(a1) @ d2, np.sum(d2, axis=-2, keepdims=True)
    d1 = (d2 @ np.matrix_transpose(w2)) * (a1 > 0).astype(np.float32)
    g_w1, g_b1 = np.matrix_transpose(x) @ d1, np.sum(d1, axis=-2, keepdims=True)
    return [p - lr * g for p, g in zip(params, (g_w1, g_b1, g_w2, g_b2), strict=True)]


def measure(members: int, steps: int, rounds: int) -> dict[str, list[float]]:
    """Microseconds per step of each round, for "one" (K = 1) and "stacked" (K = members)."""
    X, Y = load_w3()
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    rng = np.random.default_rng(0)
    batches = [np.sort(rng.permutation(len(X))[:32]) for _ in range(steps)]
    out: dict[str, list[float]] = {"one": [], "stacked": []}
    for _ in range(rounds):
        for name, k in (("one", None), ("stacked", members)):
            params = _params(k, rng)
            t0 = time.perf_counter()
            for idx in batches:
                params = _step(params, X[idx], Y[idx], 0.1)
            out[name].append((time.perf_counter() - t0) / steps * 1e6)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ensemble_bound", description=__doc__)
    p.add_argument("--members", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=8)
    a = p.parse_args(argv)
    times = measure(a.members, a.steps, a.rounds)
    one, stacked = min(times["one"]), min(times["stacked"])
    for name, values in times.items():
        print(f"{name:8s} fastest {min(values):8.1f} us/step, median {np.median(values):8.1f}")
    print(f"{a.members} x one / stacked (fastest rounds): {a.members * one / stacked:.2f}x")


if __name__ == "__main__":
    main()
