"""Crossbar breakpoints: the ratios where a layer's crossbar count drops, by hand and against the mapper.

isaac: 128 x 128 crossbars, OU 8 x 8, 4 cells per weight -> 2 weight columns per OU group,
(128/8) * (128/8) = 256 OU slots per crossbar.
"""

import numpy as np
import pytest
import torch
from torch import nn

from hw.spec import load_hw_spec
from mapping.breakpoints import layer_breakpoints
from mapping.granularity import removed_units
from mapping.mapper import map_model
from mapping.matrices import layer_matrices

ISAAC = load_hw_spec("isaac")


def breakpoints_of(model: nn.Module, input_shape, granularity="ou_row", pmax=0.8):
    matrices = layer_matrices(model, input_shape)
    return {m.module_name: layer_breakpoints(m.module_name, [m], granularity, ISAAC, pmax) for m in matrices}


def test_ou_row_breakpoints_of_a_300_by_64_layer_by_hand():
    # 32 OU groups keep r = 300 - k rows each: ceil(r/8) slots per group, 256 slots per crossbar.
    # k=0 maps densely: ceil(300/128) * ceil(64/32) = 6. k=1: 32 * 38 = 1216 slots -> 5 crossbars.
    # 4 crossbars need <= 1024 slots -> r <= 256 -> k >= 44; 3: r <= 192 (k 108); 2: r <= 128 (k 172);
    # 1: r <= 64 (k 236 <= 240 = what pmax 0.8 removes).
    points = breakpoints_of(nn.Sequential(nn.Linear(300, 64)), (1, 300))["0"]
    assert points.removed.tolist() == [0, 1, 44, 108, 172, 236]
    assert [points.crossbars_at(k / 300) for k in points.removed] == [6, 5, 4, 3, 2, 1]
    # ratio 0.5 removes 150 rows: 32 * ceil(150/8) = 608 slots -> 3 crossbars, first reached at k = 108.
    assert points.snap(0.5) == pytest.approx(108 / 300)
    assert points.crossbars_at(0.5) == points.crossbars_at(108 / 300) == 3


def test_a_ratio_between_breakpoints_snaps_down_to_the_one_below():
    points = breakpoints_of(nn.Sequential(nn.Linear(300, 64)), (1, 300))["0"]
    assert points.snap(0.3) == pytest.approx(44 / 300)  # 90 rows removed: 4 crossbars, reached at 44
    assert points.snap(0.1) == pytest.approx(1 / 300)  # 30 removed: 5 crossbars, reached at 1
    assert points.snap(0.0) == 0.0


def test_a_layer_smaller_than_one_crossbar_has_no_breakpoint():
    points = breakpoints_of(nn.Sequential(nn.Linear(64, 10)), (1, 64))["0"]
    assert points.dense_crossbars == 1 and not points.can_gain
    assert points.snap(0.8) == 0.0


@pytest.mark.parametrize("granularity", ["ou_row", "crossbar_row"])
def test_breakpoints_agree_with_the_mapper_and_snapping_keeps_the_crossbars(granularity):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 96, 3), nn.ReLU(), nn.Conv2d(96, 160, 3), nn.Flatten(),
                          nn.Linear(160 * 4 * 4, 40))
    shape = (1, 64, 8, 8)
    points = breakpoints_of(model, shape, granularity)
    rng = np.random.default_rng(0)
    for ratio in [0.0, 1e-4, *rng.uniform(0, 0.8, 12)]:
        layout = map_model(model, float(ratio), ISAAC, granularity, shape)
        snapped = map_model(model, {name: p.snap(ratio) for name, p in points.items()}, ISAAC, granularity, shape)
        for layer, snapped_layer in zip(layout.layers, snapped.layers, strict=True):
            expected = points[layer.matrix.module_name].crossbars_at(ratio)
            assert layer.packing.crossbars == expected == snapped_layer.packing.crossbars
            rows = layer.matrix.rows  # snapping never removes more rows than the ratio asked for
            assert removed_units(snapped_layer.ratio, rows) <= removed_units(ratio, rows)


def test_a_ratio_that_removes_no_row_maps_like_ratio_zero():
    model = nn.Sequential(nn.Linear(300, 64), nn.ReLU(), nn.Linear(64, 10))
    assert map_model(model, 0.001, ISAAC, "ou_row", (1, 300)).crossbars == \
        map_model(model, 0.0, ISAAC, "ou_row", (1, 300)).crossbars == 7
