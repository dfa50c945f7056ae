"""`python -m hw.report` prints the cost of a dense layer (issue 2)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hw.report import main

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *argv):
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_json_output_is_one_object_for_the_default_conv(capsys):
    payload = json.loads(run_main(capsys, "--json"))
    assert payload["layer"] == {"description": "dense 3x3 conv 256->256", "rows": 2304, "cols": 256,
                                "positions": 196}
    assert payload["preset"] == "isaac"
    assert payload["total_crossbars"] == 144


def test_json_for_prime_counts_its_own_crossbars(capsys):
    assert json.loads(run_main(capsys, "--preset", "prime", "--json"))["total_crossbars"] == 36


def test_a_matrix_shape_defaults_to_one_position(capsys):
    payload = json.loads(run_main(capsys, "--rows", "20", "--cols", "3", "--json"))
    assert payload["layers"]["positions"] == [1]
    assert payload["layers"]["ou_slots"] == [6]


def test_the_table_lists_crossbars_energy_area_latency_and_efficiencies(capsys):
    table = run_main(capsys, "--conv", "64,64,3", "--positions", "100")
    for label in ("crossbars", "energy (nJ)", "area (mm^2)", "latency (us)", "area efficiency",
                  "energy efficiency", "adc", "index"):
        assert label in table


def test_an_unknown_preset_is_a_usage_error_listing_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "isaak"])
    assert exit_info.value.code == 2
    assert "'isaac', 'isaac16', 'prime'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--conv", "64,64"], "--conv expects CIN,COUT,K"),
    (["--rows", "10"], "--rows and --cols go together"),
    (["--rows", "0", "--cols", "3"], "rows must be a positive integer, got 0"),
])
def test_bad_shapes_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_the_module_runs_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "hw.report", "--json"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["total_crossbars"] == 144
