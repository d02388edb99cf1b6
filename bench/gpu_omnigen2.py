"""UMO-OmniGen2 speed and peak GPU memory, on a full-size OmniGen2 transformer with random bf16 weights.

Nothing is downloaded: the transformer (published config, 3.97 B parameters), a FLUX-size VAE and a
Qwen2.5-VL-3B-shaped text encoder are built on the meta device and filled with random values on the
GPU (speed and memory do not depend on the values). The prompt goes through the tiny byte-level
tokenizer, so prompts are a few hundred tokens, as long as the real ones. References are random
1024x1024 images (4096 tokens each after OmniGen2's 1024^2 pixel budget). The UMO LoRA is random,
rank 512, in the released key format, loaded through the project's validated loader.

    python bench/gpu_omnigen2.py                      # H100/H200: 1024x1024, 1 and 2 references
    python bench/gpu_omnigen2.py --tiny --size 64     # tiny random build on CPU: checks the script

Each row times --steps denoising steps after a 1-step warm-up and reports seconds per step, the
projected seconds per image at 50 steps (steps x per-step + text encoding, reference encoding and
decoding, measured), and peak memory. Modes run in order: plain (no LoRA), adapters (UMO adapter
active; base by disabling it), fused (LoRA baked in), offload (fused + model CPU offload).
With $OUT set the table is also written to $OUT/gpu_omnigen2_bench.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.gpu import random_init_  # noqa: E402

OMNIGEN2_TRANSFORMER = dict(
    patch_size=2, in_channels=16, hidden_size=2520, num_layers=32, num_refiner_layers=2, num_attention_heads=21,
    num_kv_heads=7, multiple_of=256, norm_eps=1e-5, axes_dim_rope=(40, 40, 40), axes_lens=(1024, 1664, 1664),
    text_feat_dim=2048, timestep_scale=1000.0,
)
FLUX_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=16, norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
    use_quant_conv=False, use_post_quant_conv=False,
)
QWEN_3B_TEXT = dict(
    vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
    num_key_value_heads=2, max_position_embeddings=128000, rope_theta=1e6, tie_word_embeddings=True,
    rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, bos_token_id=0, eos_token_id=2, pad_token_id=0,
)
QWEN_3B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                      fullatt_block_indexes=[7, 15, 23, 31])
PROMPT = "The man in the first image and the woman in the second image shake hands in a park, photo."


def build_pipeline(tiny: bool, device: str, dtype):
    from diffusers import AutoencoderKL
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from umo_pipeline.customizers.omnigen2 import (
        OmniGen2EulerScheduler,
        OmniGen2Pipeline,
        OmniGen2Transformer2DModel,
        build_tiny_omnigen2,
    )
    from umo_pipeline.customizers.omnigen2.tiny import tiny_tokenizer

    if tiny:
        return build_tiny_omnigen2().to(device=device, dtype=dtype)
    with torch.device("meta"):
        transformer = OmniGen2Transformer2DModel(**OMNIGEN2_TRANSFORMER)
        vae = AutoencoderKL(**FLUX_VAE)
        mllm = Qwen2_5_VLForConditionalGeneration(
            Qwen2_5_VLConfig(text_config=QWEN_3B_TEXT, vision_config=QWEN_3B_VISION, bos_token_id=0,
                             eos_token_id=2, pad_token_id=0))
    pipe = OmniGen2Pipeline(
        transformer=random_init_(transformer, device, dtype), vae=random_init_(vae, device, dtype),
        scheduler=OmniGen2EulerScheduler(), mllm=random_init_(mllm, device, dtype), processor=tiny_tokenizer(),
    )
    # rotary tables of the text encoder live in non-persistent buffers that to_empty left unset
    language_model = pipe.mllm.model.language_model
    language_model.rotary_emb = type(language_model.rotary_emb)(pipe.mllm.config.text_config).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def references(n: int, size: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


class Bench:
    def __init__(self, pipe, args, device):
        self.pipe, self.args, self.cuda = pipe, args, device.startswith("cuda")
        self.rows: list[tuple] = []

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def _timed(self, steps: int, refs) -> float:
        self._sync()
        start = time.perf_counter()
        self.pipe(PROMPT, ref_images=refs, negative_prompt="blurry, deformed, bad anatomy", width=self.args.size,
                  height=self.args.size, num_inference_steps=steps, align_res=False,
                  generator=torch.Generator("cpu").manual_seed(0), output_type="np")
        self._sync()
        return time.perf_counter() - start

    def measure(self, mode: str, n_refs: int, note: str = "") -> None:
        refs = references(n_refs, self.args.size)
        self._timed(1, refs)  # warm-up: kernels, allocator, offload hooks
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        one = self._timed(1, refs)
        many = self._timed(1 + self.args.steps, refs)
        per_step = (many - one) / self.args.steps
        fixed = one - per_step  # prompt, references, decoding
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None
        projected = fixed + 50 * per_step
        self.rows.append((mode, n_refs, per_step, projected, peak, note))
        print(f"{mode:9s} refs={n_refs} {per_step:6.3f} s/step  {projected:7.1f} s/image@50  "
              f"peak {peak if peak is None else round(peak, 1)} GiB  {note}", flush=True)

    def table(self) -> str:
        device = torch.cuda.get_device_name() if self.cuda else "cpu"
        weights = ("tiny random" if self.args.tiny
                   else "full-size OmniGen2 transformer + Qwen2.5-VL-3B shapes, random bf16")
        lines = [f"UMO-OmniGen2, {weights} weights on {device}: {self.args.size}x{self.args.size}, text guidance "
                 f"5 + image guidance 2 (3 passes per step with references), LoRA rank {self.args.rank}", "",
                 "| mode | references | s/step | s/image at 50 steps | peak GiB | note |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for mode, refs, per_step, projected, peak, note in self.rows:
            peak_text = "-" if peak is None else f"{peak:.1f}"
            lines.append(f"| {mode} | {refs} | {per_step:.3f} | {projected:.1f} | {peak_text} | {note} |")
        return "\n".join(lines)


def run(args) -> str:
    from umo_pipeline.customizers.omnigen2.lora import fuse_adapter, load_omnigen2_lora, random_omnigen2_lora

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if args.tiny and not device.startswith("cuda") else torch.bfloat16
    start = time.perf_counter()
    pipe = build_pipeline(args.tiny, device, dtype)
    print(f"built in {time.perf_counter() - start:.1f} s", flush=True)
    bench = Bench(pipe, args, device)
    for n in args.refs:
        bench.measure("plain", n)
    start = time.perf_counter()
    lora = random_omnigen2_lora(pipe.transformer, rank=args.rank, seed=1, std=1e-3)
    load_omnigen2_lora(pipe.transformer, lora, "umo")
    del lora
    print(f"rank-{args.rank} UMO adapter loaded in {time.perf_counter() - start:.1f} s", flush=True)
    for n in args.refs:
        bench.measure("adapters", n, "UMO adapter active")
    start = time.perf_counter()
    fuse_adapter(pipe.transformer, "umo")
    note = f"fuse + unload {time.perf_counter() - start:.1f} s"
    for n in args.refs:
        bench.measure("fused", n, note)
    if device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
        bench.measure("offload", args.refs[0], "fused, model CPU offload (weights copied in per image)")
    return bench.table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny random build (checks the script on a CPU)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--refs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (per-step cost is steady)")
    parser.add_argument("--rank", type=int, default=512)
    args = parser.parse_args()
    if args.tiny and args.rank == 512:
        args.rank = 4
    table = run(args)
    print("\n" + table)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_omnigen2_bench.txt").write_text(table + "\n")


if __name__ == "__main__":
    main()
