"""The `env` config section, validated once at construction so a bad value fails before Ray starts.

EnvSection is the schema of conf/env/*.yaml (the platform's Hydra schema reuses it);
EnvSettings adds what one trial fixes: its constraint epsilon and the mapping choices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from envs.config_keys import reject_unknown_keys
from envs.formulation import check_formulation
from envs.recovery import check_finetune, check_recovery
from envs.rewards import validate_reward_name
from envs.sensitivity import check_probe_ratio
from envs.variation import VariationSettings
from envs.workload.device import check_device_name
from envs.workload.training import PRECISIONS
from mapping.granularity import check_granularity
from mapping.packing import PACKINGS

BUDGET_REWARDS = ("crossbar_constrained", "accuracy")  # the budget formulation scores both as accuracy


def check_constraints(values: list[float], setting: str) -> None:
    """Accuracy-loss constraints: at least one, each a fraction in (0, 1), none repeated. The one
    range check for epsilon; `setting` names where the values came from, for the error."""
    if not values:
        raise ValueError(f"{setting} is empty: expected at least one value in (0, 1)")
    for value in values:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value < 1.0):
            raise ValueError(f"{setting} holds {value}: every constraint must lie in (0, 1)")
    if len(set(values)) != len(values):
        raise ValueError(f"{setting} repeats a value: {list(values)}")


@dataclass
class EnvSection:
    """How an episode is scored (conf/env/default.yaml)."""

    reward: str = "crossbar_constrained"  # | area_efficiency | energy_efficiency | amc_flops | amc_params
    pmax: float = 0.8  # largest pruning ratio an action may ask for
    recovery: str = "bn"  # none | bn | finetune (envs/recovery.py), applied to every policy and the reference
    recovery_images: int = 256  # training images BatchNorm statistics are re-estimated on
    finetune_steps: int = 0  # SGD steps per episode with recovery=finetune
    finetune_lr: float = 0.01
    finetune_batch_size: int = 128
    finetune_loss: str = "ce"  # ce (the labels) | distill (the dense model's logits): envs/workload/finetune.py
    finetune_params: str = "all"  # all | pruned (only the layers a policy pruned, plus BatchNorm)
    finetune_images: int | None = None  # a fixed seeded sample of training images to fine-tune on; None: all
    finetune_bn: str = "batch"  # batch | frozen (BatchNorm recalibrated first, then its statistics fixed)
    precision: str = "fp32"  # fp32 | bf16: autocast for the episode's fine-tune and evaluation (a GPU's choice)
    eval_on_hardware: bool | None = None  # None: on when the preset's ADC is lossless (exact fast path)
    eval_batch_size: int = 1000
    search_images: int | None = None  # score episodes on the first N search images; None: all of them
    early_stop: bool = True  # stop evaluating once an episode cannot meet its constraint
    confirm_best: bool = False  # a prefix-feasible new best is scored again on the whole split (envs/confirmation.py)
    snap: bool = True  # snap ratios down to crossbar breakpoints; search only layers that can free one
    penalty: float = 1.0  # bound of the infeasible reward, -penalty * tanh(excess loss / epsilon) (envs/rewards.py)
    torch_threads: int = 1  # per env runner: runners x threads <= cores
    device: str = "auto"  # auto | cpu | cuda[:N] (envs/workload/device.py): episodes, baselines, the final fine-tune
    formulation: str = "constraint"  # | budget: AMC's crossbar budget with an action wall (envs/formulation.py)
    budget_start_cr: float = 1.5  # budget: the first rounds' target CR
    budget_round_episodes: int = 4  # budget: episodes per target before the staircase moves it
    budget_step: float = 0.2  # budget: the target's first relative move; halves at each reversal (0: a fixed target)
    sensitivity_probe: float | None = None  # ratio each layer is probed at alone, once (envs/sensitivity.py)
    variation: VariationSettings = field(default_factory=VariationSettings)  # device draws (envs/variation.py)


@dataclass
class EnvSettings(EnvSection):
    """One trial's env section plus its constraint epsilon and the mapping's granularity and packing."""

    epsilon: float = 0.01
    granularity: str = "ou_row"
    packing: str = "per_layer"

    def __post_init__(self) -> None:
        check_constraints([self.epsilon], "the accuracy-loss constraint epsilon")
        self.variation = VariationSettings.from_config(self.variation)
        if self.variation.searching and self.eval_on_hardware:
            raise ValueError("env.variation scores episodes over device draws in software (envs/variation.py); the "
                             "crossbar simulator would take minutes a draw: set env.eval_on_hardware=false")
        if not isinstance(self.confirm_best, bool):
            raise ValueError(f"env.confirm_best must be true or false, got {self.confirm_best!r}")
        if self.confirm_best and self.variation.searching:
            raise ValueError("env.confirm_best re-scores a new best on the rest of the search split, which "
                             "env.variation's device draws do not cover: set one of them off")
        if self.variation.searching and self.precision != "fp32":
            raise ValueError("env.variation feeds each layer 8-bit-exact quantized inputs: env.precision must be fp32")
        validate_reward_name(self.reward)
        check_granularity(self.granularity)
        if not 0.0 < self.pmax < 1.0:
            raise ValueError(f"env.pmax must lie in (0, 1), got {self.pmax}")
        check_recovery(self.recovery, self.recovery_images, self.finetune_steps)
        check_finetune(self.finetune_loss, self.finetune_params, self.finetune_images, self.finetune_bn)
        if self.precision not in PRECISIONS:
            raise ValueError(f"env.precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        check_device_name(self.device)
        if self.eval_batch_size < 1 or self.torch_threads < 1 or self.finetune_batch_size < 1:
            raise ValueError(f"env.eval_batch_size ({self.eval_batch_size}), env.finetune_batch_size "
                             f"({self.finetune_batch_size}) and env.torch_threads ({self.torch_threads}) must be >= 1")
        if self.search_images is not None and self.search_images < 1:
            raise ValueError(f"env.search_images must be >= 1 or null, got {self.search_images}")
        if self.penalty <= 0:
            raise ValueError(f"env.penalty must be > 0, got {self.penalty}")
        if self.packing not in PACKINGS:
            raise ValueError(f"mapping.packing must be one of {PACKINGS}, got {self.packing!r}")
        check_probe_ratio(self.sensitivity_probe, self.pmax)
        check_formulation(self.formulation, self.budget_start_cr, self.budget_round_episodes, self.budget_step)
        if self.formulation == "budget":
            if self.reward not in BUDGET_REWARDS:
                raise ValueError(f"env.formulation=budget scores accuracy alone under a crossbar budget; env.reward="
                                 f"{self.reward!r} measures another compression: use one of {BUDGET_REWARDS}")
            if self.packing != "per_layer":
                raise ValueError("env.formulation=budget counts each layer's crossbars from its breakpoint table: "
                                 f"it needs mapping.packing=per_layer, got {self.packing!r}")
        elif self.reward == "accuracy":
            raise ValueError("env.reward=accuracy ignores compression: it is the reward of env.formulation=budget, "
                             "whose crossbar budget supplies the compression")

    @property
    def scoring_reward(self) -> str:
        """The reward episodes are scored with: accuracy alone under a budget, else env.reward."""
        return "accuracy" if self.formulation == "budget" else self.reward

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EnvSettings:
        """Read the `env` and `mapping` sections and `epsilon` of an env_config dict."""
        if "epsilon" not in config:
            raise ValueError("env_config has no 'epsilon' (the accuracy-loss constraint)")
        env = dict(config.get("env") or {})
        reject_unknown_keys(env, (f.name for f in fields(EnvSection)), "env config")
        mapping = config.get("mapping") or {}
        return cls(epsilon=float(config["epsilon"]), granularity=mapping.get("granularity", "ou_row"),
                   packing=mapping.get("packing", "per_layer"), **env)
