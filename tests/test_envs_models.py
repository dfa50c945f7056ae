"""Model builders and local weights (envs/workload/: models.py, cifar_resnet.py, weights.py)."""

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from envs.workload.baseline import ModelConfig
from envs.workload.config_files import CONF, read_group
from envs.workload.models import BUILDERS, build_model
from envs.workload.training import TrainRecipe, zero_residual_branches

ALL_MODELS = sorted(BUILDERS)
IMAGENET_MODELS = {"resnet18": tvm.resnet18, "resnet50": tvm.resnet50, "vgg16_bn": tvm.vgg16_bn,
                   "mobilenet_v2": tvm.mobilenet_v2}


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def meta_shapes(build, *args, **kwargs) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of a model built on the meta device: no memory, no initialization time."""
    with torch.device("meta"):
        return shapes(build(*args, **kwargs))


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_every_model_classifies_small_images(name, channels, size):
    model = build_model(name, num_classes=7, in_channels=channels, small_input=True).eval()
    with torch.no_grad():
        assert model(torch.randn(2, channels, size, size)).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(IMAGENET_MODELS))
def test_without_small_input_the_state_dict_is_torchvisions(name):
    ours = meta_shapes(build_model, name, num_classes=1000, in_channels=3, small_input=False)
    assert ours == meta_shapes(IMAGENET_MODELS[name], weights=None)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_small_input_changes_only_the_first_conv(name):
    small = meta_shapes(build_model, name, 10, in_channels=1, small_input=True)
    large = meta_shapes(build_model, name, 10, in_channels=3, small_input=False)
    assert small.keys() == large.keys()
    assert [k for k in small if small[k] != large[k]] in (["conv1.weight"], ["features.0.0.weight"])


def test_small_vgg_pools_to_1x1_before_a_512_wide_classifier():
    small = meta_shapes(build_model, "vgg16_bn", 10, in_channels=3, small_input=True)
    large = meta_shapes(build_model, "vgg16_bn", 10, in_channels=3, small_input=False)
    assert small.keys() == large.keys()
    assert [k for k in small if small[k] != large[k]] == ["classifier.0.weight"]
    assert small["classifier.0.weight"] == (4096, 512) and large["classifier.0.weight"] == (4096, 25088)


@pytest.mark.parametrize(("stem", "side"), [("s2pool", 7), ("imagenet", 7), ("s2", 14), ("cifar", 28)])
def test_resnet50_stem_sets_layer1_resolution_at_28x28(stem, side):
    model = build_model("resnet50", 10, in_channels=1, small_input=True, stem=stem).eval()
    seen = {}

    def record(module, args, out):
        seen["shape"] = out.shape

    model.layer1.register_forward_hook(record)
    with torch.no_grad():
        model(torch.randn(1, 1, 28, 28))
    assert seen["shape"][-2:] == (side, side)


def test_resnet50_small_input_default_stem_is_s2pool():
    model = build_model("resnet50", 10, in_channels=1)
    assert (model.conv1.kernel_size, model.conv1.stride, type(model.maxpool)) == ((3, 3), (2, 2), nn.MaxPool2d)


def test_cifar_resnets_have_6n_plus_2_weight_layers():
    def weight_layers(model):
        return sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules())

    assert weight_layers(build_model("resnet20", 10)) == 20
    assert weight_layers(build_model("resnet56", 10)) == 56
    assert weight_layers(build_model("resnet20", 10, stem="B")) == 22  # two 1x1 projection shortcuts


def test_zero_init_residual_touches_every_block():
    assert zero_residual_branches(build_model("resnet20", 10)) == 9
    assert zero_residual_branches(build_model("resnet50", 10)) == 16
    assert zero_residual_branches(build_model("small_cnn", 10)) == 0


def test_unknown_model_and_stem_are_rejected():
    with pytest.raises(ValueError, match="model 'resnet101' is not one of"):
        build_model("resnet101", 10)
    with pytest.raises(ValueError, match="stem 'tiny' is not one of"):
        build_model("resnet50", 10, stem="tiny")
    with pytest.raises(ValueError, match="no stem choice"):
        build_model("vgg16_bn", 10, stem="s2")


# --- weights --------------------------------------------------------------------------------


def test_imagenet_style_state_dict_loads_from_a_file(tmp_path):
    reference = tvm.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("resnet18", 1000, 3, small_input=False, weights=path)
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.fc.bias, reference.fc.bias)


def test_wrapped_and_data_parallel_state_dicts_load(tmp_path):
    reference = build_model("resnet20", 10)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 3}, path)
    model = build_model("resnet20", 10, weights=path)
    assert torch.equal(model.fc.weight, reference.fc.weight)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth' does not exist"):
        build_model("resnet20", 10, weights=tmp_path / "nope.pth")


def test_mismatched_weights_list_the_offending_keys(tmp_path):
    path = tmp_path / "resnet20.pth"
    torch.save(build_model("resnet20", 10).state_dict(), path)
    with pytest.raises(ValueError, match=r"weights in .* do not fit.*missing keys: layer1\.3\.") as error:
        build_model("resnet56", 10, weights=path)
    assert "(+" in str(error.value)  # more keys than the few listed
    with pytest.raises(ValueError, match=r"shape mismatches: fc.weight \(10, 64\) vs model \(5, 64\)"):
        build_model("resnet20", 5, weights=path)


def test_a_file_that_is_not_a_state_dict_is_rejected(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch state dict"):
        build_model("resnet20", 10, weights=garbage)
    listed = tmp_path / "list.pth"
    torch.save([1, 2], listed)
    with pytest.raises(ValueError, match="holds a list, expected a state dict"):
        build_model("resnet20", 10, weights=listed)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
def test_every_model_yaml_builds_its_model_and_recipe(name):
    values = read_group("model", name)
    config = ModelConfig.from_mapping(values)
    TrainRecipe.from_mapping(values["recipe"])
    assert config.name == name
    model = build_model(config.name, 10, 1, config.small_input, config.weights, config.stem)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_model_yamls_cover_every_model():
    assert sorted(p.stem for p in (CONF / "model").glob("*.yaml")) == ALL_MODELS


def test_model_config_rejects_unknown_keys_and_bad_recipes():
    with pytest.raises(ValueError, match=r"unknown model config keys \['smal_input'\]"):
        ModelConfig.from_mapping({"name": "resnet20", "smal_input": True})
    with pytest.raises(ValueError, match=r"unknown recipe keys \['epoch'\]"):
        ModelConfig.from_mapping({"name": "resnet20", "recipe": {"epoch": 3}})
