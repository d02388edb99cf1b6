"""Tiny random-weight FLUX components built in code: no files, no network, fast on a CPU.

They have FLUX.1-dev's structure at toy size (16 latent channels, 2x2 packing, 3-axis rotary
ids, embedded guidance, a four-block VAE with FLUX's shift and scale, CLIP + T5 text encoders
with tokenizers made from a small vocabulary), so every code path of `UNOPipeline` runs for real.
Their outputs are noise: anything that shows them must say it is a test model.
"""

from __future__ import annotations

import string

#: FLUX.1-dev's VAE latent normalisation and scheduler settings (black-forest-labs/FLUX.1-dev)
FLUX_VAE_SHIFT = 0.1159
FLUX_VAE_SCALE = 0.3611
FLUX_SCHEDULER_CONFIG = {
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
}

LATENT_CHANNELS = 16
CLIP_WIDTH = 32
T5_WIDTH = 32
#: characters the tiny tokenizers know; anything else becomes the unknown token
_ALPHABET = string.ascii_lowercase + string.digits + string.punctuation


def build_tiny_components(seed: int = 0) -> dict:
    """The seven FLUX components, `UNOPipeline(**build_tiny_components())` ready, fp32 on CPU.

    The same seed gives the same weights, whatever was drawn from torch's global generator before.
    """
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        components = {
            "transformer": tiny_transformer(),
            "vae": tiny_vae(),
            "text_encoder": tiny_clip_text_encoder(),
            "text_encoder_2": tiny_t5_encoder(),
        }
    finally:
        torch.random.set_rng_state(state)
    components["tokenizer"] = tiny_clip_tokenizer()
    components["tokenizer_2"] = tiny_t5_tokenizer()
    components["scheduler"] = flux_scheduler()
    return components


def flux_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG)


def tiny_transformer(
    num_layers: int = 1,
    num_single_layers: int = 1,
    num_attention_heads: int = 2,
    attention_head_dim: int = 16,
):
    """A FluxTransformer2DModel with guidance embedding; rope axes sum to the head dimension."""
    from diffusers import FluxTransformer2DModel

    # FLUX splits the head dimension 16:56:56 between (text/image, row, column); keep roughly the
    # proportions with even sizes (each axis rotates pairs of channels)
    side = (attention_head_dim - max(2, attention_head_dim // 8)) // 4 * 2
    axes = (attention_head_dim - 2 * side, side, side)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * LATENT_CHANNELS,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=attention_head_dim,
        num_attention_heads=num_attention_heads,
        joint_attention_dim=T5_WIDTH,
        pooled_projection_dim=CLIP_WIDTH,
        guidance_embeds=True,
        axes_dims_rope=axes,
    ).eval()


def tiny_vae():
    """An AutoencoderKL with four blocks (8x downscale), 16 latent channels and no quant convs, like FLUX's."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=4,
        shift_factor=FLUX_VAE_SHIFT,
        scaling_factor=FLUX_VAE_SCALE,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=True,
    ).eval()


def tiny_clip_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(_clip_vocab()),
        hidden_size=CLIP_WIDTH,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=CLIP_WIDTH,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config).eval()


def tiny_t5_encoder():
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(_t5_vocab()),
        d_model=T5_WIDTH,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5EncoderModel(config).eval()


def _clip_vocab() -> dict[str, int]:
    # CLIP's byte-level BPE marks the last character of a word with "</w>"; no merges needed
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    for char in _ALPHABET:
        tokens += [char, char + "</w>"]
    return {token: i for i, token in enumerate(tokens)}


def _t5_vocab() -> list[tuple[str, float]]:
    # a Unigram vocabulary: T5's three special pieces first, then single characters
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(char, -3.0) for char in _ALPHABET]
    pieces += [("\u2581" + char, -2.5) for char in string.ascii_lowercase]
    return pieces


def tiny_clip_tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=_clip_vocab(), merges=[], model_max_length=77)


def tiny_t5_tokenizer():
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=_t5_vocab(), extra_ids=0, model_max_length=512)
