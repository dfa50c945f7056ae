"""The cost model counts by hand (docs/hardware-model.md).

Reference numbers on isaac: 128x128 crossbars, OU 8x8, 4 cells per 8-bit weight, so a
crossbar holds 32 weight columns, an OU 2, and a crossbar offers 16 * 16 = 256 OU slots;
8 input passes (8-bit inputs, 1-bit DACs).
"""

import json
import math

import numpy as np
import pytest

from hw.cost_model import compression_split, price_layers
from hw.cost_report import compare_reports
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


PERIPHERY_UM2 = 25 + 1 * 1200 + 128 * 0.166 + 5 + 0.5 * 60  # crossbar, ADC, DACs, S+H, shift-add: 1281.2


@pytest.mark.parametrize(("scope", "per_crossbar_um2"), [
    ("periphery", PERIPHERY_UM2),
    ("ima", PERIPHERY_UM2 + 359.0),  # plus the IMA's input/output registers, per crossbar
    ("tile", 372_000 / 96),  # ISAAC's tile area shared by its 96 crossbars: 3875
])
def test_a_dense_crossbars_area_follows_the_area_scope(scope, per_crossbar_um2):
    spec = load_hw_spec("isaac", area_scope=scope)
    report = price_layers(spec, [dense(spec, 20, 3)])
    assert report.total_area_mm2 == pytest.approx(per_crossbar_um2 / 1e6)
    assert report.area_scope == scope


def test_tiny_dense_layer_latency_is_one_ou_per_crossbar_per_cycle(isaac):
    report = price_layers(isaac, [dense(isaac, 20, 3, positions=4)])
    assert report.total_latency_ns == 6 * 8 * 4 * 100  # 6 slots in 1 crossbar, 8 passes, 4 positions


def test_efficiencies_use_dense_equivalent_ops(isaac):
    report = price_layers(isaac, [dense(isaac, 20, 3)])
    ops = 2 * 20 * 3
    assert report.total_dense_ops == ops
    seconds, joules = report.stage_ns * 1e-9, report.total_energy_pj * 1e-12
    assert report.area_efficiency_gops_per_mm2 == pytest.approx(ops / seconds / 1e9 / report.total_area_mm2)
    assert report.energy_efficiency_tops_per_w == pytest.approx(ops / joules / 1e12)
    assert report.total_energy_nj == pytest.approx(report.total_energy_pj / 1e3)


def test_ou_row_layer_counts_slots_per_group(isaac):
    # C=5 -> OU groups of 2, 2, 1 columns keeping 20, 9, 0 rows: 3 + 2 + 0 slots.
    report = price_layers(isaac, [ou_row(20, 5, [20, 9, 0], positions=4)])
    assert report.ou_slots[0] == 5
    assert report.total_crossbars == 1
    assert report.ou_activations[0] == 5 * 8 * 4
    assert report.index_lookups[0] == 5 * 8 * 4  # 8 wordline indices per slot, read once per position


def test_ou_row_index_bits_under_the_table_encoding():
    table = load_hw_spec("isaac", index={"encoding": "table"})
    report = price_layers(table, [ou_row(20, 5, [20, 9, 0], positions=4)])
    # per slot: 8 input indices of ceil(log2 20) = 5 bits + an output index of ceil(log2 3) = 2 bits
    assert report.index_bits[0] == 5 * (8 * 5 + 2)
    assert report.energy.index[0] == pytest.approx(5 * 42 * 4 * 0.080)  # every bit read once per position, eDRAM


def test_ou_row_index_bits_under_the_bitmap_encoding(isaac):
    # 3 groups x a 20-bit occupancy bitmap + 1 crossbar x a start record of ceil(log2 5) = 3 bits
    report = price_layers(isaac, [ou_row(20, 5, [20, 9, 0], positions=4)])
    assert report.index_encoding == "bitmap"
    assert report.index_bits[0] == 3 * 20 + 3


def test_ou_row_index_bits_under_the_delta_encoding():
    # groups keep 20, 9, 0 of 20 rows: gaps need ceil(log2(R - r + 2)) = 1, 4, 5 bits each ->
    # 20 * 1 + 9 * 4 + 0 = 56 bits, plus 1 crossbar x a 3-bit start record.
    delta = load_hw_spec("isaac", index={"encoding": "delta"})
    assert price_layers(delta, [ou_row(20, 5, [20, 9, 0])]).index_bits[0] == 20 * 1 + 9 * 4 + 3


def test_delta_beats_the_bitmap_only_when_few_rows_are_kept():
    bitmap, delta = load_hw_spec("isaac"), load_hw_spec("isaac", index={"encoding": "delta"})
    few, half = ou_row(2304, 256, [64] * 128), ou_row(2304, 256, [1152] * 128)
    assert price_layers(delta, [few]).index_bits[0] < price_layers(bitmap, [few]).index_bits[0]
    assert price_layers(delta, [half]).index_bits[0] > price_layers(bitmap, [half]).index_bits[0]


def test_reading_the_index_on_every_input_pass_costs_passes_times_the_energy():
    once = price_layers(load_hw_spec("isaac"), [ou_row(20, 5, [20, 9, 0], positions=4)])
    every = price_layers(load_hw_spec("isaac", index={"read": "per_pass"}), [ou_row(20, 5, [20, 9, 0], positions=4)])
    assert every.energy.index[0] == pytest.approx(8 * once.energy.index[0])
    assert every.index_lookups[0] == 8 * once.index_lookups[0]


def test_the_index_medium_sets_the_bit_area():
    layer = ou_row(20, 5, [20, 9, 0])
    edram = price_layers(load_hw_spec("isaac"), [layer]).area_total.index  # the default medium
    sram = price_layers(load_hw_spec("isaac", index={"medium": "sram"}), [layer]).area_total.index
    assert sram == pytest.approx(63 * 0.239 / 1e6) and edram == pytest.approx(63 * 0.158 / 1e6)


def test_the_index_floor_is_log2_of_the_kept_row_choices(isaac):
    # log2 C(20, 20) + log2 C(20, 9) + log2 C(20, 0) = 0 + log2 167960 + 0
    report = price_layers(isaac, [ou_row(20, 5, [20, 9, 0])])
    assert report.index_floor_bits[0] == pytest.approx(math.log2(167960))


def test_bitmap_bits_per_slot_sit_near_the_floor_at_half_the_rows(isaac):
    # R = 2304, 128 groups keep 1152: the bitmap (2304 bits a group) is within 0.3% of log2 C(2304, 1152).
    report = price_layers(isaac, [ou_row(2304, 256, [1152] * 128, positions=196)])
    groups_bits = 128 * 2304
    assert report.index_bits[0] == groups_bits + 72 * 15  # 72 crossbars x ceil(log2 18432) = 15-bit start records
    assert report.index_bits[0] / report.index_floor_bits[0] < 1.01


def test_crossbar_row_layer_counts_crossbars_per_block(isaac):
    # C=40 -> blocks of 32 and 8 columns keeping 200 and 100 rows.
    layer = LayerOccupancy("pim", 300, 40, 1, "crossbar_row", np.array([200, 100]), 300, 40)
    report = price_layers(isaac, [layer])
    assert report.total_crossbars == 2 + 1
    assert report.ou_slots[0] == 25 * 16 + 13 * 4
    assert report.index_bits[0] == 2 * 300 + 3 * 9  # a 300-bit bitmap per block + a 9-bit start row per crossbar
    table = price_layers(load_hw_spec("isaac", index={"encoding": "table"}), [layer])
    assert table.index_bits[0] == 3 * 128 * 9  # one table of 128 entries of ceil(log2 300) bits per crossbar


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


def test_pipelined_throughput_of_two_layers_is_set_by_the_slower_stage(isaac):
    # Layer a: 6 slots on 1 crossbar, 4 positions -> 6 * 8 passes * 4 = 192 cycles per input.
    # Layer b: R=300, C=64 dense = 6 crossbars holding 19 OU rows x 16 OU columns... by the rule
    # ceil(slots / crossbars) = ceil(38 * 32 / 6) = 203 cycles per pass and position, 1 position: 1624.
    a, b = dense(isaac, 20, 3, positions=4, name="a"), dense(isaac, 300, 64, name="b")
    report = price_layers(isaac, [a, b])
    assert report.latency_ns.tolist() == [192 * 100, 1624 * 100]
    assert report.total_latency_ns == (192 + 1624) * 100
    assert report.stage_ns == 1624 * 100
    assert report.throughput_per_s == pytest.approx(1e9 / (1624 * 100))


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


def test_cr_splits_into_packing_gain_times_pruning_gain(isaac):
    # Linear(300, 64) -> Linear(64, 10): dense 6 + 1 = 7 crossbars. Compacted OU by OU with every row kept:
    # 32 groups x ceil(300/8) = 1216 slots -> 5 crossbars, and 5 groups x 8 slots -> 1: 6, a packing gain of 7/6.
    layers = [dense(isaac, 300, 64, name="fc1"), dense(isaac, 64, 10, name="fc2")]
    pruned = [ou_row(300, 64, [150] * 32, name="fc1"), dense(isaac, 64, 10, name="fc2")]  # 608 slots: 3 + 1
    crossbars = price_layers(isaac, pruned).total_crossbars
    split = compression_split(isaac, layers, "ou_row", "per_layer", crossbars)
    assert crossbars == 4
    assert split.packing_gain == pytest.approx(7 / 6) and split.pruning_gain == pytest.approx(6 / 4)
    assert split.packing_gain * split.pruning_gain == pytest.approx(split.compression_rate) == 7 / 4


def test_crossbar_row_has_no_packing_gain(isaac):
    split = compression_split(isaac, [dense(isaac, 300, 64)], "crossbar_row", "per_layer", 6)
    assert split.packing_gain == 1.0 == split.compression_rate
