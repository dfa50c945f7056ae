"""Reading conf/model and conf/data YAML files outside Hydra (CLIs, tests), with key=value overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONF = Path(__file__).resolve().parents[2] / "conf"


def read_group(group: str, name: str) -> dict[str, Any]:
    """conf/<group>/<name>.yaml as a dict."""
    path = CONF / group / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        raise FileNotFoundError(f"no config {str(path)!r}; {group} configs: {available}")
    return yaml.safe_load(path.read_text()) or {}


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys from 'a.b=value' strings (values parsed as YAML: 3, 0.1, null, true, text)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        dotted, raw = item.split("=", 1)
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return config
