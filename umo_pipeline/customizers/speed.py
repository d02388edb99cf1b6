"""Making a loaded transformer fast: which speed-ups a machine gets, and the small steps that apply them.

`plan_speed` decides, from the device, the mode and the flags, what a loader does after the LoRAs
are in place; `speed_up`, the one sequence every model's loader calls, applies the steps in this order
(placement on the device, or behind model CPU offload, comes between 3's storage and 3's compute):

1. LoRA: fused in the compute dtype (bf16) in "fused" mode, unless fp8 *storage* is used (a plain
   cast to float8 would round a small fused delta away); "compare" keeps two switchable adapters.
2. `fuse_qkv`: one Q|K|V matrix per attention (diffusers' fuse_qkv_projections) once the LoRA is
   fused; never with LoRA layers present, whose to_q/to_k/to_v wrappers the fused path would bypass.
3. fp8: "compute" = torchao float8 dynamic activation + weight quantisation (per-row scales, fp8
   matmuls) on GPUs with fp8 tensor cores (compute capability >= 8.9); "storage" = diffusers'
   layerwise casting (float8 weights, bf16 matmuls) elsewhere. Under "compute" the UMO LoRA is
   fused in bf16 *first* and the sum quantised: with a scale per output row, fp8's relative
   rounding applies to the fused weight as it would to the base weight alone, so the delta is
   kept on average, and the error against the bf16 result is no larger than quantising the base
   and adding the LoRA in bf16 (bench/fp8_lora_error.py measures both), at one fp8 matmul per
   layer instead of an fp8 and two bf16 ones. Compare mode keeps its adapters in bf16 beside the
   quantised base layers, since its two adapters must stay switchable.
4. `set_attention`: FlashAttention-3 from the `kernels` package (diffusers' "_flash_3_hub"
   backend) on Hopper GPUs when the package is installed, PyTorch's SDPA elsewhere or when the
   kernel cannot be had.
5. `compile_blocks`: regional compilation (torch.compile of each repeated block) behind --compile.
6. `enable_fast_cache`: the optional "Faster, approximate" First Block Cache (off by default).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from umo_pipeline.customizers.loading import is_fp8_storage, place

log = logging.getLogger("umo.speed")

#: fp8 tensor-core matmuls (torch._scaled_mm) exist from Ada (8.9) and Hopper (9.0) on
FP8_COMPUTE_CAPABILITY = (8, 9)
#: FlashAttention-3 is written for Hopper
FA3_MAJOR = 9
FA3_BACKEND = "_flash_3_hub"
SDPA_BACKEND = "native"
#: First Block Cache: reuse the rest of the network while the first block's residual changes less
#: than this (relative); diffusers' documentation quotes 0.08 at about 1.5x on FLUX.1-dev
FAST_CACHE_THRESHOLD = 0.08


def cuda_capability(device: str) -> tuple[int, int] | None:
    """(major, minor) of the CUDA device named, None for any other device or without CUDA."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(torch.device(device)))


def package_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def fp8_kind(capability: tuple[int, int] | None, *, offload: bool = False,
             torchao_available: bool | None = None) -> str:
    """"compute" (torchao fp8 matmuls) where the GPU has fp8 tensor cores and torchao is installed,
    else "storage" (fp8 weights, bf16 matmuls). Model CPU offload keeps "storage": quantised
    tensor subclasses are not moved on and off the GPU by diffusers' offload hooks."""
    if torchao_available is None:
        torchao_available = package_available("torchao")
    if capability is None or offload or not torchao_available:
        return "storage"
    return "compute" if tuple(capability) >= FP8_COMPUTE_CAPABILITY else "storage"


def attention_backend(capability: tuple[int, int] | None, dtype, *, kernels_available: bool | None = None) -> str:
    """FA3_BACKEND on a Hopper GPU in bf16/fp16 with the `kernels` package, else SDPA_BACKEND."""
    import torch

    if kernels_available is None:
        kernels_available = package_available("kernels")
    half = dtype in (torch.bfloat16, torch.float16)
    if capability is not None and capability[0] == FA3_MAJOR and half and kernels_available:
        return FA3_BACKEND
    return SDPA_BACKEND


@dataclass(frozen=True)
class SpeedPlan:
    """What a loader applies (see the module docstring for the order)."""

    fuse_lora: bool
    fuse_qkv: bool
    fp8: str | None  # None, "compute" or "storage"
    attention: str
    compile: bool
    fast_cache: bool

    def labels(self) -> list[str]:
        """Parts of the page's model badge that say how it runs (fp8 is told by memory_label)."""
        parts = []
        if self.fuse_qkv:
            parts.append("fused QKV")
        if self.attention == FA3_BACKEND:
            parts.append("FlashAttention-3")
        if self.compile:
            parts.append("compiled blocks")
        if self.fast_cache:
            parts.append("Faster, approximate (First Block Cache)")
        return parts


def plan_speed(*, mode: str, fp8: bool, offload: bool, compile: bool, fast_cache: bool, dtype,
               capability: tuple[int, int] | None, supports_qkv_fusion: bool = True,
               supports_attention_backends: bool = True, torchao_available: bool | None = None,
               kernels_available: bool | None = None) -> SpeedPlan:
    """The speed-ups for one load; `capability` is the CUDA device's (None off CUDA)."""
    kind = fp8_kind(capability, offload=offload, torchao_available=torchao_available) if fp8 else None
    fuse_lora = mode == "fused" and kind != "storage"
    attention = (attention_backend(capability, dtype, kernels_available=kernels_available)
                 if supports_attention_backends else SDPA_BACKEND)
    return SpeedPlan(fuse_lora=fuse_lora, fuse_qkv=fuse_lora and supports_qkv_fusion, fp8=kind,
                     attention=attention, compile=compile, fast_cache=fast_cache)


# -- the steps ----------------------------------------------------------------------------------
def has_lora_layers(module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in module.modules())


def fuse_qkv(transformer) -> int:
    """Fuse each attention's Q, K and V (and the text stream's) into one matrix; drop the separate
    ones, which the fused path no longer reads (about 4 GB on FLUX.1-dev). Returns how many
    attentions were fused."""
    from diffusers.models.attention import AttentionModuleMixin

    if has_lora_layers(transformer):
        raise ValueError("fuse_qkv needs the LoRA fused first: the fused projection would bypass the LoRA "
                         "layers on to_q/to_k/to_v")
    transformer.fuse_qkv_projections()
    fused = 0
    for module in transformer.modules():
        if isinstance(module, AttentionModuleMixin) and getattr(module, "fused_projections", False):
            for name in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
                if getattr(module, name, None) is not None:
                    delattr(module, name)
            fused += 1
    return fused


def repeated_block_names(transformer) -> list[str]:
    """Qualified names of the transformer's repeated blocks (its `_repeated_blocks` classes)."""
    kinds = set(getattr(transformer, "_repeated_blocks", None) or ())
    return [name for name, module in transformer.named_modules() if type(module).__name__ in kinds]


def quantize_fp8_compute(transformer) -> int:
    """torchao float8 dynamic activation + weight quantisation (per-row scales) of the linear layers
    inside the repeated blocks (where nearly all the FLOPs are); embedders and the output layer
    stay in bf16, and so do LoRA layers (lora_A / lora_B), small matmuls that keep the adapter's
    precision. Needs a GPU with compute capability >= 8.9 (torchao refuses otherwise). Returns
    how many layers were quantised."""
    import torch
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    prefixes = tuple(name + "." for name in repeated_block_names(transformer))
    if not prefixes:
        raise ValueError(f"{type(transformer).__name__} declares no _repeated_blocks to quantise")
    chosen = []

    def wanted(module, fqn: str) -> bool:
        ok = (isinstance(module, torch.nn.Linear) and fqn.startswith(prefixes) and "lora_" not in fqn
              and module.in_features % 16 == 0 and module.out_features % 16 == 0)
        if ok:
            chosen.append(fqn)
        return ok

    quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()), filter_fn=wanted)
    return len(chosen)


def set_attention(transformer, backend: str) -> str:
    """Select the attention backend; the FA3 kernel is fetched by the `kernels` package on first
    use, so a failure (offline, unsupported) falls back to SDPA instead of failing the load.
    Returns the backend in use."""
    if backend == SDPA_BACKEND:
        return backend
    try:
        transformer.set_attention_backend(backend)
        return backend
    except Exception as error:  # noqa: BLE001 - a faster kernel is optional; SDPA always works
        log.warning("Attention backend %s unavailable (%s: %s); using PyTorch SDPA.", backend,
                    type(error).__name__, error)
        transformer.reset_attention_backend()
        return SDPA_BACKEND


def compile_blocks(transformer, *, backend: str = "inductor", fullgraph: bool = True) -> None:
    """Regional compilation: torch.compile each repeated block (the transformer's `_repeated_blocks`)
    rather than the whole model: the same speed, a fraction of the compile time, since every block
    of a kind shares one compiled graph."""
    transformer.compile_repeated_blocks(fullgraph=fullgraph, backend=backend)


def enable_fast_cache(transformer, threshold: float = FAST_CACHE_THRESHOLD) -> None:
    """diffusers' First Block Cache: when the first block's output barely changes between steps, the
    remaining blocks are skipped and their last residual reused (approximate; off by default)."""
    from diffusers.hooks import FirstBlockCacheConfig

    transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))


def store_fp8(transformer, dtype) -> None:
    """fp8 storage: float8 weights, upcast to `dtype` layer by layer for bf16 matmuls (diffusers'
    layerwise casting). After the LoRAs, so peft's LoRA layers are skipped and stay in `dtype`."""
    import torch

    transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)


def prepare(transformer, plan: SpeedPlan, dtype) -> None:
    """The steps before the model is placed on its device (after the LoRAs): fused QKV, fp8 storage."""
    if plan.fuse_qkv:
        fuse_qkv(transformer)
    if is_fp8_storage(plan.fp8):
        store_fp8(transformer, dtype)


def finish(transformer, plan: SpeedPlan) -> SpeedPlan:
    """The steps once the model is on its device: fp8 compute (torchao quantises GPU tensors),
    attention backend, cache preset, compilation. Returns the plan as applied (the attention
    backend may have fallen back to SDPA)."""
    if plan.fp8 == "compute":
        quantize_fp8_compute(transformer)
    attention = set_attention(transformer, plan.attention)
    if plan.fast_cache:
        enable_fast_cache(transformer)
    if plan.compile:
        # the cache hooks branch on tensor values, which a full graph cannot hold
        compile_blocks(transformer, fullgraph=not plan.fast_cache)
    return replace(plan, attention=attention)


def speed_up(pipe, attach_lora: Callable[[bool], object], *, mode: str, fp8: bool, offload: bool, compile: bool,
             fast_cache: bool, device: str, dtype, supports_qkv_fusion: bool = True,
             supports_attention_backends: bool = True) -> SpeedPlan:
    """The sequence every model's loader runs once its pipeline is built (in `dtype`, on the CPU): plan
    the speed-ups for `device`, put the LoRA on (`attach_lora(fuse)`, fused into the weights when
    `fuse`), fused QKV and fp8 storage, placement (the device, or model CPU offload), then the steps
    on the device. Returns the plan as applied."""
    plan = plan_speed(mode=mode, fp8=fp8, offload=offload, compile=compile, fast_cache=fast_cache, dtype=dtype,
                      capability=cuda_capability(device), supports_qkv_fusion=supports_qkv_fusion,
                      supports_attention_backends=supports_attention_backends)
    attach_lora(plan.fuse_lora)
    prepare(pipe.transformer, plan, dtype)
    place(pipe, device, offload)
    return finish(pipe.transformer, plan)
