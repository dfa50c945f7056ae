"""Structural baselines on ResNet-18: smaller, still runnable models whose mapping is dense."""

import pytest
import torch
import torchvision
from torch import nn

from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from mapping.crossbar_model import CrossbarModel
from mapping.mapper import prune_and_map
from mapping.matrices import prunable_layers

ISAAC = load_hw_spec("isaac")
SHAPE = (1, 3, 32, 32)


def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def weights(model) -> int:
    return sum(module.weight.numel() for _, module in prunable_layers(model))


@pytest.mark.parametrize("granularity", ["filter", "channel"])
def test_structural_pruning_keeps_resnet18_runnable_and_shrinks_its_weights(granularity):
    model = resnet18()
    original = weights(model)
    pruned, layout = prune_and_map(model, 0.5, ISAAC, granularity, SHAPE)
    with torch.no_grad():
        assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # Halving both sides of (almost) every conv leaves about a quarter of the weights.
    assert weights(pruned) < 0.35 * original
    assert weights(model) == original  # the original model is untouched
    assert {layer.granularity for layer in layout.layers} == {"dense"}
    assert layout.compression_rate > 3.0
    assert 0.6 < layout.sparsity < 0.8


def test_filter_pruning_keeps_the_class_outputs_and_couples_residual_streams():
    pruned, _ = prune_and_map(resnet18(), 0.5, ISAAC, "filter", SHAPE)
    modules = dict(prunable_layers(pruned))
    assert modules["fc"].out_features == 10
    stream = modules["conv1"].out_channels  # the stem feeds layer1's residual stream
    assert modules["layer1.0.conv2"].out_channels == modules["layer1.1.conv2"].out_channels == stream == 32


def test_channel_pruning_keeps_the_image_channels():
    pruned, _ = prune_and_map(resnet18(), 0.5, ISAAC, "channel", SHAPE)
    modules = dict(prunable_layers(pruned))
    assert modules["conv1"].in_channels == 3
    assert modules["layer1.0.conv2"].in_channels == 32


def test_a_structural_layout_is_priced_against_the_original_shapes():
    _, layout = prune_and_map(resnet18(), 0.5, ISAAC, "filter", SHAPE)
    layer = next(layer for layer in layout.layers if layer.name == "layer4.1.conv2")
    assert (layer.matrix.rows, layer.matrix.cols) == (256 * 9, 256)
    assert (layer.dense_rows, layer.dense_cols) == (512 * 9, 512)


def test_the_smaller_model_runs_on_its_dense_crossbar_mapping():
    pruned, layout = prune_and_map(resnet18(), 0.5, ISAAC, "filter", SHAPE)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = pruned(x)
    out = CrossbarModel(pruned, layout, CrossbarSimulator(ISAAC))(x)
    assert float((out - reference).abs().max() / reference.abs().max()) < 0.1


def test_channel_pruning_of_a_classifier_after_flatten_removes_whole_feature_maps():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 8 * 8, 10)).eval()
    pruned, _ = prune_and_map(model, {"5": 0.5}, ISAAC, "channel", (1, 3, 8, 8))
    assert pruned[2].out_channels == 8  # half of the 16 maps the classifier reads
    assert pruned[5].in_features == 8 * 8 * 8
    assert pruned(torch.randn(1, 3, 8, 8)).shape == (1, 10)


def test_filter_pruning_a_model_whose_couplings_it_cannot_trace_fails_naming_the_way_out():
    from envs.workload.models import build_model
    from mapping.granularity import GranularityError

    option_a = build_model("resnet20", num_classes=10, in_channels=1, stem="A").eval()
    with pytest.raises(GranularityError, match="model.stem=B"):
        prune_and_map(option_a, 0.3, load_hw_spec("isaac"), "filter", (1, 1, 28, 28))
    option_b = build_model("resnet20", num_classes=10, in_channels=1, stem="B").eval()
    pruned, _ = prune_and_map(option_b, 0.3, load_hw_spec("isaac"), "filter", (1, 1, 28, 28))
    assert pruned(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
