"""After a search: apply the best feasible policy, fine-tune longer, test, map, and export the layout
and the pruned model (envs/model_artifact.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envs.episode import EpisodeEvaluator
from envs.model_artifact import CARD, ONNX, export_onnx, save_pruned_model
from envs.result import MappedFigures
from envs.search_context import search_context
from envs.settings import EnvSettings
from envs.variation import VariationScorer
from envs.workload.evaluation import evaluate, evaluate_split
from envs.workload.finetune import finetune_masked
from mapping.crossbar_model import CrossbarModel


@dataclass
class FinalResult(MappedFigures):
    """The exported policy's test-split numbers, its mapping's figures and where its layout lives."""

    epsilon: float
    ratios: list[float]
    layer_names: list[str]
    search_accuracy: float
    test_accuracy: float
    test_accuracy_hardware: float | None
    baseline_test_accuracy: float
    delta_acc: float
    utilization: float
    finetune_seconds: float
    layout_dir: str
    model_dir: str = ""  # model/: weights.pt and model.json, paired with layout/ by SHA-256 (envs/model_artifact.py)
    onnx_path: str | None = None  # model/model.onnx, None where the export failed (the log says why)
    variation: dict | None = None  # with env.variation: test accuracy over fresh device draws (variation_report)

    def as_dict(self) -> dict:
        return asdict(self)


def rechecker(config: Mapping[str, Any], epsilon: float) -> Callable[[Sequence[float]], dict]:
    """A function that re-scores one policy on the whole search split (no early stop), with the
    search's recovery; its `info` record comes back.

    A search scores episodes on a prefix of the split (env.search_images) to save time; the best of
    many such noisy scores is biased upwards, so the finalists are measured again on all of it,
    against the unpruned reference measured the same way (once, when the function is made: on
    ResNet-50 that costs as much as a re-check), before one of them is chosen.
    """
    env = {**dict(config.get("env") or {}), "search_images": None, "early_stop": False}
    settings = EnvSettings.from_config({**config, "env": env, "epsilon": epsilon})
    evaluator = EpisodeEvaluator(search_context(config), settings)
    return lambda ratios: evaluator.evaluate(list(ratios)).info()


def recheck_policies(config: Mapping[str, Any], policies: list[list[float]], epsilon: float) -> list[dict]:
    """Each policy re-scored on the whole search split by one `rechecker`."""
    check = rechecker(config, epsilon)
    return [check(ratios) for ratios in policies]


def finalize_policy(config: Mapping[str, Any], ratios: list[float], epsilon: float, out_dir: str | Path,
                    log=print) -> FinalResult:
    """Prune with `ratios`, fine-tune for final.finetune_epochs, evaluate on test, save the layout."""
    settings = EnvSettings.from_config({**config, "epsilon": epsilon})
    final = dict(config.get("final") or {})
    context = search_context(config)
    evaluator = EpisodeEvaluator(context, settings)
    if len(ratios) != len(context.layers):
        raise ValueError(f"policy has {len(ratios)} ratios; the model has {len(context.layers)} "
                         "prunable layers")
    scorer = VariationScorer(context.spec, settings.variation) if settings.variation.active else None
    if scorer is not None:  # the unpruned model on the same draws: what variation alone costs
        dense = evaluator.prune(dict.fromkeys(context.layer_names, 0.0))
        evaluator.recover(dense)
        log(f"measuring the unpruned model under {settings.variation.report_draws} device draws")
        dense_under_variation = scorer.report_accuracies(dense.model, dense.layout, context.data.test,
                                                         settings.eval_batch_size)
    pruned = evaluator.prune(dict(zip(context.layer_names, ratios, strict=True)))
    evaluator.recover(pruned)  # the search's recovery (BatchNorm recalibration by default) comes first
    model, layout = pruned.model, pruned.layout
    images, labels = context.search_tensors
    search_accuracy = evaluate(model, images, labels, settings.eval_batch_size).accuracy
    epochs = float(final.get("finetune_epochs", 0))
    start = time.perf_counter()
    if epochs > 0 and pruned.masks:
        train_images, train_labels = context.finetune_tensors()
        batch = int(final.get("batch_size", 128))
        steps = max(1, math.ceil(epochs * len(train_labels) / batch))
        log(f"fine-tuning the pruned model for {epochs:g} epochs ({steps} steps)")
        finetune_masked(model, pruned.masks, train_images, train_labels, steps,
                        float(final.get("finetune_lr", 0.01)), batch, seed=context.seed,
                        log_every=max(1, steps // 10))
        if settings.recovery != "none":  # statistics of the fine-tuned weights, as the search measured them
            evaluator.recalibrate(model)
    finetune_seconds = time.perf_counter() - start
    test_accuracy = evaluate_split(model, context.data.test, settings.eval_batch_size).accuracy
    hardware_accuracy = None
    on_hardware = final.get("eval_on_hardware")
    if evaluator.on_hardware if on_hardware is None else on_hardware:
        hardware_accuracy = evaluate_split(CrossbarModel(model, layout, evaluator.simulator), context.data.test,
                                           settings.eval_batch_size).accuracy
    variation = None
    if scorer is not None:
        log(f"measuring the pruned model under {settings.variation.report_draws} device draws")
        accuracies = scorer.report_accuracies(model, layout, context.data.test, settings.eval_batch_size)
        variation = variation_report(settings, accuracies, dense_under_variation)
    priced = evaluator.score(layout, list(ratios), search_accuracy, reason="")
    data = context.data
    card = {"model_name": config["model"]["name"], "small_input": bool(config["model"].get("small_input", True)),
            "stem": config["model"].get("stem"), "num_classes": data.num_classes, "in_channels": data.in_channels,
            "image_size": list(data.image_size), "data": dict(config["data"]), "epsilon": epsilon,
            "ratios": list(ratios), "layer_names": context.layer_names, "test_accuracy": test_accuracy}
    model_dir = save_pruned_model(out_dir, model, layout, card)
    onnx_path = None
    if final.get("onnx", True):
        try:
            onnx_path = str(export_onnx(model, context.input_shape, model_dir / ONNX))
        except Exception as error:  # noqa: BLE001 - the exporter's failures are many; the weights still stand
            log(f"ONNX export failed ({type(error).__name__}: {str(error)[:300]}); {model_dir / CARD} and "
                "weights.pt are written")
    return FinalResult(
        epsilon=epsilon, ratios=list(ratios), layer_names=context.layer_names,
        search_accuracy=search_accuracy, test_accuracy=test_accuracy, test_accuracy_hardware=hardware_accuracy,
        baseline_test_accuracy=context.baseline.test_accuracy,
        delta_acc=context.baseline.test_accuracy - test_accuracy,
        compression_rate=priced.compression_rate, packing_gain=priced.packing_gain, pruning_gain=priced.pruning_gain,
        crossbars=priced.crossbars,
        dense_crossbars=priced.dense_crossbars, energy_nj=priced.energy_nj, area_mm2=priced.area_mm2,
        area_efficiency_gain=priced.area_efficiency_gain, energy_efficiency_gain=priced.energy_efficiency_gain,
        utilization=float(layout.utilization(context.spec)), finetune_seconds=finetune_seconds,
        layout_dir=str(Path(out_dir) / "layout"), model_dir=str(model_dir), onnx_path=onnx_path, variation=variation)


def variation_report(settings: EnvSettings, accuracies: list[float], dense: list[float]) -> dict:
    """The winner's test accuracy over the report's device draws (mean and worst), beside the unpruned
    model's on the same draws, and the devices assumed."""
    variation = settings.variation
    return {"sigma": variation.sigma, "stuck_at_zero": variation.stuck_at_zero,
            "stuck_at_one": variation.stuck_at_one, "draws": len(accuracies), "seed": variation.seed,
            "in_search": variation.in_search,
            "test_accuracy_mean": sum(accuracies) / len(accuracies), "test_accuracy_worst": min(accuracies),
            "dense_test_accuracy_mean": sum(dense) / len(dense), "dense_test_accuracy_worst": min(dense),
            "test_accuracies": list(accuracies)}
