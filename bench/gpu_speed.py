"""The one GPU check: CUDA correctness, UMO-UNO speed per mode against UNO's own code, OmniGen2's figures.

Parts, in the order of --modes (each started only if its estimated time fits in what is left of
--budget-s, so one call ends in about 7 minutes on an H200; the skipped ones are said in the table):

  tests                pytest on tests/library/customizers/test_gpu.py in its own process: the tiny UNO and
                       OmniGen2 customizers on the GPU in every memory mode, exact base/UMO switching,
                       compiled blocks against eager (a separate process, so the checks' CUDA memory and
                       compile caches are gone before timing starts, and a crash there cannot end the
                       timing)
  uno-code             UNO's original code (github.com/bytedance/UNO): its Flux model with its LoRA
                       attention processors, its AutoEncoder, T5/CLIP wrappers and sampling functions
                       (get_noise, get_schedule, prepare_multi_ip, denoise, unpack), called in the order
                       of its UNOPipeline.forward (that class itself is not used: its module imports
                       torchvision for one to_tensor call; the conversion is done with numpy here)
  fused                ours, UMO LoRA fused (the README's 3.4 s on an H200)
  fused-qkv-compile    + fused QKV, FA3 where available, regional torch.compile (lossless; goal <= 2.8 s)
  fp8-compute-compile  --fp8 on this GPU: LoRA fused in bf16, fused QKV, torchao float8 per-row dynamic,
                       + regional torch.compile (goal <= 2.0 s, never slower than bf16)
  repair               one face repaired (issue 22) against the generation it repairs, side by side on
                       one fused transformer: workflow.prepare -> generate_images at --size with both
                       references and --steps, and workflow.prepare_repair -> generate_repairs of one
                       face at 512x512, strength 0.6, one candidate, conditioned on one reference (the
                       face placed by a stand-in face backend: no face weights on the GPU machine);
                       goal: the repair <= 40 % of the generation
  omnigen2             UMO-OmniGen2 at full size (3.97 B transformer, Qwen2.5-VL-3B shapes), 1024x1024,
                       text guidance 5 + image guidance 2 (3 passes a step with references): UMO adapter
                       (1 reference), fused (1 and 2 references), fused + model CPU offload; s/image
                       projected to 50 steps from --omnigen2-steps timed steps plus the measured fixed part
  compare              ours, two adapters (UNO, UMO): the UMO variant and the base variant
  fp8-storage          --fp8 without fp8 tensor cores: fp8 weights, bf16 matmuls, LoRA unfused
  fp8-compute          fp8-compute-compile without the compilation
  fused-qkv            fused-qkv-compile without the compilation
  compare-compile      compare with FA3 (where available) and regional torch.compile
  fp8-offload          --fp8 --offload: fp8 storage behind model CPU offload (the least memory)

UNO runs at 768x768, 2 references, 25 steps, random weights of the real sizes (T5-XXL, CLIP-L, the
FLUX.1-dev transformer, the VAE in float32, rank-512 LoRAs in UNO's key format). Its transformer and
LoRA weights are identical in every mode: UNO's Flux is initialised first (seeded), its state dict
converted with diffusers' own converter (convert_flux_transformer_checkpoint_to_diffusers) into the
template each of our modes loads; the text encoders are the same modules. Each mode gets a fresh
transformer from that template (fusions and quantisation change it in place). Each row: s/image (after
a 2-step warm-up, whose time is given too: the compile time for *-compile), peak GPU memory of the
whole pipeline, ratio to uno-code. Rows are printed as they come (and logged to $OUT/gpu_speed.log);
the whole table is printed at the end and appended to $OUT/gpu_speed.txt, the tests' output written
to $OUT/gpu_tests.txt.

Work per step, counted from the modules (`flops_per_step`, printed at start): image tokens (2304
target + 800 reference) go through the image-stream weights of the 19 double blocks and text tokens
(512) through the text-stream ones, every token through the 38 single blocks; the 3.2 B modulation
parameters act once per image, not per token. That gives 2 x (2.15 B x 3104 + 2.15 B x 512 + 4.30 B
x 3616) = 46.7 TFLOP in linear layers + 4 x 3616^2 x 3072 x 57 = 9.2 TFLOP in attention = 55.8 TFLOP
per step, 1.40 PFLOP for 25 steps: 1.77 s at the 790 TFLOP/s an H200 sustains on large bf16 matmuls
(1.41 s at its 989 TFLOP/s datasheet peak). REFERENCE.md's ~95 TFLOP counted all 11.9 B parameters
for every token (both streams and the modulation), which overstates the work by 1.7x; by this count
today's 3.4 s whole-pipeline bf16 run is about half of the card's peak, not 70 %.

HOW A GPU SESSION RUNS IT (one call, about 7 minutes on an H200):
  1. UNO's code, beside the repo (not committed; it is Apache-2.0 but stays outside this project):
       fetch tool: github:bytedance/UNO  -> /work/.mirror/bytedance+UNO/repo (a bare git dir)
       cd <repo root> && echo /.uno/ >> .git/info/exclude && mkdir -p .uno &&
         git --git-dir=/work/.mirror/bytedance+UNO/repo archive HEAD uno | tar -x -C .uno
  2. Wheels the H200 image lacks (it has torch, einops, transformers, peft, accelerate, safetensors,
     pytest), per /work/.library/device/README.md (".whl" recipe, Python 3.12): diffusers==0.42.1 and
     torchao==0.18.0 (plus peft==0.21.2 if its peft is older). FlashAttention-3 comes from the Hub
     through `kernels`, which the device machine cannot reach: expect "attention: native" there.
  3. run(command="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade
       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; PYTHONUNBUFFERED=1
       python3 bench/gpu_speed.py --uno-code .uno", carry=[".whl", ".uno"], timeout_s=540)
     The table comes back in output_tail and $OUT/gpu_speed.txt; put it in the README with the date
     and the card. A lower --budget-s leaves more of the device time for a second try.
On a CPU, `python bench/gpu_speed.py --dry-run --uno-code DIR --budget-s 3000` runs every part on
one-block models at 256x256 without references and the tiny OmniGen2 at 64x64 (the same code paths;
the GPU tests skip, fp8 compute and offload are skipped and compile uses aot_eager, each said so).
UNO's code needs einops (`pip install einops`, or PYTHONPATH to a folder holding it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the library and bench.common from this checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from umo_pipeline import params  # noqa: E402

from bench.common import (  # noqa: E402
    example_references,
    flux_configs,
    flux_text_encoders,
    free,
    omnigen2_pipeline,
    random_init_,
)

MODES = ("tests", "uno-code", "fused", "fused-qkv-compile", "fp8-compute-compile", "repair", "omnigen2", "compare",
         "fp8-storage", "fp8-compute", "fused-qkv", "compare-compile", "fp8-offload")
GPU_TESTS = "tests/library/customizers/test_gpu.py"
PROMPT = "two friends having coffee at a cafe terrace"
OMNIGEN2_PROMPT = "The man in the first image and the woman in the second image shake hands in a park, photo."
#: a part is started only if this much of --budget-s is left (build + warm-up + run, compile included)
NEEDED_SECONDS = {"tests": 60, "uno-code": 90, "omnigen2": 90, "compile": 100, "repair": 60, "other": 40}
#: the repair part's strength (params.STRENGTH's default) and the goal it is measured against (issue 22)
REPAIR_STRENGTH, REPAIR_GOAL = params.STRENGTH.default, 0.40
TABLE_HEAD = ["| mode | s/image | peak GiB | ratio to UNO's code | warm-up s | note |",
              "| --- | --- | --- | --- | --- | --- |"]


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
# the run: clock, device, table


class Bench:
    """What every part shares: arguments, device, the budget clock and the one table."""

    def __init__(self, args):
        self.args = args
        self.cuda = torch.cuda.is_available() and not args.dry_run
        self.device = "cuda" if self.cuda else "cpu"
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.started = time.perf_counter()
        self.header: list[str] = []
        self.rows: list[str] = []
        self.seconds: dict[str, float] = {}  # mode -> s/image, for the ratio to uno-code

    def head(self, line: str) -> None:
        """A line above the table."""
        self.header.append(line)
        self.log(line)

    def log(self, line: str) -> None:
        """Print a line now and log it (a run cut short still leaves what it measured)."""
        print(line, flush=True)
        if os.environ.get("OUT"):
            with open(Path(os.environ["OUT"]) / "gpu_speed.log", "a") as log:
                log.write(line + "\n")

    def row(self, mode: str, note: str, seconds: float | None = None, peak: float | None = None,
            warm: float | None = None, *, against_uno: bool = True) -> None:
        if seconds is not None and against_uno:
            self.seconds[mode] = seconds
        base = self.seconds.get("uno-code") if against_uno else None
        cells = [mode, "-" if seconds is None else f"{seconds:.2f}", "-" if peak is None else f"{peak:.1f}",
                 f"{seconds / base:.2f}" if seconds is not None and base else "-",
                 "-" if warm is None else f"{warm:.1f}", note]
        self.rows.append("| " + " | ".join(cells) + " |")
        self.log(self.rows[-1])

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.started)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> float:
        """Free the cache and restart the peak count; returns the memory still allocated (GiB)."""
        free()
        if not self.cuda:
            return 0.0
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**30

    def peak(self, since: float = 0.0) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**30 - since if self.cuda else None

    def finish(self) -> str:
        table = "\n".join([*self.header, "", *TABLE_HEAD, *self.rows, "",
                           f"total {time.perf_counter() - self.started:.0f} s"])
        print("\n" + table, flush=True)
        if os.environ.get("OUT"):
            with open(Path(os.environ["OUT"]) / "gpu_speed.txt", "a") as out:
                out.write(table + "\n\n")
        return table


def timed(bench: Bench, mode: str, note: str, generate, *, since: float = 0.0,
          relative_to: tuple[str, float] | None = None) -> float:
    """A 2-step warm-up (kernels, allocator, compilation), then one timed image; its seconds.
    relative_to: (what, its seconds), for a note saying this image's share of that."""
    start = time.perf_counter()
    generate(2)
    bench.sync()
    warm = time.perf_counter() - start
    bench.reset_peak()
    start = time.perf_counter()
    image = generate(bench.args.steps)
    bench.sync()
    seconds = time.perf_counter() - start
    pixels = np.asarray(image, dtype=np.float32)
    if relative_to is not None:
        note += f"; {seconds / relative_to[1]:.2f} of {relative_to[0]}"
    bench.row(mode, f"{note}; image std {pixels.std():.1f}", seconds, bench.peak(since), warm)
    return seconds


# ---------------------------------------------------------------------------------------------
# part: the GPU tests


def run_gpu_tests(bench: Bench) -> None:
    """pytest on the GPU tests in a process of its own; its whole output goes to $OUT/gpu_tests.txt."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", GPU_TESTS]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=max(bench.left(), 30))
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as stopped:
        output, code = f"{stopped.stdout or ''}{stopped.stderr or ''}\nstopped after {stopped.timeout:.0f} s", -1
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_tests.txt").write_text(output)
    lines = [line for line in output.splitlines() if line.strip()]
    failed = [line[:160] for line in lines if line.startswith(("FAILED", "ERROR"))]
    summary = lines[-1].strip("= ") if lines else "no output"
    note = ("" if code == 0 else f"FAILED (exit {code}): ") + summary + "".join(f"; {line}" for line in failed)
    bench.row(f"tests ({GPU_TESTS})", f"{note}; took {time.perf_counter() - start:.0f} s")


# ---------------------------------------------------------------------------------------------
# UMO-UNO: shared parts, UNO's own code, our modes


class UnoSetup:
    """What every UNO mode shares: text encoders, tokenizers, LoRAs, references, the weight template."""

    def __init__(self, bench: Bench):
        from diffusers import AutoencoderKL, FluxTransformer2DModel

        from umo_pipeline.customizers.uno import tiny
        from umo_pipeline.customizers.uno.lora import merge_umo_into_uno, random_uno_lora
        from umo_pipeline.customizers.uno.pipeline import UNOPipeline

        args, device, dtype = bench.args, bench.device, bench.dtype
        self.flux_config, self.uno_params, vae_config, self.ae_params = flux_configs(args.dry_run)
        with torch.device("meta"):
            shape_model = FluxTransformer2DModel(**self.flux_config)
        self.encoders = flux_text_encoders(device, dtype, args.dry_run)
        self.tokenizers = (tiny.tiny_clip_tokenizer(), tiny.tiny_t5_tokenizer())
        lora_device = device if bench.cuda else None
        self.loras = tuple(random_uno_lora(shape_model, rank=args.rank, seed=seed, std=1e-3, dtype=dtype,
                                           device=lora_device) for seed in (1, 2))
        self.merged = merge_umo_into_uno(*self.loras, shape_model)
        self.references = example_references(args.refs)
        with torch.device("meta"):
            vae = AutoencoderKL(**vae_config)
        self.pipe = UNOPipeline(scheduler=tiny.flux_scheduler(), vae=random_init_(vae, device, torch.float32),
                                text_encoder=self.encoders[0], tokenizer=self.tokenizers[0],
                                text_encoder_2=self.encoders[1], tokenizer_2=self.tokenizers[1],
                                transformer=shape_model)
        self.pipe.set_progress_bar_config(disable=True)
        self.template = None  # UNO's weights in diffusers' names, set by run_uno_code or seeded here

    def weights(self, bench: Bench) -> dict:
        """The template: UNO's weights once run_uno_code ran, else a seeded random one of our own."""
        from diffusers import FluxTransformer2DModel

        if self.template is None:
            torch.manual_seed(0)
            model = random_init_(FluxTransformer2DModel(**self.flux_config), "cpu", bench.dtype)
            self.template = {k: v.cpu() for k, v in model.state_dict().items()}
        return self.template


def uno_code_model(uno_code: Path, setup: UnoSetup, bench: Bench):
    """UNO's Flux with its LoRA processors (the merged LoRA loaded as UNO loads dit_lora) and its AE."""
    sys.path.insert(0, str(uno_code))
    from uno.flux.model import Flux, FluxParams
    from uno.flux.modules.autoencoder import AutoEncoder, AutoEncoderParams
    from uno.flux.util import set_lora

    torch.manual_seed(0)
    with torch.device("meta"):
        model = Flux(FluxParams(**setup.uno_params))
    model = random_init_(model, bench.device, bench.dtype)
    model = set_lora(model, bench.args.rank, device=bench.device)
    # as UNO loads dit_lora: non-strict, tensors assigned (so they keep the file's bf16)
    missing, unexpected = model.load_state_dict(setup.merged, strict=False, assign=True)
    assert not unexpected and not [k for k in missing if ".processor." in k], "LoRA keys do not fit UNO's model"
    model.to(bench.device)
    with torch.device("meta"):
        ae = AutoEncoder(AutoEncoderParams(**setup.ae_params))
    return model, random_init_(ae, bench.device, torch.float32)  # UNO's autoencoder runs in float32


def uno_code_embedder(module, tokenizer, max_length: int, is_clip: bool):
    """UNO's HFEmbedder around our module (its __init__ downloads; same fields)."""
    from uno.flux.modules.conditioner import HFEmbedder

    wrapper = HFEmbedder.__new__(HFEmbedder)
    torch.nn.Module.__init__(wrapper)
    wrapper.is_clip, wrapper.max_length = is_clip, max_length
    wrapper.output_key = "pooler_output" if is_clip else "last_hidden_state"
    wrapper.tokenizer, wrapper.hf_module = tokenizer, module
    return wrapper


def run_uno_code(bench: Bench, setup: UnoSetup) -> None:
    """Time UNO's code; keep its transformer weights, in diffusers' names, as the template of our modes."""
    model, ae = uno_code_model(bench.args.uno_code, setup, bench)
    from uno.flux.sampling import denoise, get_noise, get_schedule, prepare_multi_ip, unpack

    from umo_pipeline.customizers.uno.pipeline import preprocess_reference, reference_long_side

    clip = uno_code_embedder(setup.encoders[0], setup.tokenizers[0], 77, True)
    t5 = uno_code_embedder(setup.encoders[1], setup.tokenizers[1], 512, False)
    # preprocess_reference is pixel for pixel UNO's preprocess_ref
    refs = [preprocess_reference(image, reference_long_side(len(setup.references))) for image in setup.references]
    device, dtype, size = bench.device, bench.dtype, bench.args.size // 16 * 16

    @torch.inference_mode()
    def generate(steps: int):
        x = get_noise(1, size, size, device=device, dtype=dtype, seed=1)
        timesteps = get_schedule(steps, (size // 8) * (size // 8) // (16 * 16), shift=True)
        pixels = [torch.from_numpy(np.asarray(r, dtype=np.float32) / 255.0).permute(2, 0, 1) for r in refs]
        ref_latents = [ae.encode((p * 2.0 - 1.0)[None].to(device, torch.float32)).to(dtype) for p in pixels]
        inputs = prepare_multi_ip(t5=t5, clip=clip, img=x, prompt=PROMPT, ref_imgs=ref_latents, pe="d")
        x = denoise(model, **inputs, timesteps=timesteps, guidance=4.0)
        image = ae.decode(unpack(x.float(), size, size))
        return (127.5 * (image.clamp(-1, 1)[0] + 1.0)).byte().cpu()

    timed(bench, "uno-code", f"UNO's code, {str(dtype).removeprefix('torch.')}, its LoRA processors (UMO merged "
          "into dit_lora)", generate)
    state = {name: tensor.detach().to("cpu") for name, tensor in model.state_dict().items()
             if ".processor." not in name}
    model = ae = None  # the closure above refers to them: drop the tensors, keep the names
    free()
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    template = convert_flux_transformer_checkpoint_to_diffusers(state)
    # pinned host memory: each mode copies the 24 GB template to the GPU at full PCIe speed
    setup.template = {name: tensor.pin_memory() for name, tensor in template.items()} if bench.cuda else template


def speed_ups(mode: str, transformer, bench: Bench, fp8: str | None) -> list[str]:
    """The speed-ups a mode adds after its LoRAs; the note of its row says them all."""
    from umo_pipeline.customizers import speed

    notes = ["two adapters" if mode.startswith("compare") else "fp8 storage, UMO LoRA unfused"
             if fp8 == "storage" else "UMO LoRA fused"]
    if "qkv" in mode or fp8 == "compute":
        notes.append(f"fused QKV in {speed.fuse_qkv(transformer)} attentions")
    if fp8 == "compute":
        notes.append(f"torchao fp8 in {speed.quantize_fp8_compute(transformer)} linear layers")
    if mode not in ("fused", "compare", "fp8-storage", "fp8-offload"):
        backend = speed.attention_backend(speed.cuda_capability(bench.device), bench.dtype)
        notes.append("attention: " + speed.set_attention(transformer, backend))
    if mode.endswith("compile"):
        speed.compile_blocks(transformer, backend="inductor" if bench.cuda else "aot_eager")
        notes.append("regional torch.compile" + ("" if bench.cuda else " (aot_eager on CPU)"))
    return notes


def our_customizer(bench: Bench, setup: UnoSetup, mode: str):
    """(UNOCustomizer, notes) for one of our modes, on a fresh transformer from the template."""
    from diffusers import FluxTransformer2DModel

    from umo_pipeline.customizers.uno.customizer import UNOCustomizer, attach_loras

    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**setup.flux_config)
    transformer = transformer.to(dtype=bench.dtype).to_empty(device=bench.device).eval()
    transformer.load_state_dict(setup.weights(bench), strict=True)
    pipe, compare, offload = setup.pipe, mode.startswith("compare"), mode == "fp8-offload"
    pipe.transformer = transformer
    fp8 = "storage" if mode in ("fp8-storage", "fp8-offload") else "compute" if mode.startswith("fp8") else None
    attach_loras(pipe, *setup.loras, mode="compare" if compare else "fused", fp8=fp8, dtype=bench.dtype)
    notes = speed_ups(mode, transformer, bench, fp8)
    if offload:
        pipe.enable_model_cpu_offload(device=bench.device)
        notes.append("model CPU offload")
    free()
    customizer = UNOCustomizer(pipe, name="umo-uno", label="", mode="compare" if compare else "fused",
                               device=bench.device, offload=offload, fp8=fp8 or False)
    return customizer, notes


def our_mode(bench: Bench, setup: UnoSetup, mode: str) -> None:
    """One of our modes on a fresh transformer from the template, through UNOCustomizer.generate."""
    from umo_pipeline.customizers.request import GenerationRequest

    customizer, notes = our_customizer(bench, setup, mode)

    def generate_with(variant):
        def generate(steps):
            request = GenerationRequest(prompt=PROMPT, width=bench.args.size, height=bench.args.size, steps=steps,
                                        guidance=4.0, seed=1)
            return customizer.generate(request, setup.references, variant=variant)
        return generate

    for variant in customizer.variants:
        label = mode if len(customizer.variants) == 1 else f"{mode} ({variant})"
        timed(bench, label, ", ".join(notes), generate_with(variant))
    drop_transformer(setup.pipe, bench)


def run_repair(bench: Bench, setup: UnoSetup) -> None:
    """One face repaired (512x512, REPAIR_STRENGTH, one candidate, one reference) against the generation
    of --size with both references, both through the workflow's phases on one fused transformer."""
    from dataclasses import replace

    from bench.common import repair_scene
    from umo_pipeline import workflow
    from umo_pipeline.customizers.request import GenerationRequest

    customizer, notes = our_customizer(bench, setup, "fused")
    references = example_references(2)  # a repair needs a reference, also in the dry run (which has none)
    picture, backend = repair_scene(references, bench.args.size)
    request = GenerationRequest(prompt=PROMPT, width=bench.args.size, height=bench.args.size,
                                steps=bench.args.steps, guidance=4.0, seed=1)

    def generation(steps):
        job = workflow.prepare(customizer, backend, replace(request, steps=steps), references)
        return workflow.generate_images(job)["umo"][0]

    def repair(steps):
        job = workflow.prepare_repair(customizer, backend, picture, references, choose=[1],
                                      strength=REPAIR_STRENGTH, settings=replace(request, steps=steps), seed=1)
        return workflow.generate_repairs(job)[0][0]

    face = workflow.prepare_repair(customizer, backend, picture, references, choose=[1], strength=REPAIR_STRENGTH,
                                   settings=request).faces[0].request
    full = timed(bench, "repair: the generation", f"{bench.args.size}x{bench.args.size}, 2 references, "
                 f"{request.steps} steps, workflow.generate_images; {', '.join(notes)}", generation)
    part = timed(bench, "repair: one face", f"{face.width}x{face.height}, strength {REPAIR_STRENGTH} "
                 f"({face.denoising_steps} of {face.steps} steps), 1 reference, workflow.generate_repairs (goal <= "
                 f"{REPAIR_GOAL:.2f} of the generation)", repair, relative_to=("the generation", full))
    bench.log(f"repair: one face took {part / full:.2f} of the generation: "
              f"{'meets' if part / full <= REPAIR_GOAL else 'misses'} the goal of {REPAIR_GOAL:.2f}")
    drop_transformer(setup.pipe, bench)


def drop_transformer(pipe, bench: Bench) -> None:
    """Undo a mode: offload hooks off, the shared modules back on the device, the transformer gone."""
    if getattr(pipe, "_all_hooks", None):
        pipe.remove_all_hooks()
        for module in (pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
            module.to(bench.device)
    pipe.transformer = None
    torch._dynamo.reset()
    free()


# ---------------------------------------------------------------------------------------------
# UMO-OmniGen2


def omnigen2_row(bench: Bench, pipe, label: str, n_refs: int, note: str, since: float) -> None:
    """s/step from a 1-step and a (1 + steps)-step run after a warm-up; s/image projected to 50 steps."""
    args = bench.args
    # square noise at the output size: the most reference tokens OmniGen2 takes (4096 each at 1024x1024)
    rng = np.random.default_rng(0)
    refs = [Image.fromarray(rng.integers(0, 256, (args.omnigen2_size,) * 2 + (3,), dtype=np.uint8))
            for _ in range(n_refs)]

    def seconds(steps: int) -> float:
        bench.sync()
        start = time.perf_counter()
        pipe(OMNIGEN2_PROMPT, ref_images=refs, negative_prompt="blurry, deformed, bad anatomy",
             width=args.omnigen2_size, height=args.omnigen2_size, num_inference_steps=steps, align_res=False,
             generator=torch.Generator("cpu").manual_seed(0), output_type="np")
        bench.sync()
        return time.perf_counter() - start

    warm = seconds(1)  # kernels, allocator, offload hooks
    bench.reset_peak()
    one, many = seconds(1), seconds(1 + args.omnigen2_steps)
    per_step = (many - one) / args.omnigen2_steps
    fixed = one - per_step  # prompt, references, decoding
    bench.row(f"omnigen2 {label} ({n_refs} ref)", f"{args.omnigen2_size}x{args.omnigen2_size}, 50 steps "
              f"projected: {per_step:.3f} s/step + {fixed:.1f} s fixed; {note}", fixed + 50 * per_step,
              bench.peak(since), warm, against_uno=False)


def run_omnigen2(bench: Bench) -> None:
    """Adapter, fused (1 and 2 references), fused with offload; peak memory above what was resident."""
    from umo_pipeline.customizers.lora import fuse_adapter
    from umo_pipeline.customizers.omnigen2.lora import load_omnigen2_lora, random_omnigen2_lora

    resident = bench.reset_peak()  # UNO's text encoders may still be on the GPU
    start = time.perf_counter()
    pipe = omnigen2_pipeline(bench.device, bench.dtype, bench.args.dry_run)
    load_omnigen2_lora(pipe.transformer, random_omnigen2_lora(pipe.transformer, rank=bench.args.rank, seed=1,
                                                                std=1e-3), "umo")
    free()
    bench.log(f"omnigen2: built with a rank-{bench.args.rank} UMO adapter in {time.perf_counter() - start:.0f} s")
    counts = (1, 2) if bench.args.refs else (0,)
    omnigen2_row(bench, pipe, "adapter", counts[0], "UMO adapter active", resident)
    fuse_adapter(pipe.transformer, "umo")
    for n in counts:
        omnigen2_row(bench, pipe, "fused", n, "UMO LoRA fused", resident)
    if bench.cuda:
        pipe.enable_model_cpu_offload(device=bench.device)
        omnigen2_row(bench, pipe, "offload", counts[0], "fused, model CPU offload (weights copied in per image)",
                     resident)
    else:
        bench.row("omnigen2 offload", "skipped: model CPU offload needs CUDA")
    pipe = None
    free()


# ---------------------------------------------------------------------------------------------
# the command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uno-code", type=Path, help="folder holding UNO's `uno` package (see above)")
    parser.add_argument("--dry-run", action="store_true", help="small models on the CPU: checks the script")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, run in this order")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--refs", type=int, default=2)
    parser.add_argument("--omnigen2-size", type=int, default=1024)
    parser.add_argument("--omnigen2-steps", type=int, default=5, help="timed OmniGen2 steps per row")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start a part only if its estimated time fits in what is left of this")
    args = parser.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {','.join(MODES)}")
    if "uno-code" in args.modes and args.uno_code is None:
        parser.error("--uno-code DIR is needed for the uno-code mode (or leave it out of --modes)")
    if args.dry_run:  # the smallest sizes the customizers accept, no references: minutes on 2 cores
        args.steps, args.size, args.refs = min(args.steps, 2), 256, 0
        args.omnigen2_size, args.omnigen2_steps = 64, 2
    args.rank = 8 if args.dry_run else 512
    return args


def torchao_version() -> str:
    try:
        import torchao
    except ImportError:
        return "not installed"
    return torchao.__version__


def describe_machine(bench: Bench) -> None:
    from diffusers import FluxTransformer2DModel

    from umo_pipeline.customizers import speed
    from umo_pipeline.customizers.uno.pipeline import reference_tokens

    args = bench.args
    card = torch.cuda.get_device_name() if bench.cuda else "CPU (dry run)"
    bench.head(f"device: {card}, capability {speed.cuda_capability(bench.device)}, torch {torch.__version__}, "
              f"torchao {torchao_version()}, kernels "
              f"{'installed' if speed.package_available('kernels') else 'not installed'}")
    with torch.device("meta"):
        shape_model = FluxTransformer2DModel(**flux_configs(args.dry_run)[0])
    image_tokens = (args.size // 16) ** 2 + reference_tokens(args.refs)
    linear, attention = flops_per_step(shape_model, image_tokens)
    bench.head(f"UNO work per step: {linear / 1e12:.1f} TFLOP linear + {attention / 1e12:.1f} TFLOP attention "
              f"({image_tokens} image + 512 text tokens); {args.steps} steps = "
              f"{(linear + attention) * args.steps / 1e15:.2f} PFLOP")
    bench.head(f"UNO rows: {args.size}x{args.size}, {args.refs} references, {args.steps} steps, LoRA rank "
              f"{args.rank}, {bench.dtype}; s/image after a warm-up, peak GPU memory of the whole pipeline")


def skip_reason(bench: Bench, mode: str) -> str | None:
    from umo_pipeline.customizers import speed

    kind = mode if mode in NEEDED_SECONDS else "compile" if mode.endswith("compile") else "other"
    needed, left = NEEDED_SECONDS[kind], bench.left()
    if left < needed:
        return f"skipped: {left:.0f} s left of --budget-s, about {needed} s needed"
    capability = speed.cuda_capability(bench.device)
    if mode.startswith("fp8-compute") and speed.fp8_kind(capability) != "compute":
        return f"skipped: no fp8 compute here (capability {capability}, torchao {torchao_version()})"
    if mode == "fp8-offload" and not bench.cuda:
        return "skipped: model CPU offload needs CUDA"
    return None


def run_mode(bench: Bench, mode: str, setup: UnoSetup | None) -> UnoSetup | None:
    """One part; returns the UNO set-up, built by the first UNO mode and kept for the next ones."""
    if mode == "tests":
        run_gpu_tests(bench)
    elif mode == "omnigen2":
        run_omnigen2(bench)
    else:
        if setup is None:
            start = time.perf_counter()
            setup = UnoSetup(bench)
            bench.log(f"uno: text encoders, VAE and LoRAs built in {time.perf_counter() - start:.0f} s")
        if mode == "uno-code":
            run_uno_code(bench, setup)
        elif mode == "repair":
            run_repair(bench, setup)
        else:
            our_mode(bench, setup, mode)
    return setup


def main(argv=None) -> None:
    bench = Bench(parse_args(argv))
    describe_machine(bench)
    setup = None
    for mode in bench.args.modes:
        reason = skip_reason(bench, mode)
        if reason:
            bench.row(mode, reason)
            continue
        try:
            setup = run_mode(bench, mode, setup)
        except Exception as error:  # noqa: BLE001 - report it and measure the other parts
            bench.row(mode, f"FAILED {type(error).__name__}: {str(error).splitlines()[0][:300]}")
            if setup is not None:
                drop_transformer(setup.pipe, bench)
            free()
    bench.finish()


if __name__ == "__main__":
    main()
