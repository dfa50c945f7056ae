"""Scoring a pruned model under device variation: accuracy over seeded, paired device draws.

A policy that only holds on ideal cells is a policy for a machine that does not exist. With
`env.variation` a search scores every episode (and the unpruned reference) as the mean accuracy
over `draws` device draws, and the final report gives the winner's mean and worst accuracy over
`report_draws` fresh draws beside its ideal accuracy.

The model of a draw (hw/variation.py): every stored cell takes the draw's stuck-at faults and
multiplicative conductance noise N(1, sigma); each mapped layer then computes per-image quantized
inputs (as the simulator feeds them) times the weights its cells hold, read with an ideal ADC.
With stuck-at faults only this is exactly what the OU model computes (tests/test_hw_variation.py),
at the cost of a software inference. With conductance noise it leaves out the ADC's rounding of
each partial sum, which on lossless presets masks noise below about half a level: at sigma = 0.05
on ISAAC the OU model's output error is 0.36 (rms, outputs of rms 12) where this model's is 2.1;
at sigma = 0.2, 9.1 against 8.6 (`python -m bench.variation_study fidelity`). So conductance
noise here overstates its harm at small sigma; stuck-at faults are exact.

Draws are paired: draw k of layer l is seeded by (seed, k, l) only, and the draw is indexed by
weight position (hw/programming.py `apply_device_draw`), so every policy and every method meets
the same devices, and the search's draws are disjoint from the report's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.config_keys import reject_unknown_keys
from envs.workload.datasets.splits import Split
from envs.workload.evaluation import evaluate, evaluate_split
from hw.programming import NonIdealities
from hw.quantization import quantize_inputs
from hw.spec import HardwareSpec
from hw.variation import StoredCells
from mapping.layout import ModelLayout
from mapping.matrices import prunable_layers, write_weight_matrix

SEARCH_STREAM, REPORT_STREAM = 0, 1  # the search's draws and the report's never coincide


@dataclass
class VariationSettings:
    """env.variation (conf/env/default.yaml): the devices a search and its report assume."""

    sigma: float = 0.0  # multiplicative conductance noise per cell, N(1, sigma)
    stuck_at_zero: float = 0.0  # fraction of cells stuck at level 0
    stuck_at_one: float = 0.0  # fraction of cells stuck at the top level
    draws: int = 4  # device draws an episode is scored over (its accuracy is their mean)
    report_draws: int = 8  # fresh draws the final report measures the winner on (mean and worst)
    seed: int = 0
    in_search: bool = True  # false: search on ideal devices, only the report measures variation (variation-blind)

    def __post_init__(self) -> None:
        for name in ("sigma", "stuck_at_zero", "stuck_at_one"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"env.variation.{name} must be a number, got {value!r}")
        try:
            self.nonideal  # noqa: B018 - validates the rates
        except ValueError as error:
            raise ValueError(f"env.variation: {error}") from error
        for name in ("draws", "report_draws"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"env.variation.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.in_search, bool):
            raise ValueError(f"env.variation.in_search must be true or false, got {self.in_search!r}")

    @property
    def nonideal(self) -> NonIdealities:
        return NonIdealities(float(self.sigma), float(self.stuck_at_zero), float(self.stuck_at_one))

    @property
    def active(self) -> bool:
        """Any non-ideality at all: the final report then measures the winner under variation."""
        return self.nonideal.any

    @property
    def searching(self) -> bool:
        """Episodes are scored under variation (a variation-aware search)."""
        return self.active and self.in_search

    def key(self) -> tuple:
        """What shapes an episode's accuracy (the reference cache keys on it)."""
        return tuple(asdict(self).values()) if self.searching else ()

    @classmethod
    def from_config(cls, values: VariationSettings | Mapping[str, Any] | None) -> VariationSettings:
        if isinstance(values, VariationSettings):
            return values
        values = dict(values or {})
        reject_unknown_keys(values, (f.name for f in fields(cls)), "env.variation")
        return cls(**values)


def draw_seed(seed: int, stream: int, draw: int, layer: int) -> int:
    """The generator seed of one layer in one draw: independent across streams, draws and layers."""
    return int(np.random.SeedSequence((seed, stream, draw, layer)).generate_state(1)[0])


class VariationScorer:
    """Accuracy of a pruned model (and its layout) under seeded device draws, in software."""

    def __init__(self, spec: HardwareSpec, settings: VariationSettings) -> None:
        self.spec = spec
        self.settings = settings

    def search_accuracies(self, model: nn.Module, layout: ModelLayout, images: torch.Tensor, labels: torch.Tensor,
                          batch_size: int) -> list[float]:
        """One accuracy per search draw on the given images."""
        return self._per_draw(model, layout, SEARCH_STREAM, self.settings.draws,
                              lambda: evaluate(model, images, labels, batch_size).accuracy)

    def report_accuracies(self, model: nn.Module, layout: ModelLayout, split: Split, batch_size: int) -> list[float]:
        """One accuracy per report draw on a whole split (the test split, for the final report)."""
        return self._per_draw(model, layout, REPORT_STREAM, self.settings.report_draws,
                              lambda: evaluate_split(model, split, batch_size).accuracy)

    def _per_draw(self, model: nn.Module, layout: ModelLayout, stream: int, draws: int, measure) -> list[float]:
        modules = dict(prunable_layers(model))
        # Quantized and sliced once per model; each draw only perturbs the cells and reads them back.
        stored = {name: StoredCells.program(layer, self.spec)
                  for name, layer in layout.packed_layers(model, self.spec).items()}
        originals = {name: module.weight.detach().clone() for name, module in modules.items()}
        hooks = [module.register_forward_pre_hook(_quantize_input(self.spec.input_bits))
                 for module in modules.values()]
        accuracies = []
        try:
            for draw in range(draws):
                for index, layer in enumerate(layout.layers):
                    matrix = stored[layer.name].read(self.spec, self.settings.nonideal,
                                                     draw_seed(self.settings.seed, stream, draw, index))
                    write_weight_matrix(modules[layer.matrix.module_name], layer.matrix, matrix)
                accuracies.append(measure())
        finally:
            for hook in hooks:
                hook.remove()
            with torch.no_grad():
                for name, module in modules.items():
                    module.weight.copy_(originals[name])
        return accuracies


def _quantize_input(bits: int):
    """A pre-hook feeding a layer what its DACs would: each image's input on its own `bits`-bit scale."""

    def hook(_module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        quantized = quantize_inputs(x.reshape(x.shape[0], -1), bits)
        return ((quantized.levels * quantized.scale[:, None]).reshape(x.shape).to(x.dtype), *args[1:])

    return hook
