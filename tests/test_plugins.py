"""Plugin modules (`backprop.app._plugins`): the config's ``imports`` and ``--import`` register
layers, activations and losses before the checks; failures are one line."""

from __future__ import annotations

import pathlib
import sys

import pytest
from config_helpers import layered, problems_of

from backprop import ACTIVATIONS
from backprop.app._plugins import PluginError, import_plugins
from backprop.app.config import ConfigError, config_from_dict
from backprop.nn.layers import LAYERS

PLUGIN = pathlib.Path(__file__).parent / "plugins" / "cube_activation.py"


@pytest.fixture
def forget_plugin():
    """Unregister what tests/plugins/cube_activation.py registers, after the test (and drop the
    module, so a later import registers them again)."""
    yield
    ACTIVATIONS._items.pop("cube", None)
    LAYERS._items.pop("scale", None)
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) and pathlib.Path(module.__file__) == PLUGIN:
            del sys.modules[name]


def test_config_imports_register_before_the_checks(forget_plugin, tmp_path):
    raw = layered(
        {"type": "dense", "units": 4, "activation": {"name": "cube", "scale": 0.5}},
        {"type": "scale", "factor": 2.0},
        {"type": "dense", "units": 1},
    )
    assert "unknown activation 'cube'" in problems_of(raw)[0]
    cfg = config_from_dict({**raw, "imports": [str(PLUGIN)]})
    assert cfg.imports == (str(PLUGIN.resolve()),)
    assert cfg.to_dict()["imports"] == [str(PLUGIN.resolve())]
    model = cfg.model.build(2, 1)
    assert model.layers[0].activation.scale == 0.5 and model.layers[1].factor == 2.0
    bad = layered({"type": "dense", "units": 1, "activation": {"name": "cube", "scale": -1}})
    assert "activation 'cube': scale must be a number >= 0" in problems_of(bad)[0]
    # --import (the keyword) adds to the file's list; the stored list has each once
    again = config_from_dict(cfg.to_dict(), imports=[str(PLUGIN)])
    assert again.imports == cfg.imports


def test_dotted_plugin_names_import_from_the_current_directory(monkeypatch, tmp_path):
    (tmp_path / "my_backprop_plugin.py").write_text(
        "from backprop import activations\n"
        "@activations.register('plugin_double')\n"
        "class Double(activations.Activation):\n"
        "    def forward(self, xp, z):\n        return 2 * z\n"
        "    def derivative(self, xp, z, a):\n        return 2 + 0 * a\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert import_plugins(["my_backprop_plugin"], "--import") == ["my_backprop_plugin"]
        assert "plugin_double" in ACTIVATIONS
        assert str(tmp_path) not in sys.path  # only while importing
    finally:
        ACTIVATIONS._items.pop("plugin_double", None)
        sys.modules.pop("my_backprop_plugin", None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("no_such_plugin_module", "ModuleNotFoundError: No module named 'no_such_plugin_module'"),
        ("missing/plugin.py", "no such file"),
        ("{tmp}/broken.py", "ZeroDivisionError: division by zero"),
        ("{tmp}/syntax.py", "SyntaxError: "),
        ("{tmp}/needs.py", "ModuleNotFoundError: No module named 'not_installed_anywhere'"),
    ],
)
def test_a_plugin_that_fails_to_import_is_one_line(tmp_path, name, expected):
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    (tmp_path / "syntax.py").write_text("def f(:\n    pass\n")
    (tmp_path / "needs.py").write_text("import not_installed_anywhere\n")
    name = name.replace("{tmp}", str(tmp_path))
    with pytest.raises(PluginError) as info:
        config_from_dict({"data": {"name": "xor"}, "imports": [name]}, source="c.toml")
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, ConfigError)
    assert message.startswith(f"cannot import plugin module {name!r} (imports in c.toml): ")
    assert expected in message
    assert "importable from the current directory or sys.path" in message
    for stem in ("broken", "syntax", "needs"):
        assert stem not in sys.modules
