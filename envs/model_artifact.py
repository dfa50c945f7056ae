"""The pruned, fine-tuned model as a file a user takes away, paired with its crossbar layout by checksum.

A finalized trial folder holds `layout/` (mapping/layout.py: masks, index tables, placements) and
`model/`: `weights.pt`, the state dict whose pruned weights are exactly zero, and `model.json`,
the card that rebuilds the architecture (model name, stem, classes, input shape) and states the
weights' SHA-256, the layout manifest's SHA-256, the policy and the test accuracy it scored. The
layout's manifest carries the weights' SHA-256 in turn (`extra.weights_sha256`), so neither can
be paired with the wrong partner: `load_pruned_model` checks the card's own checksum, the
weights' and both cross-references, and names both files when they disagree.

`export_onnx` writes `model/model.onnx` where torch's exporter handles the architecture.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from envs.files import atomic_write, sha256_file
from envs.workload.models import build_model
from mapping.directories import write_directory
from mapping.layout import MANIFEST, MANIFEST_SHA256, ModelLayout, load_layout

FORMAT, VERSION = "auto-prune-pruned-model", 1
MODEL_DIR, WEIGHTS, CARD, ONNX = "model", "weights.pt", "model.json", "model.onnx"
LAYOUT_DIR = "layout"
WEIGHTS_KEY = "weights_sha256"  # the layout manifest's extra entry naming its weights
CARD_SHA256 = "card_sha256"


class ModelArtifactError(ValueError):
    """A model folder that cannot be trusted: missing, tampered or paired with another layout."""


@dataclass(frozen=True)
class ModelCard:
    """What rebuilds the pruned model and ties it to its layout and its reported accuracy."""

    model_name: str
    small_input: bool
    stem: str | None
    num_classes: int
    in_channels: int
    image_size: list[int]
    data: dict[str, Any]  # the data config the accuracy was measured with (envs/workload/data.py DataConfig)
    epsilon: float
    ratios: list[float]
    layer_names: list[str]
    test_accuracy: float
    weights_sha256: str
    layout_manifest_sha256: str

    def build(self) -> nn.Module:
        """The architecture, untrained: the weights come from weights.pt."""
        return build_model(self.model_name, self.num_classes, self.in_channels, self.small_input, stem=self.stem)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.in_channels, *self.image_size)


@dataclass
class PrunedModelFiles:
    """A loaded model folder: the model (eval mode, CPU), its card and its verified layout."""

    model: nn.Module
    card: ModelCard
    layout: ModelLayout


def _card_digest(document: dict[str, Any]) -> str:
    body = {key: value for key, value in document.items() if key != CARD_SHA256}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def weights_bytes(model: nn.Module) -> bytes:
    """The state dict as torch.save writes it (CPU tensors), the bytes whose SHA-256 names the model."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_pruned_model(trial_dir: str | Path, model: nn.Module, layout: ModelLayout,
                      card_fields: dict[str, Any]) -> Path:
    """Write layout/ and model/ into `trial_dir`, each naming the other by SHA-256.

    card_fields: ModelCard's fields other than the two checksums. The weights are hashed first,
    the layout saved with that hash, then the model folder written (atomically,
    mapping/directories.py) with the layout manifest's hash: a failure leaves no half-written folder.
    """
    trial_dir = Path(trial_dir)
    payload = weights_bytes(model)
    weights_sha = hashlib.sha256(payload).hexdigest()
    layout.extra = {**layout.extra, WEIGHTS_KEY: weights_sha}
    layout_dir = layout.save(trial_dir / LAYOUT_DIR)
    manifest_sha = json.loads((layout_dir / MANIFEST).read_text())[MANIFEST_SHA256]
    card = ModelCard(**card_fields, weights_sha256=weights_sha, layout_manifest_sha256=manifest_sha)
    document = {"format": FORMAT, "version": VERSION, **asdict(card)}
    document[CARD_SHA256] = _card_digest(document)
    return write_directory(trial_dir / MODEL_DIR, {WEIGHTS: payload, CARD: json.dumps(document, indent=1).encode()})


def read_card(model_dir: str | Path) -> ModelCard:
    """The card of a model folder, its format and its own checksum checked."""
    path = Path(model_dir) / CARD
    if not path.is_file():
        raise ModelArtifactError(f"{path} does not exist: a finalized trial folder holds model/{CARD}")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelArtifactError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ModelArtifactError(f"{path} is not a version-{VERSION} {FORMAT} card")
    if document.get(CARD_SHA256) != _card_digest(document):
        raise ModelArtifactError(f"{path} was modified after it was written (its {CARD_SHA256} does not match)")
    names = {f.name for f in fields(ModelCard)}
    return ModelCard(**{key: value for key, value in document.items() if key in names})


def load_pruned_model(trial_dir: str | Path) -> PrunedModelFiles:
    """The pruned model of a finalized trial folder, in one call, after every check.

    Raises ModelArtifactError naming the files when the card, the weights or the layout were
    tampered with, or when the layout belongs to other weights.
    """
    trial_dir = Path(trial_dir)
    model_dir, layout_dir = trial_dir / MODEL_DIR, trial_dir / LAYOUT_DIR
    card = read_card(model_dir)
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise ModelArtifactError(f"{weights} does not exist (named by {model_dir / CARD})")
    if sha256_file(weights) != card.weights_sha256:
        raise ModelArtifactError(f"{weights} does not match the SHA-256 that {model_dir / CARD} states: "
                                 "the weights were modified or replaced")
    layout = load_layout(layout_dir)
    manifest_sha = json.loads((layout_dir / MANIFEST).read_text())[MANIFEST_SHA256]
    if manifest_sha != card.layout_manifest_sha256 or layout.extra.get(WEIGHTS_KEY) != card.weights_sha256:
        raise ModelArtifactError(f"{layout_dir / MANIFEST} and {model_dir / CARD} do not belong together: the "
                                 "layout was mapped from other weights (their SHA-256 cross-references differ)")
    model = card.build()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return PrunedModelFiles(model.eval(), card, layout)


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """The model as ONNX (opset from torch's exporter, batch size left dynamic), written atomically."""
    model = model.cpu().eval()
    example = torch.zeros((2, *input_shape[1:]))  # a batch of 1 would specialise the batch dimension away
    batch = torch.export.Dim("batch")

    def write(staging: Path) -> None:
        torch.onnx.export(model, (example,), str(staging), input_names=["images"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), dynamo=True, verbose=False,
                          external_data=False)  # one file: the weights beside a temporary name would be orphaned

    atomic_write(Path(path), write)
    return Path(path)
