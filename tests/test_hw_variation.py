"""The weight-domain variation model reads the cells the OU model programs (hw/variation.py)."""

import pytest
import torch

from hw.layout_types import PackedLayer
from hw.programming import NonIdealities, quantize_layer
from hw.quantization import quantize_inputs
from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from hw.variation import effective_matrix

ROWS, COLS, SAMPLES = 50, 13, 6
IDEAL = NonIdealities()
STUCK = NonIdealities(stuck_at_zero=0.05, stuck_at_one=0.05)


def matrix(seed=0, rows=ROWS, cols=COLS):
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))


def compacted(weights, kept, spec):
    """The kept rows of `weights` in OU slots reading them through index tables (ou_row compaction)."""
    width, ou_rows = spec.weight_cols_per_ou, spec.ou_rows
    groups = -(-weights.shape[1] // width)
    slots = -(-len(kept) // ou_rows)
    index = torch.full((slots, ou_rows), -1, dtype=torch.int64)
    index.view(-1)[: len(kept)] = kept
    padded = torch.zeros(weights.shape[0], groups * width)
    padded[:, : weights.shape[1]] = weights
    slot_weights, slot_index, slot_group = [], [], []
    for group in range(groups):
        block = padded[:, group * width: (group + 1) * width]
        slot_weights.append(torch.where(index[..., None] >= 0, block[index.clamp(min=0)], torch.zeros(())))
        slot_index.append(index)
        slot_group.append(torch.full((slots,), group))
    return PackedLayer(weights.shape[0], weights.shape[1], width, torch.cat(slot_weights), torch.cat(slot_index),
                       torch.cat(slot_group))


def layers(spec):
    weights = matrix()
    kept = torch.tensor([0, 3, 4, 7, 9, 10, 12, 20, 21, 22, 30, 31, 33, 40, 41, 47, 49])
    return {"dense": PackedLayer.dense(weights, spec), "compacted": compacted(weights, kept, spec)}


@pytest.mark.parametrize("preset", ["isaac", "prime"])
@pytest.mark.parametrize("kind", ["dense", "compacted"])
def test_ideal_cells_read_back_as_the_quantized_matrix(preset, kind):
    spec = load_hw_spec(preset)
    layer = layers(spec)[kind]
    quantized = quantize_layer(layer, spec)
    assert torch.equal(effective_matrix(layer, spec, IDEAL, seed=3), quantized.matrix * quantized.weights.scale)


@pytest.mark.parametrize("preset", ["isaac", "prime"])
@pytest.mark.parametrize("kind", ["dense", "compacted"])
def test_with_stuck_cells_the_ou_model_computes_quantized_inputs_times_the_effective_matrix(preset, kind):
    spec = load_hw_spec(preset)
    layer = layers(spec)[kind]
    x = torch.randn(SAMPLES, ROWS, generator=torch.Generator().manual_seed(1))
    simulated = CrossbarSimulator(spec, stuck_at_zero=STUCK.stuck_at_zero, stuck_at_one=STUCK.stuck_at_one,
                                  seed=11).matmul(x, layer, path="ou")
    inputs = quantize_inputs(x, spec.input_bits)
    fed = inputs.levels * inputs.scale[:, None]
    expected = fed @ effective_matrix(layer, spec, STUCK, seed=11)
    assert not torch.allclose(expected, fed @ effective_matrix(layer, spec, IDEAL, 0))
    torch.testing.assert_close(simulated, expected, rtol=1e-4, atol=1e-4)


def noisy_outputs(sigma, seed=5):
    spec = load_hw_spec("isaac")
    layer = layers(spec)["dense"]
    noise = NonIdealities(sigma=sigma)
    x = torch.randn(SAMPLES, ROWS, generator=torch.Generator().manual_seed(2))
    simulated = CrossbarSimulator(spec, noise_sigma=sigma, seed=seed).matmul(x, layer, path="ou")
    inputs = quantize_inputs(x, spec.input_bits)
    fed = inputs.levels * inputs.scale[:, None]
    model = fed @ effective_matrix(layer, spec, noise, seed=seed)
    ideal = fed @ effective_matrix(layer, spec, IDEAL, seed=seed)
    return spec, layer, inputs, simulated, model, ideal


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.2])
def test_with_conductance_noise_the_ou_model_differs_only_by_the_adc_rounding(sigma):
    # Each partial sum is rounded by at most half a level; a column sums that error over its
    # slots' cells (times their shift) and the input passes (times 2^pass).
    spec, layer, inputs, simulated, model, _ = noisy_outputs(sigma)
    shifts = sum(2 ** (spec.cell_bits * s) for s in range(spec.slices))
    slots_per_column = -(-ROWS // spec.ou_rows)
    bound = 0.5 * (2**spec.input_bits - 1) * shifts * slots_per_column
    bound = bound * inputs.scale[:, None] * quantize_layer(layer, spec).weights.scale
    assert ((simulated - model).abs() <= bound * (1 + 1e-5)).all()


def test_small_conductance_noise_is_masked_by_the_adc_and_not_by_the_weight_domain_model():
    # What hw/variation.py leaves out, shown: below half a level the ADC rounds the noise away.
    _, _, _, simulated, model, ideal = noisy_outputs(0.02)
    assert (simulated - ideal).abs().mean() < 0.1 * (model - ideal).abs().mean()


@pytest.mark.parametrize("nonideal", [STUCK, NonIdealities(sigma=0.1)], ids=["stuck", "sigma"])
def test_a_draw_is_paired_by_weight_position_across_layouts(nonideal):
    # The same rows kept, stored densely (pruned rows as zeros) or compacted: every kept weight sees
    # the same variation in both, so two policies differ by what they prune, not by their cells.
    spec = load_hw_spec("isaac")
    kept = torch.tensor([1, 2, 8, 9, 17, 25, 26, 40, 44])
    weights = matrix(seed=4)
    masked = torch.zeros_like(weights)
    masked[kept] = weights[kept]
    dense = effective_matrix(PackedLayer.dense(masked, spec), spec, nonideal, seed=9)
    packed = effective_matrix(compacted(masked, kept, spec), spec, nonideal, seed=9)
    torch.testing.assert_close(dense[kept], packed[kept], rtol=0, atol=0)
    pruned = torch.ones(ROWS, dtype=torch.bool)
    pruned[kept] = False
    assert torch.equal(packed[pruned], torch.zeros_like(packed[pruned]))  # no cell, no variation


def test_a_draw_repeats_with_its_seed_and_changes_with_another():
    spec = load_hw_spec("isaac")
    layer = layers(spec)["compacted"]
    noise = NonIdealities(sigma=0.05, stuck_at_zero=0.01)
    first = effective_matrix(layer, spec, noise, seed=7)
    assert torch.equal(first, effective_matrix(layer, spec, noise, seed=7))
    assert not torch.equal(first, effective_matrix(layer, spec, noise, seed=8))
