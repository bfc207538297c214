"""Run by tests/test_sharding.py in a fresh process (XLA reads its device count at start):
train one seeded model on 1 device and on N devices of a data-parallel jax backend, and print
what the test checks as one JSON line.

Usage: python tests/sharding_worker.py N [--distributed COORDINATOR NUM_PROCESSES PROCESS_ID]
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(argv: list[str]) -> None:
    n = int(argv[0])
    if "--distributed" in argv:
        import jax

        i = argv.index("--distributed")
        coordinator, processes, pid = argv[i + 1], int(argv[i + 2]), int(argv[i + 3])
        jax.distributed.initialize(coordinator, num_processes=processes, process_id=pid)

    import backends
    import backprop as bp

    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 8))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)

    def train(devices):
        be = backends.get_backend("jax", "cpu", devices=devices)
        L = bp.layers  # a composed network: any Sequential takes the sharded path
        model = bp.Sequential(
            [
                L.Dense(16, "tanh"),
                L.Residual([L.LayerNorm(), L.Dense(16, "relu")]),
                L.Dense(3, "softmax"),
            ],
            loss="cross_entropy",
            input_shape=(8,),
        )
        result = bp.fit(
            model,
            X,
            y,
            optimizer=bp.SGD(0.1, momentum=0.9),
            backend=be,
            epochs=4,
            batch_size=32,
            validation_split=0.2,
            verbose=0,
        )  # 192 training rows: 6 batches of 32, no partial one
        return be, result

    class Counting:
        """A Dataset recording how many rows each read asks for."""

        def __init__(self):
            self.sizes = []

        def __len__(self):
            return len(X)

        def rows(self, idx):
            self.sizes.append(len(idx))
            return X[idx], y[idx]

        def targets(self):
            return y

    def train_source(devices):
        be = backends.get_backend("jax", "cpu", devices=devices)
        source = Counting()
        result = bp.fit(
            bp.MLP([8, 16, 3], output="softmax", loss="cross_entropy"),
            source,
            optimizer=bp.SGD(0.1, momentum=0.9),
            backend=be,
            epochs=4,
            batch_size=32,
            validation_split=0.2,
            verbose=0,
        )
        return result.history.step_losses, source.sizes

    out = {}
    if "--distributed" not in argv:
        out["source_single"] = train_source(None)[0]
    out["source"], out["source_reads"] = train_source("all" if n == 0 else n)
    if "--distributed" not in argv:
        _, single = train(None)
        out["single"] = single.history.step_losses
    be, sharded = train("all" if n == 0 else n)
    rows = be.take_rows(be.asarray(X, "float32"), be.asarray(np.arange(32), "int32"))
    out.update(
        sharded=sharded.history.step_losses,
        val_loss=sharded.history["val_loss"],
        device_name=be.device_name,
        n_devices=be.n_devices,
        replicated=all(v.sharding.is_fully_replicated for v in bp.tree_leaves(sharded.params)),
        batch_spec=str(rows.sharding.spec),
        batch_shard_rows=sorted({s.data.shape[0] for s in rows.addressable_shards}),
    )
    try:
        bp.fit(
            bp.MLP([8, 3], output="softmax", loss="cross_entropy"),
            X,
            y,
            backend=be,
            batch_size=30,
            verbose=0,
        )
    except ValueError as exc:
        out["batch_error"] = str(exc)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
