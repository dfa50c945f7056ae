"""The learning curves read at a few budgets (platform/reports/curves.py), checked by hand."""

from __future__ import annotations

import pytest

from platform.reports.curves import checkpoint_rows, checkpoints, format_markdown, mean_step_curve, value_at

SEED_A = [(1, 1.0), (2, 1.5), (3, 1.5), (4, 2.0)]
SEED_B = [(1, 1.2), (2, 1.2), (3, 1.8), (4, 1.8)]


def test_value_at_reads_the_step_before_it_and_the_dense_model_before_any():
    assert value_at(SEED_A, 3) == 1.5 and value_at(SEED_A, 100) == 2.0
    assert value_at(SEED_A, 0) == 1.0 and value_at([], 5) == 1.0


def test_the_mean_curve_is_the_mean_of_the_seeds_at_every_step():
    xs, ys = mean_step_curve([SEED_A, SEED_B])
    assert xs == [1, 2, 3, 4] and ys == pytest.approx([1.1, 1.35, 1.65, 1.9])


@pytest.mark.parametrize(("episodes", "marks"), [(320, [64, 160, 320]), (128, [64, 128]), (64, [32, 64]),
                                                 (16, [8, 16]), (1, [1])])
def test_checkpoints_are_64_half_and_the_budget_within_the_budget(episodes, marks):
    assert checkpoints(episodes) == marks


def test_rows_give_each_method_and_constraint_its_mean_and_each_seed():
    curves = {"agent": {0.01: [SEED_A, SEED_B], 0.02: [SEED_B]}, "tpe": {0.01: [SEED_B, []]}}
    header, body = checkpoint_rows(curves, 4)
    assert header == ["ε", "method", "seeds", "@2", "@4", "per seed @4"]
    assert body == [["0.01", "agent", "2", "1.35", "1.90", "2.00, 1.80"],
                    ["0.02", "agent", "1", "1.20", "1.80", "1.80"],
                    ["0.01", "tpe", "1", "1.20", "1.80", "1.80"]]  # a run without history is not a seed
    assert format_markdown(curves, 4).splitlines()[2] == "| 0.01 | agent | 2 | 1.35 | 1.90 | 2.00, 1.80 |"
