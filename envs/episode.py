"""Scoring one pruning policy: mask, recover, evaluate, map, price, reward.

This is the search's hot path. The evaluator keeps one working copy of the baseline, the
original weights and a snapshot of the rest of its state, so an episode costs restoring that
state, the masking, the mapping (tens of milliseconds), the recovery (envs/recovery.py: a
BatchNorm recalibration on a few hundred training images by default) and the accuracy
evaluation, which dominates and is cut short once the constraint is out of reach. The same
policy evaluated twice gives the same result.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from envs.recovery import ModelSnapshot, recalibrate_batchnorm
from envs.result import EpisodeResult
from envs.rewards import EpisodeOutcome, compute_reward, worst_reward
from envs.search_context import SearchContext, estimated_layer_crossbars
from envs.search_space import SearchSpace
from envs.settings import EnvSettings
from envs.variation import VariationScorer
from envs.workload.device import resolve_device
from envs.workload.evaluation import evaluate
from envs.workload.finetune import NonFiniteLoss, finetune_masked, teacher_logits
from hw.cost_model import compression_split, price_layers
from hw.cost_report import compare_reports
from hw.simulator import CrossbarSimulator
from mapping.crossbar_model import CrossbarModel
from mapping.layout import ModelLayout
from mapping.mapper import Mapper
from mapping.matrices import prunable_layers

SCORED_KEPT = 4096  # policies remembered per evaluator (a few KB each)


@dataclass
class PrunedModel:
    """A policy applied: the model to run, its crossbar layout and the masks fine-tuning must keep."""

    model: nn.Module
    layout: ModelLayout
    masks: dict[str, torch.Tensor]


def kept_macs_and_weights(layout: ModelLayout) -> tuple[float, float]:
    """Kept MACs per inference and kept weights of a layout: AMC's FLOPs and parameter measures."""
    macs = sum(layer.packing.kept_weights * layer.matrix.positions for layer in layout.layers)
    weights = sum(layer.packing.kept_weights for layer in layout.layers)
    return float(macs), float(weights)


class EpisodeEvaluator:
    """Applies a policy to a working copy of the baseline and scores it."""

    def __init__(self, context: SearchContext, settings: EnvSettings,
                 reference_accuracy: float | None = None) -> None:
        self.context = context
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.work_model = copy.deepcopy(context.model).to(self.device).eval()
        if self.device.type == "cuda":  # cuDNN's fast convolutions want NHWC, as the images are
            self.work_model.to(memory_format=torch.channels_last)
        self.bf16 = settings.precision == "bf16"
        self.work_modules = dict(prunable_layers(self.work_model))
        # The original weights live beside the working copy, so an episode's masking never crosses devices.
        self.original_weights = {name: weight.to(self.device) for name, weight in context.original_weights.items()}
        self.snapshot = ModelSnapshot(self.work_model, skip={f"{name}.weight" for name in self.work_modules})
        self.space: SearchSpace = context.search_space(settings.granularity, settings.pmax, settings.snap)
        self.mapper = Mapper(context.model, context.spec, settings.granularity, settings.packing, context.input_shape,
                             context.matrices)
        self.on_hardware = (context.spec.adc_lossless and not settings.variation.searching
                            if settings.eval_on_hardware is None else settings.eval_on_hardware)
        # Under env.variation every accuracy (the reference's too) is the mean over the search's device draws.
        self.variation = VariationScorer(context.spec, settings.variation) if settings.variation.searching else None
        if self.on_hardware and self.bf16:
            raise ValueError("env.precision=bf16 would round the activations the crossbar simulator quantizes "
                             "exactly: set env.precision=fp32 or env.eval_on_hardware=false")
        self.simulator = CrossbarSimulator(context.spec)
        # Measuring the unpruned reference costs one full evaluation (on the simulator, the
        # slowest one): the driver measures it once and hands it to every env runner.
        self.search_images, self.search_labels = context.search_subset(settings.search_images)
        # The rest of the search split: where env.confirm_best scores a prefix's new best again.
        all_images, all_labels = context.search_subset(None)
        self.rest_images, self.rest_labels = all_images[len(self.search_labels):], all_labels[len(self.search_labels):]
        if self.device.type == "cuda":  # kept on the GPU: no episode copies an image over again
            self.search_images = self.search_images.to(self.device)
            self.rest_images = self.rest_images.to(self.device)
        self._finetune_set = self._build_finetune_set() if settings.recovery == "finetune" else None
        self._scored: OrderedDict[tuple[float, ...], EpisodeResult] = OrderedDict()
        self._confirmed: OrderedDict[tuple[float, ...], EpisodeResult] = OrderedDict()
        self.reference_accuracy = (reference_accuracy if reference_accuracy is not None
                                   else context.reference_accuracy(self.scoring_key(), self._measure_unpruned))

    def scoring_key(self, images: int | None = None) -> tuple:
        """Everything besides the policy that changes an episode's accuracy: the key of the unpruned
        reference (measured once per process) and of the sensitivity probe (cached per baseline).
        `images`: how many search images are scored (default: the episodes' prefix)."""
        settings = self.settings
        count = len(self.search_labels) if images is None else images
        return (self.on_hardware, count, settings.recovery, settings.recovery_images,
                settings.finetune_steps, settings.finetune_lr, settings.finetune_batch_size, settings.finetune_loss,
                settings.finetune_params, settings.finetune_images, settings.finetune_bn, settings.precision,
                settings.variation.key())

    def _build_finetune_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The images every episode fine-tunes on, and their targets: the labels, or with
        env.finetune_loss=distill the dense model's logits (computed here, while the working
        copy is still dense). On a GPU both stay on it."""
        settings = self.settings
        if settings.finetune_images is None:
            images, labels = self.context.finetune_tensors()
        else:
            images, labels = self.context.training_sample(settings.finetune_images)
        if self.device.type == "cuda":
            images = images.to(self.device)
        if settings.finetune_loss == "distill":
            return images, teacher_logits(self.work_model, images, settings.eval_batch_size)
        return images, labels.to(self.device)

    def runner(self, pruned: PrunedModel) -> nn.Module:
        """The pruned model as evaluated: on the crossbar simulator, or in software."""
        return CrossbarModel(pruned.model, pruned.layout, self.simulator) if self.on_hardware else pruned.model

    def _measure_unpruned(self) -> float:
        """The unpruned model's search accuracy, measured the way episodes are (recovery, software or crossbars)."""
        return self.measure(self._unpruned(), stop_below=None)[0]

    def _unpruned(self) -> PrunedModel:
        pruned = self.prune(dict.fromkeys(self.context.layer_names, 0.0))
        try:
            self.recover(pruned)
        except NonFiniteLoss as error:
            raise ValueError(f"fine-tuning the unpruned reference diverged ({error}): lower env.finetune_lr "
                             f"(now {self.settings.finetune_lr:g}) or use env.recovery=bn") from error
        return pruned

    @property
    def whole_split_reference(self) -> float:
        """The unpruned reference on the whole search split, measured once per process (as the re-check's)."""
        if not len(self.rest_labels):
            return self.reference_accuracy
        images, labels = self.context.search_subset(None)  # no copy: the split the prefix and the rest view
        return self.context.reference_accuracy(
            self.scoring_key(len(labels)),
            lambda: evaluate(self.runner(self._unpruned()), images, labels, self.settings.eval_batch_size,
                             bf16=self.bf16).accuracy)

    def measure(self, pruned: PrunedModel, stop_below: float | None) -> tuple[float, bool, float | None]:
        """(accuracy, stopped early, worst draw's accuracy) of a recovered model on the search images.

        Under env.variation: the mean over the search's device draws, never stopped early; else one
        evaluation (on the crossbar simulator or in software), stopped once below `stop_below`.
        """
        if self.variation is not None:
            accuracies = self.variation.search_accuracies(pruned.model, pruned.layout, self.search_images,
                                                          self.search_labels, self.settings.eval_batch_size)
            return sum(accuracies) / len(accuracies), False, min(accuracies)
        measured = evaluate(self.runner(pruned), self.search_images, self.search_labels, self.settings.eval_batch_size,
                            stop_below=stop_below, bf16=self.bf16)
        return measured.accuracy, measured.stopped_early, None

    def saved_crossbars(self, layer: int, ratio: float) -> int:
        """Crossbars layer `layer` frees at `ratio` against its dense mapping (0 at ratio 0)."""
        if self.space.breakpoints is not None:
            return self.space.saved_crossbars(layer, ratio)
        return self.context.layers[layer].dense_crossbars - sum(
            estimated_layer_crossbars(matrix, ratio, self.settings.granularity, self.context.spec)
            for matrix in self.context.layers[layer].matrices)

    def recover(self, pruned: PrunedModel) -> None:
        """Apply env.recovery to a pruned model (raises NonFiniteLoss if fine-tuning diverges)."""
        settings = self.settings
        if settings.recovery == "none":
            return
        if settings.recovery == "finetune" and pruned.masks:
            images, targets = self._finetune_set
            if settings.finetune_bn == "frozen":  # the statistics it keeps fixed are the pruned model's
                self.recalibrate(pruned.model)
            finetune_masked(pruned.model, pruned.masks, images, targets, settings.finetune_steps,
                            settings.finetune_lr, settings.finetune_batch_size, seed=self.context.seed,
                            loss=settings.finetune_loss, params=settings.finetune_params, bf16=self.bf16,
                            bn=settings.finetune_bn)
        self.recalibrate(pruned.model)

    def recalibrate(self, model: nn.Module) -> None:
        """Re-estimate `model`'s BatchNorm statistics on the recovery images, as every episode does."""
        recalibrate_batchnorm(model, self.context.recovery_images(self.settings.recovery_images),
                              self.settings.eval_batch_size)

    def prune(self, ratios: dict[str, float]) -> PrunedModel:
        """Apply ratios to the working copy (or, for filter/channel, to a shrunken copy) and map it."""
        mapped = self.mapper.map(ratios)  # chosen from the original weights, never the working copy's
        if mapped.shrunken is not None:
            return PrunedModel(mapped.shrunken.to(self.device).eval(), mapped.layout, {})
        # Written in one pass: weight = original * mask; the rest of the state (BatchNorm
        # statistics and affine parameters, biases) comes back from the snapshot.
        self.snapshot.restore()
        masks = {name: mask.to(self.device) for name, mask in mapped.masks.items()}
        with torch.no_grad():
            for name, weight in self.original_weights.items():
                mask = masks.get(name)
                if mask is None:
                    self.work_modules[name].weight.copy_(weight)
                else:
                    torch.mul(weight, mask, out=self.work_modules[name].weight)
        return PrunedModel(self.work_model, mapped.layout, masks)

    def evaluate_policy(self, vector: list[float]) -> EpisodeResult:
        """Score a search vector (one ratio per searchable layer, see envs/search_space.py)."""
        return self.evaluate(self.space.expand(vector))

    def evaluate(self, ratio_list: list[float]) -> EpisodeResult:
        """Score a full per-layer ratio list as given (no snapping).

        An episode is a pure function of its policy, so a policy scored before is answered from
        memory (a copy of its record, timings zero): a converging agent proposes the same snapped
        policy again and again (a ResNet-20 search at 320 episodes held 110-130 distinct ones).
        """
        key = tuple(float(r) for r in ratio_list)
        if key in self._scored:
            self._scored.move_to_end(key)
            return dataclasses.replace(self._scored[key], ratios=list(key), eval_seconds=0.0, episode_seconds=0.0)
        result = self._evaluate(ratio_list)
        self._scored[key] = result
        if len(self._scored) > SCORED_KEPT:
            self._scored.popitem(last=False)
        return dataclasses.replace(result, ratios=list(result.ratios))

    def forget_scores(self) -> None:
        """Drop the remembered policies, so the next evaluations run in full (the purity tests do)."""
        self._scored.clear()
        self._confirmed.clear()

    def confirm(self, prefix: EpisodeResult) -> EpisodeResult:
        """A feasible prefix record scored again on the whole search split (env.confirm_best).

        Only the images past the prefix are evaluated (the prefix's count is exact: a feasible
        episode is never stopped early), stopped once the whole split's threshold is out of reach,
        and Δacc is against the unpruned reference on the whole split. A pure function of the
        policy, remembered like evaluate()'s records. `confirmed` is set on what comes back.
        """
        if not prefix.feasible or prefix.stopped_early:
            raise ValueError("only a feasible, fully evaluated prefix record can be confirmed")
        key = tuple(float(r) for r in prefix.ratios)
        if key in self._confirmed:
            self._confirmed.move_to_end(key)
            return dataclasses.replace(self._confirmed[key], ratios=list(key), eval_seconds=0.0, episode_seconds=0.0)
        start = time.perf_counter()
        settings = self.settings
        prefix_count, rest_count = len(self.search_labels), len(self.rest_labels)
        total = prefix_count + rest_count
        prefix_correct = round(prefix.accuracy * prefix_count)
        reference = self.whole_split_reference
        accuracy, stopped = prefix.accuracy, False
        pruned = self.prune(dict(zip(self.context.layer_names, key, strict=True)))
        if rest_count:
            self.recover(pruned)  # the prefix's recovery again: deterministic, so the same model
            needed = (max(reference - settings.epsilon, 0.0) * total - prefix_correct) / rest_count
            stop_below = min(max(needed, 0.0), 1.0) if settings.early_stop else None
            rest = evaluate(self.runner(pruned), self.rest_images, self.rest_labels, settings.eval_batch_size,
                            stop_below=stop_below, bf16=self.bf16)
            accuracy = (prefix_correct + rest.correct) / (prefix_count + rest.evaluated)
            stopped = rest.stopped_early
        result = self.score(pruned.layout, list(key), accuracy, "", reference=reference)
        result.confirmed, result.stopped_early = True, stopped
        seconds = time.perf_counter() - start
        result.eval_seconds = prefix.eval_seconds + seconds
        result.episode_seconds = prefix.episode_seconds + seconds
        self._confirmed[key] = result
        if len(self._confirmed) > SCORED_KEPT:
            self._confirmed.popitem(last=False)
        return dataclasses.replace(result, ratios=list(result.ratios))

    def evaluate_in_full(self, ratio_list: list[float]) -> EpisodeResult:
        """Score a full per-layer ratio list without stopping early (its Δacc is exact even when large)
        and without memory: the sensitivity probe's measurement (envs/sensitivity.py)."""
        return self._evaluate(ratio_list, stop_early=False)

    def _evaluate(self, ratio_list: list[float], stop_early: bool = True) -> EpisodeResult:
        start = time.perf_counter()
        context, settings = self.context, self.settings
        pruned = self.prune(dict(zip(context.layer_names, ratio_list, strict=True)))
        reason = ""
        try:
            self.recover(pruned)
        except NonFiniteLoss as error:
            reason = f"nan_loss: {error}"
        eval_start = time.perf_counter()
        accuracy, stopped, worst = 0.0, False, None
        if not reason:
            early = stop_early and settings.early_stop
            threshold = max(self.reference_accuracy - settings.epsilon, 0.0) if early else None
            accuracy, stopped, worst = self.measure(pruned, threshold)
        eval_seconds = time.perf_counter() - eval_start
        result = self.score(pruned.layout, ratio_list, accuracy, reason)
        result.stopped_early, result.eval_seconds, result.worst_accuracy = stopped, eval_seconds, worst
        result.episode_seconds = time.perf_counter() - start
        return result

    def score(self, layout: ModelLayout, ratio_list: list[float], accuracy: float, reason: str,
              reference: float | None = None) -> EpisodeResult:
        """Price the layout and turn accuracy and compression into the reward (timings left at 0).
        `reference`: the unpruned accuracy Δacc is taken against (default: the prefix's)."""
        context, settings = self.context, self.settings
        reference = self.reference_accuracy if reference is None else reference
        cost = price_layers(context.spec, layout.occupancies(), settings.packing)
        gains = compare_reports(context.dense_cost, cost)
        split = compression_split(context.spec, context.dense_occupancies, settings.granularity, settings.packing,
                                  cost.total_crossbars, context.compacted_crossbars(settings.granularity,
                                                                                    settings.packing))
        macs, weights = kept_macs_and_weights(layout)
        delta = reference - accuracy
        outcome = EpisodeOutcome(delta, settings.epsilon, gains.compression_rate,
                                 context.dense_macs / max(macs, 1.0), context.dense_weights / max(weights, 1.0),
                                 gains.area_efficiency_gain, gains.energy_efficiency_gain)
        reward = compute_reward(settings.scoring_reward, outcome, settings.penalty)
        if reason:  # diverged: the worst reward there is
            reward = worst_reward(settings.scoring_reward, settings.epsilon, settings.penalty)
        return EpisodeResult(
            reward=float(reward), accuracy=accuracy, baseline_accuracy=reference, delta_acc=delta,
            feasible=outcome.feasible and not reason, compression_rate=gains.compression_rate,
            packing_gain=split.packing_gain, pruning_gain=split.pruning_gain,
            crossbars=cost.total_crossbars, dense_crossbars=context.dense_cost.total_crossbars,
            energy_nj=cost.total_energy_nj, area_mm2=cost.total_area_mm2,
            area_efficiency_gain=gains.area_efficiency_gain, energy_efficiency_gain=gains.energy_efficiency_gain,
            flops_compression=outcome.flops_compression, params_compression=outcome.params_compression,
            weight_sparsity=float(layout.sparsity), ratios=[float(r) for r in ratio_list],
            layer_names=list(context.layer_names), on_hardware=self.on_hardware, stopped_early=False,
            eval_seconds=0.0, episode_seconds=0.0, reason=reason)
