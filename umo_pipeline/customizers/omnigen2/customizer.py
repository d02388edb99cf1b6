"""UMO-OmniGen2 behind the Customizer interface: loading (hub, offload, tiny build) and generation.

Modes as for UMO-UNO: "compare" keeps the UMO LoRA as a peft adapter named "umo", so the base
OmniGen2 ("base": LoRA layers disabled) and UMO-OmniGen2 ("umo") come from the same noise for a
seed; "fused" bakes the LoRA into the weights like UMO's own demo (faster, no comparison).

Speed options as for UMO-UNO (`speed.plan_speed`) where they apply: fp8 compute or storage and
--compile (regional, on the Lumina2 blocks). Not here: fused QKV and the attention backends (the
Lumina2 attention processor calls SDPA itself on separate Q, K, V with grouped KV heads) and the
First Block Cache preset (each step runs up to three guidance passes of different lengths).
"""

from __future__ import annotations

from PIL import Image

from umo_pipeline import params
from umo_pipeline.customizers import speed
from umo_pipeline.customizers.base import Customizer, StepCallback
from umo_pipeline.customizers.request import GenerationRequest, inpainting_inputs
from umo_pipeline.customizers.lora import fuse_adapter
from umo_pipeline.customizers.loading import check_device, check_mode, full_size_device, memory_label, torch_dtype
from umo_pipeline.customizers.omnigen2 import MAX_REFERENCES
from umo_pipeline.errors import InputError
from umo_pipeline.labels import method_name

SOLVERS = ("euler", "dpmsolver++")
#: image guidance 2.0 and cfg range (0, 1), as in the OmniGen2 and UMO demos
EXTRA_DEFAULTS = {rule.name: rule.default for rule in (params.IMAGE_GUIDANCE, params.CFG_RANGE_START,
                                                       params.CFG_RANGE_END)}
TINY_LABEL = "tiny random-weight OmniGen2 test model: outputs are noise"
TINY_LORA_RANK = 4
TINY_MAX_PIXELS = 128 * 128

PROMPT_TIPS = (
    "OmniGen2 reads the references in order: refer to them as \"the person in the first image\", "
    "\"the woman in the second image\", and say what each one does, e.g. \"The man in the first image "
    "and the woman in the second image shake hands in a park, photo\". Up to 5 references; one "
    "identity per reference works best. Image guidance (default 2.0) pulls towards the references, "
    "text guidance (default 5.0) towards the prompt; the cfg range limits guidance to a fraction of "
    "the steps."
)

# Cost model for estimate_seconds. Each step runs up to three passes (prompt + references,
# negative prompt + references, negative prompt alone), each costing ~2 x 3.97e9 FLOPs per token
# in linear layers plus 4 x tokens^2 x 2520 x 32 in attention. At 1.6e14 FLOP/s this reproduces the
# authors' A800 figures (1024^2, 50 steps: 1 reference 67 s, 2 references 99 s); bench/gpu_speed.py
# measured 0.58 s/step (1 reference) and 0.85 s/step (2) on an H200, i.e. 3.7e14-3.9e14 FLOP/s.
LINEAR_FLOPS_PER_TOKEN = 2 * 3.97e9
ATTENTION_FLOPS_PER_TOKEN_PAIR = 4 * 2520 * 32
EFFECTIVE_FLOPS = 3.8e14  # H200 (ZeroGPU)
PROMPT_TOKENS = 120  # chat markup + a typical prompt
NEGATIVE_TOKENS = 90  # chat markup + the demo's negative prompt
FIXED_SECONDS = 2.0  # prompt encoding, reference encoding, decoding (0.3 s measured on an H200)
OFFLOAD_SECONDS = 4.0  # weights copied to the GPU per image (no measurable cost on an H200; margin)


def step_tokens(width: int, height: int, reference_tokens: int, n_references: int) -> list[int]:
    """Sequence lengths of the forward passes of one step with default guidance."""
    target = (width // 16) * (height // 16)
    if n_references == 0:
        return [PROMPT_TOKENS + target, NEGATIVE_TOKENS + target]
    return [PROMPT_TOKENS + reference_tokens + target, NEGATIVE_TOKENS + reference_tokens + target,
            NEGATIVE_TOKENS + target]


class OmniGen2Customizer(Customizer):
    """OmniGen2Pipeline with the UMO LoRA; see the module docstring for modes."""

    max_references = MAX_REFERENCES
    extra_settings = tuple(EXTRA_DEFAULTS)
    prompt_tips = PROMPT_TIPS
    # the names the paper's tables use (labels.METHOD_NAMES), as the evaluation summaries write them
    variant_titles = {"umo": method_name("umo-omnigen2", "umo"), "base": f"{method_name('umo-omnigen2', 'base')} (no UMO)"}
    # noise from a CPU generator: the same for every variant and every GPU kind
    generator_device = "cpu"
    # A batch shares the prompt encoding (Qwen2.5-VL) and the reference encoding; the transformer still
    # runs its samples one after another (each has its own token layout), so a batch saves those
    # encodings, not denoising time.
    max_batch = 4
    # UMO's authors advise references showing only the face; OmniGen2 reads references at up to
    # 1024x1024, so resolution is no reason for context. A third of the face box on each side keeps the
    # chin, the hairline and the ears, which a face detector's tight box cuts off.
    face_crop_margin = 0.35

    def __init__(self, pipe, *, name: str, label: str, mode: str, device: str, is_test_model: bool = False,
                 offload: bool = False, max_pixels: int = 1024 * 1024):
        self.pipe = pipe
        self.name, self.label, self.mode = name, label, check_mode(mode)
        self.device = str(device)
        self.is_test_model = is_test_model
        self.offload = offload
        self.max_pixels = max_pixels
        self.defaults = GenerationRequest(prompt="", width=1024, height=1024, steps=50, guidance=5.0,
                                          extra=dict(EXTRA_DEFAULTS))

    def settings(self, request: GenerationRequest) -> dict:
        """The pipeline's image guidance and cfg range from request.extra (checked by check_request)."""
        extra = {**EXTRA_DEFAULTS, **request.extra}
        return {"image_guidance_scale": float(extra["image_guidance"]),
                "cfg_range": (float(extra["cfg_range_start"]), float(extra["cfg_range_end"]))}

    def check_inputs(self, request: GenerationRequest, references) -> None:
        settings = self.settings(request)
        self.pipe.check_inputs(request.prompt, references, request.height, request.width, request.steps,
                               settings["cfg_range"], self.max_pixels, 2048)

    def select_variant(self, variant: str) -> None:
        if self.mode != "compare":
            return
        transformer = self.pipe.transformer
        if variant == "base":
            transformer.disable_lora()
        else:
            transformer.enable_lora()
            transformer.set_adapters(["umo"])

    def sample_batch(self, request: GenerationRequest, references, seeds, *, variant: str,
                     step_callback: StepCallback | None) -> list[Image.Image]:
        from umo_pipeline.customizers.omnigen2.pipeline import DEMO_NEGATIVE_PROMPT, fit_size

        self.select_variant(variant)
        generators = [self.generator(seed) for seed in seeds]
        width, height = request.width, request.height
        inpainting = {}
        if request.inpaint is not None:
            # the pipeline repaints at the image's size: the size it would generate at (within max_pixels)
            width, height = fit_size(width, height, self.max_pixels)
            inpainting = inpainting_inputs(request, width, height)
        images = self.pipe(
            prompt=request.prompt, ref_images=references, negative_prompt=DEMO_NEGATIVE_PROMPT,
            width=width, height=height, num_inference_steps=request.steps,
            text_guidance_scale=request.guidance, max_pixels=self.max_pixels, align_res=False,
            num_images_per_prompt=len(seeds), generator=generators[0] if len(seeds) == 1 else generators,
            callback_on_step_end=step_callback, **self.settings(request), **inpainting,
        ).images
        wanted = (request.width, request.height)
        return [image if image.size == wanted else image.resize(wanted, Image.Resampling.BILINEAR)
                for image in images]

    def estimate_seconds(self, request: GenerationRequest, n_references: int, n_variants: int = 1) -> float:
        if self.is_test_model:
            return 1.0 + 0.1 * request.denoising_steps * n_variants
        ref_side = int(self.max_pixels ** 0.5) // 16  # references are shrunk to max_pixels at most
        tokens = step_tokens(request.width, request.height, n_references * ref_side**2, n_references)
        flops = sum(LINEAR_FLOPS_PER_TOKEN * n + ATTENTION_FLOPS_PER_TOKEN_PAIR * n * n for n in tokens)
        per_image = FIXED_SECONDS + request.denoising_steps * flops / EFFECTIVE_FLOPS
        return (per_image + (OFFLOAD_SECONDS if self.offload else 0.0)) * n_variants


# ---------------------------------------------------------------------------------------------
# loading


def assemble(pipe, lora, *, name: str, label: str, mode: str, device: str, dtype, offload: bool,
             fp8: bool = False, compile: bool = False, solver: str = "euler", is_test_model: bool = False,
             max_pixels: int = 1024 * 1024) -> OmniGen2Customizer:
    """Pipeline + UMO LoRA per mode + speed-ups + placement (`speed.speed_up`), as a customizer."""
    from umo_pipeline.customizers.omnigen2.lora import load_omnigen2_lora
    from umo_pipeline.customizers.omnigen2.scheduler import OmniGen2DPMSolverScheduler

    def attach_lora(fuse: bool) -> None:
        load_omnigen2_lora(pipe.transformer, lora, "umo")
        if fuse:
            fuse_adapter(pipe.transformer, "umo")

    if solver == "dpmsolver++":
        pipe.scheduler = OmniGen2DPMSolverScheduler.from_config(pipe.scheduler.config)
    if pipe.transformer.dtype != dtype:
        pipe.to(dtype=dtype)
    plan = speed.speed_up(pipe, attach_lora, mode=check_mode(mode), fp8=fp8, offload=offload, compile=compile,
                          fast_cache=False, device=device, dtype=dtype, supports_qkv_fusion=False,
                          supports_attention_backends=False)
    how = memory_label(dtype, device, fp8=plan.fp8, offload=offload, mode=mode, base_name="OmniGen2",
                       extra=plan.labels() + (["DPM-Solver++"] if solver == "dpmsolver++" else []))
    return OmniGen2Customizer(pipe, name=name, label=f"{label}, {how}", mode=mode, device=device,
                              is_test_model=is_test_model, offload=offload, max_pixels=max_pixels)


def _check_options(mode: str, device: str, offload: bool, solver: str) -> None:
    """Before anything is loaded: a known mode and solver, and CUDA where the device or offload needs it."""
    check_mode(mode)
    if solver not in SOLVERS:
        raise InputError(f"Unknown solver {solver!r}; use one of {', '.join(SOLVERS)}.")
    check_device(device, offload)


def load_umo_omnigen2(*, device: str | None = None, dtype="bfloat16", mode: str = "compare", offload: bool = False,
                      fp8: bool = False, compile: bool = False, solver: str = "euler", model_path=None,
                      lora_path=None, token=None, cache_dir=None) -> OmniGen2Customizer:
    """UMO-OmniGen2. Weights: arguments, then UMO_OMNIGEN2_PATH / UMO_OMNIGEN2_LORA, then the Hugging
    Face cache, then the hub; anything missing fails before any loading starts."""

    from umo_pipeline.customizers.omnigen2.pipeline import COMPONENTS, OmniGen2Pipeline
    from umo_pipeline.hub import WeightItem, resolve_weights

    omnigen2 = WeightItem("OmniGen2 base model", "OmniGen2/OmniGen2", None, "model_path", "UMO_OMNIGEN2_PATH",
                          patterns=("model_index.json", *(f"{part}/*" for part in COMPONENTS)))
    umo_lora = WeightItem("UMO LoRA for OmniGen2", "bytedance-research/UMO", "UMO_OmniGen2.safetensors",
                          "lora_path", "UMO_OMNIGEN2_LORA")

    device = full_size_device(device, "UMO-OmniGen2")
    dtype = torch_dtype(dtype)
    _check_options(mode, device, offload, solver)
    paths = resolve_weights({"omnigen2": (omnigen2, model_path), "umo": (umo_lora, lora_path)},
                            token=token, cache_dir=cache_dir)
    pipe = OmniGen2Pipeline.from_pretrained(paths["omnigen2"], dtype=dtype)
    return assemble(pipe, paths["umo"], name="umo-omnigen2",
                    label="UMO-OmniGen2 (OmniGen2 + UMO LoRA)", mode=mode, device=device, dtype=dtype,
                    offload=offload, fp8=fp8, compile=compile, solver=solver)


def load_tiny_omnigen2(*, device: str = "cpu", dtype="float32", mode: str = "compare", offload: bool = False,
                       fp8: bool = False, compile: bool = False, solver: str = "euler",
                       seed: int = 0) -> OmniGen2Customizer:
    """Tiny random-weight OmniGen2 with a random LoRA in the released key format; no files, no network."""
    from umo_pipeline.customizers.omnigen2.lora import random_omnigen2_lora
    from umo_pipeline.customizers.omnigen2.tiny import build_tiny_omnigen2

    _check_options(mode, device, offload, solver)
    pipe = build_tiny_omnigen2(seed)
    lora = random_omnigen2_lora(pipe.transformer, rank=TINY_LORA_RANK, seed=seed + 1, std=0.3)
    return assemble(pipe, lora, name="tiny-omnigen2", label=f"{TINY_LABEL} (sampled at most "
                    f"{int(TINY_MAX_PIXELS ** 0.5)} px)", mode=mode, device=device, dtype=torch_dtype(dtype),
                    offload=offload, fp8=fp8, compile=compile, solver=solver, is_test_model=True,
                    max_pixels=TINY_MAX_PIXELS)
