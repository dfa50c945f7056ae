"""Accuracy recovery inside an episode, and the model state every episode starts from.

Pruning shifts every layer's activation statistics, so a pruned model evaluated with the dense
model's BatchNorm running statistics looks far worse than it is (ResNet-50 at uniform ou_row 0.3:
51 points lost with stale statistics, 1.1 after recalibration). `recover` brings the pruned
model back before it is scored:

- `none`: evaluate as pruned (stale statistics).
- `bn`: EagleEye's adaptive BatchNorm (Li et al., ECCV'20): reset the running statistics and
  re-estimate them, as an exact average over batches, on a few hundred *training* images.
- `finetune`: masked SGD steps on the training split, then `bn`.

`ModelSnapshot` restores everything an episode may change (BatchNorm statistics and affine
parameters, biases, and with fine-tuning every weight), so an episode is a pure function of
its policy.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from envs.workload.device import model_device, to_device
from envs.workload.finetune import check_finetune_options

RECOVERIES = ("none", "bn", "finetune")


def check_recovery(recovery: str, images: int, finetune_steps: int) -> None:
    """Reject recovery settings that cannot run, naming the setting to change."""
    if recovery not in RECOVERIES:
        raise ValueError(f"env.recovery must be one of {list(RECOVERIES)}, got {recovery!r}")
    if recovery != "none" and images < 1:
        raise ValueError(f"env.recovery={recovery} recalibrates BatchNorm on env.recovery_images training "
                         f"images: it must be >= 1, got {images}")
    if finetune_steps < 0:
        raise ValueError(f"env.finetune_steps must be >= 0, got {finetune_steps}")
    if recovery == "finetune" and finetune_steps == 0:
        raise ValueError("env.recovery=finetune needs env.finetune_steps >= 1 (with 0 steps, use env.recovery=bn)")
    if recovery != "finetune" and finetune_steps > 0:
        raise ValueError(f"env.finetune_steps={finetune_steps} takes effect only with env.recovery=finetune, "
                         f"got env.recovery={recovery}")


def check_finetune(loss: str, params: str, images: int | None, bn: str = "batch") -> None:
    """Reject fine-tuning settings that cannot run, naming the setting to change."""
    check_finetune_options(loss, params, bn)
    if images is not None and images < 1:
        raise ValueError(f"env.finetune_images must be >= 1 or null (all training images), got {images}")
    if loss == "distill" and images is None:
        raise ValueError("env.finetune_loss=distill computes the dense model's logits once for a fixed sample of "
                         "training images: set env.finetune_images (e.g. 2048), not null")


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int) -> None:
    """Re-estimate every BatchNorm's running mean and variance on `images`, leaving the model in eval mode.

    `images` may live on the CPU: each batch goes to the model's device as it is used, so a GPU
    model never needs the whole recovery set copied over first.

    Only the BatchNorm layers run in training mode (dropout stays off, so the result is
    deterministic). Each batch's momentum is its share of the images seen so far, so the
    estimate is the image-weighted average of the batch statistics: a short last batch counts
    for its size, not as much as a full one (PyTorch's momentum=None would weight it equally).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return
    device = model_device(model)
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.train()
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size]
                for layer in layers:
                    layer.momentum = len(batch) / (start + len(batch))
                model(to_device(batch, device))
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.eval()


class ModelSnapshot:
    """The state of a model at construction, restorable in place (no reallocation).

    `skip` names state entries the caller rewrites itself every episode (the pruned weights,
    written as original * mask), so they are neither stored twice nor copied twice.
    """

    def __init__(self, model: nn.Module, skip: set[str] | None = None) -> None:
        self._live: Mapping[str, torch.Tensor] = model.state_dict(keep_vars=False)
        self._saved = {name: tensor.detach().clone() for name, tensor in self._live.items()
                       if name not in (skip or set())}

    def restore(self) -> None:
        with torch.no_grad():
            for name, tensor in self._saved.items():
                self._live[name].copy_(tensor)
