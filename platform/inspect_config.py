"""The inspect command's structured config: the launcher's model/data/hw/mapping groups plus a policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from hw.spec import HardwareSpec
from platform.config import PathsConfig, register_configs

FORMATS = ("table", "json")


@dataclass
class PolicyConfig:
    """Per-layer pruning ratios: one ratio for every layer, or a policy.json (or a list) of ratios."""

    uniform: float | None = None
    file: str | None = None  # policy.json from a sweep, or a JSON list of ratios


@dataclass
class InspectOptions:
    format: str = "table"  # table | json
    baseline: bool = False  # map the cached trained baseline (trained now if absent) instead of random init
    trial: str | None = None  # a finalized trial folder: load its model and layout, re-price and re-check them
    export_cells: str | None = None  # with trial: write its programmed crossbars' cells to this folder


@dataclass
class InspectConfig:
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    hw: HardwareSpec = field(default_factory=HardwareSpec)
    mapping: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    inspect: InspectOptions = field(default_factory=InspectOptions)


register_configs()
ConfigStore.instance().store(name="inspect_schema", node=InspectConfig)
