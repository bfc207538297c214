"""Data-parallel training through JAX's sharding (`backends.get_backend("jax", devices=...)`):
the same seeded model on 4 devices, and on 2 processes joined by ``jax.distributed``, trains like
on one device; parameters are replicated and batches sharded along their rows.

XLA fixes its device count when it starts, so the multi-device runs happen in fresh processes
(`tests/sharding_worker.py`) with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

import backends
from backprop.app.config import ConfigError, config_from_dict

pytest.importorskip("jax")
ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = [sys.executable, str(ROOT / "tests" / "sharding_worker.py")]
# float32: the sharded step sums each gradient in another order (per device, then across).
RTOL = 1e-5


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _run(args: list[str], devices: int) -> dict:
    done = subprocess.run(
        WORKER + args, env=_env(devices), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def four_devices() -> dict:
    return _run(["4"], devices=4)


def test_four_devices_train_like_one(four_devices):
    np.testing.assert_allclose(four_devices["sharded"], four_devices["single"], rtol=RTOL)
    assert len(four_devices["sharded"]) == 4 * 6
    assert four_devices["device_name"] == "cpu x4" and four_devices["n_devices"] == 4


def test_parameters_replicated_batches_sharded(four_devices):
    assert four_devices["replicated"]
    assert four_devices["batch_spec"] == "P('data',)"
    assert four_devices["batch_shard_rows"] == [8]  # 32 rows over 4 devices


def test_batch_size_must_split_evenly(four_devices):
    message = four_devices["batch_error"]
    assert "shards each batch over 4 devices" in message and "batch_size=30" in message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one(four_devices):
    """``jax.distributed`` on localhost: two processes with two CPU devices each form one
    4-device mesh; both see the losses of the single-device run."""
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [*WORKER, "0", "--distributed", address, "2", str(pid)],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in (0, 1)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    for out, _ in outputs:
        result = json.loads(out.strip().splitlines()[-1])
        assert result["n_devices"] == 4 and result["replicated"]
        assert result["batch_shard_rows"] == [8]  # this process's 2 devices hold 8 rows each
        np.testing.assert_allclose(result["sharded"], four_devices["single"], rtol=RTOL)
        # A data source: each process reads only its 16 rows of every batch of 32 (24 steps),
        # never a whole batch; the loss curve is the one-process run's.
        np.testing.assert_allclose(result["source"], four_devices["source_single"], rtol=RTOL)
        assert result["source_reads"].count(16) == 24 and 32 not in result["source_reads"]


def test_source_on_four_devices_trains_like_one(four_devices):
    """A data source on a 4-device mesh: each batch of 32 rows is read whole (one process)
    and sharded; the losses are the one-device run's."""
    np.testing.assert_allclose(four_devices["source"], four_devices["source_single"], rtol=RTOL)
    assert 32 in four_devices["source_reads"] and 16 not in four_devices["source_reads"]


@pytest.mark.parametrize("name", [n for n in backends.known_backends() if n != "jax"])
def test_devices_need_jax(name):
    if not backends.available_backends()[name].ok:
        pytest.skip(f"backend {name} unusable here")
    with pytest.raises(backends.BackendError, match="needs the jax backend"):
        backends.get_backend(name, devices=2)


def test_more_devices_than_exist():
    count = len(backends.get_backend("jax").library._devices("cpu"))
    with pytest.raises(backends.UnknownBackendError, match=f"but jax has {count}"):
        backends.get_backend("jax", "cpu", devices=count + 1)


@pytest.mark.parametrize("devices", [0, -1, "some", True, 1.5])
def test_devices_value_is_checked(devices):
    with pytest.raises(backends.BackendError, match='devices must be "all" or an int >= 1'):
        backends.get_backend("jax", devices=devices)


def test_config_devices_key():
    base = {"data": {"name": "xor"}, "model": {"hidden_sizes": [2]}}
    with pytest.raises(ConfigError, match="needs name = 'jax'"):
        config_from_dict({**base, "backend": {"name": "numpy", "devices": 2}})
    with pytest.raises(ConfigError, match="devices: expected an int >= 1"):
        config_from_dict({**base, "backend": {"name": "jax", "devices": "many"}})
    cfg = config_from_dict({**base, "backend": {"name": "jax", "devices": "all"}})
    assert cfg.backend.devices == "all"


def test_config_joins_two_processes_through_the_cli(tmp_path):
    """``[backend] distributed = true`` with a coordinator: two `backprop train` processes of
    xor.toml on a 4-device mesh print the losses the one-device run prints."""
    common = ["--set", "backend.name=jax", "--set", "training.epochs=200"]
    command = [sys.executable, "-m", "backprop", "train", str(ROOT / "configs" / "xor.toml")]
    single = subprocess.run(
        [*command, *common, "--no-save"], env=_env(1), capture_output=True, text=True, timeout=240
    )
    assert single.returncode == 0, single.stderr[-3000:]
    address = f"127.0.0.1:{_free_port()}"
    joined = [
        "--set", "backend.distributed=true", "--set", f"backend.coordinator_address={address}",
        "--set", "backend.num_processes=2", "--set", "backend.devices=all",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            [
                *command,
                *common,
                *joined,
                "--set",
                f"backend.process_id={pid}",
                "--run-dir",
                str(tmp_path / "run"),
            ],
            env=_env(2),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in (0, 1)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    expected = [line for line in single.stdout.splitlines() if "loss " in line]
    assert len(expected) == 2, single.stdout  # the "trained ..." and "training rows" lines
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "on jax (cpu x4)" in out
        got = [line for line in out.splitlines() if "loss " in line]
        assert [_losses(g) for g in got] == [_losses(e) for e in expected]
    assert "written by process 0" in outputs[1][0]  # only process 0 writes the run directory
    assert (tmp_path / "run" / "model.npz").is_file()


def _losses(line: str) -> list[str]:
    """The 'loss <value>' fields of a printed line (timings differ between runs)."""
    words = line.replace(",", " ").split()
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "loss"]


def test_devices_take_a_kind_not_one_device():
    with pytest.raises(backends.UnknownBackendError, match="takes a device kind"):
        backends.get_backend("jax", "gpu:0", devices=2)
