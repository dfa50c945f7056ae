"""The dislocation problem, shown (docs/hardware-model.md): compacted OUs need their input index tables.

For random layers and random masks, the compacted layout executed with its index tables
equals the masked dense layer on the simulator's dense (identity) mapping, bit for bit, since
isaac's ADC is lossless for 8 x 8 OUs (8 rows * 3 * 1 = 24 <= 255); fed by wordline position
instead, as a data path without index tables would, it computes something else.
"""

import pytest
import torch

from hw.layout_types import PackedLayer
from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from mapping.granularity import segments_of
from mapping.packing import pack_layer, packed_layer

ISAAC = load_hw_spec("isaac")
WIDTH = {"ou_row": ISAAC.weight_cols_per_ou, "crossbar_row": ISAAC.weight_cols_per_crossbar}


def random_layer(seed: int, granularity: str):
    """A random matrix and random mask, and both mappings of the masked matrix.

    The mask keeps random row segments of the granularity's groups (half of them) and, inside
    kept segments, random cells (90%): any mask the packer may meet.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = int(torch.randint(20, 400, (1,), generator=generator))
    cols = int(torch.randint(1, 80, (1,), generator=generator))
    width = WIDTH[granularity]
    segments = torch.rand(-(-cols // width), rows, generator=generator) < 0.5
    cells = torch.rand(rows, cols, generator=generator) < 0.9
    mask = segments.repeat_interleave(width, dim=0)[:cols].T & cells
    masked = torch.randn(rows, cols, generator=generator) * mask
    keep = segments_of(mask.numpy(), width)
    slots = pack_layer(keep, cols, granularity, ISAAC).slots
    x = torch.randn(16, rows, generator=generator)
    return x, packed_layer(masked.T, slots, ISAAC), PackedLayer.dense(masked, ISAAC)


@pytest.mark.parametrize("granularity", ["ou_row", "crossbar_row"])
@pytest.mark.parametrize("seed", range(6))
def test_indexed_layout_equals_the_masked_dense_layer_exactly(seed, granularity):
    x, packed, dense = random_layer(seed, granularity)
    simulator = CrossbarSimulator(ISAAC)
    assert ISAAC.adc_lossless
    assert torch.equal(simulator.matmul(x, packed), simulator.matmul(x, dense))


@pytest.mark.parametrize("granularity", ["ou_row", "crossbar_row"])
@pytest.mark.parametrize("seed", range(6))
def test_positional_feeding_of_the_same_cells_gives_wrong_outputs(seed, granularity):
    x, packed, dense = random_layer(seed, granularity)
    simulator = CrossbarSimulator(ISAAC)
    reference = simulator.matmul(x, dense)
    dislocated = simulator.matmul(x, packed.with_positional_feeding())
    assert (dislocated - reference).abs().max() > 0.1 * reference.abs().max()


def test_indexed_layout_is_exact_on_the_ou_level_path_too():
    x, packed, dense = random_layer(7, "ou_row")
    simulator = CrossbarSimulator(ISAAC, elide_unsaturable=False)
    assert torch.equal(simulator.matmul(x, packed, path="ou"), simulator.matmul(x, dense, path="ou"))


def test_a_compacted_conv_layer_equals_the_masked_dense_conv():
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(12, 5, 3, 3, generator=generator)
    weight *= torch.rand(weight.shape, generator=generator) < 0.5
    masked = weight.reshape(12, -1).T  # R = 45 rows in im2col order, C = 12
    keep = segments_of((masked != 0).numpy(), ISAAC.weight_cols_per_ou)
    packed = packed_layer(masked.T, pack_layer(keep, 12, "ou_row", ISAAC).slots, ISAAC)
    x = torch.randn(2, 5, 9, 9, generator=generator)
    simulator = CrossbarSimulator(ISAAC)
    indexed = simulator.conv2d(x, packed, 3, padding=1)
    assert torch.equal(indexed, simulator.conv2d(x, PackedLayer.dense(masked, ISAAC), 3, padding=1))
    assert not torch.allclose(simulator.conv2d(x, packed.with_positional_feeding(), 3, padding=1), indexed,
                              atol=1e-2)
