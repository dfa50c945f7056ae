"""Masked fine-tuning: SGD steps that keep pruned weights at zero.

Two knobs make it cheaper than plain training, which matters on a CPU where every episode
fine-tunes (`env.recovery=finetune`):

- `loss="distill"`: match the dense model's logits (knowledge distillation, Hinton et al. 2015)
  instead of the labels. The teacher's logits are computed once for a fixed sample of training
  images (`teacher_logits`), so a step costs no more than a cross-entropy step, and the unpruned
  reference, which already matches its own logits, is barely moved by it.
- `params="pruned"`: train only the layers a policy pruned, plus every BatchNorm's affine
  parameters, leaving the untouched layers as the dense model trained them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from envs.workload.device import model_device, to_device
from envs.workload.training import eta

FINETUNE_LOSSES = ("ce", "distill")
FINETUNE_PARAMS = ("all", "pruned")
FINETUNE_BN = ("batch", "frozen")  # BatchNorm during fine-tuning: batch statistics, or the running ones fixed
DISTILL_TEMPERATURE = 1.0  # KL between the softmaxes at this temperature (the gradient is scaled by T^2)


def check_finetune_options(loss: str = "ce", params: str = "all", bn: str = "batch") -> None:
    """Reject an unknown fine-tuning loss, parameter set or BatchNorm mode, naming its env setting."""
    for setting, value, choices in (("env.finetune_loss", loss, FINETUNE_LOSSES),
                                    ("env.finetune_params", params, FINETUNE_PARAMS),
                                    ("env.finetune_bn", bn, FINETUNE_BN)):
        if value not in choices:
            raise ValueError(f"{setting} must be one of {list(choices)}, got {value!r}")


class NonFiniteLoss(RuntimeError):
    """Fine-tuning diverged; the caller ends the episode with a penalty instead of crashing."""


def reapply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            modules[name].weight.mul_(mask.to(modules[name].weight.device))


def batches(images: torch.Tensor, targets: torch.Tensor, batch_size: int,
            generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches over in-memory tensors."""
    while True:
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            yield images[index], targets[index]


def teacher_logits(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The logits of `model` (in eval mode) on `images`, kept on the model's device: distillation's targets."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(to_device(images[start:start + batch_size], device)).float()
                            for start in range(0, len(images), batch_size)])
    model.train(was_training)
    return logits.clone()  # out of inference mode, so autograd may read it as a target


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) between the softmaxes at DISTILL_TEMPERATURE, times T^2 (Hinton et al.)."""
    t = DISTILL_TEMPERATURE
    return F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True) * t * t


def trainable_parameters(model: nn.Module, masks: Mapping[str, torch.Tensor], params: str) -> list[nn.Parameter]:
    """The parameters fine-tuning updates: all of them, or those of pruned layers and BatchNorms."""
    check_finetune_options(params=params)
    if params == "all":
        return list(model.parameters())
    pruned = {name for name, mask in masks.items() if not bool(mask.all())}
    return [parameter for name, module in model.named_modules()
            if name in pruned or isinstance(module, nn.modules.batchnorm._BatchNorm)
            for parameter in module.parameters(recurse=False)]


@contextmanager
def only_trainable(model: nn.Module, chosen: list[nn.Parameter]) -> Iterator[None]:
    """Freeze every parameter of `model` outside `chosen` (no gradient computed), restored on exit."""
    keep = {id(parameter) for parameter in chosen}
    before = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    try:
        for parameter, _ in before:
            parameter.requires_grad_(id(parameter) in keep)
        yield
    finally:
        for parameter, flag in before:
            parameter.requires_grad_(flag)


def finetune_masked(model: nn.Module, masks: Mapping[str, torch.Tensor], images: torch.Tensor,
                    targets: torch.Tensor, steps: int, lr: float, batch_size: int = 128,
                    seed: int = 0, log_every: int = 0, loss: str = "ce", params: str = "all",
                    bf16: bool = False, bn: str = "batch") -> list[float]:
    """Run `steps` SGD steps (momentum 0.9, cosine LR), re-zeroing pruned weights after each.

    `targets` are class labels for `loss="ce"` and the dense model's logits for `loss="distill"`.
    `bf16` runs the forward pass under bfloat16 autocast (the loss and the update stay float32).
    `bn="frozen"` keeps every BatchNorm in eval mode (its running statistics fixed, its affine
    parameters still trained): small batches then add no batch-statistics noise, and a model that
    already matches its distillation targets gets no gradient at all.
    Raises NonFiniteLoss as soon as a loss is NaN or infinite.
    """
    check_finetune_options(loss, params, bn)
    if steps <= 0:
        return []
    if len(images) != len(targets):
        raise ValueError(f"fine-tuning got {len(images)} images but {len(targets)} targets")
    chosen = trainable_parameters(model, masks, params)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(chosen, lr=lr, momentum=0.9, weight_decay=5e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = distillation_loss if loss == "distill" else F.cross_entropy
    losses: list[float] = []
    stream = batches(images, targets, min(batch_size, len(targets)), generator)
    device = model_device(model)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    start = time.perf_counter()
    model.train()
    if bn == "frozen":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    with only_trainable(model, chosen):
        for step in range(steps):
            x, y = next(stream)
            with autocast:
                outputs = model(to_device(x, device))
            value = loss_fn(outputs.float(), to_device(y, device))
            if not math.isfinite(value.item()):
                raise NonFiniteLoss(f"fine-tuning loss became {value.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            schedule.step()
            reapply_masks(model, masks)
            losses.append(value.item())
            if log_every and (step + 1) % log_every == 0:
                print(f"  fine-tune step {step + 1}/{steps} loss {value.item():.4f} "
                      f"{eta(step + 1, steps, time.perf_counter() - start)}", flush=True)
    model.eval()
    return losses
