"""The layout's crossbar counts are the hw cost model's, and the inspect report has its keys."""

import json

import numpy as np
import pytest
import torch
import torchvision

from hw.spec import load_hw_spec
from mapping.mapper import map_model
from mapping.report import format_report, map_report, price_layout

ISAAC = load_hw_spec("isaac")
SHAPE = (1, 3, 32, 32)
ISSUE_KEYS = {"dense_crossbars", "crossbars", "compression_rate", "utilization", "energy_nj", "area_mm2",
              "granularity", "hw", "layers"}
LAYER_KEYS = {"name", "rows", "cols", "dense_crossbars", "crossbars", "ratio"}


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.mark.parametrize(("granularity", "packing"), [
    ("ou_row", "per_layer"), ("ou_row", "shared"), ("crossbar_row", "per_layer"), ("filter", "per_layer")])
def test_layout_crossbars_equal_the_cost_models(resnet18, granularity, packing):
    layout = map_model(resnet18, 0.4, ISAAC, granularity, SHAPE, packing)
    cost = price_layout(layout, ISAAC)
    assert layout.crossbars == cost.total_crossbars
    assert layout.dense_crossbars == int(np.sum(cost.dense_crossbars))
    assert [layer.packing.slots.slots for layer in layout.layers] == cost.ou_slots.tolist()
    if packing == "per_layer":
        assert [layer.packing.crossbars for layer in layout.layers] == cost.crossbars.astype(int).tolist()


def test_map_report_has_the_keys_the_inspect_command_prints(resnet18):
    report = map_report(resnet18, 0.5, ISAAC, "ou_row", SHAPE, model_name="resnet18")
    assert ISSUE_KEYS <= set(report)
    assert all(LAYER_KEYS <= set(layer) for layer in report["layers"])
    assert len(report["layers"]) == 21  # 20 convs + fc
    assert (report["hw"], report["granularity"], report["packing"]) == ("isaac", "ou_row", "per_layer")
    assert report["compression_rate"] == report["dense_crossbars"] / report["crossbars"]
    assert sum(layer["crossbars"] for layer in report["layers"]) == report["crossbars"]
    json.dumps(report)


def test_the_text_report_names_the_packing_and_every_layer(resnet18):
    text = format_report(map_report(resnet18, 0.5, ISAAC, "crossbar_row", SHAPE))
    assert "granularity crossbar_row, packing per_layer" in text
    assert "layer4.1.conv2" in text and "compression rate" in text
