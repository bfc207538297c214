"""The benchmark workloads: network, batch, data, initial weights, batch order and GEMM count.

Every contender trains the same thing: the weights `backprop.MLP.init(seed)` draws, on the same
synthetic data, in the batch order `backprop.fit` uses with ``shuffle=True``. So the first step's
loss is the same number everywhere and the final losses agree to float rounding; a contender that
is fast but computes something else shows up as a loss mismatch.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from backprop import MLP
from backprop.data import _host

__all__ = [
    "QUICK",
    "W1",
    "W2",
    "WORKLOADS",
    "Workload",
    "batch_slices",
    "epoch_orders",
    "flops_per_epoch",
    "get_workload",
    "initial_params",
    "make_data",
    "reference_loss",
    "step_gemms",
]


@dataclasses.dataclass(frozen=True)
class Workload:
    """One training job: an MLP ``sizes`` (ReLU hidden, softmax + cross-entropy), plain SGD.

    ``gpu_only``: too large for a CPU; the harness refuses ``--device cpu`` for it.
    """

    name: str
    sizes: tuple[int, ...]
    batch_size: int
    n_samples: int
    lr: float = 0.1
    dtype: str = "float32"
    seed: int = 0
    gpu_only: bool = False

    @property
    def n_classes(self) -> int:
        return self.sizes[-1]

    @property
    def n_steps(self) -> int:
        """Steps per epoch, the last one partial when the batch does not divide the samples."""
        return -(-self.n_samples // self.batch_size)


W1 = Workload("W1", (784, 256, 256, 10), batch_size=128, n_samples=60_000)
W2 = Workload("W2", (4096, 4096, 4096, 10), batch_size=4096, n_samples=65_536, gpu_only=True)
QUICK = dataclasses.replace(W1, name="W1-quick", n_samples=2048)  # the smoke test's W1
WORKLOADS = {w.name: w for w in (W1, W2, QUICK)}


def get_workload(name: str, dtype: str | None = None) -> Workload:
    """The workload called ``name`` ("W1", "W2", "W1-quick"), optionally in another dtype."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}: expected one of {list(WORKLOADS)}")
    w = WORKLOADS[name]
    return w if dtype is None else dataclasses.replace(w, dtype=dtype)


def make_data(w: Workload) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n, sizes[0]) float32 standard normal; ``y`` (n,) int64 labels of a random teacher.

    The labels are ``argmax(X @ T)`` for a fixed random linear map T, so they can be learnt and
    the loss really falls during an epoch.
    """
    rng = np.random.default_rng(w.seed)
    X = rng.standard_normal((w.n_samples, w.sizes[0]), dtype=np.float32)
    teacher = rng.standard_normal((w.sizes[0], w.n_classes), dtype=np.float32)
    y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    return X, y


def initial_params(w: Workload, dtype: str | None = None) -> list[dict[str, np.ndarray]]:
    """The weights ``backprop.MLP(w.sizes).init(w.seed)`` makes: Glorot-uniform W (n_in, n_out)
    and zero b, drawn in float64 on the host, cast to ``dtype`` (default: the workload's; a dtype
    NumPy lacks, such as bfloat16, stays float32 for the caller to cast)."""
    dtype = dtype or w.dtype
    host_dtype = dtype if dtype in ("float32", "float64") else "float32"
    return [
        {k: v.astype(host_dtype) for k, v in layer.items()}
        for layer in MLP(list(w.sizes)).init_host(w.seed)
    ]


def epoch_orders(w: Workload, n_epochs: int) -> list[np.ndarray]:
    """The row permutations `backprop.fit` draws with ``shuffle=True``, one per epoch, in order.

    `backprop.training.run.Run` seeds its "order" generator with ``seed + 1`` and the epoch loop
    calls ``permutation(n)`` on it once per epoch.
    """
    rng = _host.np_rng(w.seed + 1)
    return [rng.permutation(w.n_samples) for _ in range(n_epochs)]


def batch_slices(w: Workload) -> list[slice]:
    """The epoch's batches as slices of the permutation; the last one may be partial."""
    n, b = w.n_samples, w.batch_size
    return [slice(start, min(start + b, n)) for start in range(0, n, b)]


def step_gemms(w: Workload, batch: int | None = None) -> list[tuple[str, int, int, int]]:
    """The matrix products of one training step: ``(kind, m, k, n)`` for an (m, k) @ (k, n).

    Per layer (x (B, n_in), W (n_in, n_out), delta (B, n_out)): the forward ``x @ W`` ("fwd"),
    the weight gradient ``x.T @ delta`` ("grad_w"), and for every layer but the first the input
    gradient ``delta @ W.T`` ("grad_x"); the first layer's input needs no gradient.
    """
    b = w.batch_size if batch is None else batch
    gemms = []
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(w.sizes)):
        gemms.append(("fwd", b, n_in, n_out))
        gemms.append(("grad_w", n_in, b, n_out))
        if layer > 0:
            gemms.append(("grad_x", b, n_out, n_in))
    return gemms


def step_flops(w: Workload, batch: int | None = None) -> int:
    """Multiply-add FLOPs (2 m k n per product) of one step's matrix products."""
    return sum(2 * m * k * n for _, m, k, n in step_gemms(w, batch))


def flops_per_epoch(w: Workload) -> int:
    """`step_flops` summed over the epoch's steps, the partial last batch included."""
    return sum(step_flops(w, s.stop - s.start) for s in batch_slices(w))


def reference_loss(params: Sequence[dict[str, np.ndarray]], X: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the network on ``(X, y)``, computed in float64 NumPy."""
    a = np.asarray(X, dtype=np.float64)
    for i, p in enumerate(params):
        z = a @ np.asarray(p["W"], np.float64) + np.asarray(p["b"], np.float64)
        a = np.maximum(z, 0.0) if i < len(params) - 1 else z
    z = a - a.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())
