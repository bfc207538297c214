"""Hand-written NumPy, as an expert writes it: every buffer allocated once, everything in place.

Each step gathers its rows with ``np.take(..., out=)``, runs three GEMMs forward and five
backward with ``np.matmul(..., out=)``, does ReLU, softmax and their derivatives with ``out=``
ufuncs, and updates the weights in place (``W -= lr * gW`` as ``np.multiply`` + ``np.subtract``
into the gradient's and the weight's own buffers). The partial last batch uses leading-row views
of the same buffers.
"""

from __future__ import annotations

import platform
import time

import numpy as np

from ..workloads import Workload, batch_slices, epoch_orders, initial_params, make_data
from ._common import (
    CpuMeter,
    ReferenceSettings,
    Skip,
    Trained,
    distribution_versions,
    epoch_loss,
)

__all__ = ["CONTENDERS", "HandMLP"]


class HandMLP:
    """An MLP (ReLU hidden, softmax + cross-entropy output) with preallocated buffers."""

    def __init__(self, params: list[dict[str, np.ndarray]], batch: int) -> None:
        self.W = [np.array(p["W"]) for p in params]
        self.b = [np.array(p["b"]) for p in params]
        dtype, widths = self.W[0].dtype, [W.shape[1] for W in self.W]
        self.x = np.empty((batch, self.W[0].shape[0]), dtype)
        self.labels = np.empty(batch, np.int64)
        self.acts = [np.empty((batch, n), dtype) for n in widths]  # z, then f(z), per layer
        self.deltas = [np.empty((batch, n), dtype) for n in widths[:-1]]  # hidden layers
        self.masks = [np.empty((batch, n), bool) for n in widths[:-1]]
        self.gW = [np.empty_like(W) for W in self.W]
        self.gb = [np.empty_like(b) for b in self.b]
        self.row_max = np.empty((batch, 1), dtype)
        self.row_sum = np.empty((batch, 1), dtype)
        self.flat = np.empty(batch, np.int64)  # flat index of each row's label in the logits
        self.picked = np.empty(batch, dtype)
        self.row_offsets = np.arange(batch, dtype=np.int64) * widths[-1]

    def step(self, X: np.ndarray, y: np.ndarray, idx: np.ndarray, lr: float) -> float:
        """One SGD step on rows ``idx``; returns the batch's mean cross-entropy (before it)."""
        b = idx.shape[0]
        x = self.x[:b]
        np.take(X, idx, axis=0, out=x)
        np.take(y, idx, out=self.labels[:b])
        logits = self._forward(x, b)
        loss = self._softmax_delta(logits, b)
        self._backward(x, logits, b)
        for W, gW, bias, gb in zip(self.W, self.gW, self.b, self.gb, strict=True):
            np.subtract(W, np.multiply(gW, lr, out=gW), out=W)
            np.subtract(bias, np.multiply(gb, lr, out=gb), out=bias)
        return loss

    def _forward(self, x: np.ndarray, b: int) -> np.ndarray:
        h = x
        for i, (W, bias) in enumerate(zip(self.W, self.b, strict=True)):
            z = self.acts[i][:b]
            np.matmul(h, W, out=z)
            np.add(z, bias, out=z)
            if i < len(self.W) - 1:
                np.maximum(z, 0, out=z)
            h = z
        return h

    def _softmax_delta(self, z: np.ndarray, b: int) -> float:
        """Turn the logits ``z`` into the output delta (softmax(z) - onehot)/b, in place, and
        return the loss mean(log(sum(exp(z - max))) - (z_label - max))."""
        m, s, flat, picked = self.row_max[:b], self.row_sum[:b], self.flat[:b], self.picked[:b]
        np.max(z, axis=1, keepdims=True, out=m)
        np.subtract(z, m, out=z)
        np.add(self.row_offsets[:b], self.labels[:b], out=flat)
        flat_z = z.reshape(-1)  # a view: z is the contiguous leading rows of its buffer
        np.take(flat_z, flat, out=picked)
        np.exp(z, out=z)
        np.sum(z, axis=1, keepdims=True, out=s)
        np.divide(z, s, out=z)
        loss = (np.sum(np.log(s, out=s)) - np.sum(picked)) / b
        np.take(flat_z, flat, out=picked)
        np.put(flat_z, flat, np.subtract(picked, 1, out=picked))
        np.multiply(z, 1.0 / b, out=z)
        return float(loss)

    def _backward(self, x: np.ndarray, delta: np.ndarray, b: int) -> None:
        for i in range(len(self.W) - 1, -1, -1):
            h_in = x if i == 0 else self.acts[i - 1][:b]
            np.matmul(h_in.T, delta, out=self.gW[i])
            np.sum(delta, axis=0, out=self.gb[i])
            if i > 0:  # delta_{i-1} = (delta_i @ W_i.T) * (a_{i-1} > 0)
                d, mask = self.deltas[i - 1][:b], self.masks[i - 1][:b]
                np.matmul(delta, self.W[i].T, out=d)
                np.multiply(d, np.greater(h_in, 0, out=mask), out=d)
                delta = d

    def params(self) -> list[dict[str, np.ndarray]]:
        return [{"W": W.copy(), "b": b.copy()} for W, b in zip(self.W, self.b, strict=True)]


def run_numpy_hand(w: Workload, s: ReferenceSettings) -> Trained:
    """Train with `HandMLP` on the CPU, epoch by epoch in `epoch_orders`."""
    if s.dtype not in ("float32", "float64"):
        raise Skip(f"NumPy has no {s.dtype}")
    X, y = make_data(w)
    X = X.astype(s.dtype, copy=False)
    net = HandMLP(initial_params(w, s.dtype), w.batch_size)
    slices = batch_slices(w)
    times, losses, meter = [], [], CpuMeter()
    for order in epoch_orders(w, s.epochs):
        t0 = time.perf_counter()
        epoch = [net.step(X, y, order[sl], w.lr) for sl in slices]
        times.append(time.perf_counter() - t0)
        meter.mark()
        losses.extend(epoch)
    rows = [sl.stop - sl.start for sl in slices]
    return Trained(
        epoch_times=times,
        step_losses=losses,
        epoch_loss=epoch_loss(losses[-len(slices) :], rows),
        params=net.params(),
        device=f"cpu ({platform.machine()})",
        versions=distribution_versions("numpy"),
        foreign_cpu_s=meter.foreign,
    )


CONTENDERS = {"numpy-hand": run_numpy_hand}
