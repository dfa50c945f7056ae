"""The functional simulator computes what the crossbars compute (docs/hardware-model.md)."""

import pytest
import torch
import torch.nn.functional as F

from hw.layout_types import PackedLayer
from hw.quantization import quantize_inputs, quantize_weights
from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec

ROWS, COLS, SAMPLES = 50, 13, 6  # deliberately not multiples of any OU or crossbar size


def operands(seed=0, nonnegative=False):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(ROWS, COLS, generator=generator)
    x = torch.randn(SAMPLES, ROWS, generator=generator)
    return weights, (x.relu() if nonnegative else x)


def integer_reference(x, weights, spec):
    """Dequantized integer matmul of the quantized operands, computed the same way as the simulator."""
    inputs, quantized = quantize_inputs(x, spec.input_bits), quantize_weights(weights, spec.weight_bits)
    exact = inputs.levels.double() @ quantized.levels.double()
    return exact.float() * (inputs.scale.double() * quantized.scale).float()[:, None]


LOSSLESS_SPECS = [
    ("isaac", {}),
    ("prime", {}),  # differential arrays, 4-bit cells
    ("isaac16", {}),  # 16-bit weights and inputs
    ("isaac", {"dac_bits": 2, "adc_bits": 9}),  # 2-bit DAC: signed inputs in offset binary
]


@pytest.mark.parametrize("preset, overrides", LOSSLESS_SPECS)
@pytest.mark.parametrize("nonnegative", [False, True], ids=["signed-inputs", "relu-inputs"])
def test_lossless_adc_equals_the_integer_matmul_exactly_on_every_path(preset, overrides, nonnegative):
    spec = load_hw_spec(preset, **overrides)
    assert spec.adc_lossless
    weights, x = operands(nonnegative=nonnegative)
    layer = PackedLayer.dense(weights, spec)
    expected = integer_reference(x, weights, spec)
    simulator = CrossbarSimulator(spec)
    every_partial_sum = CrossbarSimulator(spec, elide_unsaturable=False)
    assert torch.equal(simulator.matmul(x, layer, path="fast"), expected)
    assert torch.equal(simulator.matmul(x, layer, path="ou"), expected)
    assert torch.equal(every_partial_sum.matmul(x, layer, path="ou"), expected)


def adc_error(adc_bits):
    """Dense non-negative inputs (most input bits set) so that wide OU partial sums occur."""
    spec = load_hw_spec("isaac", adc_bits=adc_bits)
    weights, _ = operands()
    x = torch.rand(SAMPLES, ROWS, generator=torch.Generator().manual_seed(9))
    simulated = CrossbarSimulator(spec).matmul(x, PackedLayer.dense(weights, spec))
    return simulated, integer_reference(x, weights, spec), x, weights


def test_a_saturating_adc_gives_an_error_that_shrinks_as_adc_bits_grow():
    # OU partial sums reach 8 rows * 3 (2-bit cells) = 24: 3 and 4 bits saturate, 5 bits do not.
    errors = [(sim - ref).abs().max().item() for sim, ref, _, _ in map(adc_error, (3, 4, 5))]
    assert errors[0] > errors[1] > 0
    assert errors[2] == 0


def test_a_saturating_adc_error_stays_within_its_worst_case():
    simulated, reference, x, weights = adc_error(4)
    inputs, quantized = quantize_inputs(x, 8), quantize_weights(weights, 8)
    # Each clipped partial sum loses at most 24 - 15; per output: ceil(50/8) = 7 slots,
    # shifted by 1 + 4 + 16 + 64 over slices and 1 + 2 + ... + 128 over passes.
    worst_integer = 7 * 85 * 255 * (24 - 15)
    bound = worst_integer * inputs.scale[:, None] * quantized.scale
    assert ((simulated - reference).abs() <= bound).all()


def test_saturation_only_loses_charge():
    simulated, reference, _, _ = adc_error(3)
    assert (simulated <= reference + 1e-6).all()  # offset weights, non-negative inputs: clipping lowers sums


def test_saturating_columns_are_simulated_exactly_as_with_every_partial_sum():
    spec = load_hw_spec("isaac", adc_bits=4)
    weights, x = operands()
    layer = PackedLayer.dense(weights, spec)
    elided = CrossbarSimulator(spec)
    reference = CrossbarSimulator(spec, elide_unsaturable=False)
    assert torch.equal(elided.matmul(x, layer), reference.matmul(x, layer))
    assert 0 < elided.cell_arrays(layer).analog_columns < elided.cell_arrays(layer).total_columns


def test_the_fast_path_refuses_a_saturating_adc():
    spec = load_hw_spec("isaac", adc_bits=4)
    weights, x = operands()
    with pytest.raises(ValueError, match="fast path is exact only"):
        CrossbarSimulator(spec).matmul(x, PackedLayer.dense(weights, spec), path="fast")


def test_ideal_devices_are_deterministic():
    spec = load_hw_spec("isaac")
    weights, x = operands()
    layer = PackedLayer.dense(weights, spec)
    first = CrossbarSimulator(spec, seed=1).matmul(x, layer, path="ou")
    assert torch.equal(first, CrossbarSimulator(spec, seed=2).matmul(x, layer, path="ou"))


def test_conductance_variation_repeats_with_its_seed_and_changes_with_another():
    spec = load_hw_spec("isaac")
    weights, x = operands()
    layer = PackedLayer.dense(weights, spec)
    first = CrossbarSimulator(spec, noise_sigma=0.05, seed=7).matmul(x, layer)
    again = CrossbarSimulator(spec, noise_sigma=0.05, seed=7).matmul(x, layer)
    other = CrossbarSimulator(spec, noise_sigma=0.05, seed=8).matmul(x, layer)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, integer_reference(x, weights, spec))


def test_cells_all_stuck_at_zero_leave_only_the_digital_offset_correction():
    # offset mode stores w + 128: with every cell at 0 each output is -128 * (sum of its inputs).
    spec = load_hw_spec("isaac")
    weights, x = operands(nonnegative=True)
    out = CrossbarSimulator(spec, stuck_at_zero=1.0).matmul(x, PackedLayer.dense(weights, spec))
    inputs, quantized = quantize_inputs(x, 8), quantize_weights(weights, 8)
    expected = -128 * inputs.levels.sum(dim=1) * inputs.scale * quantized.scale
    torch.testing.assert_close(out, expected[:, None].expand(SAMPLES, COLS), rtol=1e-6, atol=0)


def test_cells_all_stuck_at_one_store_the_largest_weight():
    # every cell at level 3 stores 255 = 127 + 128: each weight reads as +127.
    spec = load_hw_spec("isaac")
    weights, x = operands(nonnegative=True)
    out = CrossbarSimulator(spec, stuck_at_one=1.0).matmul(x, PackedLayer.dense(weights, spec))
    inputs, quantized = quantize_inputs(x, 8), quantize_weights(weights, 8)
    expected = 127 * inputs.levels.sum(dim=1) * inputs.scale * quantized.scale
    torch.testing.assert_close(out, expected[:, None].expand(SAMPLES, COLS), rtol=1e-6, atol=0)


def test_a_row_result_does_not_depend_on_the_rest_of_the_batch():
    spec = load_hw_spec("isaac")
    weights, x = operands()
    layer = PackedLayer.dense(weights, spec)
    simulator = CrossbarSimulator(spec)
    assert torch.equal(simulator.matmul(x, layer)[2:3], simulator.matmul(x[2:3], layer))


def compacted_layer(spec):
    """One OU slot holding 8 kept rows of a 16-row, 2-column matrix, as ou_row compaction stores them."""
    kept = torch.tensor([1, 3, 4, 7, 8, 10, 12, 15])
    dense = torch.zeros(16, 2)
    dense[kept] = torch.randn(8, 2, generator=torch.Generator().manual_seed(3))
    layer = PackedLayer(16, 2, spec.weight_cols_per_ou, dense[kept][None], kept[None], torch.tensor([0]))
    return layer, dense


def test_index_tables_feed_each_wordline_its_original_input():
    spec = load_hw_spec("isaac")
    layer, dense = compacted_layer(spec)
    x = torch.randn(SAMPLES, 16, generator=torch.Generator().manual_seed(4))
    assert torch.equal(CrossbarSimulator(spec).matmul(x, layer), integer_reference(x, dense, spec))


def test_positional_feeding_of_a_compacted_layer_gives_wrong_outputs():
    spec = load_hw_spec("isaac")
    layer, dense = compacted_layer(spec)
    x = torch.randn(SAMPLES, 16, generator=torch.Generator().manual_seed(4))
    wrong = CrossbarSimulator(spec).matmul(x, layer.with_positional_feeding())
    assert not torch.allclose(wrong, integer_reference(x, dense, spec), atol=1e-3)


def test_conv2d_matches_f_conv2d_of_the_dequantized_operands():
    spec = load_hw_spec("isaac")
    generator = torch.Generator().manual_seed(5)
    weight = torch.randn(5, 3, 3, 3, generator=generator)
    x = torch.randn(2, 3, 9, 9, generator=generator)
    bias = torch.randn(5, generator=generator)
    layer = PackedLayer.dense(weight.reshape(5, -1).T, spec)  # rows in im2col order cin, ki, kj
    out = CrossbarSimulator(spec).conv2d(x, layer, 3, stride=2, padding=1, bias=bias)
    per_image = quantize_inputs(x.reshape(2, -1), 8)  # one scale per image
    x_dequantized = (per_image.levels * per_image.scale[:, None]).reshape(x.shape)
    w_quantized = quantize_weights(weight, 8)
    expected = F.conv2d(x_dequantized, w_quantized.levels * w_quantized.scale, bias, stride=2, padding=1)
    assert out.shape == (2, 5, 5, 5)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("channels, scale", [(6, 1.0), (96, 1.0), (96, 1e-3)],
                         ids=["small", "direct-convolution", "falls-back-to-unfolding"])
@pytest.mark.parametrize("nonnegative", [False, True], ids=["signed-inputs", "relu-inputs"])
def test_conv2d_on_the_fast_path_gives_the_ou_models_integers(channels, scale, nonnegative, monkeypatch):
    # The fast path convolves the quantized image directly where that is provably exact; the OU
    # path always unfolds. Near-constant images (scale 1e-3 on top of an offset) quantize to levels
    # near the top of the range, whose patch sums are too large for one float32 convolution.
    import hw.simulator as simulator_module

    spec = load_hw_spec("isaac")
    generator = torch.Generator().manual_seed(channels)
    weight = torch.randn(10, channels, 3, 3, generator=generator)
    x = 1.0 + scale * torch.randn(3, channels, 8, 8, generator=generator)
    x = x if nonnegative else x * torch.where(torch.rand(x.shape, generator=generator) < 0.5, -1.0, 1.0)
    layer = PackedLayer.dense(weight.reshape(10, -1).T.contiguous(), spec)
    routes = []  # what each direct-convolution attempt returned (None: unfolded instead)
    real = simulator_module.exact_integer_conv2d

    def recorded(*args, **kwargs):
        routes.append(real(*args, **kwargs))
        return routes[-1]

    monkeypatch.setattr(simulator_module, "exact_integer_conv2d", recorded)
    simulator = CrossbarSimulator(spec)
    fast = simulator.conv2d(x, layer, 3, stride=1, padding=1, path="fast")
    assert routes and (routes[-1] is None) == (scale < 1.0 and nonnegative)
    assert torch.equal(fast, simulator.conv2d(x, layer, 3, stride=1, padding=1, path="ou"))


def test_linear_keeps_leading_dimensions_and_adds_the_bias():
    spec = load_hw_spec("isaac")
    weights, x = operands()
    bias = torch.arange(COLS, dtype=torch.float32)
    simulator = CrossbarSimulator(spec)
    layer = PackedLayer.dense(weights, spec)
    out = simulator.linear(x.reshape(2, 3, ROWS), layer, bias)
    assert out.shape == (2, 3, COLS)
    assert torch.equal(out.reshape(SAMPLES, COLS), simulator.matmul(x, layer) + bias)


def test_an_input_of_the_wrong_width_is_rejected():
    spec = load_hw_spec("isaac")
    weights, _ = operands()
    with pytest.raises(ValueError, match=f"input must be \\[N, {ROWS}\\]"):
        CrossbarSimulator(spec).matmul(torch.zeros(2, ROWS + 1), PackedLayer.dense(weights, spec))


def test_an_unknown_path_is_rejected():
    spec = load_hw_spec("isaac")
    weights, x = operands()
    with pytest.raises(ValueError, match="path must be one of"):
        CrossbarSimulator(spec).matmul(x, PackedLayer.dense(weights, spec), path="analog")


def test_a_wide_layer_split_into_several_input_blocks_is_still_exact():
    # 200 columns = 100 OU groups of 8 cell columns sharing each index table: 800 columns per
    # table, more than one gathered block holds.
    spec = load_hw_spec("isaac")
    generator = torch.Generator().manual_seed(6)
    weights, x = torch.randn(16, 200, generator=generator), torch.randn(3, 16, generator=generator)
    every_partial_sum = CrossbarSimulator(spec, elide_unsaturable=False)
    out = every_partial_sum.matmul(x, PackedLayer.dense(weights, spec), path="ou")
    assert torch.equal(out, integer_reference(x, weights, spec))


@pytest.mark.parametrize("path", ["fast", "ou"])
def test_one_dot_product_worked_by_hand(path):
    # ISAAC, 8-bit weights and inputs. w = [1.0, -0.4, 0.1]: scale 1/127, levels 127, -50.8 -> -51, 12.7 -> 13.
    # x = [0, 1, 0.4] (non-negative): scale 1/255, levels 0, 255, 102.
    # 127*0 - 51*255 + 13*102 = -13,005 + 1,326 = -11,679; times 1/127 * 1/255 = -11,679 / 32,385.
    spec = load_hw_spec("isaac")
    layer = PackedLayer.dense(torch.tensor([[1.0], [-0.4], [0.1]]), spec)
    out = CrossbarSimulator(spec).matmul(torch.tensor([[0.0, 1.0, 0.4]]), layer, path=path)
    assert out.shape == (1, 1)
    assert float(out) == pytest.approx(-11679 / 32385, rel=1e-6)


@pytest.mark.parametrize("adc_bits", [3, 4])
@pytest.mark.parametrize("nonnegative", [False, True], ids=["signed-inputs", "relu-inputs"])
@pytest.mark.parametrize("seed", [1, 2])
def test_computing_only_the_partial_sums_that_can_clip_is_exact(adc_bits, nonnegative, seed, monkeypatch):
    """The saturating path bounds each (table, sample, pass) and computes only the partial sums that can
    exceed the ADC's range; small blocks force it through several table and pair blocks."""
    import hw.ou_engine as engine

    monkeypatch.setattr(engine, "PAIR_CELLS", 64)
    monkeypatch.setattr(engine, "BLOCK_BYTES", 4096)
    spec = load_hw_spec("isaac", adc_bits=adc_bits)
    weights, x = operands(seed=seed, nonnegative=nonnegative)
    x = x * (torch.rand(SAMPLES, ROWS, generator=torch.Generator().manual_seed(seed)) > 0.3)  # some zeros
    compacted = PackedLayer.dense(weights, spec)
    keep = torch.rand(compacted.input_index.shape, generator=torch.Generator().manual_seed(seed)) > 0.25
    compacted = PackedLayer(ROWS, COLS, compacted.group_width, compacted.weights * keep[..., None],
                            torch.where(keep, compacted.input_index, -1), compacted.output_group)
    for layer in (PackedLayer.dense(weights, spec), compacted):
        elided = CrossbarSimulator(spec)
        reference = CrossbarSimulator(spec, elide_unsaturable=False)
        assert elided.cell_arrays(layer).analog_columns > 0
        assert torch.equal(elided.matmul(x, layer, "ou"), reference.matmul(x, layer, "ou"))
