"""UMO-UNO speed per mode against UNO's own code: whole pipeline, same random weights, one GPU call.

What runs (768x768, 2 references, 25 steps, random weights of the real sizes: T5-XXL, CLIP-L, the
FLUX.1-dev transformer, the VAE in float32, rank-512 LoRAs in UNO's key format):

  uno-code             UNO's original code (github.com/bytedance/UNO): its Flux model with its LoRA
                       attention processors, its AutoEncoder, T5/CLIP wrappers and sampling functions
                       (get_noise, get_schedule, prepare_multi_ip, denoise, unpack), called in the order
                       of its UNOPipeline.forward (that class itself is not used: its module imports
                       torchvision for one to_tensor call; the conversion is done with numpy here)
  compare              ours, two adapters (UNO, UMO): the UMO variant and the base variant
  compare-compile      the same with FA3 (where available) and regional torch.compile
  fused                ours, UMO LoRA fused (the README's 3.4 s on an H200)
  fused-qkv            + fused QKV + FA3 where available
  fused-qkv-compile    + regional torch.compile (the lossless mode; goal <= 2.8 s)
  fp8-storage          today's --fp8 without fp8 tensor cores: fp8 weights, bf16 matmuls, LoRA unfused
  fp8-compute          --fp8 on this GPU: LoRA fused in bf16, fused QKV, torchao float8 per-row dynamic
  fp8-compute-compile  + regional torch.compile (goal <= 2.0 s, never slower than bf16)

The transformer and LoRA weights are identical in every mode: UNO's Flux is initialised first (seeded),
its state dict converted with diffusers' own converter (convert_flux_transformer_checkpoint_to_diffusers)
into the template each of our modes loads; the text encoders are the same modules. Each mode gets a
fresh transformer from that template (fusions and quantisation change it in place). Each line: s/image
(after a 2-step warm-up, whose time is printed too: the compile time for *-compile), peak GPU memory of
the whole pipeline, ratio to uno-code. Lines are printed as they come and appended to
$OUT/gpu_speed.txt; modes that would pass --budget-s (default 360 s) are skipped and said so.

Work per step, counted from the modules (`flops_per_step`, printed at start): image tokens (2304
target + 800 reference) go through the image-stream weights of the 19 double blocks and text tokens
(512) through the text-stream ones, every token through the 38 single blocks; the 3.2 B modulation
parameters act once per image, not per token. That gives 2 x (2.15 B x 3104 + 2.15 B x 512 + 4.30 B
x 3616) = 46.7 TFLOP in linear layers + 4 x 3616^2 x 3072 x 57 = 9.2 TFLOP in attention = 55.8 TFLOP
per step, 1.40 PFLOP for 25 steps: 1.77 s at the 790 TFLOP/s an H200 sustains on large bf16 matmuls
(1.41 s at its 989 TFLOP/s datasheet peak). REFERENCE.md's ~95 TFLOP counted all 11.9 B parameters
for every token (both streams and the modulation), which overstates the work by 1.7x; by this count
today's 3.4 s whole-pipeline bf16 run is about half of the card's peak, not 70 %.

HOW A GPU SESSION RUNS IT (one call, about 6-7 minutes on an H200):
  1. UNO's code, beside the repo (not committed; it is Apache-2.0 but stays outside this project):
       fetch tool: github:bytedance/UNO  -> /work/.mirror/bytedance+UNO/repo (a bare git dir)
       cd <repo root> && echo /.uno/ >> .git/info/exclude && mkdir -p .uno &&
         git --git-dir=/work/.mirror/bytedance+UNO/repo archive HEAD uno | tar -x -C .uno
  2. Wheels the H200 image lacks (it has torch, einops, transformers, peft, accelerate, safetensors),
     per /work/.library/device/README.md (".whl" recipe, Python 3.12): diffusers==0.42.1 and
     torchao==0.18.0 (plus peft==0.21.2 if its peft is older). FlashAttention-3 comes from the Hub
     through `kernels`, which the device machine cannot reach: expect "attention: native" there.
  3. run(command="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade
       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; PYTHONUNBUFFERED=1
       python3 bench/gpu_speed.py --uno-code .uno", carry=[".whl", ".uno"], timeout_s=540)
     The table comes back in output_tail and $OUT/gpu_speed.txt; put it in the README with the date
     and the card.
On a CPU, `python bench/gpu_speed.py --dry-run --uno-code DIR --budget-s 3000` runs every mode on a
one-block model at 256x256 without references (the same code paths; fp8 compute is skipped and
compile uses aot_eager there, and each says so). UNO's code needs
einops (`pip install einops`, or PYTHONPATH to a folder holding it).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.gpu import FLUX_TRANSFORMER, FLUX_VAE, random_init_  # noqa: E402

MODES = ("uno-code", "fused", "fused-qkv-compile", "fp8-compute-compile", "compare", "fp8-storage", "fp8-compute",
         "fused-qkv", "compare-compile")
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768)
SMALL_T5 = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=8)
SMALL_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
PROMPT = "two friends having coffee at a cafe terrace"
#: a mode is started only if this much time is left (build + warm-up + run, compile included)
MODE_SECONDS = {"compile": 100, "other": 40}


def say(line: str) -> None:
    print(line, flush=True)
    if os.environ.get("OUT"):
        with open(Path(os.environ["OUT"]) / "gpu_speed.txt", "a") as log:
            log.write(line + "\n")


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def flops_per_step(transformer, image_tokens: int, text_tokens: int = 512) -> tuple[float, float]:
    """(linear, attention) FLOPs of one FLUX forward, from the module shapes (see the docstring)."""
    image = text = single = 0
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear) or (".norm" in name and name.endswith("linear")):
            continue  # modulation layers act on the pooled vector, once per image
        n = module.in_features * module.out_features
        if name.startswith("transformer_blocks."):
            is_text = any(part in name for part in ("context", "add_", "to_add_out"))
            text, image = (text + n, image) if is_text else (text, image + n)
        elif name.startswith("single_transformer_blocks."):
            single += n
    tokens = image_tokens + text_tokens
    blocks = len(transformer.transformer_blocks) + len(transformer.single_transformer_blocks)
    width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    return 2 * (image * image_tokens + text * text_tokens + single * tokens), 4 * tokens**2 * width * blocks


# ---------------------------------------------------------------------------------------------
# shared parts: text encoders, tokenizers, references


def text_encoders(device, dtype, dry_run):
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    t5 = T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                  pad_token_id=0, eos_token_id=1, **(SMALL_T5 if dry_run else T5_XXL))
    clip = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                          pad_token_id=1, **(SMALL_CLIP if dry_run else CLIP_L))
    with torch.device(device):  # integer buffers (position ids) need a real build, not a meta one
        return CLIPTextModel(clip).eval().to(dtype), T5EncoderModel(t5).eval().to(dtype)


def example_references(n: int):
    from PIL import Image

    paths = sorted((ROOT / "examples").glob("*.jpg"))[:n]
    return [Image.open(p).convert("RGB") for p in paths]


def configs(dry_run: bool):
    """(diffusers transformer config, UNO FluxParams kwargs, diffusers VAE config, UNO AE kwargs)."""
    flux = dict(FLUX_TRANSFORMER)
    uno = dict(in_channels=64, vec_in_dim=768, context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0, num_heads=24,
               depth=19, depth_single_blocks=38, axes_dim=[16, 56, 56], theta=10_000, qkv_bias=True,
               guidance_embed=True)
    vae = dict(FLUX_VAE)
    ae = dict(resolution=256, in_channels=3, ch=128, out_ch=3, ch_mult=[1, 2, 4, 4], num_res_blocks=2, z_channels=16,
              scale_factor=0.3611, shift_factor=0.1159)
    if dry_run:  # one block of each kind at full width (diffusers' converter assumes width 3072)
        flux.update(num_layers=1, num_single_layers=1, joint_attention_dim=64, pooled_projection_dim=32)
        uno.update(depth=1, depth_single_blocks=1, context_in_dim=64, vec_in_dim=32)
        vae.update(block_out_channels=(32, 32, 32, 32), norm_num_groups=8)
        ae.update(ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1)
    return flux, uno, vae, ae


# ---------------------------------------------------------------------------------------------
# UNO's own code


def run_uno_code(uno_code: Path, args, device, dtype, encoders, tokenizers, lora, references, uno_params, ae_params):
    """Time UNO's code; return its transformer state dict converted to diffusers' names (on the CPU)."""
    sys.path.insert(0, str(uno_code))
    from uno.flux.model import Flux, FluxParams
    from uno.flux.modules.autoencoder import AutoEncoder, AutoEncoderParams
    from uno.flux.modules.conditioner import HFEmbedder
    from uno.flux.sampling import denoise, get_noise, get_schedule, prepare_multi_ip, unpack
    from uno.flux.util import set_lora

    torch.manual_seed(0)
    with torch.device("meta"):
        model = Flux(FluxParams(**uno_params))
    model = random_init_(model, device, dtype)
    model = set_lora(model, args.rank, device=device)
    # as UNO loads dit_lora: non-strict, tensors assigned (so they keep the file's bf16)
    missing, unexpected = model.load_state_dict(lora, strict=False, assign=True)
    assert not unexpected and not [k for k in missing if ".processor." in k], "LoRA keys do not fit UNO's model"
    model.to(device)
    with torch.device("meta"):
        ae = AutoEncoder(AutoEncoderParams(**ae_params))
    ae = random_init_(ae, device, torch.float32)  # UNO's autoencoder runs in float32

    def embedder(module, tokenizer, max_length, is_clip):
        wrapper = HFEmbedder.__new__(HFEmbedder)  # its __init__ downloads; same fields, our modules
        torch.nn.Module.__init__(wrapper)
        wrapper.is_clip, wrapper.max_length = is_clip, max_length
        wrapper.output_key = "pooler_output" if is_clip else "last_hidden_state"
        wrapper.tokenizer, wrapper.hf_module = tokenizer, module
        return wrapper

    clip = embedder(encoders[0], tokenizers[0], 77, True)
    t5 = embedder(encoders[1], tokenizers[1], 512, False)
    long_side = 512 if len(references) <= 1 else 320
    from umo_pipeline.customizers.uno import preprocess_reference  # pixel for pixel UNO's preprocess_ref

    refs = [preprocess_reference(image, long_side) for image in references]

    @torch.inference_mode()
    def generate(steps: int):
        width = height = args.size // 16 * 16
        x = get_noise(1, height, width, device=device, dtype=dtype, seed=1)
        timesteps = get_schedule(steps, (width // 8) * (height // 8) // (16 * 16), shift=True)
        pixels = [torch.from_numpy(np.asarray(r, dtype=np.float32) / 255.0).permute(2, 0, 1) for r in refs]
        ref_latents = [ae.encode((p * 2.0 - 1.0)[None].to(device, torch.float32)).to(dtype) for p in pixels]
        inputs = prepare_multi_ip(t5=t5, clip=clip, img=x, prompt=PROMPT, ref_imgs=ref_latents, pe="d")
        x = denoise(model, **inputs, timesteps=timesteps, guidance=4.0)
        image = ae.decode(unpack(x.float(), height, width))
        return (127.5 * (image.clamp(-1, 1)[0] + 1.0)).byte().cpu()

    timed("uno-code", f"UNO's code, {str(dtype).removeprefix('torch.')}, its LoRA processors (UMO merged into "
          "dit_lora)", generate, args)
    state = {name: tensor.detach().to("cpu") for name, tensor in model.state_dict().items()
             if ".processor." not in name}
    model = ae = None  # the closure above refers to them: drop the tensors, keep the names
    free()
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    template = convert_flux_transformer_checkpoint_to_diffusers(state)
    # pinned host memory: each mode copies the 24 GB template to the GPU at full PCIe speed
    return {name: tensor.pin_memory() for name, tensor in template.items()} if CUDA else template


# ---------------------------------------------------------------------------------------------
# timing

RESULTS: dict[str, float] = {}
CUDA = torch.cuda.is_available()


def timed(mode: str, note: str, generate, args) -> None:
    start = time.perf_counter()
    generate(2)  # warm-up: kernels, allocator, and the compilation of *-compile modes
    if CUDA:
        torch.cuda.synchronize()
    warm = time.perf_counter() - start
    if CUDA:
        free()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    image = generate(args.steps)
    if CUDA:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    RESULTS[mode] = seconds
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if CUDA else "-"
    base = RESULTS.get("uno-code")
    ratio = f"{seconds / base:.2f}" if base else "-"
    pixels = np.asarray(image, dtype=np.float32)
    say(f"| {mode} | {seconds:.2f} | {peak} | {ratio} | {warm:.1f} | {note}; image std {pixels.std():.1f} |")


def our_mode(mode: str, args, pipe, template, flux_config, device, dtype, loras, references, capability):
    from diffusers import FluxTransformer2DModel

    from umo_pipeline.customizers import speed
    from umo_pipeline.customizers.base import GenerationRequest
    from umo_pipeline.customizers.uno_customizer import UNOCustomizer, attach_loras

    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**flux_config)
    transformer = transformer.to(dtype=dtype).to_empty(device=device).eval()
    transformer.load_state_dict(template, strict=True)
    pipe.transformer = transformer
    compare = mode.startswith("compare")
    fp8 = "storage" if mode == "fp8-storage" else "compute" if mode.startswith("fp8-compute") else None
    attach_loras(pipe, *loras, mode="compare" if compare else "fused", fp8=fp8, dtype=dtype)
    notes = []
    if "qkv" in mode or fp8 == "compute":
        notes.append(f"fused QKV in {speed.fuse_qkv(transformer)} attentions")
    if fp8 == "compute":
        notes.append(f"torchao fp8 in {speed.quantize_fp8_compute(transformer)} linear layers")
    if mode not in ("fused", "compare", "fp8-storage"):
        notes.append("attention: " + speed.set_attention(transformer, speed.attention_backend(capability, dtype)))
    if mode.endswith("compile"):
        speed.compile_blocks(transformer, backend="inductor" if CUDA else "aot_eager")
        notes.append("regional torch.compile" + ("" if CUDA else " (aot_eager on CPU)"))
    free()
    customizer = UNOCustomizer(pipe, name="umo-uno", label="", mode="compare" if compare else "fused",
                               device=device, fp8=fp8 or False)

    def generate_with(variant):
        def generate(steps):
            request = GenerationRequest(prompt=PROMPT, width=args.size, height=args.size, steps=steps, guidance=4.0,
                                        seed=1)
            return customizer.generate(request, references, variant=variant)
        return generate

    for variant in customizer.variants:
        label = mode if len(customizer.variants) == 1 else f"{mode} ({variant})"
        timed(label, ", ".join(notes) or "as loaded today", generate_with(variant), args)
    pipe.transformer = None
    customizer = transformer = None
    torch._dynamo.reset()
    free()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uno-code", type=Path, help="folder holding UNO's `uno` package (see the docstring)")
    parser.add_argument("--dry-run", action="store_true", help="one-block model on the CPU: checks the script")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--refs", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=360.0,
                        help="start no mode after this many seconds (the device allows 8 minutes a call)")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {','.join(MODES)}")
    if "uno-code" in modes and args.uno_code is None:
        parser.error("--uno-code DIR is needed for the uno-code mode (or leave it out of --modes)")
    if args.dry_run:  # the smallest size the customizer accepts, no references: minutes on 2 cores
        args.steps, args.size, args.refs = min(args.steps, 2), 256, 0
    args.rank = 8 if args.dry_run else 512
    started = time.perf_counter()
    device = "cuda" if CUDA and not args.dry_run else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from umo_pipeline.customizers import speed, tiny
    from umo_pipeline.customizers.uno import UNOPipeline
    from umo_pipeline.lora import merge_umo_into_uno, random_uno_lora

    capability = speed.cuda_capability(device)
    try:
        import torchao

        torchao_version = torchao.__version__
    except ImportError:
        torchao_version = "not installed"
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
    say(f"device: {card}, capability {capability}, torch {torch.__version__}, torchao {torchao_version}, "
        f"kernels {'installed' if speed.package_available('kernels') else 'not installed'}")
    flux_config, uno_params, vae_config, ae_params = configs(args.dry_run)
    with torch.device("meta"):
        shape_model = FluxTransformer2DModel(**flux_config)
    image_tokens = (args.size // 16) ** 2 + args.refs * (320 // 16) ** 2
    linear, attention = flops_per_step(shape_model, image_tokens)
    say(f"work per step: {linear / 1e12:.1f} TFLOP linear + {attention / 1e12:.1f} TFLOP attention "
        f"({image_tokens} image + 512 text tokens); {args.steps} steps = {(linear + attention) * args.steps / 1e15:.2f} "
        "PFLOP")

    encoders = text_encoders(device, dtype, args.dry_run)
    tokenizers = (tiny.tiny_clip_tokenizer(), tiny.tiny_t5_tokenizer())
    lora_device = device if device == "cuda" else None
    uno_lora = random_uno_lora(shape_model, rank=args.rank, seed=1, std=1e-3, dtype=dtype, device=lora_device)
    umo_lora = random_uno_lora(shape_model, rank=args.rank, seed=2, std=1e-3, dtype=dtype, device=lora_device)
    merged = merge_umo_into_uno(uno_lora, umo_lora, shape_model)
    references = example_references(args.refs)
    say(f"\n{args.size}x{args.size}, {args.refs} references, {args.steps} steps, LoRA rank {args.rank}, {dtype}; "
        "s/image after a warm-up, peak GPU memory of the whole pipeline\n")
    say("| mode | s/image | peak GiB | ratio to UNO's code | warm-up s | note |")
    say("| --- | --- | --- | --- | --- | --- |")

    if args.uno_code is not None:
        template = run_uno_code(args.uno_code, args, device, dtype, encoders, tokenizers, merged, references,
                                uno_params, ae_params)
    else:  # no UNO code: a seeded random template of our own
        torch.manual_seed(0)
        template = {k: v.cpu() for k, v in random_init_(FluxTransformer2DModel(**flux_config), "cpu", dtype)
                    .state_dict().items()}
    with torch.device("meta"):
        vae = AutoencoderKL(**vae_config)
    pipe = UNOPipeline(scheduler=tiny.flux_scheduler(), vae=random_init_(vae, device, torch.float32),
                       text_encoder=encoders[0], tokenizer=tokenizers[0], text_encoder_2=encoders[1],
                       tokenizer_2=tokenizers[1], transformer=shape_model)
    pipe.set_progress_bar_config(disable=True)
    for mode in modes:
        if mode == "uno-code":
            continue
        left = args.budget_s - (time.perf_counter() - started)
        needed = MODE_SECONDS["compile" if mode.endswith("compile") else "other"]
        if left < needed:
            say(f"| {mode} | skipped: {left:.0f} s left of --budget-s, about {needed} s needed | | | | |")
            continue
        if mode.startswith("fp8-compute") and speed.fp8_kind(capability) != "compute":
            say(f"| {mode} | skipped: no fp8 compute here (capability {capability}, torchao {torchao_version}) "
                "| | | | |")
            continue
        try:
            our_mode(mode, args, pipe, template, flux_config, device, dtype, (uno_lora, umo_lora), references,
                     capability)
        except Exception as error:  # noqa: BLE001 - report it and measure the other modes
            say(f"| {mode} | FAILED {type(error).__name__}: {str(error).splitlines()[0][:300]} | | | | |")
            pipe.transformer = None
            torch._dynamo.reset()
            free()
    say(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
