"""``python -m platform.inspect``: the launcher's config groups, a policy, one report.

The reports are built in-process from the composed config (seconds saved per test); one
slow test runs the command line itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

import platform.inspect_config  # noqa: F401  (registers the inspect schema)
from platform.config import REPO_ROOT
from platform.inspect import InspectError, inspect

KEYS = {"dense_crossbars", "crossbars", "compression_rate", "utilization", "energy_nj", "area_mm2",
        "granularity", "hw", "layers"}


def report(*overrides: str) -> dict:
    """The report `python -m platform.inspect model=small_cnn data=digits <overrides>` prints as JSON."""
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("inspect", overrides=["model=small_cnn", "data=digits", *overrides])
    return inspect(cfg)


def run_inspect(*overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "platform.inspect", "model=small_cnn", "data=digits", *overrides]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_json_report_of_a_uniform_policy_has_the_issue_keys():
    mapped = report("policy.uniform=0.5", "inspect.format=json")
    assert json.loads(json.dumps(mapped)) == mapped  # the command prints exactly this, as JSON
    assert KEYS <= set(mapped)
    assert [layer["ratio"] for layer in mapped["layers"]] == [0.5] * len(mapped["layers"])
    assert mapped["crossbars"] < mapped["dense_crossbars"] and mapped["granularity"] == "ou_row"


def test_no_policy_maps_every_layer_at_ratio_zero():
    mapped = report("inspect.format=json")
    assert {layer["ratio"] for layer in mapped["layers"]} == {0.0} and mapped["sparsity"] == 0.0


def test_a_policy_file_of_ratios_is_applied_layer_by_layer(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"ratios": [0.0, 0.5, 0.75, 0.0]}))
    mapped = report(f"policy.file={policy}", "inspect.format=json", "hw=prime", "mapping=crossbar_row")
    assert [layer["ratio"] for layer in mapped["layers"]] == [0.0, 0.5, 0.75, 0.0]
    assert (mapped["hw"], mapped["granularity"]) == ("prime", "crossbar_row")


@pytest.mark.slow
def test_the_command_prints_the_table_with_every_layer_and_the_totals():
    result = run_inspect("policy.uniform=0.25")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "features.3" in result.stdout and "compression rate" in result.stdout


def test_a_policy_of_the_wrong_length_is_refused_naming_both_counts(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([0.5, 0.5]))
    with pytest.raises(InspectError, match="has 2 ratios for a model of 4 prunable layers"):
        report(f"policy.file={policy}")
