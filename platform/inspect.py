"""``python -m platform.inspect model=… hw=… mapping=… policy.uniform=0.5``: map a model and report.

``python -m platform.inspect inspect.trial=<trial folder> hw=<its preset>`` loads a finished trial's
pruned model and layout instead (envs/model_artifact.py checks both checksums), re-prices the
layout and measures the model's test accuracy again against the reported one; with
``inspect.export_cells=<folder>`` it also writes what every programmed crossbar holds
(mapping/crossbar_export.py, docs/crossbar-export.md).

A thin Hydra wrapper around ``mapping.report.map_report``: it builds the model (random
init, ``model.weights=…``, or the cached baseline with ``inspect.baseline=true``), reads
the policy, and prints a per-layer table or, with ``inspect.format=json``, one JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import envs.openmp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads it)
from platform.inspect_config import FORMATS


class InspectError(ValueError):
    """A policy or option the command cannot use; the message names it."""


def read_policy(policy: DictConfig, layer_names: list[str]) -> dict[str, float] | float:
    """policy.uniform, or policy.file's ratios keyed by layer name; no policy maps the dense model."""
    if policy.uniform is not None and policy.file is not None:
        raise InspectError("give policy.uniform or policy.file, not both")
    if policy.file is None:
        return float(policy.uniform or 0.0)
    path = Path(policy.file)
    if not path.is_file():
        raise InspectError(f"policy.file={policy.file!r}: no such file")
    document: Any = json.loads(path.read_text())
    ratios = document.get("ratios") if isinstance(document, dict) else document
    if not isinstance(ratios, list):
        raise InspectError(f"{path} holds no list of ratios (expected a list or a dict with 'ratios')")
    names = document.get("layer_names") if isinstance(document, dict) else None
    names = names or layer_names
    if len(ratios) != len(names):
        raise InspectError(f"{path} has {len(ratios)} ratios for a model of {len(names)} prunable layers")
    return {name: float(r) for name, r in zip(names, ratios, strict=True)}


def build(cfg: DictConfig):
    """The model, its input shape (1, C, H, W) and its name, as the launcher's env would build them."""
    from envs.workload.data import DataConfig
    from envs.workload.models import build_model

    model_cfg = dict(cfg.model)
    data = DataConfig.from_mapping(dict(cfg.data)).load()
    input_shape = (1, data.in_channels, *data.image_size)
    if cfg.inspect.baseline:
        from envs.workload.baseline import get_baseline

        baseline = get_baseline(model_cfg, dict(cfg.data), seed=cfg.seed, cache_dir=cfg.paths.cache_dir, splits=data)
        return baseline.model.eval(), input_shape, model_cfg["name"]
    model = build_model(model_cfg["name"], data.num_classes, data.in_channels,
                        model_cfg.get("small_input", True), model_cfg.get("weights"), model_cfg.get("stem"))
    return model.eval(), input_shape, model_cfg["name"]


def inspect_trial(cfg: DictConfig) -> dict:
    """A finalized trial folder's pruned model and layout, loaded with every checksum checked, its layout
    re-priced under `hw` and its test accuracy measured again against the one its card reports."""
    from envs.model_artifact import load_pruned_model
    from envs.workload.data import DataConfig
    from envs.workload.evaluation import evaluate_split
    from hw.spec import hw_spec_from_dict
    from mapping.report import layout_report, price_layout

    folder = Path(cfg.inspect.trial)
    if not folder.is_dir():
        raise InspectError(f"inspect.trial={cfg.inspect.trial!r}: no such folder (expected runs/<name>/<sweep>/"
                           "trials/eps_<epsilon>)")
    loaded = load_pruned_model(folder)
    spec = hw_spec_from_dict(dict(cfg.hw))
    report = layout_report(loaded.layout, price_layout(loaded.layout, spec), spec)
    measured = evaluate_split(loaded.model, DataConfig.from_mapping(loaded.card.data).load().test).accuracy
    report["trial"] = {"folder": str(folder), "epsilon": loaded.card.epsilon,
                       "test_accuracy_reported": loaded.card.test_accuracy, "test_accuracy_measured": measured,
                       "reproduced": measured == loaded.card.test_accuracy}
    if cfg.inspect.export_cells:
        from mapping.crossbar_export import export_crossbars

        report["trial"]["cells"] = str(export_crossbars(loaded.layout, loaded.model, spec, cfg.inspect.export_cells))
    return report


def inspect(cfg: DictConfig) -> dict:
    from hw.spec import hw_spec_from_dict
    from mapping.matrices import prunable_layers
    from mapping.report import map_report

    if cfg.inspect.format not in FORMATS:
        raise InspectError(f"inspect.format must be one of {FORMATS}, got {cfg.inspect.format!r}")
    if cfg.inspect.trial is not None:
        return inspect_trial(cfg)
    spec = hw_spec_from_dict(dict(cfg.hw))
    model, input_shape, name = build(cfg)
    ratios = read_policy(cfg.policy, [n for n, _ in prunable_layers(model)])
    return map_report(model, ratios, spec, cfg.mapping.granularity, input_shape,
                      cfg.mapping.get("packing", "per_layer"), name)


@hydra.main(version_base="1.3", config_path="../conf", config_name="inspect")
def main(cfg: DictConfig) -> None:
    from mapping.report import format_report

    for handler in logging.getLogger().handlers:  # stdout carries the report (JSON) alone
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    try:
        report = inspect(cfg)
    except (InspectError, ValueError) as error:
        print(f"inspect error: {error}", file=sys.stderr)
        sys.exit(2)
    if cfg.inspect.format == "json":
        print(json.dumps(report))
        return
    print(format_report(report))
    if "trial" in report:
        trial = report["trial"]
        print(f"test accuracy {trial['test_accuracy_measured']:.4f} measured again, "
              f"{trial['test_accuracy_reported']:.4f} reported: "
              f"{'reproduced' if trial['reproduced'] else 'NOT reproduced'}")


if __name__ == "__main__":
    main()
