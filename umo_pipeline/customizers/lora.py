"""LoRA helpers every model shares: reading a .safetensors LoRA safely, and loading diffusers-format
tensors as a named peft adapter that is checked, tensor for tensor, once it is in place.

The model-specific parts (key formats, validation against a transformer, conversion) live with each
model: customizers/uno/lora.py (UNO/UMO, XLabs keys) and customizers/omnigen2/lora.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from umo_pipeline.errors import InputError, LoraFormatError

if TYPE_CHECKING:
    import torch

_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
_FP8_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")


# ---------------------------------------------------------------------------------------------
# reading


def read_lora_file(path: str | PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors LoRA file; pickle formats are refused (loading them can run code)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise LoraFormatError(
            f"{path.name}: only .safetensors LoRA files are accepted; {path.suffix} files are pickles, "
            "which can run arbitrary code when loaded. Use the .safetensors release of this LoRA."
        )
    if not path.is_file():
        raise InputError(f"LoRA file not found: {path}")
    if path.suffix.lower() != ".safetensors":
        raise LoraFormatError(f"{path.name}: expected a .safetensors LoRA file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise LoraFormatError(
            f"{path.name} is a truncated or corrupted safetensors file ({error}); download it again."
        ) from error


def as_state_dict(path_or_state_dict) -> dict[str, torch.Tensor]:
    """A shallow copy of a state dict, or the tensors of a .safetensors file."""
    if isinstance(path_or_state_dict, Mapping):
        return dict(path_or_state_dict)
    if isinstance(path_or_state_dict, (str, PathLike)):
        return read_lora_file(path_or_state_dict)
    raise InputError(f"a LoRA must be a .safetensors path or a state dict, not {type(path_or_state_dict).__name__}")


# ---------------------------------------------------------------------------------------------
# loading into a transformer


def _adapter_layer(transformer, key: str, adapter_name: str):
    module_path, lora_part, _ = key.removeprefix("transformer.").rsplit(".", 2)
    try:
        return getattr(transformer.get_submodule(module_path), lora_part)[adapter_name]
    except (AttributeError, KeyError) as error:
        raise LoraFormatError(f"LoRA tensor {key} did not land on any module of the transformer") from error


def _restore_fp8_cast_layers(transformer, converted: Mapping, adapter_name: str) -> None:
    """Put back LoRA weights that peft cast to fp8 because the base weights are stored in fp8.

    Under layerwise casting peft moves a new adapter to the base weight's storage dtype; fp8 LoRA
    weights lose their values and break matmuls. They belong in the compute dtype (what
    transformer.dtype reports while layerwise casting is on); the new layers get no casting hook.
    """
    import torch

    fp8 = {getattr(torch, name) for name in _FP8_DTYPES if hasattr(torch, name)}
    for key, tensor in converted.items():
        layer = _adapter_layer(transformer, key, adapter_name)
        if layer.weight.dtype in fp8:
            layer.weight = torch.nn.Parameter(tensor.to(layer.weight.device, transformer.dtype),
                                              requires_grad=layer.weight.requires_grad)


def _verify_adapter(transformer, converted: Mapping, adapter_name: str) -> None:
    """Every converted tensor must sit, unchanged, in the adapter's lora_A / lora_B layers, and the
    adapter must hold no others."""
    import torch

    if lora_adapter_tensors(transformer, adapter_name) != len(converted):
        raise LoraFormatError(f"Only part of the LoRA was loaded into adapter {adapter_name!r}.")
    for key, tensor in converted.items():
        weight = _adapter_layer(transformer, key, adapter_name).weight
        if weight.shape != tensor.shape or not torch.equal(weight, tensor.to(weight.device, weight.dtype)):
            raise LoraFormatError(f"LoRA tensor {key} was not loaded as given (shape or values differ)")


def load_verified_adapter(transformer, converted: Mapping, adapter_name: str) -> None:
    """Load diffusers-format LoRA tensors ("transformer.<module>.lora_A.weight", ...) as a named peft
    adapter, then check every tensor sits in it unchanged; on any mismatch the adapter is removed and
    LoraFormatError raised; InputError if the transformer already has an adapter of that name."""
    if adapter_name in (getattr(transformer, "peft_config", None) or {}):
        raise InputError(f"an adapter named {adapter_name!r} is already loaded; pick another name")
    param = next(transformer.parameters())
    # transformer.dtype is the compute dtype, also while fp8 storage (layerwise casting) is on
    converted = {k: v.to(param.device, transformer.dtype) for k, v in converted.items()}
    with warnings.catch_warnings():
        # peft warns whenever a second adapter joins the first: that is the comparison mode's design
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        transformer.load_lora_adapter(converted, adapter_name=adapter_name, prefix="transformer")
    try:
        _restore_fp8_cast_layers(transformer, converted, adapter_name)
        _verify_adapter(transformer, converted, adapter_name)
    except LoraFormatError:
        transformer.delete_adapters(adapter_name)
        raise


def lora_adapter_tensors(transformer, adapter_name: str) -> int:
    """How many lora_A / lora_B weight matrices an adapter has on the transformer."""
    import torch

    count = 0
    for module in transformer.modules():
        for part in ("lora_A", "lora_B"):
            layers = getattr(module, part, None)
            count += int(isinstance(layers, torch.nn.ModuleDict) and adapter_name in layers)
    return count


def fuse_adapter(transformer, adapter_name: str) -> None:
    """Bake one adapter into the base weights and drop every LoRA layer (fastest; no switching)."""
    transformer.set_adapters([adapter_name])
    transformer.fuse_lora(adapter_names=[adapter_name])
    transformer.unload_lora()
