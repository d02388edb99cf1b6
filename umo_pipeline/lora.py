"""Loading, validating and converting UNO / UMO LoRA checkpoints (XLabs key format).

UNO's `dit_lora.safetensors` and UMO's `UMO_UNO.safetensors` use XLabs-style keys
(`double_blocks.{i}.processor.qkv_lora1.down.weight`, ...). diffusers converts them, but neither the
converter nor peft complain about a file made for another model or another kind of LoRA: they pass
unknown keys through or drop them. So everything is checked here, before conversion (every key
recognised, every shape matching this transformer) and after loading (every tensor landed on a module,
bit for bit). Any problem is a `LoraFormatError` saying what is wrong.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from diffusers.loaders import FluxLoraLoaderMixin

from umo_pipeline.errors import InputError, LoraFormatError

if TYPE_CHECKING:
    import torch

_XLABS_KEY = re.compile(
    r"^(?:diffusion_model\.)?(?P<kind>double|single)_blocks\.(?P<block>\d+)\.processor\."
    r"(?P<lora>qkv_lora|proj_lora)(?P<stream>[12]?)\.(?P<part>down|up)\.weight$"
)
_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
_FP8_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")


@dataclass(frozen=True)
class LoraSummary:
    """What a validated UNO/UMO LoRA holds."""

    rank: int
    n_tensors: int
    double_blocks: int
    single_blocks: int


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
# validation against a transformer


def _xlabs_key(kind: str, block: int, lora: str, part: str) -> str:
    return f"{kind}_blocks.{block}.processor.{lora}.{part}.weight"


def expected_lora_shapes(transformer) -> dict[str, tuple[int, int]]:
    """XLabs key -> (in_features of down, out_features of up) for this FluxTransformer2DModel.

    Read from the modules themselves (also when they already carry LoRA layers), so the checks hold
    for any block count and width. The qkv up matrix is q|k|v stacked; the single-block proj LoRA
    reads the concatenated attention + MLP features.
    """

    def qkv(*layers):
        return layers[0].in_features, sum(layer.out_features for layer in layers)

    def proj(layer):
        return layer.in_features, layer.out_features

    shapes = {}
    for i, block in enumerate(transformer.transformer_blocks):
        attn = block.attn
        shapes[("double", i, "qkv_lora1")] = qkv(attn.to_q, attn.to_k, attn.to_v)
        shapes[("double", i, "qkv_lora2")] = qkv(attn.add_q_proj, attn.add_k_proj, attn.add_v_proj)
        shapes[("double", i, "proj_lora1")] = proj(attn.to_out[0])
        shapes[("double", i, "proj_lora2")] = proj(attn.to_add_out)
    for i, block in enumerate(transformer.single_transformer_blocks):
        shapes[("single", i, "qkv_lora")] = qkv(block.attn.to_q, block.attn.to_k, block.attn.to_v)
        shapes[("single", i, "proj_lora")] = proj(block.proj_out)
    return {_xlabs_key(kind, i, lora, "down"): dims for (kind, i, lora), dims in shapes.items()}


def _parse_keys(state_dict: Mapping) -> dict[str, str]:
    """Canonical key (no `diffusion_model.` prefix) -> original key; unknown keys are an error."""
    parsed, unknown = {}, []
    for key in state_dict:
        match = _XLABS_KEY.match(key) if isinstance(key, str) else None
        stream_ok = match and ((match["kind"] == "double") == (match["stream"] != ""))
        if not stream_ok:
            unknown.append(key)
            continue
        parsed[key.removeprefix("diffusion_model.")] = key
    if not parsed:
        examples = ", ".join(repr(k) for k in list(state_dict)[:3]) or "no tensors at all"
        raise LoraFormatError(
            f"not a UNO/UMO LoRA (found keys like {examples}; expected keys like "
            "'double_blocks.0.processor.qkv_lora1.down.weight')"
        )
    if unknown:
        examples = ", ".join(repr(k) for k in unknown[:3])
        raise LoraFormatError(
            f"not a UNO/UMO LoRA: {len(unknown)} of {len(state_dict)} keys are not UNO/UMO LoRA keys "
            f"(e.g. {examples})"
        )
    return parsed


def _check_block_counts(parsed: Mapping[str, str], transformer) -> tuple[int, int]:
    have = {"double": len(transformer.transformer_blocks), "single": len(transformer.single_transformer_blocks)}
    found = {}
    for kind in have:
        indices = [int(_XLABS_KEY.match(k)["block"]) for k in parsed if k.startswith(kind)]
        found[kind] = max(indices) + 1 if indices else 0
        if found[kind] > have[kind]:
            raise LoraFormatError(
                f"this LoRA was made for a model with {found[kind]} {kind} blocks; "
                f"this transformer has {have[kind]}"
            )
    return found["double"], found["single"]


def validate_uno_lora(state_dict: Mapping, transformer, *, complete: bool = True) -> LoraSummary:
    """Check an XLabs-format state dict against a FluxTransformer2DModel; raise LoraFormatError.

    complete=True requires a down/up pair for every attention LoRA of every block, as UNO and UMO
    ship them; complete=False (for UMO files merged onto UNO's) accepts a subset of full pairs.
    """
    import torch

    parsed = _parse_keys(state_dict)
    double_blocks, single_blocks = _check_block_counts(parsed, transformer)
    expected = expected_lora_shapes(transformer)
    ranks = set()
    for down_key, (in_features, out_features) in expected.items():
        up_key = down_key.replace(".down.", ".up.")
        present = [k for k in (down_key, up_key) if k in parsed]
        if not present and not complete:
            continue
        if len(present) < 2:
            wanted = set(expected) | {k.replace(".down.", ".up.") for k in expected}
            missing = sorted(wanted - set(parsed))
            raise LoraFormatError(
                f"incomplete UNO/UMO LoRA: {len(missing)} tensors missing (e.g. {missing[0]!r}); "
                "the file may be truncated or made for another model"
            )
        down, up = state_dict[parsed[down_key]], state_dict[parsed[up_key]]
        for key, tensor in ((down_key, down), (up_key, up)):
            if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.dim() != 2:
                raise LoraFormatError(f"{key} is not a 2-D floating-point weight matrix")
        rank = down.shape[0]
        want_down, want_up = (rank, in_features), (out_features, rank)
        if tuple(down.shape) != want_down or tuple(up.shape) != want_up:
            raise LoraFormatError(
                f"rank/shape mismatch at {down_key.rsplit('.', 2)[0]}: the file has down "
                f"{list(down.shape)} and up {list(up.shape)}, this transformer needs down "
                f"[rank, {in_features}] and up [{out_features}, rank]"
            )
        ranks.add(rank)
    if len(ranks) > 1:
        raise LoraFormatError(f"rank/shape mismatch: the file mixes ranks {sorted(ranks)}")
    return LoraSummary(rank=ranks.pop(), n_tensors=len(parsed), double_blocks=double_blocks,
                       single_blocks=single_blocks)


# ---------------------------------------------------------------------------------------------
# merging and conversion


def merge_umo_into_uno(uno_state_dict: Mapping, umo_state_dict: Mapping, transformer) -> dict:
    """UMO's LoRA as UMO's code builds it: UNO's dit_lora updated with UMO_UNO's tensors.

    UMO_UNO replaces dit_lora rather than adding to it; starting from dit_lora keeps any tensor the
    UMO file leaves out. Both are validated, and every UMO tensor must replace one of UNO's.
    """
    validate_uno_lora(uno_state_dict, transformer)
    validate_uno_lora(umo_state_dict, transformer, complete=False)
    merged = {k.removeprefix("diffusion_model."): v for k, v in uno_state_dict.items()}
    for key, tensor in umo_state_dict.items():
        key = key.removeprefix("diffusion_model.")
        if tuple(merged[key].shape) != tuple(tensor.shape):
            raise LoraFormatError(
                f"the UMO LoRA does not fit UNO's: {key} has shape {list(tensor.shape)}, "
                f"UNO's has {list(merged[key].shape)}"
            )
        merged[key] = tensor
    return merged


def convert_to_diffusers(state_dict: Mapping) -> dict:
    """XLabs keys -> diffusers/peft keys (`transformer.<module>.lora_{A,B}.weight`)."""
    from diffusers.loaders.lora_conversion_utils import _convert_xlabs_flux_lora_to_diffusers

    converted = _convert_xlabs_flux_lora_to_diffusers(dict(state_dict))  # it pops from its argument
    strays = [k for k in converted if not re.fullmatch(r"transformer\..+\.lora_[AB]\.weight", k)]
    if strays:
        raise LoraFormatError(f"unexpected keys after conversion: {strays[:3]}")
    return converted


# ---------------------------------------------------------------------------------------------
# loading into a transformer


def _free_adapter_name(transformer) -> str:
    existing = set(getattr(transformer, "peft_config", {}) or {})
    return next(f"default_{i}" for i in range(len(existing) + 1) if f"default_{i}" not in existing)


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


def load_uno_lora(transformer, path_or_state_dict, adapter_name: str | None = None) -> str:
    """Load a UNO/UMO LoRA into a FluxTransformer2DModel as a peft adapter; returns its name."""
    state_dict = as_state_dict(path_or_state_dict)
    validate_uno_lora(state_dict, transformer)
    adapter_name = adapter_name or _free_adapter_name(transformer)
    if adapter_name in (getattr(transformer, "peft_config", None) or {}):
        raise InputError(f"an adapter named {adapter_name!r} is already loaded; pick another name")
    load_verified_adapter(transformer, convert_to_diffusers(state_dict), adapter_name)
    return adapter_name


def load_verified_adapter(transformer, converted: Mapping, adapter_name: str) -> None:
    """Load diffusers-format LoRA tensors ("transformer.<module>.lora_A.weight", ...) as a named peft
    adapter, then check every tensor sits in it unchanged; on any mismatch the adapter is removed and
    LoraFormatError raised. Shared by the UNO and OmniGen2 loaders."""
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


class UNOLoraLoaderMixin(FluxLoraLoaderMixin):
    """Pipeline mixin: `load_lora_weights` for UNO/UMO XLabs-format LoRAs, validated.

    Only the transformer gets LoRA layers (UNO trains none for the text encoders).
    """

    def load_lora_weights(self, path_or_state_dict, adapter_name: str | None = None, **kwargs) -> str:
        if kwargs:
            raise TypeError(f"load_lora_weights: unsupported options {sorted(kwargs)}")
        return load_uno_lora(self.transformer, path_or_state_dict, adapter_name)

    def load_umo_adapters(self, uno_lora, umo_lora, *, names: tuple[str, str] = ("uno", "umo")) -> None:
        """Both adapters: UNO's dit_lora as names[0], dit_lora updated with UMO_UNO as names[1]."""
        uno = as_state_dict(uno_lora)
        umo = merge_umo_into_uno(uno, as_state_dict(umo_lora), self.transformer)
        self.load_lora_weights(uno, adapter_name=names[0])
        self.load_lora_weights(umo, adapter_name=names[1])

    def fuse_single_adapter(self, adapter_name: str) -> None:
        """Bake one adapter into the base weights and drop every LoRA layer (fastest; no switching)."""
        self.set_adapters(adapter_name)
        self.fuse_lora(components=["transformer"], adapter_names=[adapter_name])
        self.unload_lora_weights()


def random_uno_lora(transformer, *, rank: int, seed: int = 0, std: float = 0.02, dtype=None, device=None) -> dict:
    """A random LoRA in the real XLabs key format for this transformer (tiny build, tests, benchmarks)."""
    import torch

    generator = torch.Generator(device or "cpu").manual_seed(seed)
    options = {"generator": generator, "dtype": dtype, "device": device}
    state_dict = {}
    for down_key, (in_features, out_features) in expected_lora_shapes(transformer).items():
        state_dict[down_key] = torch.randn(rank, in_features, **options) * std
        state_dict[down_key.replace(".down.", ".up.")] = torch.randn(out_features, rank, **options) * std
    return state_dict
