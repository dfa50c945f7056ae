"""Trained baselines, their cache, training and evaluation (envs/workload/baseline.py, training.py, evaluation.py)."""

import json
import math

import pytest
import torch
from torch import nn

import envs.workload.baseline as baseline_module
from envs.workload.baseline import get_baseline
from envs.workload.baseline_cache import CHECKPOINT, META
from envs.workload.data import load_dataset
from envs.workload.evaluation import evaluate
from envs.workload.models import build_model
from envs.workload.training import TrainRecipe, augment_batch, lr_at, train_model

MODEL = {"name": "small_cnn"}
DATA = {"name": "digits"}
RECIPE = TrainRecipe(epochs=1, batch_size=64, lr=0.05, threads=1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def baseline(cache, splits, recipe=RECIPE, seed=0, model=MODEL):
    return get_baseline(model, DATA, recipe, seed, cache, splits=splits)


class CountingTrainer:
    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return train_model(*args, **kwargs)


@pytest.fixture
def trainer(monkeypatch):
    counting = CountingTrainer()
    monkeypatch.setattr(baseline_module, "train_model", counting)
    return counting


# --- cache ----------------------------------------------------------------------------------


def test_cache_miss_trains_and_writes_checkpoint_and_accuracies(tmp_path, digits, trainer):
    result = baseline(tmp_path, digits)
    assert (result.source, trainer.calls) == ("trained", 1)
    assert result.trained_seconds > 0 and result.checkpoint_path == result.entry / CHECKPOINT
    meta = json.loads((result.entry / META).read_text())
    assert meta["test_accuracy"] == result.test_accuracy and meta["search_accuracy"] == result.search_accuracy
    assert 0.5 < result.test_accuracy <= 1.0  # one epoch of a small CNN on 8x8 digits


def test_loading_or_training_a_baseline_leaves_the_callers_random_state_alone(tmp_path, digits):
    """Two RLlib env runners, seeded 1 and 2, each build their env (and load the baseline): if loading
    reseeded the global RNG, both would sample the same actions and evaluate every episode twice."""
    for _ in range(2):  # trained, then from the cache
        torch.manual_seed(1)
        expected = torch.rand(3)
        torch.manual_seed(1)
        baseline(tmp_path, digits)
        assert torch.equal(torch.rand(3), expected)


def test_cache_hit_loads_the_same_model_without_training(tmp_path, digits, trainer):
    first = baseline(tmp_path, digits)
    second = baseline(tmp_path, digits)
    assert (second.source, second.trained_seconds, trainer.calls) == ("cache", 0.0, 1)
    assert second.test_accuracy == first.test_accuracy
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name])


def test_cosmetic_recipe_fields_share_an_entry(tmp_path, digits, trainer):
    baseline(tmp_path, digits)
    again = baseline(tmp_path, digits, TrainRecipe(epochs=1, batch_size=64, lr=0.05, threads=2, log_every=7))
    assert (again.source, trainer.calls) == ("cache", 1)


@pytest.mark.parametrize("change", [{"recipe": TrainRecipe(epochs=1, batch_size=64, lr=0.02)}, {"seed": 1}])
def test_another_recipe_or_seed_is_another_entry(tmp_path, digits, trainer, change):
    first = baseline(tmp_path, digits)
    other = baseline(tmp_path, digits, **change)
    assert (other.source, trainer.calls) == ("trained", 2) and other.entry != first.entry


def corrupt_truncate(entry):
    path = entry / CHECKPOINT
    path.write_bytes(path.read_bytes()[:100])


def corrupt_garble(entry):
    path = entry / CHECKPOINT
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt_meta(entry):
    (entry / META).write_text("{not json")


def drop_meta(entry):
    (entry / META).unlink()


def forge_meta(entry):
    meta = json.loads((entry / META).read_text())
    (entry / META).write_text(json.dumps({**meta, "key": "0" * 64}))


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_garble, corrupt_meta, drop_meta, forge_meta])
def test_a_corrupt_entry_is_reported_and_retrained(tmp_path, digits, trainer, caplog, corrupt):
    first = baseline(tmp_path, digits)
    corrupt(first.entry)
    again = baseline(tmp_path, digits)
    assert (again.source, trainer.calls) == ("trained", 2)
    assert again.test_accuracy == first.test_accuracy  # same seed, same model
    if corrupt is not drop_meta or (first.entry / CHECKPOINT).exists():
        assert "is corrupt" in caplog.text
    assert baseline(tmp_path, digits).source == "cache"  # the rewritten entry is sound


def test_no_temporary_files_are_left_behind(tmp_path, digits):
    result = baseline(tmp_path, digits)
    assert sorted(p.name for p in result.entry.iterdir()) == [META, CHECKPOINT]


def test_given_weights_are_evaluated_not_trained(tmp_path, digits, trainer):
    trained = baseline(tmp_path / "a", digits)
    weights = tmp_path / "weights.pth"
    torch.save(trained.model.state_dict(), weights)
    loaded = baseline(tmp_path / "b", digits, model={**MODEL, "weights": str(weights)})
    assert (loaded.source, loaded.trained_seconds, trainer.calls) == ("weights", 0.0, 1)
    assert loaded.test_accuracy == trained.test_accuracy and loaded.checkpoint_path == weights.resolve()
    assert baseline(tmp_path / "b", digits, model={**MODEL, "weights": str(weights)}).source == "cache"


def test_missing_weights_file_is_a_clear_error(tmp_path, digits):
    with pytest.raises(FileNotFoundError, match="missing.pth' does not exist"):
        baseline(tmp_path, digits, model={**MODEL, "weights": str(tmp_path / "missing.pth")})


def test_recipe_can_come_from_the_model_config(tmp_path, digits, trainer):
    result = get_baseline({**MODEL, "recipe": {"epochs": 1, "batch_size": 64, "lr": 0.05}}, DATA, None, 0,
                          tmp_path, splits=digits)
    assert result.source == "trained"
    assert json.loads((result.entry / META).read_text())["key_fields"]["recipe"]["batch_size"] == 64


# --- training -------------------------------------------------------------------------------


def test_lr_warms_up_linearly_then_decays_by_a_cosine():
    assert [lr_at(s, total=10, warmup=2, peak=1.0) for s in (0, 1)] == [0.5, 1.0]
    assert lr_at(2, 10, 2, 1.0) == 1.0
    assert math.isclose(lr_at(6, 10, 2, 1.0), 0.5)  # half-way through the 8 cosine steps
    assert lr_at(10, 10, 2, 1.0) == 0.0


def test_training_is_deterministic_for_a_seed(digits):
    models = [build_model("small_cnn", 10, 1) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    for model in models:
        train_model(model, digits.train, RECIPE, seed=5)
    for name, tensor in models[0].state_dict().items():
        assert torch.equal(tensor, models[1].state_dict()[name]), name


class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


def test_a_non_finite_loss_stops_training_with_advice(digits):
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 1/.*lower recipe.lr=0.05"):
        train_model(NaNNet(), digits.train, RECIPE, seed=0)


def test_invalid_recipes_are_rejected():
    with pytest.raises(ValueError, match="augment 'mixup' is not one of"):
        TrainRecipe(augment="mixup")
    with pytest.raises(ValueError, match=r"batch_size \(1\) >= 2"):
        TrainRecipe(batch_size=1)


def test_flip_augmentation_keeps_or_mirrors_each_image():
    images = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    out = augment_batch(images, "flip", torch.Generator().manual_seed(0))
    for original, seen in zip(images, out, strict=True):
        assert torch.equal(seen, original) or torch.equal(seen, original.flip(2))


def test_crop_augmentation_shifts_within_the_padding():
    images = torch.ones(4, 1, 8, 8)
    out = augment_batch(images, "crop", torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    # a shift of at most 1 pixel (8 // 8) leaves the centre 6x6 intact
    assert torch.equal(out[:, :, 1:7, 1:7], torch.ones(4, 1, 6, 6))


# --- evaluation -----------------------------------------------------------------------------


class Echo(nn.Module):
    """Predicts the class whose input channel is largest: tests choose every prediction."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x.flatten(1) * self.scale


def one_hot_images(predictions):
    return torch.nn.functional.one_hot(torch.tensor(predictions), 3).float().view(-1, 3, 1, 1)


def test_evaluate_counts_correct_predictions():
    result = evaluate(Echo(), one_hot_images([0, 1, 2, 0]), torch.tensor([0, 1, 1, 1]), batch_size=3)
    assert (result.accuracy, result.correct, result.evaluated, result.stopped_early) == (0.5, 2, 4, False)


def test_evaluate_stops_once_the_threshold_is_out_of_reach():
    # 10 images, the first 4 wrong: after 2 batches of 2 the best possible is 6/10 = 0.6 < 0.7
    predictions, labels = [1] * 4 + [0] * 6, torch.zeros(10, dtype=torch.int64)
    result = evaluate(Echo(), one_hot_images(predictions), labels, batch_size=2, stop_below=0.7)
    assert (result.evaluated, result.correct, result.stopped_early, result.upper_bound) == (4, 0, True, 0.6)
    full = evaluate(Echo(), one_hot_images(predictions), labels, batch_size=2, stop_below=0.6)
    assert (full.evaluated, full.accuracy, full.stopped_early) == (10, 0.6, False)


def test_evaluate_restores_training_mode_and_checks_its_arguments():
    model = Echo().train()
    evaluate(model, one_hot_images([0]), torch.tensor([0]))
    assert model.training
    with pytest.raises(ValueError, match=r"stop_below \(1.5\) must be an accuracy in \[0, 1\]"):
        evaluate(model, one_hot_images([0]), torch.tensor([0]), stop_below=1.5)
    with pytest.raises(ValueError, match="1 images but 2 labels"):
        evaluate(model, one_hot_images([0]), torch.tensor([0, 1]))


# --- sharing with other nodes (envs/workload/baseline_share.py) ----------------------------------------


def published(entry):
    """What the driver's depot holds for a cache entry: meta.json's text and the checkpoint's bytes."""
    return (entry / META).read_text(), (entry / CHECKPOINT).read_bytes()


def test_a_node_with_an_empty_cache_loads_the_published_baseline_without_training(tmp_path, digits, trainer,
                                                                                 monkeypatch):
    from envs.workload.baseline_share import install_entry

    trained = baseline(tmp_path / "head", digits)
    key = json.loads((trained.entry / META).read_text())["key"]
    monkeypatch.setattr(baseline_module, "fetch_entry",
                        lambda entry, wanted: install_entry(entry, wanted, *published(trained.entry)) or True)
    fetched = baseline(tmp_path / "node", digits)
    assert (fetched.source, trainer.calls) == ("cache", 1)
    assert fetched.entry.name == trained.entry.name and key in (fetched.entry / META).read_text()
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, fetched.model.state_dict()[name])


@pytest.mark.parametrize("tamper", ["checkpoint", "key"])
def test_a_tampered_published_baseline_is_refused_and_nothing_is_written(tmp_path, digits, tamper):
    from envs.workload.baseline_share import install_entry

    trained = baseline(tmp_path / "head", digits)
    meta_text, checkpoint = published(trained.entry)
    key = json.loads(meta_text)["key"]
    if tamper == "checkpoint":
        checkpoint = checkpoint[:-1] + bytes([checkpoint[-1] ^ 1])
    else:
        key = "0" * len(key)
    target = tmp_path / "node" / trained.entry.name
    with pytest.raises(ValueError, match="does not match its metadata"):
        install_entry(target, key, meta_text, checkpoint)
    assert not target.exists() or not any(target.iterdir())


def test_published_metadata_that_does_not_parse_is_refused(tmp_path, digits):
    from envs.workload.baseline_share import install_entry

    trained = baseline(tmp_path / "head", digits)
    _, checkpoint = published(trained.entry)
    with pytest.raises(ValueError, match="unreadable metadata"):
        install_entry(tmp_path / "node" / trained.entry.name, "key", '{"key": "k", "surprise": 1}', checkpoint)


def test_outside_ray_nothing_is_fetched_and_publishing_is_declined(tmp_path, digits):
    from envs.workload.baseline_share import fetch_entry, publish_entry

    trained = baseline(tmp_path / "head", digits)
    assert fetch_entry(tmp_path / "node" / trained.entry.name, "key") is False
    assert publish_entry(trained.entry) is False
    with pytest.raises(FileNotFoundError, match="nothing to publish"):
        publish_entry(tmp_path / "missing")
