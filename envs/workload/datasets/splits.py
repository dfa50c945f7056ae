"""Split containers: images kept as uint8, normalized to float per batch, channels-last.

Keeping uint8 (4x smaller than float) and normalizing per batch costs little next to the model; the
search split, which the RL env evaluates thousands of times, is instead materialized once as a
normalized float tensor by `tensors()` and cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

Batch = tuple[Tensor, Tensor]
TENSORS_LIMIT_BYTES = 8 * 2**30  # FolderSplit.tensors() refuses to materialize more than this


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 NCHW images -> float32 (x/255 - mean)/std per channel, channels-last."""
    x = images.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s).contiguous(memory_format=torch.channels_last)


class Split(Protocol):
    """What training and evaluation need from a split, whatever holds its images."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
                ) -> Iterator[Batch]: ...

    def tensors(self) -> Batch: ...

    def fingerprint(self) -> str: ...


@dataclass(eq=False)
class TensorSplit:
    """A split held in memory: `images` uint8 (N, C, H, W), `labels` int64 (N,)."""

    images: Tensor
    labels: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _cache: Batch | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
                ) -> Iterator[Batch]:
        order = torch.randperm(len(self), generator=generator) if shuffle else None
        for start in range(0, len(self), batch_size):
            if order is None:
                index = slice(start, start + batch_size)
            else:
                index = order[start:start + batch_size]
            yield normalize(self.images[index], self.mean, self.std), self.labels[index]

    def tensors(self) -> Batch:
        if self._cache is None:
            self._cache = (normalize(self.images, self.mean, self.std), self.labels)
        return self._cache

    def fingerprint(self) -> str:
        digest = hashlib.sha256(str(tuple(self.images.shape)).encode())
        digest.update(self.labels.numpy().tobytes())
        step = max(1, len(self) // 512)  # a sample of the images: enough to tell data sets apart
        digest.update(self.images[::step].contiguous().numpy().tobytes())
        return digest.hexdigest()


@dataclass(eq=False)
class FolderSplit:
    """A split decoded from image files on the fly; `dataset` yields (uint8 CHW tensor, label)."""

    dataset: Dataset
    labels: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    identity: Callable[[], str]  # what the fingerprint hashes (file list, transform), computed on demand
    num_workers: int = 0
    _cache: Batch | None = field(default=None, init=False, repr=False)
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
                ) -> Iterator[Batch]:
        loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                            num_workers=self.num_workers)
        for images, labels in loader:
            yield normalize(images, self.mean, self.std), labels.to(torch.int64)

    def tensors(self) -> Batch:
        """All images decoded once (ImageNet: 5,000 images at 224x224 take 3 GB as float32).

        Refuses splits above TENSORS_LIMIT_BYTES (ImageNet's training split would need ~770 GB):
        iterate batches() for those.
        """
        if self._cache is None and len(self):
            first = self.dataset[0][0]
            needed = len(self) * first.numel() * 4
            if needed > TENSORS_LIMIT_BYTES:
                raise ValueError(
                    f"a split of {len(self)} images of shape {tuple(first.shape)} needs {needed / 2**30:.1f} GiB "
                    f"as one float tensor, above {TENSORS_LIMIT_BYTES / 2**30:.0f} GiB; iterate split.batches() instead"
                )
        if self._cache is None:
            parts = list(self.batches(256))
            images = torch.cat([p[0] for p in parts]) if parts else torch.empty(0)
            labels = torch.cat([p[1] for p in parts]) if parts else torch.empty(0, dtype=torch.int64)
            self._cache = (images.contiguous(memory_format=torch.channels_last), labels)
        return self._cache

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(self.identity().encode()).hexdigest()
        return self._fingerprint


def split_indices(n: int, search_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded permutation of range(n) cut into (train, search) index tensors, disjoint.

    Indices stay in permuted order, so a split of label-sorted data (mnist5k) is in random order
    and an evaluation stopped early has seen a fair sample of it.
    """
    if not 0 <= search_size <= n:
        raise ValueError(f"search split of {search_size} images does not fit in {n} images")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    return order[search_size:], order[:search_size]
