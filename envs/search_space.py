"""What every search method decides: the layers that can free a crossbar, and ratios snapped to breakpoints.

The RL env, random search, TPE and the heuristics all propose a *search vector*, one ratio per
searchable layer; `SearchSpace.expand` turns it into the model's full ratio list, with layers
that can free no crossbar held at 0 and every ratio snapped down to its crossbar breakpoint
(mapping/breakpoints.py). Searching in the same space keeps the comparison between methods fair,
and snapping stops any method from paying accuracy for ratios that free nothing.

With `env.snap=false` (or a structural granularity, whose coupled channels make a per-layer step
function meaningless) every layer is searched and ratios are only clipped to [0, pmax].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.embedding import PrunableLayer
from hw.spec import HardwareSpec
from mapping.breakpoints import LayerBreakpoints, layer_breakpoints
from mapping.granularity import MASK_GRANULARITIES


@dataclass(frozen=True)
class SearchSpace:
    """The layers a search decides and, per layer, the crossbar counts its ratios reach."""

    layer_names: tuple[str, ...]
    searchable: tuple[int, ...]  # indices into layer_names, in model order
    breakpoints: tuple[LayerBreakpoints, ...] | None  # per layer; None for structural granularities
    pmax: float
    snapping: bool

    @property
    def size(self) -> int:
        """Decisions per policy: the episode length of the RL env, the dimension for the searchers."""
        return len(self.searchable)

    def clip(self, ratio: float) -> float:
        return float(np.clip(ratio, 0.0, self.pmax)) if math.isfinite(ratio) else 0.0

    def snap(self, layer: int, ratio: float) -> float:
        """Layer `layer`'s ratio clipped to [0, pmax] and, when snapping, moved down to its breakpoint."""
        ratio = self.clip(ratio)
        return self.breakpoints[layer].snap(ratio) if self.snapping and self.breakpoints is not None else ratio

    def expand(self, vector: Sequence[float]) -> list[float]:
        """The full per-layer ratio list of a search vector (one ratio per searchable layer)."""
        if len(vector) != self.size:
            raise ValueError(f"a policy over this search space has {self.size} ratios "
                             f"(searchable layers), got {len(vector)}")
        ratios = [0.0] * len(self.layer_names)
        for layer, ratio in zip(self.searchable, vector, strict=True):
            ratios[layer] = self.snap(layer, float(ratio))
        return ratios

    def saved_crossbars(self, layer: int, ratio: float) -> int:
        """Dense crossbars minus those at `ratio` (0 at ratio 0; mask granularities only)."""
        points = self._points(layer)
        return points.dense_crossbars - points.crossbars_at(self.clip(ratio))

    def _points(self, layer: int) -> LayerBreakpoints:
        if self.breakpoints is None:
            raise ValueError("a structural granularity has no per-layer crossbar breakpoints")
        return self.breakpoints[layer]


def build_search_space(layers: Sequence[PrunableLayer], granularity: str, spec: HardwareSpec, pmax: float,
                       snap: bool) -> SearchSpace:
    """Breakpoints of every layer, and the layers that can free a crossbar, for this hardware and granularity."""
    names = tuple(layer.name for layer in layers)
    every_layer = tuple(range(len(layers)))
    if granularity not in MASK_GRANULARITIES:
        return SearchSpace(names, every_layer, None, pmax, snapping=False)
    points = tuple(layer_breakpoints(layer.name, layer.matrices, granularity, spec, pmax) for layer in layers)
    if not snap:
        return SearchSpace(names, every_layer, points, pmax, snapping=False)
    searchable = tuple(i for i, p in enumerate(points) if p.can_gain)
    if not searchable:
        raise ValueError(f"no layer can free a crossbar at ratios up to env.pmax={pmax} with granularity "
                         f"{granularity!r} on hw {spec.name!r}: every layer is smaller than one crossbar's OU "
                         "slots; raise env.pmax, or set env.snap=false to search anyway")
    return SearchSpace(names, searchable, points, pmax, snapping=True)
