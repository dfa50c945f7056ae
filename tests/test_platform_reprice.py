"""Re-pricing a comparison's saved policies under another hardware model."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from envs.workload.models import build_model
from hw.spec import load_hw_spec
from mapping.mapper import map_model
from mapping.matrices import prunable_layers
from platform.reports.comparison_table import MethodRun
from platform.reports.reprice import reprice_runs
from platform.reports.summary import SummaryRow
from platform.search.sweep_folders import trial_dir, trial_key

PLAIN_MODEL = {"name": "small_cnn", "small_input": True, "stem": None}
PLAIN_DATA = {"name": "digits", "search_size": 300, "seed": 0}


def saved_run(tmp_path, granularity: str, ratio: float) -> MethodRun:
    model = build_model("small_cnn", 10, 1, True)
    names = [name for name, _ in prunable_layers(model)]
    sweep = tmp_path / granularity
    folder = trial_dir(sweep, trial_key(0.01))
    folder.mkdir(parents=True)
    (folder / "policy.json").write_text(json.dumps({"layer_names": names, "ratios": [ratio] * len(names)}))
    row = SummaryRow(constraint=0.01, status="done", accuracy=0.9, delta_acc=0.0, compression_rate=99.0,
                     crossbars=1.0, area_efficiency_gain=9.0, energy_efficiency_gain=9.0, episodes=8, wall_time_s=1.0)
    return MethodRun("tpe", granularity, 0, row, str(sweep))


def plain(**hw) -> dict:
    return {"hw": asdict(load_hw_spec("isaac", **hw)), "model": PLAIN_MODEL, "data": PLAIN_DATA}


def test_repricing_recomputes_cr_and_gains_from_the_saved_ratios(tmp_path):
    (run,) = reprice_runs(plain(), [saved_run(tmp_path, "ou_row", 0.5)], print)
    layout = map_model(build_model("small_cnn", 10, 1, True), 0.5, load_hw_spec("isaac"), "ou_row", (1, 1, 8, 8))
    assert run.row.crossbars == layout.crossbars
    assert run.row.compression_rate == pytest.approx(layout.dense_crossbars / layout.crossbars)
    assert run.row.packing_gain * run.row.pruning_gain == pytest.approx(run.row.compression_rate)
    assert run.row.accuracy == 0.9  # what was measured stays


def test_another_index_encoding_changes_the_area_gain_not_the_crossbars(tmp_path):
    (bitmap,) = reprice_runs(plain(), [saved_run(tmp_path / "a", "ou_row", 0.5)], print)
    (table,) = reprice_runs(plain(index={"encoding": "table"}), [saved_run(tmp_path / "b", "ou_row", 0.5)], print)
    assert bitmap.row.crossbars == table.row.crossbars
    assert bitmap.row.area_efficiency_gain > table.row.area_efficiency_gain


def test_structural_runs_are_left_as_measured(tmp_path):
    run = saved_run(tmp_path, "filter", 0.5)
    assert reprice_runs(plain(), [run], print) == [run]
