"""The README's composed-network example runs as printed, and its config block is the shipped
configs/digits_residual.toml's model."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("### Any network from layers") :]
SECTION = SECTION[: SECTION.index("\n## ")]


def _block(lang: str) -> str:
    return re.findall(rf"^```{lang}\n(.*?)^```$", SECTION, flags=re.S | re.M)[0]


def test_composed_network_example_runs(capsys):
    namespace: dict = {}
    exec(compile(_block("python"), "README.md", "exec"), namespace)
    model, result = namespace["model"], namespace["result"]
    assert result.epochs == 5 and result.history["loss"][-1] < result.history["loss"][0]
    assert "'type': 'residual'" in capsys.readouterr().out
    import backprop as bp

    assert bp.build_model(model.spec()).key() == model.key()


def test_config_block_is_the_shipped_model():
    shown = tomllib.loads(_block("toml"))["model"]
    shipped = tomllib.loads((ROOT / "configs" / "digits_residual.toml").read_text())["model"]
    assert shown["layers"] == shipped["layers"]
    assert shown["loss"] == shipped["loss"]
