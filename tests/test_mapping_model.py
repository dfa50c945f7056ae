"""Whole models mapped and executed on crossbars: small CNN and ResNet-18.

With isaac's lossless ADC, the crossbar model running the compacted layout (index tables)
must equal the same masked model running the dense identity mapping on the same simulator;
both stay within 8-bit quantization error of the float masked model.
"""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from mapping.crossbar_model import CrossbarModel
from mapping.granularity import GranularityError
from mapping.mapper import apply_masks, map_model, prune_and_map
from mapping.matrices import layer_matrices, prunable_layers, weight_mask

ISAAC = load_hw_spec("isaac")
MNIST_SHAPE = (1, 1, 28, 28)
CIFAR_SHAPE = (1, 3, 32, 32)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10)).eval()


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    out, reference = out.detach(), reference.detach()
    return float((out - reference).abs().max() / reference.abs().max())


def test_layer_matrices_unroll_convs_and_split_groups():
    matrices = layer_matrices(small_cnn(), MNIST_SHAPE)
    assert [(m.name, m.rows, m.cols, m.positions) for m in matrices] == [
        ("0", 9, 8, 784), ("2", 72, 16, 196),
        ("5[0]", 36, 4, 196), ("5[1]", 36, 4, 196), ("5[2]", 36, 4, 196), ("5[3]", 36, 4, 196),
        ("9", 64, 10, 1)]


def test_a_matrix_mask_converts_back_to_the_weight_mask():
    mask = torch.zeros(72, 16, dtype=torch.bool)
    mask[9 * 3 + 3 * 1 + 2, 5] = True  # input channel 3, kernel (1, 2), output 5
    back = weight_mask([mask.numpy()], (16, 8, 3, 3))
    assert back.nonzero().tolist() == [[5, 3, 1, 2]]


@pytest.mark.parametrize("granularity", ["ou_row", "crossbar_row"])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.6, 0.9])
def test_small_cnn_on_crossbars_equals_the_masked_model_on_the_dense_mapping(granularity, ratio):
    model, x = small_cnn(), torch.randn(4, 1, 28, 28)
    pruned, layout = prune_and_map(model, ratio, ISAAC, granularity, MNIST_SHAPE)
    simulator = CrossbarSimulator(ISAAC)
    indexed = CrossbarModel(model, layout, simulator, "indexed")(x)
    dense = CrossbarModel(model, layout, simulator, "dense")(x)
    assert torch.equal(indexed, dense)
    assert relative_error(indexed, pruned(x)) < 0.05


@pytest.mark.parametrize("granularity", ["ou_row", "crossbar_row"])
@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_resnet18_on_crossbars_equals_the_masked_model_on_the_dense_mapping(granularity, ratio):
    model, x = resnet18(), torch.randn(2, 3, 32, 32)
    pruned, layout = prune_and_map(model, ratio, ISAAC, granularity, CIFAR_SHAPE)
    simulator = CrossbarSimulator(ISAAC)
    indexed = CrossbarModel(model, layout, simulator, "indexed")(x)
    assert torch.equal(indexed, CrossbarModel(model, layout, simulator, "dense")(x))
    assert relative_error(indexed, pruned(x)) < 0.1


def test_resnet18_fed_by_position_is_wrong():
    model, x = resnet18(), torch.randn(2, 3, 32, 32)
    pruned, layout = prune_and_map(model, 0.5, ISAAC, "ou_row", CIFAR_SHAPE)
    dislocated = CrossbarModel(model, layout, CrossbarSimulator(ISAAC), "positional")(x)
    assert relative_error(dislocated, pruned(x)) > 0.3


def test_apply_masks_zeroes_the_pruned_weights_in_a_copy():
    model = small_cnn()
    layout = map_model(model, 0.5, ISAAC, "ou_row", MNIST_SHAPE)
    masked = apply_masks(model, layout)
    first = dict(prunable_layers(masked))["0"].weight  # R = 9: each OU group drops round(4.5) = 5 rows
    assert int((first != 0).sum()) == 8 * 4
    assert int((dict(prunable_layers(model))["0"].weight != 0).sum()) == 72


def test_crossbar_row_compression_rate_is_one_at_ratio_zero():
    layout = map_model(resnet18(), 0.0, ISAAC, "crossbar_row", CIFAR_SHAPE)
    assert layout.crossbars == layout.dense_crossbars
    assert layout.compression_rate == 1.0


def test_ou_row_compression_rate_is_one_at_ratio_zero_when_matrices_tile_crossbars():
    model = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 32))  # 2*2 + 1*1 crossbars
    layout = map_model(model, 0.0, ISAAC, "ou_row", (1, 256))
    assert (layout.crossbars, layout.dense_crossbars, layout.compression_rate) == (5, 5, 1.0)


def test_ou_row_maps_unpruned_layers_densely_so_compression_is_one_at_ratio_zero():
    layout = map_model(resnet18(), 0.0, ISAAC, "ou_row", CIFAR_SHAPE)
    assert layout.compression_rate == 1.0
    assert {layer.packing.granularity for layer in layout.layers} == {"dense"}


@pytest.mark.parametrize(("granularity", "packing"),
                         [("ou_row", "per_layer"), ("ou_row", "shared"), ("crossbar_row", "per_layer")])
def test_crossbars_never_increase_as_the_ratio_grows(granularity, packing):
    model, rng = small_cnn(), np.random.default_rng(42)
    names = [name for name, _ in prunable_layers(model)]
    for _ in range(10):
        low = rng.uniform(0.0, 0.95, len(names))
        high = np.minimum(low + rng.uniform(0.0, 0.3, len(names)), 0.99)
        layouts = [map_model(model, dict(zip(names, ratios, strict=True)), ISAAC, granularity, MNIST_SHAPE,
                             packing) for ratios in (low, high)]
        assert layouts[1].crossbars <= layouts[0].crossbars
        if packing == "per_layer":
            counts = [[layer.packing.crossbars for layer in layout.layers] for layout in layouts]
            assert all(b <= a for a, b in zip(*counts, strict=True))


def test_shared_packing_needs_no_more_crossbars_than_per_layer():
    model = resnet18()
    per_layer = map_model(model, 0.5, ISAAC, "ou_row", CIFAR_SHAPE, "per_layer")
    shared = map_model(model, 0.5, ISAAC, "ou_row", CIFAR_SHAPE, "shared")
    assert shared.crossbars <= per_layer.crossbars
    assert shared.packing == "shared" and per_layer.packing == "per_layer"


def test_realized_sparsity_follows_the_ratio():
    layout = map_model(resnet18(), 0.5, ISAAC, "ou_row", CIFAR_SHAPE)
    assert 0.49 < layout.sparsity < 0.51


def test_ratios_per_layer_by_module_name_and_unknown_names_rejected():
    model = small_cnn()
    layout = map_model(model, {"2": 0.5}, ISAAC, "ou_row", MNIST_SHAPE)
    assert [layer.ratio for layer in layout.layers] == [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(GranularityError, match="unknown layers \\['conv9'\\]"):
        map_model(model, {"conv9": 0.5}, ISAAC, "ou_row", MNIST_SHAPE)
    with pytest.raises(GranularityError, match="layer 2 must lie in \\[0, 1\\), got 1.2"):
        map_model(model, {"2": 1.2}, ISAAC, "ou_row", MNIST_SHAPE)


def test_the_mapper_front_door_gives_the_layout_and_masks_that_map_model_gives():
    from mapping.mapper import Mapper, weight_masks

    spec = load_hw_spec("isaac")
    model = torchvision.models.resnet18(num_classes=10).eval()
    mapper = Mapper(model, spec, "ou_row", input_shape=(1, 3, 32, 32))
    mapped = mapper.map(0.5)
    reference = map_model(model, 0.5, spec, "ou_row", input_shape=(1, 3, 32, 32))
    assert mapped.shrunken is None and mapped.layout.crossbars == reference.crossbars
    expected = weight_masks(model, reference)
    assert mapped.masks.keys() == expected.keys()
    assert all(torch.equal(mapped.masks[name], expected[name]) for name in expected)
