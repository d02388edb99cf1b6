"""UMO-UNO as a Customizer: UNOPipeline with the UNO and UMO LoRAs, memory modes, tiny build.

Modes: "compare" keeps both LoRAs as peft adapters ("uno", "umo") on one transformer, so base UNO
and UMO-UNO are sampled from the same noise by switching adapters; "fused" bakes the UMO LoRA into
the weights and drops the LoRA layers (fastest, no comparison).

Memory and speed options (decided by `speed.plan_speed`, applied by `speed.speed_up` in the order its
module docstring gives):
--fp8 is fp8 compute (torchao, per-row scales) on GPUs with fp8 tensor cores and fp8 weight storage
(diffusers layerwise casting, bf16 matmuls) elsewhere; model CPU offload (needs CUDA); fused QKV in
the fused mode; FlashAttention-3 where available; --compile (regional torch.compile); --fast-cache.
LoRAs are loaded first, then fp8 is applied, so the LoRA layers stay in the compute dtype; under fp8
*storage* the fused mode keeps its one adapter unfused, since a plain cast to fp8 would round a fused
delta away, while under fp8 *compute* it is fused in bf16 and the sum quantised per row.
"""

from __future__ import annotations

import torch
from PIL import Image

from umo_pipeline.customizers import speed
from umo_pipeline.customizers.base import Customizer, StepCallback
from umo_pipeline.customizers.request import GenerationRequest, inpainting_inputs
from umo_pipeline.customizers.lora import as_state_dict
from umo_pipeline.customizers.loading import (
    check_device, check_mode, full_size_device, is_fp8_storage, memory_label, torch_dtype,
)
from umo_pipeline.customizers.uno import MAX_REFERENCES
from umo_pipeline.customizers.uno.lora import merge_umo_into_uno, random_uno_lora
from umo_pipeline.customizers.uno.pipeline import (
    MULTI_REFERENCE_LONG_SIDE,
    UNOPipeline,
    check_reference_sizes,
    reference_tokens,
)
from umo_pipeline.customizers.uno.tiny import build_tiny_components
from umo_pipeline.errors import WeightsUnavailable
from umo_pipeline import hub
from umo_pipeline.hub import FLUX_DEV, UMO_UNO_LORA, UNO_LORA

#: variant -> adapter name; "base" is UNO's own LoRA, "umo" is UNO's LoRA updated with UMO's
VARIANT_ADAPTERS = {"umo": "umo", "base": "uno"}
TINY_MAX_SIDE = 512
TINY_LORA_RANK = 4
TINY_LABEL = "tiny random-weight test model: outputs are noise"

# Cost model for estimate_seconds: FLUX.1-dev does ~2 x 11.9e9 FLOPs per token per forward pass in
# its linear layers plus 4 x tokens^2 x 3072 x 57 blocks in attention. Calibrated with the GPU bench
# (bench/gpu_speed.py, formerly bench/gpu.py) on an H200 (random bf16 weights, 768x768, 2 references,
# 25 steps): plain / fused 3.4 s per image (~7e14 FLOP/s effective), unfused adapters 3.9 s, fp8 storage
# 4.2 s, model CPU offload 17.5 s.
LINEAR_FLOPS_PER_TOKEN = 2 * 11.9e9
ATTENTION_FLOPS_PER_TOKEN_PAIR = 4 * 3072 * 57
EFFECTIVE_FLOPS = 6.5e14  # measured 7.0e14 on a whole H200; a little slack for ZeroGPU slices
ADAPTERS_SLOWDOWN = 1.15  # an unfused rank-512 adapter (whole pipeline on an H200: 3.9-4.0 s vs 3.4 s)
FP8_SLOWDOWN = 1.55  # per-layer upcast of fp8 weights (with the unfused adapter: 6.1 s vs 3.4 s)
FIXED_SECONDS = 2.0  # text encoders, reference encoding, VAE decode (not in the benchmark: estimated)
OFFLOAD_SECONDS = 14.0  # host -> GPU copy of the transformer per image (measured, unpinned memory)
TEXT_TOKENS = 512

PROMPT_TIPS = """
- **Say how many people** and give each one a place and an action: *"two scientists shaking hands
  in a lab, the one on the left wears glasses"*.
- **Describe the scene, not the faces**: the references carry the identities; describe clothes,
  setting, lighting and style.
- **Keep the reference order in mind**: Reference 1 is usually the leftmost or first-named person.
- One clear, front-facing face per reference works best. Two people is the sweet spot; more than
  two identities is harder for the base model (this is what UMO improves).
"""


def reference_side(request: GenerationRequest) -> int | None:
    """The long side the references go in at: UNO's rule (None), except when repainting a face.

    A face repair is conditioned on one reference at the side each reference has in a multi-reference
    generation (320 px, 400 tokens), not UNO's single-reference 512 px (1,024 tokens, as many as the
    512x512 crop it repaints): the face is a part of the picture, and so one face at 512x512 and
    strength 0.6 costs about a third of a 768x768 generation with two references instead of 0.41
    (bench/repair.py)."""
    return MULTI_REFERENCE_LONG_SIDE if request.inpaint is not None else None


def flux_step_flops(tokens: int) -> float:
    """FLOPs of one FLUX.1-dev step over `tokens` tokens: linear layers and attention."""
    return LINEAR_FLOPS_PER_TOKEN * tokens + ATTENTION_FLOPS_PER_TOKEN_PAIR * tokens**2


def flux_tokens(request: GenerationRequest, n_references: int) -> int:
    """Tokens FLUX's transformer sees at each step of `request`: target, references and text."""
    return ((request.width // 16) * (request.height // 16) + TEXT_TOKENS
            + reference_tokens(n_references, reference_side(request)))


class UNOCustomizer(Customizer):
    """UNOPipeline behind the Customizer interface; see the module docstring for modes."""

    max_references = MAX_REFERENCES
    prompt_tips = PROMPT_TIPS
    # Candidates run as one batch: at 768x768 with 4 references a FLUX activation is ~3,900 tokens x
    # 3,072 channels, so four images add well under 1 GB to the 24 GB of bf16 weights (and
    # generate_batch retries one seed at a time if a batch still runs out of memory).
    max_batch = 4
    # UNO's references are whole subject images, resized to a long side of 320 px (512 for one). A
    # face-only crop would drop the hair and head shape the model copies along with the face; half
    # the face box on each side keeps the whole head and a little neck, and the face then spans
    # half of the reference's tokens instead of a few of them in a half-body photo.
    face_crop_margin = 0.5

    def __init__(self, pipe, *, name: str, label: str, mode: str, device: str,
                 is_test_model: bool = False, sampling_cap: int | None = None, offload: bool = False,
                 fp8: bool = False):
        self.pipe = pipe
        self.name = name
        self.label = label
        self.mode = check_mode(mode)
        self.device = str(device)
        self.is_test_model = is_test_model
        self.sampling_cap = sampling_cap
        self.offload = offload
        self.fp8 = fp8
        self.defaults = GenerationRequest(prompt="", width=768, height=768, steps=25, guidance=4.0)

    def check_inputs(self, request: GenerationRequest, references) -> None:
        check_reference_sizes(references, reference_side(request))

    def _sampling_size(self, request: GenerationRequest) -> tuple[int, int]:
        """(width, height) to sample at: the request's, or the tiny build's cap with the aspect kept."""
        width, height = request.width, request.height
        if self.sampling_cap is None or max(width, height) <= self.sampling_cap:
            return width, height
        scale = self.sampling_cap / max(width, height)
        return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)

    def sample_batch(self, request: GenerationRequest, references, seeds, *, variant: str,
                     step_callback: StepCallback | None) -> list[Image.Image]:
        width, height = self._sampling_size(request)
        if self.mode == "compare":
            self.pipe.set_adapters(VARIANT_ADAPTERS[variant])
        # Seeded on the device the pipeline runs on, as UNO's get_noise does, so a seed gives UNO's own
        # noise (CPU and CUDA random streams differ); every variant starts from this same noise. Several
        # seeds: one generator each, so image k is the image seed k gives alone.
        generators = [self.generator(seed) for seed in seeds]
        images = self.pipe(
            prompt=request.prompt, ref_images=references, height=height, width=width,
            num_inference_steps=request.steps, guidance_scale=request.guidance,
            num_images_per_prompt=len(seeds), generator=generators[0] if len(seeds) == 1 else generators,
            callback_on_step_end=step_callback, **inpainting_inputs(request, width, height),
            ref_long_side=reference_side(request),
        ).images
        wanted = (request.width, request.height)
        return [image if image.size == wanted else image.resize(wanted, Image.Resampling.NEAREST) for image in images]

    def estimate_seconds(self, request: GenerationRequest, n_references: int, n_variants: int = 1) -> float:
        if self.is_test_model:
            return 1.0 + 0.05 * request.denoising_steps * n_variants
        tokens = flux_tokens(request, n_references)
        per_step = flux_step_flops(tokens) / EFFECTIVE_FLOPS
        storage = is_fp8_storage(self.fp8)
        unfused = self.mode == "compare" or storage  # under fp8 storage even the fused mode keeps its adapter
        # fp8 compute is not measured yet: assumed no slower than bf16 (its goal), not faster
        per_step *= (ADAPTERS_SLOWDOWN if unfused else 1.0) * (FP8_SLOWDOWN if storage else 1.0)
        per_image = FIXED_SECONDS + per_step * request.denoising_steps + (OFFLOAD_SECONDS if self.offload else 0.0)
        return per_image * n_variants


# ---------------------------------------------------------------------------------------------
# building


def load_loras(pipe, uno_lora, umo_lora, *, mode: str, fuse: bool) -> None:
    """"compare": UNO's LoRA and UMO's as two switchable adapters; "fused": UMO's alone (UNO's updated
    with UMO's, as UMO's code builds it), baked into the weights when `fuse`."""
    if check_mode(mode) == "compare":
        pipe.load_umo_adapters(uno_lora, umo_lora, names=(VARIANT_ADAPTERS["base"], VARIANT_ADAPTERS["umo"]))
        return
    uno = as_state_dict(uno_lora)
    pipe.load_lora_weights(merge_umo_into_uno(uno, as_state_dict(umo_lora), pipe.transformer),
                           adapter_name=VARIANT_ADAPTERS["umo"])
    if fuse:
        pipe.fuse_single_adapter(VARIANT_ADAPTERS["umo"])


def attach_loras(pipe, uno_lora, umo_lora, *, mode: str, fp8: bool | str | None, dtype) -> None:
    """LoRAs per mode, then fp8 storage, for callers that apply the other speed-ups step by step.

    fp8: False/None; "compute" (the LoRA is fused in `dtype` as without fp8: the caller quantises
    once the model is on its GPU); "storage" or True (fp8 weights; the fused mode stays unfused,
    since a fused delta cast to fp8 without a scale would mostly vanish)."""
    storage = is_fp8_storage(fp8)
    load_loras(pipe, uno_lora, umo_lora, mode=mode, fuse=not storage)
    if storage:
        speed.store_fp8(pipe.transformer, dtype)


def assemble(pipe, uno_lora, umo_lora, *, name: str, label: str, mode: str, device: str, dtype, offload: bool,
             fp8: bool = False, compile: bool = False, fast_cache: bool = False, is_test_model: bool = False,
             sampling_cap: int | None = None) -> UNOCustomizer:
    """Pipeline + LoRAs per mode + speed-ups + placement (`speed.speed_up`), as a customizer."""
    plan = speed.speed_up(pipe, lambda fuse: load_loras(pipe, uno_lora, umo_lora, mode=mode, fuse=fuse), mode=mode,
                          fp8=fp8, offload=offload, compile=compile, fast_cache=fast_cache, device=device,
                          dtype=dtype)
    how = memory_label(dtype, device, fp8=plan.fp8, offload=offload, mode=mode, base_name="UNO",
                       extra=plan.labels())
    return UNOCustomizer(pipe, name=name, label=f"{label}, {how}", mode=mode, device=device,
                         is_test_model=is_test_model, sampling_cap=sampling_cap, offload=offload,
                         fp8=plan.fp8 or False)


def load_umo_uno(*, device: str | None = None, dtype="bfloat16", mode: str = "compare", offload: bool = False,
                 fp8: bool = False, compile: bool = False, fast_cache: bool = False, flux_path=None,
                 uno_lora_path=None, lora_path=None, token=None, cache_dir=None) -> UNOCustomizer:
    """UMO-UNO on FLUX.1-dev. Weights: arguments, then UMO_FLUX_PATH / UMO_UNO_LORA / UMO_UMO_LORA,
    then the Hugging Face cache, then the hub; anything missing fails before any loading starts."""
    device = full_size_device(device, "UMO-UNO")
    dtype = torch_dtype(dtype)
    check_mode(mode)
    check_device(device, offload)
    # looked up on the module when called: tests patch hub.resolve_weights
    paths = hub.resolve_weights(
        {"flux": (FLUX_DEV, flux_path), "uno": (UNO_LORA, uno_lora_path), "umo": (UMO_UNO_LORA, lora_path)},
        token=token, cache_dir=cache_dir,
    )
    try:
        pipe = UNOPipeline.from_pretrained(paths["flux"], dtype=dtype, use_safetensors=True,
                                           local_files_only=True)
        # UNO encodes references and decodes images with the VAE in float32
        pipe.vae.to(torch.float32)
    except (OSError, ValueError) as error:  # an interrupted download or a folder of another model
        raise WeightsUnavailable(
            f"The FLUX.1-dev folder {paths['flux']} could not be loaded ({error}). It must hold the "
            "diffusers-format model (model_index.json, transformer/, vae/, text_encoder/, text_encoder_2/, "
            "tokenizer/, tokenizer_2/, scheduler/) in .safetensors; download it again or pass another folder."
        ) from error
    return assemble(pipe, paths["uno"], paths["umo"], name="umo-uno", label="UMO-UNO (FLUX.1-dev + UNO + UMO LoRA)",
                    mode=mode, device=device, dtype=dtype, offload=offload, fp8=fp8, compile=compile,
                    fast_cache=fast_cache)


def load_tiny(*, device: str = "cpu", dtype="float32", mode: str = "compare", fp8: bool = False,
              offload: bool = False, compile: bool = False, fast_cache: bool = False,
              seed: int = 0) -> UNOCustomizer:
    """The same pipeline on tiny random weights built in code, with two random LoRAs in UNO's format.

    No files, no network. Outputs are noise; sides are sampled at most TINY_MAX_SIDE pixels and the
    image is scaled up to the requested size, to keep the app responsive on a CPU.
    """
    dtype = torch_dtype(dtype)
    check_mode(mode)
    check_device(device, offload)
    pipe = UNOPipeline(**build_tiny_components(seed=seed))
    uno = random_uno_lora(pipe.transformer, rank=TINY_LORA_RANK, seed=seed + 1, std=0.3)
    umo = random_uno_lora(pipe.transformer, rank=TINY_LORA_RANK, seed=seed + 2, std=0.3)
    if dtype != pipe.transformer.dtype:
        pipe.to(dtype=dtype)
    return assemble(pipe, uno, umo, name="tiny", label=f"{TINY_LABEL} (sampled at most {TINY_MAX_SIDE} px)",
                    mode=mode, device=device, dtype=dtype, offload=offload, fp8=fp8, compile=compile,
                    fast_cache=fast_cache, is_test_model=True, sampling_cap=TINY_MAX_SIDE)
