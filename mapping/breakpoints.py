"""Crossbar breakpoints: the pruning ratios at which a layer's occupied crossbars drop.

A layer's crossbar count is a step function of its ratio. Under `ou_row` it moves only when a
column group's kept rows cross a multiple of the OU height (its OU slots change), under
`crossbar_row` only at multiples of the crossbar height; a ratio above the breakpoint below it
removes weights, costs accuracy and frees nothing. Layers too small to fill one crossbar's
worth of OU slots have no breakpoint at all. A search therefore only ever needs the smallest
ratio of each crossbar count: `LayerBreakpoints.snap` moves any ratio down to it.

Counts come from the cost model's own counter (`hw.cost_model.price_layers`), evaluated once
per distinct OU-slot count, so they are the counts `map_matrices` produces (tested), including
the dense mapping at ratio 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hw.cost_model import price_layers
from hw.layout_types import LayerOccupancy
from hw.spec import HardwareSpec
from mapping.granularity import MASK_GRANULARITIES, check_granularity, removed_units
from mapping.matrices import LayerMatrix


@dataclass(frozen=True)
class LayerBreakpoints:
    """One prunable module's crossbars as a function of the rows its ratio removes.

    curve[k]: crossbars of the module's matrices with k rows removed per column group
    (k = 0 is the dense mapping), for k up to what `pmax` removes. removed: the breakpoints, the
    smallest k of each new lowest count, ascending and starting at 0.
    """

    name: str
    rows: int
    curve: np.ndarray
    removed: np.ndarray

    @property
    def dense_crossbars(self) -> int:
        return int(self.curve[0])

    @property
    def min_crossbars(self) -> int:
        return int(self.curve[self.removed[-1]])

    @property
    def can_gain(self) -> bool:
        """Whether any allowed ratio frees a crossbar of this module."""
        return self.removed.size > 1

    @property
    def ratios(self) -> np.ndarray:
        """The breakpoints as ratios: ratio k / R removes exactly k rows (see removed_units)."""
        return self.removed / self.rows

    def _removed(self, ratio: float) -> int:
        return min(removed_units(ratio, self.rows), self.curve.size - 1)

    def crossbars_at(self, ratio: float) -> int:
        """Crossbars at `ratio` (ratios past pmax's count as pmax)."""
        return int(self.curve[self._removed(ratio)])

    def snap(self, ratio: float) -> float:
        """The smallest ratio that occupies no more crossbars than `ratio` does."""
        index = int(np.searchsorted(self.removed, self._removed(ratio), side="right")) - 1
        return float(self.removed[index] / self.rows)


def crossbar_curve(matrices: Sequence[LayerMatrix], granularity: str, spec: HardwareSpec,
                   max_removed: int) -> np.ndarray:
    """Crossbars of a module's matrices (which share R rows) for k = 0..max_removed rows removed.

    Every column group keeps R - k rows (mapping.granularity.removed_units), and the count
    depends on kept rows only through ceil(kept / chunk), so it is priced once per chunk count.
    """
    check_granularity(granularity, MASK_GRANULARITIES)
    rows = matrices[0].rows
    if any(m.rows != rows for m in matrices):
        raise ValueError(f"matrices of one module must share their rows, got {[m.rows for m in matrices]}")
    chunk = spec.row_chunk(granularity)
    kept = rows - np.arange(1, max_removed + 1)
    steps = -(-kept // chunk)
    distinct = np.unique(steps)
    occupancies = [LayerOccupancy.uniform(m.name, m.rows, m.cols, m.positions, granularity,
                                          min(rows, int(step) * chunk), spec)
                   for step in distinct for m in matrices]
    priced = price_layers(spec, occupancies).crossbars.reshape(distinct.size, len(matrices)).sum(axis=1)
    dense = sum(spec.dense_crossbars(m.rows, m.cols) for m in matrices)
    pruned = priced[np.searchsorted(distinct, steps)] if max_removed else np.zeros(0)
    return np.concatenate([[dense], pruned]).astype(np.int64)


def layer_breakpoints(name: str, matrices: Sequence[LayerMatrix], granularity: str, spec: HardwareSpec,
                      pmax: float) -> LayerBreakpoints:
    """The breakpoints of one module for ratios in [0, pmax]."""
    rows = matrices[0].rows
    curve = crossbar_curve(matrices, granularity, spec, removed_units(pmax, rows))
    lowest = np.minimum.accumulate(curve)
    removed = np.concatenate([[0], np.flatnonzero(lowest[1:] < lowest[:-1]) + 1])
    return LayerBreakpoints(name, rows, curve, removed)
