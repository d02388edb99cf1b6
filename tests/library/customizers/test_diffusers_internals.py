"""The private diffusers pieces behind umo_pipeline/customizers/diffusers_internals.py: each still exists in
the installed diffusers, takes its arguments where the wrapper passes them, and behaves as the pipelines
rely on; and no other module reaches for a private diffusers piece. A diffusers upgrade that removes,
renames or reorders one fails here before it fails inside a pipeline."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import torch

from umo_pipeline.customizers import diffusers_internals

ROOT = Path(__file__).resolve().parents[3]

#: wrapper -> (module, owner class or None, private name, parameters in the order the wrapper passes them)
PIECES = {
    "pack_latents": ("diffusers.pipelines.flux.pipeline_flux", "FluxPipeline", "_pack_latents",
                     ["latents", "batch_size", "num_channels_latents", "height", "width"]),
    "unpack_latents": ("diffusers.pipelines.flux.pipeline_flux", "FluxPipeline", "_unpack_latents",
                       ["latents", "height", "width", "vae_scale_factor"]),
    "token_position_ids": ("diffusers.pipelines.flux.pipeline_flux", "FluxPipeline", "_prepare_latent_image_ids",
                           ["batch_size", "height", "width", "device", "dtype"]),
    "t5_prompt_embeds": ("diffusers.pipelines.flux.pipeline_flux", "FluxPipeline", "_get_t5_prompt_embeds",
                         ["self", "prompt", "num_images_per_prompt", "max_sequence_length", "device"]),
    "clip_pooled_prompt_embeds": ("diffusers.pipelines.flux.pipeline_flux", "FluxPipeline",
                                  "_get_clip_prompt_embeds", ["self", "prompt", "num_images_per_prompt", "device"]),
    "resolve_dtype": ("diffusers.utils.deprecation_utils", None, "_resolve_dtype", ["dtype", "torch_dtype"]),
    "xlabs_lora_to_diffusers": ("diffusers.loaders.lora_conversion_utils", None,
                                "_convert_xlabs_flux_lora_to_diffusers", ["old_state_dict"]),
}
#: FluxPipeline's helpers the wrappers call on the class itself, with no pipeline as `self`
STATIC = {"_pack_latents", "_unpack_latents", "_prepare_latent_image_ids"}


def wrappers() -> set[str]:
    return {name for name, value in vars(diffusers_internals).items()
            if inspect.isfunction(value) and value.__module__ == diffusers_internals.__name__}


def test_every_wrapper_is_pinned_here():
    assert wrappers() == set(PIECES)


@pytest.mark.parametrize("wrapper", sorted(PIECES))
def test_private_piece_exists_with_the_parameters_we_pass(wrapper):
    module_name, owner_name, private_name, parameters = PIECES[wrapper]
    owner = importlib.import_module(module_name)
    if owner_name is not None:
        owner = getattr(owner, owner_name)
    assert hasattr(owner, private_name), f"diffusers no longer has {module_name}.{owner_name}.{private_name}"
    piece = getattr(owner, private_name)
    called = list(inspect.signature(piece).parameters)[:len(parameters)]
    assert called == parameters, f"{private_name} now takes {called}; {wrapper} passes {parameters}"
    if private_name in STATIC:
        assert isinstance(inspect.getattr_static(owner, private_name), staticmethod)
    assert private_name in inspect.getsource(getattr(diffusers_internals, wrapper))


def test_execution_device_is_still_a_pipeline_property():
    from diffusers import DiffusionPipeline

    assert isinstance(inspect.getattr_static(DiffusionPipeline, "_execution_device"), property)


def test_token_layout_is_flux_2x2_patches_row_by_row():
    latents = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    tokens = diffusers_internals.pack_latents(latents, 1, 2, 4, 6)
    assert tokens.shape == (1, 2 * 3, 2 * 4)
    # token 1 is the patch at rows 0-1, cols 2-3; its features run channel by channel, then over the patch
    assert tokens[0, 1].tolist() == [2, 3, 8, 9, 26, 27, 32, 33]
    # unpacking takes pixel sizes (8 per latent row/col)
    assert torch.equal(diffusers_internals.unpack_latents(tokens, 32, 48, 8), latents)
    ids = diffusers_internals.token_position_ids(2, 3)
    assert ids.dtype == torch.float32 and ids.device.type == "cpu"
    assert ids.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 1, 1], [0, 1, 2]]


def test_dtype_rule_warns_for_torch_dtype_and_refuses_both():
    assert diffusers_internals.resolve_dtype(torch.float16, None) is torch.float16
    with pytest.warns(FutureWarning, match="torch_dtype"):
        assert diffusers_internals.resolve_dtype(None, torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match="both `dtype` and `torch_dtype`"):
        diffusers_internals.resolve_dtype(torch.float16, torch.bfloat16)


PRIVATE_IMPORT = re.compile(r"from diffusers[\w.]* import [^\n]*\b_[a-z]\w*|import diffusers[\w.]*\._")
PRIVATE_ATTRIBUTE = re.compile(r"\b(?:[A-Z]\w*(?:Pipeline|Mixin|Model\w*)|diffusers[\w.]*)\._(?!execution_device\b)"
                               r"[a-z]\w*")


def test_no_other_module_reaches_for_a_private_diffusers_piece():
    allowed = {ROOT / "umo_pipeline/customizers/diffusers_internals.py", Path(__file__).resolve()}
    found = []
    for folder in ("umo_pipeline", "umo_app", "bench", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.resolve() in allowed:
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(ROOT)}: {match.group(0)}"
                      for pattern in (PRIVATE_IMPORT, PRIVATE_ATTRIBUTE) for match in pattern.finditer(text)]
    assert not found, "call these through umo_pipeline/customizers/diffusers_internals.py:\n" + "\n".join(found)
