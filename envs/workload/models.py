"""Model builders: torchvision ImageNet models, CIFAR ResNets and a small CNN.

`small_input=True` adapts only the stem (first conv, first pooling) of an ImageNet model to
28x28/32x32 images, plus VGG's pooling head, which needs a 7x7 map; every other layer keeps
torchvision's definition and names, so an ImageNet checkpoint still loads with small_input=False
and pruning results stay comparable with the literature's layer lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from torchvision import models as tvm

from envs.workload.cifar_resnet import CifarResNet
from envs.workload.weights import load_weights


@dataclass(frozen=True)
class Stem:
    """A ResNet stem: conv1's kernel and stride, and whether the 3x3/2 max-pool follows it."""

    kernel: int
    stride: int
    maxpool: bool

    def downsampling(self) -> int:
        return self.stride * (2 if self.maxpool else 1)


# Where layer1 runs at for a 28x28 input, and the trade-off (2 threads, ResNet-50, measured here):
RESNET_STEMS: dict[str, Stem] = {
    "imagenet": Stem(7, 2, True),  # torchvision's: layer1 at 7x7, ~184 img/s training
    "s2pool": Stem(3, 2, True),  # layer1 at 7x7, same cost as imagenet, a 3x3 first conv
    "s2": Stem(3, 2, False),  # layer1 at 14x14, ~4x the FLOPs of s2pool (72 img/s)
    "cifar": Stem(3, 1, False),  # layer1 at 28x28, the usual CIFAR stem (~16x the FLOPs of s2pool)
}
# ResNet-50 at 28x28 with the CIFAR stem costs ~1.3 GFLOPs per image; s2pool keeps the whole
# Fashion-MNIST run within 15 minutes on 2 cores (measured, see envs/README.md).
DEFAULT_SMALL_STEM = {"resnet18": "cifar", "resnet50": "s2pool"}


def _resnet(builder: Callable[..., tvm.ResNet], name: str):
    def build(num_classes: int, in_channels: int, small_input: bool, stem: str | None) -> nn.Module:
        model = builder(weights=None, num_classes=num_classes)
        choice = stem or (DEFAULT_SMALL_STEM[name] if small_input else "imagenet")
        if choice not in RESNET_STEMS:
            raise ValueError(f"ResNet stem {choice!r} is not one of {sorted(RESNET_STEMS)}")
        spec = RESNET_STEMS[choice]
        if choice != "imagenet" or in_channels != 3:
            model.conv1 = nn.Conv2d(in_channels, 64, spec.kernel, spec.stride, spec.kernel // 2, bias=False)
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        if not spec.maxpool:
            model.maxpool = nn.Identity()
        return model

    return build


def _replace_first_conv(conv: nn.Conv2d, in_channels: int, stride: int) -> nn.Conv2d:
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride, conv.padding, bias=conv.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    return new


def _vgg16_bn(num_classes: int, in_channels: int, small_input: bool, stem: str | None) -> nn.Module:
    _no_stem_choice("vgg16_bn", stem)
    model = tvm.vgg16_bn(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.features[0] = _replace_first_conv(model.features[0], in_channels, 1)
    if small_input:
        # 28x28 shrinks to 0x0 through five 2x2 pools; dropping the last keeps a 1x1 (2x2 at 32x32)
        # map. Identity keeps the indices, so features.N names match torchvision's. The 7x7 average
        # pool would only copy that map 49 times into a 25088x4096 layer: pool to 1x1 instead.
        model.features[-1] = nn.Identity()
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier[0] = nn.Linear(512, model.classifier[0].out_features)
    return model


def _mobilenet_v2(num_classes: int, in_channels: int, small_input: bool, stem: str | None) -> nn.Module:
    _no_stem_choice("mobilenet_v2", stem)
    model = tvm.mobilenet_v2(weights=None, num_classes=num_classes)
    if small_input or in_channels != 3:
        # A stride-1 first conv leaves a 2x2 map at the end for 28x28 inputs instead of 1x1.
        model.features[0][0] = _replace_first_conv(model.features[0][0], in_channels, 1 if small_input else 2)
    return model


def _cifar_resnet(depth: int):
    def build(num_classes: int, in_channels: int, small_input: bool, stem: str | None) -> nn.Module:
        if stem not in (None, "A", "B"):
            raise ValueError(f"resnet{depth} shortcut (model.stem) {stem!r} is not one of None, 'A', 'B'")
        return CifarResNet(depth, num_classes, in_channels, shortcut=stem or "A")

    return build


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU layers and a linear head: trains in seconds, for tests and quick runs."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


def _small_cnn(num_classes: int, in_channels: int, small_input: bool, stem: str | None) -> nn.Module:
    _no_stem_choice("small_cnn", stem)
    return SmallCNN(num_classes, in_channels)


def _no_stem_choice(name: str, stem: str | None) -> None:
    if stem is not None:
        raise ValueError(f"model {name!r} has no stem choice; got stem={stem!r}, expected null")


BUILDERS: dict[str, Callable[[int, int, bool, str | None], nn.Module]] = {
    "resnet50": _resnet(tvm.resnet50, "resnet50"),
    "resnet18": _resnet(tvm.resnet18, "resnet18"),
    "vgg16_bn": _vgg16_bn,
    "mobilenet_v2": _mobilenet_v2,
    "resnet20": _cifar_resnet(20),
    "resnet56": _cifar_resnet(56),
    "small_cnn": _small_cnn,
}


def build_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    small_input: bool = True,
    weights: str | Path | None = None,
    stem: str | None = None,
) -> nn.Module:
    """Build model `name` with random init, or with the local state dict at `weights` (strict).

    Args:
        name: one of BUILDERS.
        num_classes: output classes of the last linear layer.
        in_channels: image channels the first conv takes (1 for (Fashion-)MNIST).
        small_input: adapt an ImageNet stem to 28x28/32x32 images (ignored by CIFAR ResNets and small_cnn).
        weights: a file saved with torch.save(state_dict) in torchvision's names; never downloaded.
        stem: ResNet-18/50 stem (RESNET_STEMS key; default per DEFAULT_SMALL_STEM) or CIFAR ResNet
            shortcut option ("A"/"B"); null for the other models.
    """
    if name not in BUILDERS:
        raise ValueError(f"model {name!r} is not one of {sorted(BUILDERS)}")
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes ({num_classes}) and in_channels ({in_channels}) must be >= 1")
    model = BUILDERS[name](num_classes, in_channels, small_input, stem)
    if weights is not None:
        load_weights(model, weights)
    return model
