"""A run directory's life from the command line: claimed by one process, written as epochs
finish, complete after Ctrl-C or a crash, resumed bit-identically, failing writes kept apart from
user errors by their exit code (issue 15 items 1, 4 and 7)."""

from __future__ import annotations

import csv
import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from backprop.app import cli, rundir
from backprop.training import fit as fit_module
from backprop.training.checkpoint import load_checkpoint

ROOT = pathlib.Path(__file__).parent.parent
XOR = ROOT / "configs" / "xor.toml"
SPIRALS_TOML = """\
[data]
name = "spirals"
n_per_class = 40

[model]
hidden_sizes = [16]

[optimizer]
name = "adam"
lr = 0.01

[training]
epochs = 5
batch_size = 16
validation_split = 0.2

[training.early_stopping]
patience = 50

[training.checkpoint]
every = 3
"""


@pytest.fixture
def spirals(tmp_path) -> pathlib.Path:
    path = tmp_path / "spirals.toml"
    path.write_text(SPIRALS_TOML)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def history_rows(run: pathlib.Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def manifest(run: pathlib.Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def params_of(path: pathlib.Path) -> list[np.ndarray]:
    ckpt = load_checkpoint(path)
    return [a for layer in ckpt.trees["params"] for a in (layer.values() if layer else [])]


def same_run(a: pathlib.Path, b: pathlib.Path) -> None:
    """Bit-identical: every parameter of model.npz and every history value but the timings."""
    for x, y in zip(params_of(a / "model.npz"), params_of(b / "model.npz"), strict=True):
        np.testing.assert_array_equal(x, y)
    timing = {"time", "samples_per_s"}
    rows_a, rows_b = history_rows(a), history_rows(b)
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert {k: v for k, v in ra.items() if k not in timing} == {
            k: v for k, v in rb.items() if k not in timing
        }


def interrupt_at_step(monkeypatch, step: int, exc: BaseException) -> None:
    """Raise ``exc`` inside `fit`'s training loop just before step ``step`` (1-based) runs."""
    original = fit_module._Loop._step
    count = {"n": 0}

    def step_then_fail(self, idx, lr):
        count["n"] += 1
        if count["n"] == step:
            raise exc
        return original(self, idx, lr)

    monkeypatch.setattr(fit_module._Loop, "_step", step_then_fail)


# -- 1. one process per run directory ----------------------------------------------------------
def test_a_claimed_run_directory_refuses_a_second_claim(tmp_path):
    from backprop.app.config import load_config

    cfg = load_config(XOR)
    first = rundir.RunDirectory.claim(cfg, tmp_path / "run")
    try:
        with pytest.raises(rundir.RunDirInUse, match="in use by another backprop process"):
            rundir.RunDirectory.claim(cfg, tmp_path / "run")
        (tmp_path / "run" / "manifest.json").write_text("{}")
        with pytest.raises(rundir.RunDirInUse):  # nor can a resume take it meanwhile
            rundir.RunDirectory.reopen(tmp_path / "run")
    finally:
        first.release()
    assert not (tmp_path / "run" / ".lock").exists()


def test_two_runs_started_together_on_one_directory_one_wins(tmp_path):
    """Two ``backprop train --run-dir D`` started at the same moment: exactly one trains (exit 0),
    the other exits 2 naming the directory, and D holds one run's files only."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "backprop", "train", str(XOR), "--run-dir", str(run), "--quiet"]
    cmd += ["--set", "training.epochs=30"]
    procs = [
        subprocess.Popen(
            [*cmd, "--set", f"training.seed={seed}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for seed in (1, 2)
    ]
    results = []
    for p in procs:
        with p:
            results.append((p.wait(timeout=120), p.stderr.read()))
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert str(run) in loser and len(loser.strip().splitlines()) == 1, loser
    winner = manifest(run)
    seed = int(winner["command"][-1].split("=")[1])
    saved = load_checkpoint(run / "model.npz").meta["config"]["resolved"]
    assert saved["training"]["seed"] == seed  # the model is the manifest's run's model
    assert winner["status"] == "finished" and not (run / ".lock").exists()


# -- 4. interrupt and resume ---------------------------------------------------------------------
def test_ctrl_c_leaves_a_complete_run_that_resumes_bit_identically(
    capsys, monkeypatch, tmp_path, spirals
):
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = ["train", spirals, "--set", "training.epochs=5", "--quiet"]
    assert run_cli(capsys, *args, "--run-dir", full)[0] == 0
    steps_per_epoch = load_checkpoint(full / "last.npz").meta["position"]["step"] // 5
    interrupt_at_step(monkeypatch, 2 * steps_per_epoch + 2, KeyboardInterrupt())  # in epoch 3
    code, _, err = run_cli(capsys, *args, "--run-dir", cut)
    monkeypatch.undo()
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted after epoch 2 of 5"), err
    assert f"backprop train --resume {cut}" in lines[0]
    assert "Traceback" not in err
    record = manifest(cut)
    assert record["status"] == "interrupted" and record["epochs_done"] == 2
    files = {p.name for p in cut.iterdir()}
    assert {"model.npz", "last.npz", "history.csv", "config.toml", "manifest.json"} <= files
    assert len(history_rows(cut)) == 2
    assert load_checkpoint(cut / "last.npz").meta["position"]["epoch"] == 2
    # the interrupted run directory evaluates like any other
    assert run_cli(capsys, "evaluate", cut)[0] == 0
    # resume: same numbers as the uninterrupted run, to the last bit
    code, _, err = run_cli(capsys, "train", "--resume", cut, "--quiet")
    assert code == 0, err
    same_run(cut, full)
    record = manifest(cut)
    assert record["status"] == "finished" and record["epochs_done"] == 5
    assert record["resumed"][0]["command"][:3] == ["backprop", "train", "--resume"]


def test_a_finished_run_continues_to_more_epochs(capsys, tmp_path, spirals):
    long, short = tmp_path / "long", tmp_path / "short"
    args = ["train", spirals, "--quiet"]
    assert run_cli(capsys, *args, "--set", "training.epochs=6", "--run-dir", long)[0] == 0
    assert run_cli(capsys, *args, "--set", "training.epochs=3", "--run-dir", short)[0] == 0
    code, _, err = run_cli(capsys, "resume", short, "--set", "training.epochs=6", "--quiet")
    assert code == 0, err
    same_run(short, long)


def test_resume_refuses_what_would_make_another_run(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", XOR, "--set", "training.epochs=2", "--run-dir", run)[0] == 0
    cases = {
        ("train", "--resume", run, "--set", "model.hidden=relu"): "model.hidden cannot change",
        ("train", "--resume", run, "--set", "training.epochs=1"): "below the run's 2",
        ("train", "--resume", tmp_path / "nope"): "not a run directory",
        ("train", "--resume", run / "model.npz"): "is a file",
        ("train", XOR, "--resume", run): "CONFIG cannot be combined with --resume",
        ("train", "--resume", run, "--run-dir", tmp_path / "x"): "--run-dir cannot be combined",
    }
    for argv, message in cases.items():
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) <= 2, (argv, err)
    with pytest.raises(SystemExit) as info:  # argparse's own usage error
        cli.main(["train"])
    assert (
        info.value.code == 2
        and "train needs a CONFIG, or --resume RUN_DIR" in capsys.readouterr().err
    )
    (run / "last.npz").unlink()
    code, _, err = run_cli(capsys, "resume", run)
    assert code == 2 and "has no last.npz" in err, err


def test_a_run_that_crashes_mid_way_shows_how_far_it_got(capsys, monkeypatch, tmp_path):
    """History and manifest are written as epochs finish, not only at the end."""
    run = tmp_path / "run"
    interrupt_at_step(monkeypatch, 3 * 4 + 1, RuntimeError("device lost"))
    args = ["train", XOR, "--set", "training.epochs=10", "--set", "training.batch_size=1"]
    args += ["--set", "training.checkpoint.every=1"]
    code, _, err = run_cli(capsys, *args, "--run-dir", run, "--quiet")
    assert code == 1 and "device lost" in err, err
    record = manifest(run)
    assert record["status"] == "running" and record["epochs_done"] == 3
    assert [r["epoch"] for r in history_rows(run)] == ["1", "2", "3"]
    assert (run / "config.toml").exists() and not (run / ".lock").exists()


def test_temporary_files_of_a_killed_run_are_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".manifest.json.k1ll3d00.tmp"
    stale.write_text("half a manifest")
    other = tmp_path / ".notes.txt.tmp"
    other.write_text("not ours")
    rundir.write_text_atomic(tmp_path / "manifest.json", "{}\n")
    assert (tmp_path / "manifest.json").read_text() == "{}\n"
    assert not stale.exists() and other.exists()
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- 7. exit codes: I/O failures are 1, and what was written before stays ------------------------
def test_a_full_disk_exits_1_and_keeps_the_last_checkpoint(capsys, monkeypatch, tmp_path):
    run = tmp_path / "run"
    real_replace = os.replace

    def full_disk(src, dst, *a, **k):
        if str(dst).endswith("model.npz"):
            os.unlink(src)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full_disk)
    args = ["train", XOR, "--set", "training.epochs=3", "--run-dir", run, "--quiet"]
    code, _, err = run_cli(capsys, *args)
    assert code == 1, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "No space left on device" in err and "model.npz" in err
    assert load_checkpoint(run / "last.npz").meta["position"]["epoch"] == 3  # the result is kept
    assert not list(run.glob(".*.tmp"))


def test_ctrl_c_in_a_real_process_exits_130_with_one_line(tmp_path, spirals):
    """SIGINT to a real ``backprop train``: exit 130, one line on stderr, a resumable run."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "backprop", "train", str(spirals), "--run-dir", str(run)]
    cmd += ["--set", "training.epochs=100000", "--set", "training.batch_size=8", "--quiet"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if manifest(run).get("epochs_done", 0) >= 1:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted after epoch"), err
    record = manifest(run)
    assert record["status"] == "interrupted"
    done = record["epochs_done"]
    assert done >= 1 and len(history_rows(run)) == done
    assert load_checkpoint(run / "last.npz").meta["position"]["epoch"] == done


def test_an_exploding_finite_loss_exits_1_unless_the_config_turns_the_check_off(
    capsys, tmp_path, spirals
):
    args = ["train", spirals, "--set", "optimizer.lr=1e3", "--quiet"]
    code, _, err = run_cli(capsys, *args, "--run-dir", tmp_path / "run")
    assert code == 1 and "TrainingDiverged" in err and "10 times the untrained" in err, err
    assert "training.divergence_factor=0 turns it off" in err, err
    assert manifest(tmp_path / "run")["status"] == "diverged"
    code, _, err = run_cli(capsys, *args, "--no-save", "--set", "training.divergence_factor=0")
    assert code == 0, err
    code, _, err = run_cli(capsys, *args, "--no-save", "--set", "training.divergence_factor=0.5")
    assert code == 2 and "0 (off) or a finite number > 1" in err, err


def test_class_weight_keys_are_the_data_s_own_labels(capsys, tmp_path):
    """A CSV with text labels: ``class_weight = {cat = 3}`` weighs the class the run calls
    "cat" (whatever its index), exactly as the same weight by index in `fit`; an unknown label
    is an error naming the labels there are."""
    import backprop as bp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    labels = np.where(X[:, 0] > 0.3, "cat", "dog")
    rows = "\n".join(f"{a:.6f},{b:.6f},{c}" for (a, b), c in zip(X, labels, strict=True))
    (tmp_path / "pets.csv").write_text("a,b,kind\n" + rows + "\n")
    (tmp_path / "pets.toml").write_text(
        '[data]\nname = "csv"\npath = "pets.csv"\ntarget = "kind"\ntest_fraction = 0.0\n'
        "standardize = false\n[model]\nhidden_sizes = [4]\noutput = 'softmax'\n"
        "loss = 'cross_entropy'\n[training]\nepochs = 2\n"
        "batch_size = 60\nshuffle = false\n[training.class_weight]\ncat = 3.0\n"
    )
    from backprop.app import experiment
    from backprop.app.config import load_config

    X = np.loadtxt(tmp_path / "pets.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    cfg = load_config(tmp_path / "pets.toml")
    run = experiment.train_config(cfg, save=False, verbose=0)
    model = bp.MLP([2, 4, 2], hidden="relu", output="softmax", loss="cross_entropy")
    direct = bp.fit(
        model, X, (labels == "dog").astype(int), epochs=2, batch_size=60, shuffle=False,
        class_weight={0: 3.0}, verbose=0, optimizer=cfg.optimizer.build(),
    )  # fmt: skip
    assert run.fit.history["loss"] == direct.history["loss"]
    pets = tmp_path / "pets.toml"
    code, _, err = run_cli(
        capsys, "train", pets, "--no-save", "--set", "training.class_weight={cow=2.0}"
    )
    assert code == 2 and "'cow', which is not a class" in err and "['cat', 'dog']" in err, err


def test_a_run_killed_with_sigkill_resumes_bit_identically(capsys, tmp_path, spirals):
    """kill -9 runs no handler: the directory keeps its last checkpoint, a stale ``.lock`` (the
    kernel dropped the lock itself) does not block the resume, and the resumed run ends with
    the numbers of a run that was never killed."""
    run, full = tmp_path / "killed", tmp_path / "full"
    sets = ["--set", "training.epochs=60", "--set", "training.checkpoint.every=1", "--quiet"]
    cmd = [sys.executable, "-m", "backprop", "train", str(spirals), "--run-dir", str(run), *sets]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if manifest(run).get("epochs_done", 0) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=30)
    record = manifest(run)
    assert record["status"] == "running" and (run / ".lock").exists()
    assert 2 <= record["epochs_done"] < 60, record["epochs_done"]
    code, _, err = run_cli(capsys, "resume", run, "--quiet")
    assert code == 0, err
    assert run_cli(capsys, "train", spirals, "--run-dir", full, *sets)[0] == 0
    same_run(run, full)
    assert manifest(run)["status"] == "finished" and not (run / ".lock").exists()
