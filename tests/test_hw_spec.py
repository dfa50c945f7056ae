"""Hardware presets and their validation (docs/hardware-model.md)."""

import pytest

from hw.spec import HardwareSpecError, available_presets, load_hw_spec


def test_presets_are_isaac_isaac16_and_prime():
    assert {"isaac", "isaac16", "prime"} <= set(available_presets())


def test_isaac_stores_a_weight_in_four_2bit_cells_so_a_crossbar_holds_32_weight_columns():
    spec = load_hw_spec("isaac")
    assert (spec.slices, spec.cells_per_weight) == (4, 4)  # 8-bit weight / 2-bit cells, offset
    assert spec.weight_cols_per_crossbar == 128 // 4 == 32
    assert spec.weight_cols_per_ou == 8 // 4 == 2
    assert spec.ou_slots_per_crossbar == (128 // 8) * (128 // 8) == 256
    assert spec.input_passes == 8  # 8-bit inputs through 1-bit DACs


def test_isaac_adc_is_lossless_for_an_8x8_ou():
    spec = load_hw_spec("isaac")
    assert spec.ou_partial_sum_max == 8 * 3 * 1 == 24
    assert spec.adc_lossless  # 24 <= 255


def test_prime_uses_two_4bit_cells_per_array_and_two_arrays():
    spec = load_hw_spec("prime")
    assert (spec.slices, spec.signed_factor, spec.cells_per_weight) == (2, 2, 4)
    assert spec.weight_cols_per_crossbar == 256 // 4 == 64


def test_isaac16_needs_eight_cells_and_sixteen_passes():
    spec = load_hw_spec("isaac16")
    assert (spec.slices, spec.weight_cols_per_crossbar, spec.input_passes) == (8, 16, 16)


def test_dense_3x3_conv_256_to_256_occupies_144_isaac_crossbars():
    assert load_hw_spec("isaac").dense_crossbars(2304, 256) == 18 * 8 == 144


def test_dense_3x3_conv_256_to_256_occupies_36_prime_crossbars():
    assert load_hw_spec("prime").dense_crossbars(2304, 256) == 9 * 4 == 36


@pytest.mark.parametrize("overrides, expected", [
    ({"ou_rows": 256}, ("OU rows", "256", "128")),
    ({"ou_cols": 256}, ("OU columns", "256")),
    ({"ou_rows": 12}, ("OU rows", "12", "divide")),
    ({"ou_cols": 12}, ("OU columns", "12", "divide")),
    ({"cell_bits": 16}, ("hw.cell_bits", "16")),
    ({"xbar_rows": 0}, ("hw.xbar_rows", "0")),
    ({"ou_cols": -8}, ("hw.ou_cols", "-8")),
    ({"weight_bits": 0}, ("hw.weight_bits", "0")),
    ({"adc_bits": 0}, ("hw.adc_bits", "0")),
    ({"signed": "twos"}, ("hw.signed", "twos")),
    ({"colour": "red"}, ("hw.colour",)),
    ({"costs": {"adc_energy_pj": -1.0}}, ("adc_energy_pj", "-1")),
])
def test_an_invalid_spec_names_the_field_and_the_value(overrides, expected):
    with pytest.raises(HardwareSpecError) as error:
        load_hw_spec("isaac", **overrides)
    for fragment in expected:
        assert fragment in str(error.value)


def test_an_unknown_preset_lists_the_known_ones():
    with pytest.raises(HardwareSpecError, match=r"unknown hardware preset 'isaak'.*isaac.*prime"):
        load_hw_spec("isaak")


def test_spec_errors_are_value_errors():
    assert issubclass(HardwareSpecError, ValueError)
