"""Granularities turn a ratio into a mask by magnitude, group by group (docs/hardware-model.md).

On `isaac` a weight is 4 cells (8-bit weights in 2-bit cells, offset encoding), so an OU of
8 cell columns holds 2 weight columns and a crossbar of 128 cell columns holds 32.
"""

import numpy as np
import pytest
import torch

from hw.spec import load_hw_spec
from mapping.granularity import GranularityError, prune_mask, removed_units, weight_sparsity

ISAAC = load_hw_spec("isaac")

# Two OU groups (columns 0-1 and 2-3). Squared segment norms:
#   group 0: rows 0..3 -> 2, 0.02, 9, 0.25   -> ratio 0.5 removes rows 1 and 3
#   group 1: rows 0..3 -> 0.02, 8, 0.04, 1   -> ratio 0.5 removes rows 0 and 2
HAND = torch.tensor([[1.0, 1.0, 0.1, 0.1],
                     [0.1, 0.1, 2.0, 2.0],
                     [3.0, 0.0, 0.0, 0.2],
                     [0.0, 0.5, 1.0, 0.0]])


def test_ou_row_removes_the_smallest_row_segments_of_each_ou_group():
    mask = prune_mask(HAND, 0.5, "ou_row", ISAAC)
    expected = torch.tensor([[True, True, False, False],
                             [False, False, True, True],
                             [True, True, False, False],
                             [False, False, True, True]])
    assert torch.equal(mask, expected)


def test_crossbar_row_removes_whole_rows_of_a_crossbar_wide_block():
    # All four columns lie in one 32-wide block; row norms^2: 2.02, 8.02, 9.04, 1.25.
    mask = prune_mask(HAND, 0.5, "crossbar_row", ISAAC)
    assert mask.tolist() == [[False] * 4, [True] * 4, [True] * 4, [False] * 4]


def test_crossbar_row_blocks_are_32_weight_columns_wide_on_isaac():
    matrix = torch.ones(4, 40)
    matrix[0, :32] = 0.0  # the first block's row 0 is smallest
    matrix[3, 32:] = 0.0  # the second (8-column) block's row 3 is smallest
    mask = prune_mask(matrix, 0.25, "crossbar_row", ISAAC)
    assert not mask[0, :32].any() and mask[0, 32:].all()
    assert not mask[3, 32:].any() and mask[3, :32].all()
    assert int(mask.sum()) == 160 - 32 - 8


def test_each_group_removes_round_ratio_times_rows_even_with_ties():
    matrix = torch.zeros(10, 6)  # every segment ties at norm 0
    mask = prune_mask(matrix, 0.3, "ou_row", ISAAC)
    assert mask.sum(dim=0).tolist() == [7] * 6


def test_a_ratio_below_one_always_keeps_one_row():
    assert removed_units(0.99, 3) == 2
    assert removed_units(0.5, 5) == 3  # round half up: 2.5 -> 3
    assert removed_units(0.0, 5) == 0


def test_ratio_zero_keeps_everything():
    assert bool(prune_mask(torch.randn(7, 5), 0.0, "ou_row", ISAAC).all())


def test_realized_sparsity_is_reported_from_masks():
    mask = prune_mask(HAND, 0.5, "ou_row", ISAAC)
    assert weight_sparsity([mask.numpy()]) == 0.5
    assert weight_sparsity([np.ones((3, 3), bool), np.zeros((1, 3), bool)]) == 0.25


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan")])
def test_a_ratio_outside_zero_one_is_rejected_naming_it(ratio):
    with pytest.raises(GranularityError, match=r"\[0, 1\)") as error:
        prune_mask(HAND, ratio, "ou_row", ISAAC)
    assert repr(ratio) in str(error.value)


def test_an_unknown_granularity_is_rejected_listing_the_valid_ones():
    with pytest.raises(GranularityError, match="'weight'.*ou_row.*crossbar_row.*filter.*channel"):
        prune_mask(HAND, 0.5, "weight", ISAAC)


def test_structural_granularities_have_no_matrix_mask():
    with pytest.raises(GranularityError, match="prune_structural"):
        prune_mask(HAND, 0.5, "filter", ISAAC)


def test_every_granularity_has_exactly_one_mapping_strategy():
    from mapping.granularity import GRANULARITIES
    from mapping.mapper import STRATEGIES

    assert sorted(STRATEGIES) == sorted(GRANULARITIES)
