"""`Conv1D`: a 1-D convolution (stride 1, channels last) by im2col, ``a = f(conv(x, W) + b)``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from array_api_compat import device

from ...data import _host
from ._base import Activated, ActivationCache, register, sum_to

__all__ = ["Conv1D", "ConvCache"]

PADDINGS = ("valid", "same")


@dataclasses.dataclass(frozen=True)
class ConvCache(ActivationCache):
    """`ActivationCache` plus ``cols``, the im2col matrix (..., N, L_out, k*C_in) of the
    (padded) input, reused by backward for dJ/dW."""

    cols: Any


@register("conv1d")
@dataclasses.dataclass(frozen=True, repr=False)
class Conv1D(Activated):
    """``z[n, l] = sum_j x_pad[n, l + j] @ W[j] + b``, ``a = f(z)`` (cross-correlation).

    Shapes: x (..., N, L, C_in), W (kernel_size, C_in, filters), b (filters,), z and a
    (..., N, L_out, filters). padding "valid": no padding, L_out = L - k + 1; "same":
    (k-1)//2 zeros on the left and the rest of k-1 on the right, L_out = L.
    K stacked models (an ensemble): W (K, k, C_in, filters), b (K, 1, 1, filters), x
    (N, L, C_in) or (K, N, L, C_in), z and a (K, N, L_out, filters).
    Init: Glorot-uniform W ~ U(-r, r), r = sqrt(6 / (fan_in + fan_out)) with fan_in =
    k*C_in and fan_out = k*filters (Keras' convention for convolutions); b = 0.

    Forward by im2col: cols = concat of the k shifted slices x_pad[l + j] on the channel axis
    (..., N, L_out, k*C_in), z = cols @ W2 + b with W2 = reshape(W, (k*C_in, filters)).
    Backward from dz (`backward_z`): dJ/dW2 = cols^T @ dz over all rows and positions;
    dJ/db = sum of dz; dJ/dcols = dz @ W2^T, whose j-th C_in-wide block is added back at
    offset j (dJ/dx_pad), then the padding is cropped off.
    """

    filters: int
    kernel_size: int
    padding: str = "valid"
    activation: Any = None
    penalized: ClassVar[tuple[str, ...]] = ("W",)
    weights: ClassVar[tuple[str, ...]] = ("W",)
    stackable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("filters", "kernel_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"layer 'conv1d': {name} must be an int >= 1, received {v!r}")
        if self.padding not in PADDINGS:
            raise ValueError(
                f"layer 'conv1d': padding must be one of {list(PADDINGS)}, "
                f"received {self.padding!r}"
            )
        super().__post_init__()

    @classmethod
    def examples(cls):
        return [
            (cls(3, 2), (5, 2)),
            (cls(2, 3, padding="same", activation="tanh"), (4, 3)),
            (cls(2, 4, padding="same"), (3, 1)),
            (cls(2, 1, activation="sigmoid"), (3, 2)),
        ]

    def output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"layer 'conv1d' takes (length, channels) inputs, received input shape "
                f"{tuple(input_shape)}; give input_shape=(length, channels)"
            )
        length, k = input_shape[0], self.kernel_size
        if self.padding == "valid" and length < k:
            raise ValueError(
                f"layer 'conv1d' with padding 'valid' needs length >= kernel_size {k}, received "
                f"length {length}; use padding='same' or a smaller kernel_size"
            )
        return (length - k + 1 if self.padding == "valid" else length, self.filters)

    def init(self, input_shape, rng):
        shape = self.output_shape(input_shape)
        k, c_in = self.kernel_size, input_shape[1]
        limit = math.sqrt(6.0 / (k * c_in + k * self.filters))
        w = rng.uniform(-limit, limit, size=(k, c_in, self.filters))
        return {"W": w, "b": _host.zeros((self.filters,))}, shape

    def _pads(self) -> tuple[int, int]:
        if self.padding == "valid":
            return 0, 0
        left = (self.kernel_size - 1) // 2
        return left, self.kernel_size - 1 - left

    def _im2col(self, xp, x):
        left, right = self._pads()
        parts = [_zeros(xp, x, left), x, _zeros(xp, x, right)]
        padded = xp.concat([p for p in parts if p.shape[-2]], axis=-2)
        n_out = padded.shape[-2] - self.kernel_size + 1
        cols = [padded[..., j : j + n_out, :] for j in range(self.kernel_size)]
        return xp.concat(cols, axis=-1)

    def _w2(self, xp, w):
        """W (k, C_in, filters) as the matrix (k*C_in, filters); stacked W (K, k, C_in,
        filters) as (K, 1, k*C_in, filters), which broadcasts over the rows' axis N."""
        *members, k, c_in, filters = w.shape
        return xp.reshape(w, (*members, *(1,) * len(members), k * c_in, filters))

    def affine(self, xp, params, x):
        return self._im2col(xp, x) @ self._w2(xp, params["W"]) + params["b"]

    def forward(self, xp, params, x, *, train=False):
        """`Activated.forward` that also keeps the im2col matrix for backward."""
        cols = self._im2col(xp, x)
        z = cols @ self._w2(xp, params["W"]) + params["b"]
        a = self.activation.forward(xp, z)
        return a, ConvCache(x=x, z=z, a=a, cols=cols)

    def backward_z(self, xp, params, cache, dz, *, need_dx=True):
        w = params["W"]
        *members, k, c_in, filters = w.shape
        cols = cache.cols
        # N and the positions flattened into one axis, so one matmul sums over both. cols
        # lacks the member axis of dz when the input is shared by stacked models.
        flat_cols = xp.reshape(cols, (*cols.shape[:-3], -1, k * c_in))
        flat_dz = xp.reshape(dz, (*dz.shape[:-3], -1, filters))
        gw2 = xp.matrix_transpose(flat_cols) @ flat_dz
        grad_w = xp.reshape(sum_to(xp, gw2, (*members, k * c_in, filters)), w.shape)
        grad_b = sum_to(xp, xp.sum(dz, axis=-2), params["b"].shape)
        grads = {"W": grad_w, "b": grad_b}
        if not need_dx:
            return grads, None
        dcols = dz @ xp.matrix_transpose(self._w2(xp, w))  # (..., N, L_out, k*C_in)
        n_out = dz.shape[-2]
        n_pad = n_out + k - 1
        dpad = None
        for j in range(k):  # block j of dcols came from x_pad[l + j]: shift it back by j
            block = dcols[..., j * c_in : (j + 1) * c_in]
            parts = [_zeros(xp, block, j), block, _zeros(xp, block, n_pad - n_out - j)]
            shifted = xp.concat([p for p in parts if p.shape[-2]], axis=-2)
            dpad = shifted if dpad is None else dpad + shifted
        left, right = self._pads()
        return grads, dpad[..., left : n_pad - right, :]


def _zeros(xp, like, length: int):
    """Zeros shaped like ``like`` but ``length`` long on the second-to-last (length) axis."""
    shape = (*like.shape[:-2], length, like.shape[-1])
    return xp.zeros(shape, dtype=like.dtype, device=device(like))
