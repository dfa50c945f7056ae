"""Where the search's models run: `env.device` = auto | cpu | cuda (or cuda:N).

`auto` takes the GPU when torch sees one in this process and the CPU otherwise. Ray hides GPUs
from actors that asked for none (it sets CUDA_VISIBLE_DEVICES to nothing), so an env runner
sees a GPU only with `ray.num_gpus_per_env_runner` > 0; `cuda` without a visible GPU is an
error that names both settings rather than a silent fall-back to the CPU.
"""

from __future__ import annotations

import itertools

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def check_device_name(name: str) -> str:
    base = name.split(":", 1)[0]
    if base not in DEVICE_CHOICES or (base != "cuda" and ":" in name):
        raise ValueError(f"env.device must be one of {list(DEVICE_CHOICES)} (or cuda:N), got {name!r}")
    return name


def resolve_device(name: str) -> torch.device:
    """The torch device for `env.device` in this process."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"env.device={name} but torch sees no CUDA device in this process: set env.device=cpu "
                         f"(or auto), or give each env runner a GPU with ray.num_gpus_per_env_runner > 0 on a "
                         f"cluster that has GPUs")
    return torch.device(name)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where `model` lives: the device of its first parameter or buffer (the CPU for a stateless model)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor` on `device`; for a GPU through page-locked memory, so that the copy runs asynchronously
    (a non-blocking copy from ordinary memory is synchronous). On the CPU it is `tensor` itself."""
    device = torch.device(device)
    if device.type == "cpu":
        return tensor if tensor.device.type == "cpu" else tensor.cpu()
    if tensor.device.type == "cpu" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
