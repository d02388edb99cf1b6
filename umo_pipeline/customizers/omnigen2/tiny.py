"""A tiny random-weight OmniGen2 build made in code: same classes and code paths, no download.

Outputs are noise; it exists so tests and the offline demo run the real pipeline in milliseconds.
`save_tiny_omnigen2(folder)` writes it in the published checkpoint's folder layout (transformer/,
vae/, scheduler/, mllm/, processor/) so the real loading code can be exercised on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

#: Qwen-style chat markup, enough for the pipeline's chat template call
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEXT_WIDTH = 32

TINY_TRANSFORMER = dict(
    patch_size=2, in_channels=16, hidden_size=48, num_layers=2, num_refiner_layers=1, num_attention_heads=2,
    num_kv_heads=1, multiple_of=16, axes_dim_rope=(8, 8, 8), axes_lens=(1024, 1024, 1024),
    text_feat_dim=TEXT_WIDTH, timestep_scale=1000.0,
)


def tiny_tokenizer():
    """Byte-level tokenizer (every byte is one token) with Qwen's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<|endoftext|>", eos_token="<|im_end|>",
        additional_special_tokens=SPECIAL_TOKENS[1:], chat_template=CHAT_TEMPLATE, model_max_length=4096,
    )


def tiny_text_encoder(vocab_size: int):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=TEXT_WIDTH, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
            rope_scaling={"type": "mrope", "mrope_section": [2, 2, 4]}, bos_token_id=0, eos_token_id=2,
            pad_token_id=0,
        ),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=TEXT_WIDTH,
                           fullatt_block_indexes=[0]),
        bos_token_id=0, eos_token_id=2, pad_token_id=0,
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, scaling_factor=0.3611, shift_factor=0.1159,
        use_quant_conv=False, use_post_quant_conv=False,
    ).eval()


def build_tiny_omnigen2(seed: int = 0, dtype: torch.dtype = torch.float32):
    """OmniGen2Pipeline with tiny random weights (same seed -> same weights)."""
    from umo_pipeline.customizers.omnigen2.pipeline import OmniGen2Pipeline
    from umo_pipeline.customizers.omnigen2.scheduler import OmniGen2EulerScheduler
    from umo_pipeline.customizers.omnigen2.transformer import OmniGen2Transformer2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = tiny_tokenizer()
        transformer = OmniGen2Transformer2DModel(**TINY_TRANSFORMER).eval()
        pipe = OmniGen2Pipeline(
            transformer=transformer, vae=tiny_vae(), scheduler=OmniGen2EulerScheduler(),
            mllm=tiny_text_encoder(len(tokenizer)), processor=tokenizer,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)


def save_tiny_omnigen2(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny build in the published OmniGen2 checkpoint layout (safetensors only)."""
    folder = Path(folder)
    pipe = build_tiny_omnigen2(seed)
    for name in ("transformer", "vae", "scheduler", "mllm"):
        getattr(pipe, name).save_pretrained(folder / name)
    pipe.tokenizer.save_pretrained(folder / "processor")
    index = {"_class_name": "OmniGen2Pipeline", "note": "tiny random-weight test build (umo_pipeline)"}
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    return folder
