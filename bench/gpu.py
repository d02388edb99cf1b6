"""UNO/UMO-UNO speed and peak GPU memory per memory mode, on a full-size FLUX transformer.

The weights are random (bf16, built directly on the GPU: no download, no licence needed): speed and
memory do not depend on their values. The text encoders are left out (random prompt embeddings of
T5's and CLIP's shapes); the VAE has FLUX's real size. LoRAs are random, rank 512, in the real
UNO/UMO key format, loaded through the project's validated loader.

    python bench/gpu.py                        # H100/H200: 768x768, 2 references, 25 steps
    python bench/gpu.py --tiny --steps 4       # tiny random components on CPU: checks the script

Modes, in the order they run (each builds on the state the previous one left):
  plain     no LoRA
  adapters  "uno" and "umo" LoRAs as two peft adapters; one image per adapter, plus the switch time
  fused     the UMO LoRA fused into the weights, LoRA layers removed
  offload   fused, with diffusers' model CPU offload (weights go to the GPU for each image)
  fp8       fused, weights stored in float8_e4m3fn and upcast per layer to bf16 (layerwise casting)
Prints a table (mode, s/image, peak GiB); with $OUT set, also writes it to $OUT/gpu_bench.txt.
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

MODES = ("plain", "adapters", "fused", "offload", "fp8")
FLUX_TRANSFORMER = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
FLUX_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=16, norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
    use_quant_conv=False, use_post_quant_conv=False,
)


def random_init_(module: torch.nn.Module, device: str, dtype) -> torch.nn.Module:
    """Allocate a meta-built module on the device and fill it: norms at 1, biases 0, the rest small noise.
    Integer buffers are left alone (shared with bench/gpu_omnigen2.py and scripts/gpu_check.py)."""
    module = module.to(dtype=dtype).to_empty(device=device)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            if "norm" in name and name.endswith("weight"):
                tensor.fill_(1.0)
            elif name.endswith("bias"):
                tensor.zero_()
            else:
                tensor.normal_(0.0, 0.02)
    return module.eval()


def build_pipeline(tiny: bool, device: str, dtype):
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from umo_pipeline.customizers.tiny import build_tiny_components, flux_scheduler
    from umo_pipeline.customizers.uno import UNOPipeline

    if tiny:
        components = build_tiny_components()
        components.update(text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
        pipe = UNOPipeline(**components).to(device=device, dtype=dtype)
    else:
        with torch.device("meta"):
            transformer = FluxTransformer2DModel(**FLUX_TRANSFORMER)
            vae = AutoencoderKL(**FLUX_VAE)
        pipe = UNOPipeline(
            scheduler=flux_scheduler(), vae=random_init_(vae, device, dtype), text_encoder=None, tokenizer=None,
            text_encoder_2=None, tokenizer_2=None, transformer=random_init_(transformer.eval(), device, dtype),
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_embeddings(pipe, device, dtype):
    generator = torch.Generator(device).manual_seed(0)
    t5_width = pipe.transformer.config.joint_attention_dim
    clip_width = pipe.transformer.config.pooled_projection_dim
    return (torch.randn(1, 512, t5_width, generator=generator, device=device, dtype=dtype),
            torch.randn(1, clip_width, generator=generator, device=device, dtype=dtype))


def references(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(n)]


class Bench:
    def __init__(self, pipe, args, device, dtype):
        self.pipe, self.args, self.device, self.cuda = pipe, args, device, device.startswith("cuda")
        self.embeds = prompt_embeddings(pipe, device, dtype)
        self.refs = references(args.refs)
        self.rows: list[tuple[str, float, float | None, str]] = []

    def _generate(self, steps: int):
        prompt_embeds, pooled = self.embeds
        return self.pipe(ref_images=self.refs, prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled,
                         height=self.args.size, width=self.args.size, num_inference_steps=steps,
                         generator=torch.Generator("cpu").manual_seed(0), output_type="latent").images

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def measure(self, mode: str, note: str = "") -> torch.Tensor:
        self._generate(2)  # warm-up: kernels, allocator, offload hooks
        self._sync()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        latents = self._generate(self.args.steps)
        self._sync()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None
        self.rows.append((mode, seconds, peak, note))
        print(f"{mode:9s} {seconds:8.2f} s/image  peak {peak if peak is None else round(peak, 1)} GiB  {note}",
              flush=True)
        return latents

    def table(self) -> str:
        device = torch.cuda.get_device_name() if self.cuda else "cpu"
        title = (f"UNO/UMO-UNO {'tiny random' if self.args.tiny else 'full-size FLUX transformer, random bf16'} "
                 f"weights on {device}: {self.args.size}x{self.args.size}, {self.args.refs} references, "
                 f"{self.args.steps} steps, LoRA rank {self.args.rank}")
        lines = [title, "", "| mode | s/image | peak GiB | note |", "| --- | --- | --- | --- |"]
        for mode, seconds, peak, note in self.rows:
            lines.append(f"| {mode} | {seconds:.2f} | {'-' if peak is None else f'{peak:.1f}'} | {note} |")
        return "\n".join(lines)


def free(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def run(args) -> str:
    from umo_pipeline.lora import random_uno_lora

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if args.tiny and not device.startswith("cuda") else torch.bfloat16
    start = time.perf_counter()
    pipe = build_pipeline(args.tiny, device, dtype)
    print(f"built in {time.perf_counter() - start:.1f} s", flush=True)
    bench = Bench(pipe, args, device, dtype)
    modes = args.modes

    if "plain" in modes:
        bench.measure("plain")
    lora_modes = {"adapters", "fused", "offload", "fp8"} & set(modes)
    if lora_modes:
        start = time.perf_counter()
        lora_device = device if device.startswith("cuda") else None
        uno = random_uno_lora(pipe.transformer, rank=args.rank, seed=1, std=1e-3, dtype=dtype, device=lora_device)
        umo = random_uno_lora(pipe.transformer, rank=args.rank, seed=2, std=1e-3, dtype=dtype,
                                      device=lora_device)
        pipe.load_umo_adapters(uno, umo)
        del uno, umo
        free(device)
        print(f"two rank-{args.rank} adapters generated and loaded in {time.perf_counter() - start:.1f} s",
              flush=True)
    if "adapters" in modes:
        pipe.set_adapters("umo")
        umo_latents = bench.measure("adapters", "UMO adapter active, UNO adapter loaded")
        start = time.perf_counter()
        pipe.set_adapters("uno")
        pipe.set_adapters("umo")
        switch = (time.perf_counter() - start) / 2
        again = bench._generate(args.steps)
        bench.rows[-1] = (*bench.rows[-1][:3], bench.rows[-1][3] + f"; switch {switch * 1000:.1f} ms; "
                          f"switching back exact: {torch.equal(again, umo_latents)}")
    if {"fused", "offload", "fp8"} & set(modes):
        start = time.perf_counter()
        pipe.fuse_single_adapter("umo")
        free(device)
        fuse_note = f"fuse + unload {time.perf_counter() - start:.1f} s"
        if "fused" in modes:
            bench.measure("fused", fuse_note)
    if "offload" in modes and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
        bench.measure("offload", "fused, model CPU offload (host->GPU copy each image)")
        pipe.remove_all_hooks()
        pipe.to(device)
        free(device)
    if "fp8" in modes:
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        free(device)
        bench.measure("fp8", f"fused, float8_e4m3fn storage, {str(dtype).removeprefix('torch.')} compute")
    table = bench.table()
    print("\n" + table)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_bench.txt").write_text(table + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random components (CPU check of the script)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--refs", type=int, default=2)
    parser.add_argument("--rank", type=int, default=None, help="LoRA rank (default 512; 4 with --tiny)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {','.join(MODES)}")
    args.rank = args.rank or (4 if args.tiny else 512)
    run(args)


if __name__ == "__main__":
    main()
