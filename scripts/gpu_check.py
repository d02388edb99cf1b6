"""One prepared GPU check, for a lent CUDA machine (see README, "GPU checks").

Part 1, correctness of the CUDA code paths the CPU tests cannot reach: the tiny UNO and OmniGen2
customizers on the GPU in every memory mode (compare, fused, fp8 storage, model CPU offload), with
exact base/UMO switching and finite, non-constant images.

Part 2, the whole UMO-UNO pipeline at full size with random bf16 weights: T5-XXL and CLIP-L text
encoders (tiny tokenizers built in code; token values do not change cost), the FLUX transformer and
VAE, rank-512 UNO and UMO LoRAs, through UNOCustomizer.generate at 768x768, 2 references, 25 steps:
seconds per image and peak GPU memory of the whole pipeline, per memory mode.

    python scripts/gpu_check.py              # on the GPU machine
    python scripts/gpu_check.py --dry-run    # on a CPU: small configs, same code paths
Lines are printed as they come and appended to $OUT/gpu_check.txt when OUT is set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.gpu import free  # noqa: E402

T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768)
SMALL_T5 = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=8)
SMALL_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)


def say(line: str) -> None:
    print(line, flush=True)
    if os.environ.get("OUT"):
        with open(Path(os.environ["OUT"]) / "gpu_check.txt", "a") as log:
            log.write(line + "\n")


def example_references(n: int) -> list[Image.Image]:
    paths = sorted((ROOT / "examples").glob("*.jpg"))[:n]
    return [Image.open(p).convert("RGB") for p in paths]


def check_image(image: Image.Image) -> str:
    pixels = np.asarray(image, dtype=np.float32)
    assert np.isfinite(pixels).all() and pixels.std() > 1.0, "constant or broken image"
    return f"{image.size[0]}x{image.size[1]} std {pixels.std():.1f}"


# ---------------------------------------------------------------------------------------------
# part 1: tiny customizers on the GPU


def part1(device: str) -> None:
    from umo_pipeline.customizers import GenerationRequest, load_customizer

    cases = [("tiny", {}), ("tiny", {"mode": "fused"}), ("tiny", {"fp8": True}), ("tiny", {"offload": True}),
             ("tiny-omnigen2", {}), ("tiny-omnigen2", {"mode": "fused"}), ("tiny-omnigen2", {"offload": True})]
    refs = example_references(2)
    for name, options in cases:
        label = f"{name} {options or 'compare'}"
        if options.get("offload") and not device.startswith("cuda"):
            say(f"part1 {label}: skipped (offload needs CUDA)")
            continue
        try:
            customizer = load_customizer(name, device=device, **options)
            request = GenerationRequest(prompt="two friends at a cafe", width=256, height=256, steps=4, seed=7,
                                        guidance=customizer.defaults.guidance)
            start = time.perf_counter()
            first = customizer.generate(request, refs, variant="umo")
            seconds = time.perf_counter() - start
            note = check_image(first)
            if "base" in customizer.variants:
                base = customizer.generate(request, refs, variant="base")
                again = customizer.generate(request, refs, variant="umo")
                same = np.array_equal(np.asarray(first), np.asarray(again))
                differs = not np.array_equal(np.asarray(first), np.asarray(base))
                assert same and differs, f"switching: back to umo identical={same}, base differs={differs}"
                note += ", umo->base->umo exact"
            say(f"part1 {label}: OK {seconds:.2f} s ({note})")
        except Exception as error:  # noqa: BLE001 - report every case, then carry on
            say(f"part1 {label}: FAILED {type(error).__name__}: {error}")
        finally:
            customizer = None
            free(device)


# ---------------------------------------------------------------------------------------------
# part 2: the whole UMO-UNO pipeline at full size


def full_size_pipeline(device: str, dtype, dry_run: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from bench.gpu import FLUX_TRANSFORMER, FLUX_VAE, random_init_
    from umo_pipeline.customizers import tiny
    from umo_pipeline.customizers.uno import UNOPipeline

    clip_tokenizer, t5_tokenizer = tiny.tiny_clip_tokenizer(), tiny.tiny_t5_tokenizer()
    t5 = T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                  pad_token_id=0, eos_token_id=1, **(SMALL_T5 if dry_run else T5_XXL))
    clip = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                          pad_token_id=1, **(SMALL_CLIP if dry_run else CLIP_L))
    if dry_run:
        from diffusers import AutoencoderKL, FluxTransformer2DModel

        transformer_config = dict(FLUX_TRANSFORMER, num_layers=1, num_single_layers=2, num_attention_heads=2,
                                  attention_head_dim=32, axes_dims_rope=(8, 12, 12), joint_attention_dim=64,
                                  pooled_projection_dim=32)
        vae_config = dict(FLUX_VAE, block_out_channels=(16, 16, 32, 32), norm_num_groups=8)
    else:
        from diffusers import AutoencoderKL, FluxTransformer2DModel

        transformer_config, vae_config = FLUX_TRANSFORMER, FLUX_VAE
    with torch.device("meta"):
        modules = dict(transformer=FluxTransformer2DModel(**transformer_config), vae=AutoencoderKL(**vae_config))
    modules = {name: random_init_(module.eval(), device, dtype) for name, module in modules.items()}
    # the text encoders hold integer buffers (position ids) that a meta build would leave as garbage:
    # build them on the device itself, where their own random init is fast
    with torch.device(device):
        modules["text_encoder"] = CLIPTextModel(clip).eval().to(dtype)
        modules["text_encoder_2"] = T5EncoderModel(t5).eval().to(dtype)
    modules["vae"].to(torch.float32)  # as load_umo_uno does (UNO's VAE runs in float32)
    pipe = UNOPipeline(scheduler=tiny.flux_scheduler(), tokenizer=clip_tokenizer, tokenizer_2=t5_tokenizer, **modules)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def part2(device: str, dry_run: bool, steps: int, size: int) -> None:
    from umo_pipeline.customizers import GenerationRequest
    from umo_pipeline.customizers.uno_customizer import UNOCustomizer, attach_loras
    from umo_pipeline.lora import random_uno_lora

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    rank = 8 if dry_run else 512
    start = time.perf_counter()
    pipe = full_size_pipeline(device, dtype, dry_run)
    params = sum(p.numel() for p in pipe.components["transformer"].parameters()) + sum(
        p.numel() for name in ("text_encoder", "text_encoder_2", "vae") for p in pipe.components[name].parameters())
    say(f"part2 built the whole pipeline ({params / 1e9:.2f} B parameters) in {time.perf_counter() - start:.1f} s")

    def loras(seed):
        lora_device = device if cuda else None
        return (random_uno_lora(pipe.transformer, rank=rank, seed=seed, std=1e-3, dtype=dtype, device=lora_device),
                random_uno_lora(pipe.transformer, rank=rank, seed=seed + 1, std=1e-3, dtype=dtype, device=lora_device))

    refs = example_references(2)
    request = GenerationRequest(prompt="two friends having coffee at a cafe terrace", width=size, height=size,
                                steps=steps, guidance=4.0, seed=1)

    def measure(label: str, customizer, variant: str = "umo") -> None:
        warm = GenerationRequest(**{**request.__dict__, "steps": 2})
        customizer.generate(warm, refs, variant=variant)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        begin = time.perf_counter()
        image = customizer.generate(request, refs, variant=variant)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - begin
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else "-"
        # random full-size weights in bf16 may well give a flat or NaN image: report it, do not judge it
        pixels = np.asarray(image, dtype=np.float32)
        say(f"| {label} | {seconds:.2f} | {peak} | {image.size[0]}x{image.size[1]}, std {pixels.std():.1f} |")

    say(f"part2 whole pipeline, {size}x{size}, 2 references, {steps} steps, LoRA rank {rank}, {dtype}")
    say("| mode | s/image | peak GPU memory | image |")
    say("| --- | --- | --- | --- |")
    steps_done = []
    try:
        attach_loras(pipe, *loras(1), mode="compare", fp8=False, dtype=dtype)
        compare = UNOCustomizer(pipe, name="umo-uno", label="", mode="compare", device=device)
        measure("bf16, compare: UMO variant", compare, "umo")
        measure("bf16, compare: base variant", compare, "base")
        steps_done.append("compare")
        pipe.unload_lora_weights()
        free(device)
        attach_loras(pipe, *loras(3), mode="fused", fp8=False, dtype=dtype)
        fused = UNOCustomizer(pipe, name="umo-uno", label="", mode="fused", device=device)
        measure("bf16, fused", fused)
        steps_done.append("fused")
        # fp8 as load_umo_uno builds it: the UMO LoRA loaded unfused, then fp8 storage
        attach_loras(pipe, *loras(5), mode="fused", fp8=True, dtype=dtype)
        free(device)
        fp8 = UNOCustomizer(pipe, name="umo-uno", label="", mode="fused", device=device, fp8=True)
        measure("fp8 storage, UMO LoRA unfused", fp8)
        if cuda:
            pipe.enable_model_cpu_offload(device=device)
            free(device)
            offloaded = UNOCustomizer(pipe, name="umo-uno", label="", mode="fused", device=device, offload=True,
                                      fp8=True)
            measure("fp8 storage + model CPU offload", offloaded)
    except Exception as error:  # noqa: BLE001 - keep what was measured
        say(f"part2 FAILED after {steps_done}: {type(error).__name__}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="small configs on the CPU: checks the script")
    parser.add_argument("--parts", default="1,2")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=768)
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run:
        say(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    if "1" in args.parts:
        part1(device)
    if "2" in args.parts:
        part2(device, args.dry_run, 4 if args.dry_run else args.steps, 256 if args.dry_run else args.size)


if __name__ == "__main__":
    main()
