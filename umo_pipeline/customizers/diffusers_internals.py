"""Every private piece of diffusers the library calls, and nothing else; checked against diffusers 0.42
(requirements.txt pins 0.42.1). tests/library/customizers/test_diffusers_internals.py checks that each piece still
exists with the parameters called here, and that no other module reaches for one, so a diffusers
upgrade is checked in one place. diffusers offers no public function for any of these:

- FLUX's token layout (`FluxPipeline._pack_latents`, `_unpack_latents`, `_prepare_latent_image_ids`):
  UNOPipeline lays out its target, reference and mask latents and their rotary ids exactly as
  FluxPipeline does, since that is what FluxTransformer2DModel and the UNO/UMO LoRAs were trained on;
  a copy of the reshapes could drift from it unnoticed.
- FLUX's two text encoders (`FluxPipeline._get_t5_prompt_embeds`, `_get_clip_prompt_embeds`): UNO
  encodes a prompt as FLUX does (T5 padded to 512 tokens without a mask, CLIP's pooled output), while
  the public `FluxPipeline.encode_prompt` also rescales text-encoder LoRA layers and returns given
  embeddings without repeating them per image.
  They are called with a UNOPipeline as `self`, so they read its tokenizer, tokenizer_2,
  text_encoder, text_encoder_2 and tokenizer_max_length.
- the `dtype` / `torch_dtype` rule (`utils.deprecation_utils._resolve_dtype`): OmniGen2Pipeline cannot
  use diffusers' loader (the checkpoint's model_index.json names another project's classes) but takes
  both spellings as DiffusionPipeline.from_pretrained does, warning and refusal included.
- XLabs LoRA keys (`loaders.lora_conversion_utils._convert_xlabs_flux_lora_to_diffusers`): UNO's and
  UMO's LoRA files use XLabs' key names.

`DiffusionPipeline._execution_device` is read directly, not wrapped: every diffusers pipeline reads its
device that way and custom pipelines are meant to; the test checks it too.
"""

from __future__ import annotations


# -- FLUX's token layout -----------------------------------------------------------------------------
def pack_latents(latents, batch_size: int, channels: int, rows: int, cols: int):
    """Latents (B, C, rows, cols) as FLUX tokens (B, rows/2 * cols/2, 4C): one token per 2x2 patch."""
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

    return FluxPipeline._pack_latents(latents, batch_size, channels, rows, cols)


def unpack_latents(latents, height: int, width: int, vae_scale_factor: int):
    """FLUX tokens of a height x width image back to latents (B, C, H/8, W/8)."""
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

    return FluxPipeline._unpack_latents(latents, height, width, vae_scale_factor)


def token_position_ids(rows: int, cols: int):
    """FLUX's rotary ids (0, row, col) of a rows x cols token grid, row by row: float32 on the CPU."""
    import torch
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

    return FluxPipeline._prepare_latent_image_ids(1, rows, cols, "cpu", torch.float32)


# -- FLUX's text encoders ----------------------------------------------------------------------------
def t5_prompt_embeds(pipeline, prompt, num_images_per_prompt: int, max_sequence_length: int, device):
    """T5 token embeddings (one row per image), padded to max_sequence_length, as FluxPipeline makes them."""
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

    return FluxPipeline._get_t5_prompt_embeds(pipeline, prompt, num_images_per_prompt, max_sequence_length, device)


def clip_pooled_prompt_embeds(pipeline, prompt, num_images_per_prompt: int, device):
    """CLIP's pooled prompt embedding (one row per image), as FluxPipeline makes it."""
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

    return FluxPipeline._get_clip_prompt_embeds(pipeline, prompt, num_images_per_prompt, device)


# -- loading -----------------------------------------------------------------------------------------
def resolve_dtype(dtype, torch_dtype):
    """`dtype`, or the deprecated `torch_dtype` with diffusers' FutureWarning; ValueError for both."""
    from diffusers.utils.deprecation_utils import _resolve_dtype

    return _resolve_dtype(dtype, torch_dtype)


def xlabs_lora_to_diffusers(state_dict: dict) -> dict:
    """An XLabs-format FLUX LoRA under diffusers/peft key names. It empties `state_dict`: pass a copy."""
    from diffusers.loaders.lora_conversion_utils import _convert_xlabs_flux_lora_to_diffusers

    return _convert_xlabs_flux_lora_to_diffusers(state_dict)
