"""``python -m platform.inspect``: the launcher's config groups, a policy, one report."""

from __future__ import annotations

import json
import subprocess
import sys

from platform.config import REPO_ROOT

KEYS = {"dense_crossbars", "crossbars", "compression_rate", "utilization", "energy_nj", "area_mm2",
        "granularity", "hw", "layers"}


def inspect(*overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "platform.inspect", "model=small_cnn", "data=digits", *overrides]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_json_report_of_a_uniform_policy_has_the_issue_keys():
    result = inspect("policy.uniform=0.5", "inspect.format=json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert KEYS <= set(report)
    assert [layer["ratio"] for layer in report["layers"]] == [0.5] * len(report["layers"])
    assert report["crossbars"] < report["dense_crossbars"] and report["granularity"] == "ou_row"


def test_no_policy_maps_every_layer_at_ratio_zero():
    report = json.loads(inspect("inspect.format=json").stdout)
    assert {layer["ratio"] for layer in report["layers"]} == {0.0} and report["sparsity"] == 0.0


def test_a_policy_file_of_ratios_is_applied_layer_by_layer(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"ratios": [0.0, 0.5, 0.75, 0.0]}))
    report = json.loads(inspect(f"policy.file={policy}", "inspect.format=json", "hw=prime",
                                "mapping=crossbar_row").stdout)
    assert [layer["ratio"] for layer in report["layers"]] == [0.0, 0.5, 0.75, 0.0]
    assert (report["hw"], report["granularity"]) == ("prime", "crossbar_row")


def test_the_table_format_prints_every_layer_and_the_totals():
    result = inspect("policy.uniform=0.25")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "features.3" in result.stdout and "compression rate" in result.stdout


def test_a_policy_of_the_wrong_length_is_refused_naming_both_counts(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([0.5, 0.5]))
    result = inspect(f"policy.file={policy}")
    assert result.returncode == 2
    assert "has 2 ratios for a model of 4 prunable layers" in result.stderr
