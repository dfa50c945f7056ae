"""Dense training of a baseline: SGD with momentum, warm-up then cosine LR, seeded, with progress lines.

Every hyperparameter lives in TrainRecipe (CleanRL's habit: all in one visible place).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from envs.config_keys import reject_unknown_keys
from envs.workload.datasets.splits import Split
from envs.workload.device import to_device

log = logging.getLogger(__name__)

AUGMENTS = ("none", "flip", "crop", "crop_flip")
PRECISIONS = ("fp32", "bf16")
# Fields that do not change the trained weights, left out of the baseline cache key.
COSMETIC = ("threads", "log_every")


@dataclass(frozen=True)
class TrainRecipe:
    """How a dense baseline is trained (the `recipe` block of conf/model/*.yaml)."""

    epochs: float = 3.0
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # not applied to biases and BatchNorm parameters
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0
    zero_init_residual: bool = False  # zero each residual branch's last BN scale: deep ResNets train faster
    augment: str = "none"  # AUGMENTS; on in-memory data (imagenet augments in its transforms)
    precision: str = "fp32"  # PRECISIONS; bf16 autocast for the forward pass
    threads: int | None = None  # torch.set_num_threads during training; None leaves it alone
    log_every: int = 50  # steps between progress lines

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError(
                f"recipe epochs ({self.epochs}) and lr ({self.lr}) must be > 0, batch_size ({self.batch_size}) >= 2"
            )
        if self.augment not in AUGMENTS:
            raise ValueError(f"recipe augment {self.augment!r} is not one of {AUGMENTS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"recipe precision {self.precision!r} is not one of {PRECISIONS}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"recipe label_smoothing ({self.label_smoothing}) must be in [0, 1)")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | TrainRecipe | None) -> TrainRecipe:
        if values is None:
            return cls()
        if isinstance(values, cls):
            return values
        reject_unknown_keys(values, (f.name for f in fields(cls)), "recipe")
        return cls(**dict(values))

    def key_fields(self) -> dict[str, Any]:
        """The fields that determine the trained weights."""
        return {k: v for k, v in asdict(self).items() if k not in COSMETIC}


@dataclass(frozen=True)
class TrainStats:
    steps: int
    images: int
    seconds: float  # wall clock
    cpu_seconds: float  # process CPU time, to tell a slow machine from a shared one
    final_loss: float


@contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """torch.set_num_threads(threads) for the block, restoring the previous value."""
    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads ({threads}) must be >= 1 or null")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat denormal floats as zero for the block (x86 CPUs compute on them ~100x slower).

    Momentum buffers of parameters whose gradient stays zero decay geometrically into the
    denormal range late in training; flushing them changes nothing a model's accuracy can see.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from `peak` to 0 at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def augment_batch(x: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """Random per-image flips and/or shifts (zero padding of H/8), vectorized over the batch."""
    if kind in ("crop", "crop_flip"):
        n, c, h, w = x.shape
        pad = max(1, h // 8)
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
        rows = (dy + torch.arange(h)).view(n, 1, h, 1)
        cols = (dx + torch.arange(w)).view(n, 1, 1, w)
        x = padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]
    if kind in ("flip", "crop_flip"):
        flip = (torch.rand(x.shape[0], generator=generator) < 0.5).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
    return x.contiguous(memory_format=torch.channels_last)


def zero_residual_branches(model: nn.Module) -> int:
    """Zero the last BatchNorm scale of every residual block, so each block starts as the identity.

    Goyal et al. 2017: a deep ResNet then starts as a shallow one and takes a high LR from step 0.
    Returns how many blocks were changed (0 for models without residual blocks).
    """
    from torchvision.models.resnet import BasicBlock as TorchBasic
    from torchvision.models.resnet import Bottleneck

    from envs.workload.cifar_resnet import BasicBlock as CifarBasic

    changed = 0
    for module in model.modules():
        last_bn = {Bottleneck: "bn3", TorchBasic: "bn2", CifarBasic: "bn2"}.get(type(module))
        if last_bn is not None:
            nn.init.zeros_(getattr(module, last_bn).weight)
            changed += 1
    return changed


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def clock(seconds: float) -> str:
    """m:ss, for progress lines."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def eta(done: float, total: float, elapsed: float) -> str:
    """`elapsed m:ss ETA m:ss` for `done` of `total` units of work taking `elapsed` seconds so far."""
    remaining = (total - done) * elapsed / done if done > 0 else float("nan")
    return f"elapsed {clock(elapsed)} ETA {clock(remaining) if remaining == remaining else '?'}"


def train_model(
    model: nn.Module,
    train: Split,
    recipe: TrainRecipe,
    seed: int,
    device: str | torch.device = "cpu",
    progress: Callable[[str], None] | None = None,
) -> TrainStats:
    """Train `model` in place on `train` following `recipe`; deterministic for a given seed on CPU.

    Progress lines go to `progress` (default: this module's logger at INFO).
    """
    emit = progress or log.info
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    total = max(1, math.ceil(recipe.epochs * steps_per_epoch))
    warmup = int(recipe.warmup_epochs * steps_per_epoch)
    if recipe.zero_init_residual:
        zero_residual_branches(model)
    model.to(device=device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(_param_groups(model, recipe.weight_decay), lr=recipe.lr,
                                momentum=recipe.momentum, nesterov=recipe.nesterov)
    autocast = (torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
                if recipe.precision == "bf16" else nullcontext())
    step, images, loss_value = 0, 0, float("nan")
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    with num_threads(recipe.threads), flush_denormals():
        while step < total:
            for x, y in train.batches(recipe.batch_size, shuffle=True, generator=generator):
                if step >= total:
                    break
                if len(y) < 2:  # BatchNorm cannot train on a single image
                    continue
                if recipe.augment != "none":
                    x = augment_batch(x, recipe.augment, generator)
                lr = lr_at(step, total, warmup, recipe.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = to_device(x, device), to_device(y, device)
                with autocast:
                    loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                images += len(y)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise FloatingPointError(
                        f"training loss is {loss_value} at step {step}/{total}; expected a finite loss "
                        f"(lower recipe.lr={recipe.lr} or add recipe.warmup_epochs)"
                    )
                if step % recipe.log_every == 0 or step == total:
                    elapsed = time.perf_counter() - start_wall
                    rate = images / elapsed
                    emit(f"train epoch {step / steps_per_epoch:.2f}/{recipe.epochs:g} step {step}/{total} "
                         f"loss {loss_value:.3f} lr {lr:.4f} {rate:.0f} img/s {eta(step, total, elapsed)}")
    model.eval()
    return TrainStats(steps=step, images=images, seconds=time.perf_counter() - start_wall,
                      cpu_seconds=time.process_time() - start_cpu, final_loss=loss_value)
