"""ImageNet (or any ImageFolder pair) from root/train and root/val with the standard transforms.

The training split augments (RandomResizedCrop + flip); the search split, although cut from the
training images, uses the evaluation transform (Resize + CenterCrop) so that its accuracy is a
deterministic function of the model, as the RL reward needs.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Subset
from torchvision import datasets, transforms

from envs.workload.datasets.splits import FolderSplit

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class FolderData:
    train: FolderSplit
    search: FolderSplit
    test: FolderSplit
    classes: tuple[str, ...]


def train_transform(crop: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.RandomResizedCrop(crop), transforms.RandomHorizontalFlip(),
        transforms.Lambda(_rgb), transforms.PILToTensor(),
    ])


def eval_transform(resize: int, crop: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize(resize), transforms.CenterCrop(crop), transforms.Lambda(_rgb), transforms.PILToTensor(),
    ])


def _rgb(image):
    return image.convert("RGB")


def _folder(root: Path, part: str) -> datasets.ImageFolder:
    folder = root / part
    if not folder.is_dir():
        raise FileNotFoundError(
            f"ImageNet folder {str(folder)!r} not found: expected data.root=<folder> holding train/ and val/, "
            "each with one sub-folder of images per class (val/ sorted into class folders, e.g. by "
            "the usual valprep.sh); AUTO-PRUNE never downloads"
        )
    return datasets.ImageFolder(str(folder))


def _identity(dataset: datasets.ImageFolder, indices: torch.Tensor | None, transform: object) -> str:
    """What a split's fingerprint hashes: its files (relative names), labels and transform."""
    root = Path(dataset.root)
    samples = dataset.samples if indices is None else [dataset.samples[int(i)] for i in indices]
    digest = hashlib.sha256(repr(transform).encode())
    for path, label in samples:
        digest.update(f"{Path(path).relative_to(root)}:{label}\n".encode())
    return digest.hexdigest()


def load(root: str | Path | None, search_indices_fn, resize: int = 256, crop: int = 224,
         num_workers: int = 0) -> FolderData:
    """Splits of root/train (train, search) and root/val (test).

    `search_indices_fn(n) -> (train_idx, search_idx)` cuts the training images (data.py's rule).
    """
    if root is None:
        raise FileNotFoundError("imagenet needs data.root=<folder holding train/ and val/>; AUTO-PRUNE never downloads")
    if crop > resize:
        raise ValueError(f"imagenet crop ({crop}) must not exceed resize ({resize})")
    root = Path(root).expanduser()
    train_folder, val_folder = _folder(root, "train"), _folder(root, "val")
    if train_folder.classes != val_folder.classes:
        raise ValueError(
            f"ImageNet train/ has {len(train_folder.classes)} classes and val/ {len(val_folder.classes)}, "
            "expected the same class folders in both"
        )
    train_idx, search_idx = search_indices_fn(len(train_folder))
    targets = torch.as_tensor(train_folder.targets, dtype=torch.int64)
    evaluating = eval_transform(resize, crop)
    augmenting = train_transform(crop)
    train_view, eval_view = copy.copy(train_folder), copy.copy(train_folder)
    train_view.transform, eval_view.transform = augmenting, evaluating
    val_folder.transform = evaluating

    def split(dataset, indices, labels, transform) -> FolderSplit:
        subset = dataset if indices is None else Subset(dataset, indices.tolist())
        return FolderSplit(subset, labels, MEAN, STD, lambda: _identity(dataset, indices, transform), num_workers)

    return FolderData(
        train=split(train_view, train_idx, targets[train_idx], augmenting),
        search=split(eval_view, search_idx, targets[search_idx], evaluating),
        test=split(val_folder, None, torch.as_tensor(val_folder.targets, dtype=torch.int64), evaluating),
        classes=tuple(train_folder.classes),
    )
