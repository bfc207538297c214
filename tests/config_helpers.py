"""Helpers shared by the config tests: the problems a `ConfigError` lists, and a layered config."""

from __future__ import annotations

import pytest

from backprop.app.config import ConfigError, config_from_dict


def problems_of(raw: dict, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, **kwargs)
    return info.value.problems


def layered(*layers, **model) -> dict:
    return {"data": {"name": "xor"}, "model": {"layers": list(layers), **model}}
