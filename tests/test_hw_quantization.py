"""Quantization, bit slicing and DAC feeding (hw/quantization.py) against values worked out by hand.

Independent of the simulator: every expected number below is written out, with its arithmetic
beside it, rather than computed by the functions under test.
"""

import pytest
import torch

from hw.quantization import (
    feed_inputs,
    quantize_inputs,
    quantize_weights,
    shift_matrix,
    slice_weights,
    weight_offset,
)
from hw.spec import HardwareSpec

OFFSET = HardwareSpec(weight_bits=8, cell_bits=2, input_bits=4, dac_bits=1, signed="offset")
DIFFERENTIAL = HardwareSpec(weight_bits=8, cell_bits=2, input_bits=4, dac_bits=1, signed="differential")


def test_weights_are_quantized_symmetrically_on_the_largest_magnitude():
    # 4 bits: levels -7..7; scale = max|w| / 7 = 1/7; 1.0 -> 7, -0.4 -> -2.8 -> -3, 0.1 -> 0.7 -> 1.
    quantized = quantize_weights(torch.tensor([1.0, -0.4, 0.1]), bits=4)
    assert quantized.levels.tolist() == [7.0, -3.0, 1.0]
    assert quantized.scale == pytest.approx(1 / 7)


def test_all_zero_weights_keep_a_unit_scale():
    quantized = quantize_weights(torch.zeros(3), bits=8)
    assert quantized.levels.tolist() == [0.0, 0.0, 0.0] and quantized.scale == 1.0


def test_each_input_row_has_its_own_scale_and_a_non_negative_row_uses_the_unsigned_range():
    # Row 0 is non-negative: 4 bits unsigned, levels 0..15, scale 1/15; 0.4 -> 6.
    # Row 1 has a negative value: levels -7..7, scale 2/7; -2 -> -7, 1.2 -> 4.2 -> 4.
    quantized = quantize_inputs(torch.tensor([[0.0, 1.0, 0.4], [-2.0, 1.2, 0.0]]), bits=4)
    assert quantized.levels.tolist() == [[0.0, 15.0, 6.0], [-7.0, 4.0, 0.0]]
    assert quantized.scale.tolist() == pytest.approx([1 / 15, 2 / 7])
    assert quantized.signed.tolist() == [False, True]


def test_inputs_must_be_a_matrix():
    with pytest.raises(ValueError, match="2-D"):
        quantize_inputs(torch.zeros(3), bits=8)


def test_offset_cells_hold_the_biased_weight_least_significant_slice_first():
    # Offset 2^7 = 128: -3 is stored as 125 = 01 11 11 01 (2-bit cells), 5 as 133 = 10 00 01 01.
    assert weight_offset(OFFSET) == 128
    cells = slice_weights(torch.tensor([[-3.0, 5.0]]), OFFSET)
    assert cells.tolist() == [[1.0, 3.0, 3.0, 1.0, 1.0, 1.0, 0.0, 2.0]]


def test_differential_cells_split_a_weight_into_a_positive_and_a_negative_array():
    # -3: positive array 0 -> cells 0 0 0 0, negative array 3 -> cells 3 0 0 0; 6 = 01 10 -> 2 1 0 0, then 0s.
    assert weight_offset(DIFFERENTIAL) == 0
    cells = slice_weights(torch.tensor([[-3.0, 6.0]]), DIFFERENTIAL)
    assert cells.tolist() == [[0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]


def test_the_shift_and_add_weights_each_slice_by_its_place_value():
    # 2-bit cells: slice s counts 4^s; a differential array's negative half counts against.
    assert shift_matrix(OFFSET, 1).flatten().tolist() == [1.0, 4.0, 16.0, 64.0]
    assert shift_matrix(DIFFERENTIAL, 1).flatten().tolist() == [1.0, 4.0, 16.0, 64.0, -1.0, -4.0, -16.0, -64.0]


def test_a_signed_input_is_fed_in_twos_complement_one_bit_per_pass():
    # The row [-3, 3, 7] has scale 7/7 = 1, so its levels are the values themselves.
    # -3 in 4-bit two's complement is 1101: bits 1, 0, 1, 1 (LSB first) at weights 1, 2, 4, -8: 1 + 4 - 8 = -3.
    fed = feed_inputs(quantize_inputs(torch.tensor([[-3.0, 3.0, 7.0]]), bits=4), OFFSET)
    assert fed.code().tolist() == [[13, 3, 7]]
    assert fed.pass_weights[:, 0].tolist() == [1.0, 2.0, 4.0, -8.0]
    assert fed.value.tolist() == [[-3.0, 3.0, 7.0]] and fed.digital_offset.tolist() == [0.0]


def test_with_wider_dacs_a_signed_row_is_fed_in_offset_binary():
    # 2-bit DACs, 4-bit inputs: code = level + 8; passes weigh 1 and 4; -3 -> 5 = 01 01, 3 -> 11 = 10 11,
    # 7 -> 15 = 11 11.
    spec = HardwareSpec(weight_bits=8, cell_bits=2, input_bits=4, dac_bits=2, signed="offset")
    fed = feed_inputs(quantize_inputs(torch.tensor([[-3.0, 3.0, 7.0]]), bits=4), spec)
    assert fed.value.tolist() == [[5.0, 11.0, 15.0]] and fed.digital_offset.tolist() == [8.0]
    assert fed.pass_weights[:, 0].tolist() == [1.0, 4.0]


def test_a_quantized_dot_product_worked_by_hand():
    # w = [1.0, -0.4, 0.1] -> levels [7, -3, 1], scale 1/7; x = [0.0, 1.0, 0.4] -> [0, 15, 6], scale 1/15.
    # Integer dot product 7*0 - 3*15 + 1*6 = -39; times 1/7 * 1/15 = -0.3714..., against the exact -0.36.
    weights = quantize_weights(torch.tensor([1.0, -0.4, 0.1]), bits=4)
    inputs = quantize_inputs(torch.tensor([[0.0, 1.0, 0.4]]), bits=4)
    integer = float(inputs.levels[0] @ weights.levels)
    assert integer == -39.0
    assert integer * weights.scale * float(inputs.scale[0]) == pytest.approx(-39 / 105)
