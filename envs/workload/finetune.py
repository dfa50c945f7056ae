"""Masked fine-tuning: SGD steps that keep pruned weights at zero."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from envs.workload.device import to_device
from envs.workload.training import eta


class NonFiniteLoss(RuntimeError):
    """Fine-tuning diverged; the caller ends the episode with a penalty instead of crashing."""


def reapply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            modules[name].weight.mul_(mask.to(modules[name].weight.device))


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
            generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches over in-memory tensors."""
    while True:
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            yield images[index], labels[index]


def finetune_masked(model: nn.Module, masks: Mapping[str, torch.Tensor], images: torch.Tensor,
                    labels: torch.Tensor, steps: int, lr: float, batch_size: int = 128,
                    seed: int = 0, log_every: int = 0) -> list[float]:
    """Run `steps` SGD steps (momentum 0.9, cosine LR), re-zeroing pruned weights after each.

    Raises NonFiniteLoss as soon as a loss is NaN or infinite.
    """
    if steps <= 0:
        return []
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    model.train()
    stream = batches(images, labels, min(batch_size, len(labels)), generator)
    device = next(model.parameters()).device
    start = time.perf_counter()
    for step in range(steps):
        x, y = next(stream)
        x, y = to_device(x, device), to_device(y, device)
        loss = loss_fn(model(x), y)
        if not math.isfinite(loss.item()):
            raise NonFiniteLoss(f"fine-tuning loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        reapply_masks(model, masks)
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"  fine-tune step {step + 1}/{steps} loss {loss.item():.4f} "
                  f"{eta(step + 1, steps, time.perf_counter() - start)}", flush=True)
    model.eval()
    return losses
