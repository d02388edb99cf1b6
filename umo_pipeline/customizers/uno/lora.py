"""Validating, converting and loading UNO / UMO LoRA checkpoints (XLabs key format).

UNO's `dit_lora.safetensors` and UMO's `UMO_UNO.safetensors` use XLabs-style keys
(`double_blocks.{i}.processor.qkv_lora1.down.weight`, ...). diffusers converts them, but neither the
converter nor peft complain about a file made for another model or another kind of LoRA: they pass
unknown keys through or drop them. So everything is checked here, before conversion (every key
recognised, every shape matching this transformer) and after loading (every tensor landed on a module,
bit for bit, by customizers/lora.py). Any problem is a `LoraFormatError` saying what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from diffusers.loaders import FluxLoraLoaderMixin

from umo_pipeline.customizers.lora import as_state_dict, fuse_adapter, load_verified_adapter
from umo_pipeline.errors import LoraFormatError

_XLABS_KEY = re.compile(
    r"^(?:diffusion_model\.)?(?P<kind>double|single)_blocks\.(?P<block>\d+)\.processor\."
    r"(?P<lora>qkv_lora|proj_lora)(?P<stream>[12]?)\.(?P<part>down|up)\.weight$"
)


@dataclass(frozen=True)
class LoraSummary:
    """What a validated UNO/UMO LoRA holds."""

    rank: int
    n_tensors: int
    double_blocks: int
    single_blocks: int


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
    from umo_pipeline.customizers.diffusers_internals import xlabs_lora_to_diffusers

    converted = xlabs_lora_to_diffusers(dict(state_dict))  # it pops from its argument
    strays = [k for k in converted if not re.fullmatch(r"transformer\..+\.lora_[AB]\.weight", k)]
    if strays:
        raise LoraFormatError(f"unexpected keys after conversion: {strays[:3]}")
    return converted


# ---------------------------------------------------------------------------------------------
# loading into a transformer


def _free_adapter_name(transformer) -> str:
    existing = set(getattr(transformer, "peft_config", {}) or {})
    return next(f"default_{i}" for i in range(len(existing) + 1) if f"default_{i}" not in existing)


def load_uno_lora(transformer, path_or_state_dict, adapter_name: str | None = None) -> str:
    """Load a UNO/UMO LoRA into a FluxTransformer2DModel as a peft adapter; returns its name."""
    state_dict = as_state_dict(path_or_state_dict)
    validate_uno_lora(state_dict, transformer)
    adapter_name = adapter_name or _free_adapter_name(transformer)
    load_verified_adapter(transformer, convert_to_diffusers(state_dict), adapter_name)
    return adapter_name


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
        fuse_adapter(self.transformer, adapter_name)


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
