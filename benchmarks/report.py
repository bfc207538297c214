"""The results table, the loss checks and the issue's targets, as Markdown text."""

from __future__ import annotations

from typing import Any

__all__ = ["loss_checks", "reference_name", "table", "targets", "tolerances"]

PROJECT_PREFIX = "backprop-"
_REFERENCES = ("numpy-hand", "torch-eager", "jax-jit", "backprop-numpy")
_RIVALS = "every backprop-* (but array_api_strict) faster than torch-eager and sklearn"


def _timed(summary: dict[str, dict[str, Any]], name: str) -> float | None:
    return summary.get(name, {}).get("epoch_s")


def reference_name(summary: dict[str, dict[str, Any]]) -> str | None:
    """The contender every other's losses are checked against: numpy-hand when it ran."""
    return next((n for n in _REFERENCES if _timed(summary, n) is not None), None)


def tolerances(dtype: str, envelope: dict[str, Any] | None) -> dict[str, float]:
    """Relative tolerances of the loss checks.

    first_loss: the same weights and batch, one forward pass: float32 rounding only (1e-5).
    early_loss (after `worker.EARLY_STEP` updates): rounding has barely grown yet (1e-4).
    final_loss (after every step of every epoch): at least 1e-3, widened to twice the measured
    float32-vs-float64 spread of numpy-hand (`harness.rounding_envelope`), because rounding
    differences grow over hundreds of SGD steps.

    bfloat16 (8 bits of mantissa; every contender in mixed precision, float32 weights), from
    the largest spreads measured between the bfloat16 contenders on the CPU (README,
    "bfloat16"): first_loss 1e-3 (measured 1e-5; bfloat16 itself is at most 1.6e-4 off
    float32), early_loss 5e-3 (measured 4.4e-4; a pure-bfloat16 trainer is 1.6e-2 off on W2's
    network), final_loss 5e-2 (measured 1.9e-2 over W1's 938 steps, 3.1e-4 over 16 on W2's
    network: rounding grows chaotically, and there is no bfloat16 envelope run).
    """
    if dtype == "bfloat16":
        return {"first_loss": 1e-3, "early_loss": 5e-3, "final_loss": 5e-2}
    final = 1e-3
    if envelope and "relative" in envelope:
        final = max(final, 2.0 * envelope["relative"])
    return {"first_loss": 1e-5, "early_loss": 1e-4, "final_loss": final}


def loss_checks(summary: dict[str, dict[str, Any]], tol: dict[str, float]) -> dict[str, list[str]]:
    """Per contender, the losses that disagree with the reference's beyond ``tol``."""
    ref = reference_name(summary)
    out: dict[str, list[str]] = {}
    if ref is None:
        return out
    for name, s in summary.items():
        if name == "floor" or s.get("epoch_s") is None:
            continue
        problems = []
        for key, rtol in tol.items():
            mine, theirs = s.get(key), summary[ref].get(key)
            if mine is None or theirs is None:
                continue
            rel = abs(mine - theirs) / max(abs(theirs), 1e-30)
            if not rel <= rtol:  # also catches NaN
                problems.append(
                    f"{key} {mine:.6g} vs {ref} {theirs:.6g} (rel {rel:.1e} > {rtol:.0e})"
                )
        out[name] = problems
    return out


def _fmt(value: Any, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def table(summary: dict[str, dict[str, Any]], checks: dict[str, list[str]], gpu: bool) -> str:
    """The Markdown results table, fastest first; skipped and failed contenders listed below."""
    floor, hand = _timed(summary, "floor"), _timed(summary, "numpy-hand")
    head = [
        "contender",
        "s/epoch",
        "min–max",
        "× floor",
        "× numpy-hand",
        "compile s",
        "peak RSS MiB",
        *(["peak GPU MiB"] if gpu else []),
        "first loss",
        "last loss",
        "epoch loss",
        "final loss",
        "losses",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    timed = sorted(
        (s for n, s in summary.items() if n != "floor" and s.get("epoch_s") is not None),
        key=lambda s: s["epoch_s"],
    )
    for s in timed:
        t = s["epoch_s"]
        problems = checks.get(s["name"], [])
        row = [
            s["name"],
            f"{t:.3f}",
            f"{s['epoch_min']:.3f}–{s['epoch_max']:.3f}",
            _fmt(None if floor is None else t / floor, ".2f"),
            _fmt(None if hand is None else t / hand, ".2f"),
            f"{s['compile_s']:.2f}",
            f"{s['peak_rss_mib']:.0f}",
            *([_fmt(s.get("peak_device_mib"), ".0f")] if gpu else []),
            _fmt(s.get("first_loss"), ".6f"),
            _fmt(s.get("last_loss"), ".6f"),
            _fmt(s.get("epoch_loss"), ".6f"),
            _fmt(s.get("final_loss"), ".6f"),
            "**LOSS MISMATCH**: " + "; ".join(problems) if problems else "ok",
        ]
        lines.append("| " + " | ".join(row) + " |")
    if floor is not None:
        f = summary["floor"]
        cells = [f"{floor:.3f}", f"{f['epoch_min']:.3f}–{f['epoch_max']:.3f}", "1.00"]
        cells.append(_fmt(None if hand is None else floor / hand, ".2f"))
        blank = len(head) - 1 - len(cells)
        lines.append("| floor (GEMMs only) | " + " | ".join(cells + [""] * blank) + " |")
    noisy = [
        f"{s['name']} (round {', '.join(map(str, s['disturbed_rounds']))})"
        for s in summary.values()
        if s.get("disturbed_rounds")
    ]
    if noisy:
        lines += ["", "Disturbed by other processes (timings suspect): " + "; ".join(noisy)]
    missing = [
        f"- {name}: {'skipped' if 'skipped' in s else 'FAILED'}: "
        + (s.get("skipped") or s.get("error") or "no result")
        for name, s in summary.items()
        if s.get("epoch_s") is None
    ]
    return "\n".join([*lines, "", *missing] if missing else lines)


def floor_lines(summary: dict[str, dict[str, Any]]) -> str:
    """One line per library of the floor measurement."""
    floor = summary.get("floor", {})
    libs = floor.get("libraries", {})
    if not libs:
        return f"- not measured: {floor.get('skipped') or floor.get('error') or 'no result'}"
    out = []
    for lib, r in libs.items():
        if "epoch_s" in r:
            out.append(f"- {lib}: {r['epoch_s']:.3f} s/epoch ({r['gflops']:.0f} GFLOP/s)")
        else:
            out.append(f"- {lib}: skipped: {r['skipped']}")
    return "\n".join(out)


def targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's speed targets, each ``{"target", "holds", "detail"}``; ``holds`` is None
    where a contender it needs did not run."""
    project = {
        n: s["epoch_s"]
        for n, s in summary.items()
        if n.startswith(PROJECT_PREFIX) and s.get("epoch_s") is not None
    }
    floor, hand = _timed(summary, "floor"), _timed(summary, "numpy-hand")
    out = []
    if project and floor:
        best = min(project, key=project.__getitem__)
        ratio = project[best] / floor
        out.append(
            _target("fastest backprop-* <= 1.10x floor", ratio <= 1.10, f"{best}: {ratio:.2f}x")
        )
    else:
        out.append(_target("fastest backprop-* <= 1.10x floor", None, "not measured"))
    if "backprop-numpy" in project and hand:
        ratio = project["backprop-numpy"] / hand
        out.append(_target("backprop-numpy <= 1.05x numpy-hand", ratio <= 1.05, f"{ratio:.2f}x"))
    else:
        out.append(_target("backprop-numpy <= 1.05x numpy-hand", None, "not measured"))
    rivals = {n: _timed(summary, n) for n in ("torch-eager", "sklearn")}
    rivals = {n: t for n, t in rivals.items() if t is not None}
    mine = {n: t for n, t in project.items() if n != "backprop-array_api_strict"}
    if mine and rivals:
        slower = [
            f"{n} {t:.3f} s >= {r} {rt:.3f} s"
            for n, t in mine.items()
            for r, rt in rivals.items()
            if t >= rt
        ]
        detail = "; ".join(slower) if slower else f"{len(mine)} backends vs {', '.join(rivals)}"
        out.append(_target(_RIVALS, not slower, detail))
    else:
        out.append(_target(_RIVALS, None, "not measured"))
    return out


def _target(text: str, holds: bool | None, detail: str) -> dict[str, Any]:
    return {"target": text, "holds": holds, "detail": detail}


def targets_text(results: list[dict[str, Any]]) -> str:
    marks = {True: "holds", False: "FAILS", None: "n/a"}
    return "\n".join(f"- {marks[t['holds']]}: {t['target']} ({t['detail']})" for t in results)
