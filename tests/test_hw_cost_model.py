"""The cost model counts by hand (DESIGN §4-5).

Reference numbers on isaac: 128x128 crossbars, OU 8x8, 4 cells per 8-bit weight, so a
crossbar holds 32 weight columns, an OU 2, and a crossbar offers 16 * 16 = 256 OU slots;
8 input passes (8-bit inputs, 1-bit DACs).
"""

import json
import math

import numpy as np
import pytest

from hw.cost_model import compare_reports, price_layers
from hw.layout_types import LayerOccupancy
from hw.spec import load_hw_spec


@pytest.fixture(scope="module")
def isaac():
    return load_hw_spec("isaac")


def dense(spec, rows, cols, positions=1, name="layer"):
    return LayerOccupancy.dense(name, rows, cols, positions, spec)


def ou_row(rows, cols, kept, positions=1, name="pruned"):
    return LayerOccupancy(name, rows, cols, positions, "ou_row", np.array(kept), rows, cols)


def test_dense_3x3_conv_256_to_256_occupies_144_isaac_crossbars(isaac):
    report = price_layers(isaac, [dense(isaac, 2304, 256, positions=196)])
    assert report.total_crossbars == 144
    assert report.ou_slots[0] == 144 * 256  # a dense layer fills every OU slot of its crossbars


def test_dense_3x3_conv_256_to_256_occupies_36_prime_crossbars():
    prime = load_hw_spec("prime")
    assert price_layers(prime, [dense(prime, 2304, 256)]).total_crossbars == 9 * 4


def test_tiny_dense_layer_counts(isaac):
    # R=20, C=3: one crossbar-wide block of 3 columns; ceil(20/8)=3 OU rows x ceil(3/2)=2 OU columns.
    report = price_layers(isaac, [dense(isaac, 20, 3)])
    assert report.ou_slots[0] == 6
    assert report.total_crossbars == 1
    assert report.ou_activations[0] == 6 * 8 * 1  # slots * passes * positions
    assert report.adc_conversions[0] == 48 * 8
    assert report.dac_drives[0] == 48 * 8
    assert report.shift_add_ops[0] == 48 * 8
    assert report.index_lookups[0] == 0 and report.index_bits[0] == 0


def test_tiny_dense_layer_energy_by_component(isaac):
    energy = price_layers(isaac, [dense(isaac, 20, 3)]).energy
    assert energy.adc[0] == pytest.approx(384 * 1.667)
    assert energy.dac[0] == pytest.approx(384 * 0.417)
    assert energy.crossbar[0] == pytest.approx(48 * 0.3 * 100 * 64 / 16384)  # mW * ns * OU share
    assert energy.shift_add[0] == pytest.approx(384 * 0.021)
    assert energy.buffer[0] == pytest.approx((20 * 8 + 3 * 16) / 256 * 20.45)  # inputs in, outputs out
    assert energy.index[0] == 0


def test_tiny_dense_layer_area_is_one_crossbar_with_its_periphery(isaac):
    report = price_layers(isaac, [dense(isaac, 20, 3)])
    per_crossbar_um2 = 25 + 1 * 1200 + 128 * 0.166 + 5 + 0.5 * 60
    assert report.total_area_mm2 == pytest.approx(per_crossbar_um2 / 1e6)


def test_tiny_dense_layer_latency_is_one_ou_per_crossbar_per_cycle(isaac):
    report = price_layers(isaac, [dense(isaac, 20, 3, positions=4)])
    assert report.total_latency_ns == 6 * 8 * 4 * 100  # 6 slots in 1 crossbar, 8 passes, 4 positions


def test_efficiencies_use_dense_equivalent_ops(isaac):
    report = price_layers(isaac, [dense(isaac, 20, 3)])
    ops = 2 * 20 * 3
    assert report.total_dense_ops == ops
    seconds, joules = report.total_latency_ns * 1e-9, report.total_energy_pj * 1e-12
    assert report.area_efficiency_gops_per_mm2 == pytest.approx(ops / seconds / 1e9 / report.total_area_mm2)
    assert report.energy_efficiency_tops_per_w == pytest.approx(ops / joules / 1e12)
    assert report.total_energy_nj == pytest.approx(report.total_energy_pj / 1e3)


def test_ou_row_layer_counts_slots_per_group_and_index_bits(isaac):
    # C=5 -> OU groups of 2, 2, 1 columns keeping 20, 9, 0 rows: 3 + 2 + 0 slots.
    report = price_layers(isaac, [ou_row(20, 5, [20, 9, 0], positions=4)])
    assert report.ou_slots[0] == 5
    assert report.total_crossbars == 1
    assert report.ou_activations[0] == 5 * 8 * 4
    assert report.index_lookups[0] == 160 * 8
    # per slot: 8 input indices of ceil(log2 20) = 5 bits + an output index of ceil(log2 3) = 2 bits
    assert report.index_bits[0] == 5 * (8 * 5 + 2)


def test_crossbar_row_layer_counts_crossbars_per_block(isaac):
    # C=40 -> blocks of 32 and 8 columns keeping 200 and 100 rows.
    layer = LayerOccupancy("pim", 300, 40, 1, "crossbar_row", np.array([200, 100]), 300, 40)
    report = price_layers(isaac, [layer])
    assert report.total_crossbars == 2 + 1
    assert report.ou_slots[0] == 25 * 16 + 13 * 4
    assert report.index_bits[0] == 3 * 128 * 9  # one table of 128 entries of ceil(log2 300) bits per crossbar


def test_shared_packing_lets_ou_row_layers_share_crossbars(isaac):
    layers = [ou_row(800, 2, [800], name="a"), ou_row(800, 2, [800], name="b")]  # 100 slots each
    per_layer = price_layers(isaac, layers, packing="per_layer")
    shared = price_layers(isaac, layers, packing="shared")
    assert per_layer.total_crossbars == 2
    assert shared.total_crossbars == 1  # ceil(200 / 256)
    assert shared.crossbars.tolist() == [100 / 256, 100 / 256]
    assert (per_layer.packing, shared.packing) == ("per_layer", "shared")


def test_layers_run_one_after_another(isaac):
    one = price_layers(isaac, [dense(isaac, 20, 3)])
    two = price_layers(isaac, [dense(isaac, 20, 3, name="a"), dense(isaac, 20, 3, name="b")])
    assert two.total_latency_ns == 2 * one.total_latency_ns


def test_halving_every_group_of_a_conv_halves_its_crossbars(isaac):
    baseline = price_layers(isaac, [dense(isaac, 2304, 256, positions=196)])
    pruned = price_layers(isaac, [ou_row(2304, 256, [1152] * 128, positions=196)])
    comparison = compare_reports(baseline, pruned)
    assert pruned.total_crossbars == 72  # 128 groups * 144 slots / 256
    assert comparison.compression_rate == 2.0
    assert pruned.compression_rate == 2.0
    assert pruned.total_dense_ops == baseline.total_dense_ops  # gains come from cost, not ops


def test_comparison_gains_are_ratios_of_efficiencies(isaac):
    baseline = price_layers(isaac, [dense(isaac, 2304, 256, positions=196)])
    pruned = price_layers(isaac, [ou_row(2304, 256, [1152] * 128, positions=196)])
    comparison = compare_reports(baseline, pruned)
    assert comparison.energy_efficiency_gain == pytest.approx(
        pruned.energy_efficiency_tops_per_w / baseline.energy_efficiency_tops_per_w)
    assert comparison.area_efficiency_gain == pytest.approx(
        pruned.area_efficiency_gops_per_mm2 / baseline.area_efficiency_gops_per_mm2)


def test_a_fully_pruned_layer_costs_nothing_but_buffer_traffic(isaac):
    report = price_layers(isaac, [ou_row(20, 4, [0, 0])])
    assert report.total_crossbars == 0 and report.total_latency_ns == 0
    assert report.energy.adc[0] == 0 and report.energy.buffer[0] > 0
    assert math.isinf(report.compression_rate)


def test_wrong_number_of_groups_names_the_layer(isaac):
    with pytest.raises(ValueError, match="layer fc: 1 column groups given, 2 expected"):
        price_layers(isaac, [ou_row(20, 4, [20], name="fc")])


def test_unknown_packing_is_rejected(isaac):
    with pytest.raises(ValueError, match="packing must be one of"):
        price_layers(isaac, [dense(isaac, 20, 3)], packing="greedy")


def test_report_serialises_to_plain_json_types(isaac):
    payload = price_layers(isaac, [dense(isaac, 20, 3)]).to_dict()
    assert json.loads(json.dumps(payload))["total_crossbars"] == 1
