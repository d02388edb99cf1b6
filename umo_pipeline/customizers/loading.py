"""Helpers every model's loader shares: the options checked before anything is loaded (mode, dtype,
device), placing the pipeline, and the badge that says how the loaded model runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from umo_pipeline.customizers.base import MODES
from umo_pipeline.errors import GenerationError, InputError


def is_fp8_storage(fp8: bool | str | None) -> bool:
    """Whether an fp8 setting means fp8 *storage* (fp8 weights, bf16 matmuls): "storage", or True as
    callers that predate fp8 compute pass it; False/None mean no fp8, "compute" fp8 matmuls."""
    return fp8 is True or fp8 == "storage"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    return mode


def torch_dtype(dtype):
    import torch

    names = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "half": "float16", "float": "float32"}
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, names.get(str(dtype), str(dtype)), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise InputError(f"Unknown dtype {dtype!r}; use bfloat16, float16 or float32.")
    return resolved


def full_size_device(device: str | None, model: str) -> str:
    """The device for a full-size model: the one named, else cuda; never a silent fall back to the CPU,
    which would start a download of tens of GB for a model that would take hours per image there."""
    import torch

    if device is not None:
        return device
    if not torch.cuda.is_available():
        raise GenerationError(f"No CUDA GPU found: {model} needs one (its transformer has billions of parameters; "
                              "on a CPU one image would take hours). Pass device='cpu' (--device cpu) to insist, "
                              "or try the tiny test model (--model tiny).")
    return "cuda"


def check_device(device: str, offload: bool) -> None:
    import torch

    wants_cuda = offload or str(device).startswith("cuda")
    if wants_cuda and not torch.cuda.is_available():
        what = "CPU offload" if offload else f"device {device!r}"
        raise GenerationError(f"{what} needs a CUDA GPU, and none is available here. "
                              "Run on a GPU machine, or use the tiny test model on CPU.")


def place(pipe, device: str, offload: bool) -> None:
    """Put the pipeline on `device`, or behind diffusers' model CPU offload; no progress bars."""
    if offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)


def memory_label(dtype, device: str, *, fp8: bool | str | None, offload: bool, mode: str, base_name: str,
                 extra: Sequence[str] = ()) -> str:
    """How a loaded model runs, for the page's badge: "bfloat16, cuda, fp8 weights, UMO LoRA unfused (fp8)".

    fp8: False/None, "compute" (fp8 matmuls) or "storage" (True: fp8 weights, bf16 matmuls)."""
    storage = is_fp8_storage(fp8)
    parts = [str(dtype).removeprefix("torch."), device]
    parts += ["fp8 weights (storage only, bf16 compute)"] if storage else []
    parts += ["fp8 compute (torchao, per-row dynamic)"] if fp8 == "compute" else []
    parts += ["CPU offload"] if offload else []
    parts += list(extra)
    if mode == "compare":
        parts.append(f"{base_name} vs UMO comparison")
    else:
        parts.append("UMO LoRA unfused (fp8)" if storage else "UMO LoRA fused")
    return ", ".join(parts)
