"""Accuracy evaluation, the search's hot path: inference mode, large batches, channels-last, early stop.

With `stop_below`, evaluation ends as soon as even an all-correct remainder could not lift the
accuracy to the threshold: the RL env abandons an episode that cannot meet its constraint after
evaluating only part of the search split. The bound is exact, not a statistical guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from envs.workload.datasets.splits import Split
from envs.workload.device import model_device, to_device


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy, and how much of the data it was measured on."""

    accuracy: float  # correct / evaluated: the accuracy reached on the images seen
    correct: int
    evaluated: int
    total: int
    stopped_early: bool

    @property
    def upper_bound(self) -> float:
        """The best accuracy the whole set could have reached: below stop_below when stopped early."""
        return (self.correct + self.total - self.evaluated) / self.total if self.total else 0.0


def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    total: int,
    stop_below: float | None = None,
    bf16: bool = False,
) -> Accuracy:
    """Accuracy of `model` over `batches` of `total` images in all, stopping early per `stop_below`."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    correct = evaluated = 0
    stopped = False
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    try:
        with torch.inference_mode(), autocast:
            for images, labels in batches:
                images = to_device(images, device)
                if images.dim() == 4:
                    images = images.contiguous(memory_format=torch.channels_last)
                predictions = model(images).argmax(dim=1)
                correct += int((predictions.cpu() == labels).sum())
                evaluated += len(labels)
                if stop_below is not None and evaluated < total and (correct + total - evaluated) < stop_below * total:
                    stopped = True
                    break
    finally:
        model.train(was_training)
    return Accuracy(correct / evaluated if evaluated else 0.0, correct, evaluated, total, stopped)


def evaluate(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    batch_size: int = 1024,
    stop_below: float | None = None,
    bf16: bool = False,
) -> Accuracy:
    """Top-1 accuracy of `model` on preprocessed `images` (float NCHW, ideally channels-last).

    For speed, put the model in channels-last once (model.to(memory_format=torch.channels_last)).
    `stop_below`: an accuracy threshold in [0, 1]; stop once it can no longer be reached.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if batch_size < 1:
        raise ValueError(f"batch_size ({batch_size}) must be >= 1")
    if stop_below is not None and not 0.0 <= stop_below <= 1.0:
        raise ValueError(f"stop_below ({stop_below}) must be an accuracy in [0, 1]")
    batches = ((images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size))
    return evaluate_batches(model, batches, len(labels), stop_below, bf16)


def evaluate_split(model: nn.Module, split: Split, batch_size: int = 1024, stop_below: float | None = None,
                   bf16: bool = False) -> Accuracy:
    """Accuracy on a split streamed in batches (no float copy of the whole split is kept)."""
    return evaluate_batches(model, split.batches(batch_size), len(split), stop_below, bf16)
