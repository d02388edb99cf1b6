"""UMO-UNO as a Customizer: UNOPipeline with the UNO and UMO LoRAs, memory modes, tiny build.

Modes: "compare" keeps both LoRAs as peft adapters ("uno", "umo") on one transformer, so base UNO
and UMO-UNO are sampled from the same noise by switching adapters; "fused" bakes the UMO LoRA into
the weights and drops the LoRA layers (fastest, no comparison).

Memory and speed options (decided by `speed.plan_speed`, applied in the order its docstring gives):
--fp8 is fp8 compute (torchao, per-row scales) on GPUs with fp8 tensor cores and fp8 weight storage
(diffusers layerwise casting, bf16 matmuls) elsewhere; model CPU offload (needs CUDA); fused QKV in
the fused mode; FlashAttention-3 where available; --compile (regional torch.compile); --fast-cache.
LoRAs are loaded first, then fp8 is applied, so the LoRA layers stay in the compute dtype; under fp8
*storage* the fused mode keeps its one adapter unfused, since a plain cast to fp8 would round a fused
delta away, while under fp8 *compute* it is fused in bf16 and the sum quantised per row.
"""

from __future__ import annotations

from PIL import Image

from umo_pipeline.customizers.base import (
    Customizer, GenerationRequest, StepCallback, check_device, check_mode, full_size_device, memory_label, place,
    torch_dtype,
)
from umo_pipeline.errors import WeightsUnavailable

#: variant -> adapter name; "base" is UNO's own LoRA, "umo" is UNO's LoRA updated with UMO's
VARIANT_ADAPTERS = {"umo": "umo", "base": "uno"}
TINY_MAX_SIDE = 512
TINY_LORA_RANK = 4
TINY_LABEL = "tiny random-weight test model: outputs are noise"

# Cost model for estimate_seconds: FLUX.1-dev does ~2 x 11.9e9 FLOPs per token per forward pass in
# its linear layers plus 4 x tokens^2 x 3072 x 57 blocks in attention. Calibrated with bench/gpu.py on
# an H200 (random bf16 weights, 768x768, 2 references, 25 steps): plain / fused 3.4 s per image
# (~7e14 FLOP/s effective), unfused adapters 3.9 s, fp8 storage 4.2 s, model CPU offload 17.5 s.
LINEAR_FLOPS_PER_TOKEN = 2 * 11.9e9
ATTENTION_FLOPS_PER_TOKEN_PAIR = 4 * 3072 * 57
EFFECTIVE_FLOPS = 6.5e14  # measured 7.0e14 on a whole H200; a little slack for ZeroGPU slices
ADAPTERS_SLOWDOWN = 1.15  # an unfused rank-512 adapter (whole pipeline on an H200: 3.9-4.0 s vs 3.4 s)
FP8_SLOWDOWN = 1.55  # per-layer upcast of fp8 weights (with the unfused adapter: 6.1 s vs 3.4 s)
FIXED_SECONDS = 2.0  # text encoders, reference encoding, VAE decode (not in the benchmark: estimated)
OFFLOAD_SECONDS = 14.0  # host -> GPU copy of the transformer per image (measured, unpinned memory)
TEXT_TOKENS = 512


def reference_tokens(n_references: int) -> int:
    """Tokens the references add at most (long side 512 for one reference, 320 each for several)."""
    if n_references == 0:
        return 0
    side = 512 if n_references == 1 else 320
    return n_references * (side // 16) ** 2


class UNOCustomizer(Customizer):
    """UNOPipeline behind the Customizer interface; see the module docstring for modes."""

    max_references = 4
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
        from umo_pipeline.customizers.uno import check_reference_sizes

        check_reference_sizes(references)

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
            callback_on_step_end=step_callback,
        ).images
        wanted = (request.width, request.height)
        return [image if image.size == wanted else image.resize(wanted, Image.Resampling.NEAREST) for image in images]

    def estimate_seconds(self, request: GenerationRequest, n_references: int, n_variants: int = 1) -> float:
        if self.is_test_model:
            return 1.0 + 0.05 * request.steps * n_variants
        tokens = (request.width // 16) * (request.height // 16) + reference_tokens(n_references) + TEXT_TOKENS
        per_step = (LINEAR_FLOPS_PER_TOKEN * tokens + ATTENTION_FLOPS_PER_TOKEN_PAIR * tokens**2) / EFFECTIVE_FLOPS
        storage = self.fp8 is True or self.fp8 == "storage"
        unfused = self.mode == "compare" or storage  # under fp8 storage even the fused mode keeps its adapter
        # fp8 compute is not measured yet: assumed no slower than bf16 (its goal), not faster
        per_step *= (ADAPTERS_SLOWDOWN if unfused else 1.0) * (FP8_SLOWDOWN if storage else 1.0)
        per_image = FIXED_SECONDS + per_step * request.steps + (OFFLOAD_SECONDS if self.offload else 0.0)
        return per_image * n_variants


# ---------------------------------------------------------------------------------------------
# building


def attach_loras(pipe, uno_lora, umo_lora, *, mode: str, fp8: bool | str | None, dtype) -> None:
    """LoRAs per mode, then fp8 storage (see the module docstring for why in this order).

    fp8: False/None; "compute" (the LoRA is fused in `dtype` as without fp8: the loader quantises
    once the model is on its GPU); "storage" or True (fp8 weights; the fused mode stays unfused)."""
    storage = fp8 is True or fp8 == "storage"
    from umo_pipeline.lora import as_state_dict, merge_umo_into_uno

    if check_mode(mode) == "compare":
        pipe.load_umo_adapters(uno_lora, umo_lora, names=(VARIANT_ADAPTERS["base"], VARIANT_ADAPTERS["umo"]))
    else:
        uno = as_state_dict(uno_lora)
        pipe.load_lora_weights(merge_umo_into_uno(uno, as_state_dict(umo_lora), pipe.transformer),
                               adapter_name=VARIANT_ADAPTERS["umo"])
        if not storage:
            # Under fp8 storage a fused LoRA delta would be cast to fp8 with the weight it is added to,
            # without a scale, and a small delta mostly vanishes; unfused, it stays in the compute dtype.
            pipe.fuse_single_adapter(VARIANT_ADAPTERS["umo"])
    if storage:
        import torch

        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)


def _memory_label(dtype, device: str, plan, offload: bool, mode: str) -> str:
    return memory_label(dtype, device, fp8=plan.fp8, offload=offload, mode=mode, base_name="UNO",
                        extra=plan.labels())


def _speed_up(pipe, uno_lora, umo_lora, *, mode: str, fp8: bool, offload: bool, compile: bool,
              fast_cache: bool, device: str, dtype):
    """LoRAs, speed-ups and placement, in speed.py's order; returns the plan as applied."""
    from umo_pipeline.customizers import speed

    plan = speed.plan_speed(mode=mode, fp8=fp8, offload=offload, compile=compile, fast_cache=fast_cache,
                            dtype=dtype, capability=speed.cuda_capability(device))
    attach_loras(pipe, uno_lora, umo_lora, mode=mode, fp8=plan.fp8, dtype=dtype)
    if plan.fuse_qkv:
        speed.fuse_qkv(pipe.transformer)
    place(pipe, device, offload)
    return speed.finish(pipe.transformer, plan)


def load_umo_uno(*, device: str | None = None, dtype="bfloat16", mode: str = "compare", offload: bool = False,
                 fp8: bool = False, compile: bool = False, fast_cache: bool = False, flux_path=None,
                 uno_lora_path=None, lora_path=None, token=None, cache_dir=None) -> UNOCustomizer:
    """UMO-UNO on FLUX.1-dev. Weights: arguments, then UMO_FLUX_PATH / UMO_UNO_LORA / UMO_UMO_LORA,
    then the Hugging Face cache, then the hub; anything missing fails before any loading starts."""
    import torch

    from umo_pipeline.hub import FLUX_DEV, UMO_UNO_LORA, UNO_LORA, resolve_weights

    device = full_size_device(device, "UMO-UNO")
    dtype = torch_dtype(dtype)
    check_mode(mode)
    check_device(device, offload)
    paths = resolve_weights(
        {"flux": (FLUX_DEV, flux_path), "uno": (UNO_LORA, uno_lora_path), "umo": (UMO_UNO_LORA, lora_path)},
        token=token, cache_dir=cache_dir,
    )
    from umo_pipeline.customizers.uno import UNOPipeline

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
    plan = _speed_up(pipe, paths["uno"], paths["umo"], mode=mode, fp8=fp8, offload=offload, compile=compile,
                     fast_cache=fast_cache, device=device, dtype=dtype)
    label = "UMO-UNO (FLUX.1-dev + UNO + UMO LoRA), " + _memory_label(dtype, device, plan, offload, mode)
    return UNOCustomizer(pipe, name="umo-uno", label=label, mode=mode, device=device, offload=offload,
                         fp8=plan.fp8 or False)


def load_tiny(*, device: str = "cpu", dtype="float32", mode: str = "compare", fp8: bool = False,
              offload: bool = False, compile: bool = False, fast_cache: bool = False,
              seed: int = 0) -> UNOCustomizer:
    """The same pipeline on tiny random weights built in code, with two random LoRAs in UNO's format.

    No files, no network. Outputs are noise; sides are sampled at most TINY_MAX_SIDE pixels and the
    image is scaled up to the requested size, to keep the app responsive on a CPU.
    """
    from umo_pipeline.customizers.tiny import build_tiny_components
    from umo_pipeline.customizers.uno import UNOPipeline
    from umo_pipeline.lora import random_uno_lora

    dtype = torch_dtype(dtype)
    check_mode(mode)
    check_device(device, offload)
    pipe = UNOPipeline(**build_tiny_components(seed=seed))
    uno = random_uno_lora(pipe.transformer, rank=TINY_LORA_RANK, seed=seed + 1, std=0.3)
    umo = random_uno_lora(pipe.transformer, rank=TINY_LORA_RANK, seed=seed + 2, std=0.3)
    if dtype != pipe.transformer.dtype:
        pipe.to(dtype=dtype)
    plan = _speed_up(pipe, uno, umo, mode=mode, fp8=fp8, offload=offload, compile=compile, fast_cache=fast_cache,
                     device=device, dtype=dtype)
    label = f"{TINY_LABEL} (sampled at most {TINY_MAX_SIDE} px), " + _memory_label(dtype, device, plan, offload, mode)
    return UNOCustomizer(pipe, name="tiny", label=label, mode=mode, device=device, is_test_model=True,
                         sampling_cap=TINY_MAX_SIDE, offload=offload, fp8=plan.fp8 or False)
