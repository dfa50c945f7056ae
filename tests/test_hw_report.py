"""`python -m hw.report` prints the cost of a layer, dense or with ou_row rows kept."""

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
                                "positions": 196, "keep": None}
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
    for label in ("crossbars", "energy (nJ)", "area (mm^2, tile scope)", "latency (us, one input)",
                  "throughput (inferences/s, pipelined)", "area efficiency", "energy efficiency", "adc", "index"):
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


@pytest.mark.slow  # a subprocess
def test_the_module_runs_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "hw.report", "--json"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["total_crossbars"] == 144


def test_keeping_rows_reports_index_bits_per_slot_beside_the_floor(capsys):
    # 3x3 conv 256->256, 1152 of 2304 rows kept per OU group: 128 bitmaps of 2304 bits + 72 start records
    # of 15 bits over 18,432 slots = 16.06 bits per slot; floor log2 C(2304, 1152) / 144 = 15.96.
    assert main(["--conv", "256,256,3", "--keep", "1152", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["total_crossbars"] == 72
    (bits,), (floor,), (slots,) = (payload["layers"][k] for k in ("index_bits", "index_floor_bits", "ou_slots"))
    assert bits == 128 * 2304 + 72 * 15 and slots == 18432
    assert bits / slots == pytest.approx(16.06, abs=0.01) and floor / slots == pytest.approx(15.96, abs=0.01)


def test_keeping_more_rows_than_the_layer_has_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--rows", "20", "--cols", "4", "--keep", "21"])
    assert "--keep must lie in [1, R=20]" in capsys.readouterr().err
