"""Compaction and packing: index tables and crossbar counts by hand (docs/hardware-model.md).

isaac: 128 x 128 crossbars, OU 8 x 8, 4 cells per weight -> 2 weight columns per OU group,
32 per crossbar block, (128/8) * (128/8) = 256 OU slots per crossbar.
"""

import numpy as np
import pytest
import torch

from hw.spec import load_hw_spec
from mapping.granularity import prune_mask, segment_mask, segments_of
from mapping.packing import (
    dense_keep,
    pack_layer,
    packed_layer,
    share_crossbars,
    total_crossbars,
    utilization,
)

ISAAC = load_hw_spec("isaac")


def packing_of(matrix: torch.Tensor, ratio: float, granularity: str):
    keep = segment_mask(matrix.T.contiguous(), ratio, granularity, ISAAC)
    return pack_layer(keep, matrix.shape[1], granularity, ISAAC)


def test_ou_row_slots_fill_crossbars_regardless_of_group():
    # R=300, C=64, ratio 0.5: 32 groups keep 150 rows -> ceil(150/8) = 19 slots each,
    # 608 slots -> ceil(608/256) = 3 crossbars (dense: ceil(300/128) * ceil(64/32) = 6).
    packing = packing_of(torch.randn(300, 64), 0.5, "ou_row")
    assert packing.kept_rows.tolist() == [150] * 32
    assert packing.slots.slots == 608
    assert packing.crossbars == 3
    assert ISAAC.dense_crossbars(300, 64) == 6


def test_crossbar_row_blocks_occupy_crossbars_of_their_own():
    # R=300, C=64, ratio 0.5: 2 blocks keep 150 rows -> 2 * ceil(150/128) = 4 crossbars.
    packing = packing_of(torch.randn(300, 64), 0.5, "crossbar_row")
    assert packing.kept_rows.tolist() == [150, 150]
    assert packing.crossbars == 4


def test_at_ratio_zero_crossbar_row_is_the_dense_mapping_and_ou_row_packs_tails_tighter():
    # crossbar_row: 2 blocks * ceil(300/128) = 6 = dense. ou_row: 32 * ceil(300/8) = 1216 slots
    # -> 5 crossbars, because the 44-row tails of the row blocks share crossbars.
    assert packing_of(torch.randn(300, 64), 0.0, "crossbar_row").crossbars == 6
    assert packing_of(torch.randn(300, 64), 0.0, "ou_row").crossbars == 5


def test_compaction_moves_kept_rows_to_consecutive_wordlines_with_their_index():
    keep = np.array([[True, False, True, False, False, False, False, False, False, True],
                     [False, True, False, True, False, False, False, False, False, False]])
    packing = pack_layer(keep, 4, "ou_row", ISAAC)
    assert packing.slots.input_index.tolist() == [[0, 2, 9, -1, -1, -1, -1, -1],
                                                  [1, 3, -1, -1, -1, -1, -1, -1]]
    assert packing.slots.output_group.tolist() == [0, 1]
    assert packing.slots.crossbar.tolist() == [0, 0]
    assert packing.slots.position.tolist() == [0, 1]


def test_crossbar_row_shares_one_index_table_across_the_blocks_ou_columns():
    # 4 columns = one block with 2 OU columns; rows 1 and 3 kept -> 1 chunk x 2 OU columns.
    keep = np.array([[False, True, False, True]])
    packing = pack_layer(keep, 4, "crossbar_row", ISAAC)
    assert packing.slots.input_index[:, :3].tolist() == [[1, 3, -1], [1, 3, -1]]
    assert packing.slots.output_group.tolist() == [0, 1]
    assert packing.slots.position.tolist() == [0, 1]  # OU row 0, OU columns 0 and 1


def test_crossbar_row_starts_a_new_crossbar_every_128_kept_rows():
    packing = pack_layer(np.ones((1, 200), bool), 2, "crossbar_row", ISAAC)  # 25 chunks, 1 OU column
    assert packing.crossbars == 2
    assert np.bincount(packing.slots.crossbar).tolist() == [16, 9]
    assert packing.slots.position[15] == 15 * 16 and packing.slots.position[16] == 0


def test_slots_never_exceed_a_crossbar_or_share_a_position():
    rng = np.random.default_rng(0)
    for granularity, width in (("ou_row", 2), ("crossbar_row", 32)):
        cols = 70
        keep = rng.random((-(-cols // width), 517)) < 0.6
        slots = pack_layer(keep, cols, granularity, ISAAC).slots
        where = slots.crossbar.astype(np.int64) * 256 + slots.position
        assert np.unique(where).size == slots.slots
        assert slots.position.max() < 256


def test_shared_packing_lets_small_layers_share_a_crossbar():
    # Two layers of 16 slots each: 1 crossbar each per layer, 1 crossbar shared.
    small = [pack_layer(np.ones((2, 64), bool), 4, "ou_row", ISAAC) for _ in range(2)]
    assert total_crossbars(small, ISAAC, "per_layer") == 2
    assert share_crossbars(small, ISAAC) == 1
    assert small[1].slots.crossbar.tolist() == [0] * 16
    assert small[1].slots.position.tolist() == list(range(16, 32))


def test_shared_packing_keeps_layers_without_ou_output_indices_on_crossbars_of_their_own():
    # 16 ou_row slots go to the shared pool (1 crossbar); an unpruned (dense) and a crossbar_row
    # layer have no per-OU output index, so each keeps its own crossbar: 3 in all.
    pooled = pack_layer(np.ones((2, 64), bool), 4, "ou_row", ISAAC)
    own = [pack_layer(np.ones((1, 8), bool), 4, "crossbar_row", ISAAC), pack_layer(dense_keep(8, 4, ISAAC), 4,
                                                                                   "dense", ISAAC)]
    assert share_crossbars([pooled, *own], ISAAC) == 3 == total_crossbars([pooled, *own], ISAAC, "shared")


def test_utilization_counts_kept_weight_cells_over_occupied_cells():
    # R=256, C=64 at 0.5, ou_row: 32 groups x 128 rows = 512 slots = 2 full crossbars.
    full = packing_of(torch.randn(256, 64), 0.5, "ou_row")
    assert full.crossbars == 2
    assert utilization([full], full.crossbars, ISAAC) == 1.0
    # R=10, C=2 dense: 20 weights * 4 cells in one 128 x 128 crossbar.
    tiny = pack_layer(dense_keep(10, 2, ISAAC), 2, "dense", ISAAC)
    assert utilization([tiny], 1, ISAAC) == 80 / 16384


def test_packed_layer_holds_exactly_the_masked_matrix():
    torch.manual_seed(0)
    matrix = torch.randn(37, 11)
    mask = torch.rand(37, 11) < 0.4  # arbitrary cells, not whole segments
    keep = segments_of(mask.numpy(), ISAAC.weight_cols_per_ou)
    slots = pack_layer(keep, 11, "ou_row", ISAAC).slots
    layer = packed_layer((matrix * mask).T, slots, ISAAC)
    assert torch.equal(layer.to_dense(), matrix * mask)


def test_a_weight_booked_by_two_slots_reads_back_as_their_sum():
    # Two slots of column group 0 both feed input row 3 (and one more row each): a broken layout
    # must show up in the matrix the simulator multiplies, not be overwritten by one of its slots.
    from hw.layout_types import PackedLayer

    width = ISAAC.weight_cols_per_ou
    weights = torch.arange(2 * 2 * width, dtype=torch.float32).reshape(2, 2, width) + 1
    input_index = torch.tensor([[3, 0], [3, -1]])
    layer = PackedLayer(5, width, width, weights, input_index, torch.tensor([0, 0]))
    dense = layer.to_dense()
    assert torch.equal(dense[3], weights[0, 0] + weights[1, 0])
    assert torch.equal(dense[0], weights[0, 1])
    assert not dense[[1, 2, 4]].any()


def test_crossbar_row_packed_layer_holds_the_masked_matrix():
    torch.manual_seed(1)
    matrix = torch.randn(300, 45)
    mask = prune_mask(matrix, 0.6, "crossbar_row", ISAAC)
    keep = segments_of(mask.numpy(), ISAAC.weight_cols_per_crossbar)
    slots = pack_layer(keep, 45, "crossbar_row", ISAAC).slots
    layer = packed_layer((matrix * mask).T, slots, ISAAC)
    assert torch.equal(layer.to_dense(), matrix * mask)


@pytest.mark.parametrize("granularity", ["ou_row", "crossbar_row"])
def test_pricing_does_not_build_the_slot_table_and_agrees_with_it_once_built(granularity):
    packing = packing_of(torch.randn(700, 300, generator=torch.Generator().manual_seed(3)), 0.37, granularity)
    assert callable(packing.slot_table)  # crossbars and kept weights came from the kept-row counts alone
    crossbars = packing.crossbars
    slots = packing.slots
    assert not callable(packing.slot_table) and packing.slots is slots
    assert crossbars == len(np.unique(slots.crossbar)) == int(slots.crossbar.max()) + 1
