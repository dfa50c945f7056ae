"""Datasets and their train / search / test splits (envs/workload/data.py, envs/workload/datasets/)."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from envs.workload.config_files import CONF, read_group
from envs.workload.data import DataConfig, load_dataset
from envs.workload.datasets import fashion_mnist
from envs.workload.datasets.splits import split_indices


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


# --- splits ---------------------------------------------------------------------------------


def test_split_indices_are_disjoint_and_cover_everything():
    train, search = split_indices(100, 20, seed=7)
    assert len(search) == 20 and len(train) == 80
    assert set(train.tolist()).isdisjoint(search.tolist())
    assert sorted(train.tolist() + search.tolist()) == list(range(100))


def test_digits_splits_add_up_to_the_dataset():
    splits = load_dataset("digits")
    # 1797 digits: 359 (20%) carved out as test, 287 (20% of the remaining 1438) as search
    assert (len(splits.train), len(splits.search), len(splits.test)) == (1151, 287, 359)
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 1, (8, 8))


def test_same_seed_gives_the_same_splits():
    first, second = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    assert torch.equal(first.search.images, second.search.images)
    assert torch.equal(first.train.labels, second.train.labels)


def test_another_seed_moves_the_search_split_but_not_the_test_split():
    first, second = load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    assert not torch.equal(first.search.images, second.search.images)
    assert torch.equal(first.test.images, second.test.images)


def test_search_size_is_clipped_to_a_fifth_of_the_training_images(caplog):
    assert len(load_dataset("digits", search_size=100).search) == 100
    assert len(load_dataset("digits", search_size=5000).search) == 287  # int(1438 * 0.2)
    assert "clipped to 287" in caplog.text


def test_negative_search_size_is_rejected():
    with pytest.raises(ValueError, match=r"search_size \(-1\) must be >= 0"):
        load_dataset("digits", search_size=-1)


def test_mnist5k_is_shuffled_before_splitting(mnist5k):
    splits = mnist5k
    assert (len(splits.train), len(splits.search), len(splits.test)) == (3200, 800, 1000)
    for split in (splits.train, splits.search, splits.test):
        assert set(split.labels.tolist()) == set(range(10))
        assert len(set(split.labels[:50].tolist())) > 5  # not label-sorted


def test_search_tensors_are_normalized_float_channels_last(mnist5k):
    images, labels = mnist5k.search_tensors()
    assert images.dtype == torch.float32 and images.shape == (800, 1, 28, 28)
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert abs(images.mean().item()) < 0.1 and abs(images.std().item() - 1) < 0.1
    assert labels.dtype == torch.int64


def test_training_batches_cover_the_split_once_per_pass():
    splits = load_dataset("digits")
    batches = list(splits.train.batches(500, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(y) for _, y in batches] == [500, 500, 151]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(splits.train.labels.tolist())


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="dataset 'svhn' is not one of"):
        load_dataset("svhn")


# --- Fashion-MNIST --------------------------------------------------------------------------


@pytest.mark.skipif(not fashion_mnist.SYSTEM_DIR.is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed "
                           "(scripts/install.sh installs it where apt-get is available)")
def test_fashion_mnist_loads_offline_from_the_debian_package():
    splits = load_dataset("fashion_mnist")
    assert (len(splits.train), len(splits.search), len(splits.test)) == (55000, 5000, 10000)
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 1, (28, 28))
    assert splits.classes[9] == "Ankle boot"


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def make_fashion_root(root: Path, gz: bool) -> np.ndarray:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28))
    write_idx(raw / "train-images-idx3-ubyte", images, gz=False)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(50) % 10, gz=False)
    write_idx(raw / ("t10k-images-idx3-ubyte" + (".gz" if gz else "")), images[:10], gz)
    write_idx(raw / ("t10k-labels-idx1-ubyte" + (".gz" if gz else "")), np.arange(10), gz)
    return images


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_reads_idx_files_in_torchvision_layout(tmp_path, gz):
    images = make_fashion_root(tmp_path, gz)
    splits = load_dataset("fashion_mnist", root=tmp_path, search_size=5)
    assert (len(splits.train), len(splits.search), len(splits.test)) == (45, 5, 10)
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(images[:10].astype(np.uint8)))


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*data.root"):
        load_dataset("fashion_mnist", root=tmp_path / "nowhere")


def test_truncated_idx_file_is_rejected(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((4, 28, 28)), gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="header declares"):
        fashion_mnist.read_idx(path)


# --- CIFAR-10 -------------------------------------------------------------------------------


def make_cifar_root(root: Path, per_batch: int = 10) -> np.ndarray:
    """A fake CIFAR-10 in torchvision's python layout: 5 training batches and a test batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    everything = rng.integers(0, 256, (6 * per_batch, 3072)).astype(np.uint8)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        rows = everything[i * per_batch:(i + 1) * per_batch]
        entry = {"batch_label": name, "data": rows, "labels": [j % 10 for j in range(per_batch)],
                 "filenames": [f"{name}_{j}.png" for j in range(per_batch)]}
        with (folder / name).open("wb") as handle:
            pickle.dump(entry, handle)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)
    return everything.reshape(-1, 3, 32, 32)


def test_cifar10_loads_a_local_batch_folder(tmp_path):
    images = make_cifar_root(tmp_path)
    splits = load_dataset("cifar10", root=tmp_path, search_size=5)
    assert (len(splits.train), len(splits.search), len(splits.test)) == (45, 5, 10)
    assert (splits.in_channels, splits.image_size, splits.classes[3]) == (3, (32, 32), "class3")
    assert torch.equal(splits.test.images, torch.from_numpy(images[50:]))
    train_and_search = torch.cat([splits.train.images, splits.search.images]).flatten(1)
    assert sorted(map(bytes, train_and_search.numpy())) == sorted(map(bytes, images[:50].reshape(50, -1)))


def test_cifar10_without_root_asks_for_one():
    with pytest.raises(FileNotFoundError, match="data.root"):
        load_dataset("cifar10")


def test_cifar10_missing_batches_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1.*never downloads"):
        load_dataset("cifar10", root=tmp_path)


# --- ImageNet-style folders -----------------------------------------------------------------


def make_image_folder(root: Path, classes=("cat", "dog"), train_per_class=6, val_per_class=2) -> None:
    rng = np.random.default_rng(2)
    for part, count in (("train", train_per_class), ("val", val_per_class)):
        for name in classes:
            folder = root / part / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (30, 40, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_imagenet_loads_a_local_image_folder(tmp_path):
    make_image_folder(tmp_path)
    splits = load_dataset("imagenet", root=tmp_path, search_size=2, resize=36, crop=32)
    assert (len(splits.train), len(splits.search), len(splits.test)) == (10, 2, 4)
    assert (splits.num_classes, splits.classes, splits.image_size) == (2, ("cat", "dog"), (32, 32))
    images, labels = splits.search_tensors()
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.float32
    x, y = next(splits.train.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    assert sorted(torch.cat([y for _, y in splits.test.batches(3)]).tolist()) == [0, 0, 1, 1]


def test_a_folder_split_too_large_for_one_tensor_is_refused(tmp_path, monkeypatch):
    make_image_folder(tmp_path)
    splits = load_dataset("imagenet", root=tmp_path, search_size=2, resize=36, crop=32)
    monkeypatch.setattr("envs.workload.datasets.splits.TENSORS_LIMIT_BYTES", 10 * 3 * 32 * 32 * 4 - 1)
    with pytest.raises(ValueError, match=r"a split of 10 images .* iterate split.batches\(\) instead"):
        splits.train.tensors()


def test_imagenet_train_and_val_must_have_the_same_classes(tmp_path):
    make_image_folder(tmp_path / "a", classes=("cat", "dog"))
    make_image_folder(tmp_path / "b", classes=("cat", "eel"))
    (tmp_path / "b" / "train").rename(tmp_path / "a" / "train2")
    (tmp_path / "a" / "val").rename(tmp_path / "a" / "val_old")
    (tmp_path / "b" / "val").rename(tmp_path / "a" / "val")
    with pytest.raises(ValueError, match="same class folders"):
        load_dataset("imagenet", root=tmp_path / "a")


def test_imagenet_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.*never downloads"):
        load_dataset("imagenet", root=tmp_path)


# --- config ---------------------------------------------------------------------------------


def test_data_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown data config keys \['serch_size'\]"):
        DataConfig.from_mapping({"name": "digits", "serch_size": 10})


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "data").glob("*.yaml")))
def test_every_data_yaml_is_a_data_config(name):
    config = DataConfig.from_mapping(read_group("data", name))
    assert config.name == name


def test_data_yamls_cover_every_dataset():
    from envs.workload.data import DATASETS

    assert sorted(p.stem for p in (CONF / "data").glob("*.yaml")) == sorted(DATASETS)
