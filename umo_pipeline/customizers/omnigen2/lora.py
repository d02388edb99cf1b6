"""The UMO_OmniGen2 LoRA: reading, validating, renaming to diffusers' format, loading as an adapter.

The released file is a peft state dict saved from the transformer itself, keys
`<module>.lora_{A,B}.default.weight` (rank 512, alpha 512, on every attention's to_q, to_k, to_v,
to_out.0). diffusers' load_lora_adapter expects `transformer.<module>.lora_{A,B}.weight` and
silently loads nothing from the original names, so keys are renamed here, and every tensor is
checked before (module exists, is a Linear, shapes fit, A and B pairs complete, one rank) and after
loading (each landed unchanged). Any problem is a LoraFormatError in plain words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from umo_pipeline.customizers.lora import as_state_dict, load_verified_adapter
from umo_pipeline.errors import LoraFormatError

#: the modules UMO trains: every attention projection of every block
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
_KEY = re.compile(
    r"^(?:transformer\.|diffusion_model\.)?(?P<module>.+?)\.lora_(?P<part>[AB])(?:\.default)?\.weight$"
)


@dataclass(frozen=True)
class OmniGen2LoraSummary:
    rank: int
    n_modules: int
    n_parameters: int


def attention_projections(transformer) -> list[str]:
    """Names of the modules a complete UMO_OmniGen2 LoRA adapts on this transformer."""
    return [
        name for name, _ in transformer.named_modules()
        if any(name.endswith(".attn." + target) for target in TARGET_MODULES)
    ]


def _parse(state_dict: Mapping) -> dict[str, dict[str, object]]:
    """module -> {"A": tensor, "B": tensor}; unknown keys are an error."""
    keys = list(state_dict)
    if not keys:
        raise LoraFormatError("The LoRA file is empty.")
    if any(".processor." in k or k.startswith(("double_blocks", "single_blocks")) for k in keys):
        raise LoraFormatError(
            "This is a UNO/FLUX LoRA (XLabs keys such as double_blocks.*.processor.*), not a LoRA for "
            "OmniGen2. UMO-OmniGen2 needs UMO_OmniGen2.safetensors from bytedance-research/UMO."
        )
    modules: dict[str, dict[str, object]] = {}
    unknown = []
    for key in keys:
        match = _KEY.match(key)
        if match is None:
            unknown.append(key)
            continue
        modules.setdefault(match["module"], {})[match["part"]] = state_dict[key]
    if unknown:
        raise LoraFormatError(
            f"The LoRA file has {len(unknown)} keys that are not OmniGen2 LoRA weights "
            f"(e.g. {', '.join(unknown[:3])}); it is not a UMO_OmniGen2 LoRA."
        )
    return modules


def validate_omnigen2_lora(state_dict: Mapping, transformer, *, complete: bool = True) -> OmniGen2LoraSummary:
    """Check every tensor against this transformer; complete=True also requires every attention projection."""
    import torch

    modules = _parse(state_dict)
    problems, ranks = [], set()
    for name, parts in modules.items():
        try:
            layer = transformer.get_submodule(name)
        except AttributeError:
            problems.append(f"{name}: no such module in the OmniGen2 transformer")
            continue
        base = getattr(layer, "base_layer", layer)
        if not isinstance(base, torch.nn.Linear):
            problems.append(f"{name}: not a linear layer")
            continue
        if set(parts) != {"A", "B"}:
            problems.append(f"{name}: has lora_{''.join(parts)} without its lora_{'B' if 'A' in parts else 'A'}")
            continue
        a, b = parts["A"], parts["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != base.in_features or b.shape[0] != base.out_features \
                or a.shape[0] != b.shape[1]:
            problems.append(
                f"{name}: shapes A {list(a.shape)} / B {list(b.shape)} do not fit a "
                f"{base.in_features}->{base.out_features} layer"
            )
            continue
        ranks.add(a.shape[0])
    if complete and not problems:
        missing = sorted(set(attention_projections(transformer)) - set(modules))
        if missing:
            problems.append(f"{len(missing)} attention layers have no LoRA weights (e.g. {', '.join(missing[:3])})")
    if len(ranks) > 1:
        problems.append(f"mixed LoRA ranks {sorted(ranks)}")
    if problems:
        raise LoraFormatError(
            "This LoRA does not match the OmniGen2 transformer (wrong file or a different model): "
            + "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        )
    n_parameters = sum(t.numel() for parts in modules.values() for t in parts.values())
    return OmniGen2LoraSummary(rank=ranks.pop(), n_modules=len(modules), n_parameters=n_parameters)


def to_diffusers_keys(state_dict: Mapping) -> dict:
    """`<module>.lora_A.default.weight` (and the other accepted spellings) -> `transformer.<module>.lora_A.weight`."""
    return {
        f"transformer.{module}.lora_{part}.weight": tensor
        for module, parts in _parse(state_dict).items() for part, tensor in parts.items()
    }


def load_omnigen2_lora(transformer, path_or_state_dict, adapter_name: str = "umo") -> OmniGen2LoraSummary:
    """Validate, rename and load a UMO_OmniGen2-format LoRA as a named peft adapter (scale 1)."""
    state_dict = as_state_dict(path_or_state_dict)
    summary = validate_omnigen2_lora(state_dict, transformer)
    load_verified_adapter(transformer, to_diffusers_keys(state_dict), adapter_name)
    return summary


def random_omnigen2_lora(transformer, *, rank: int, seed: int = 0, std: float = 0.02) -> dict:
    """A random LoRA in the released UMO_OmniGen2 key format for this transformer (tests, tiny build)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for name in attention_projections(transformer):
        layer = transformer.get_submodule(name)
        state_dict[f"{name}.lora_A.default.weight"] = torch.randn(rank, layer.in_features, generator=generator) * std
        state_dict[f"{name}.lora_B.default.weight"] = torch.randn(layer.out_features, rank, generator=generator) * std
    return state_dict
