"""Ahead-of-time compiled transformer blocks (ZeroGPU "AoTI"), with an eager fallback on every call.

On ZeroGPU each request runs in a fresh GPU worker, so torch.compile's just-in-time work would be
redone for every visitor. Instead the repeated blocks are compiled once when the Space starts
(`spaces.aoti_capture` -> `torch.export` -> `spaces.aoti_compile_and_save`) and loaded onto every
block of their kind (`spaces.aoti_load_from_package_dir`), where each block runs the shared program
with its own weights: nothing is copied, and the eager forward keeps working.

Shapes: the image-token count (target + references) is exported as a dynamic dimension bounded by
what the page's size presets and 0-4 references produce, so one program per block kind covers every
preset, reference count and reference aspect ratio; custom sizes outside the bounds run eagerly.
Compare mode compiles one program per adapter (the active adapter is fixed in an exported graph) and
runs eagerly for an adapter it has no program for. Any failure, at start or in a call, leaves that
block kind eager, with a log line: a request never fails because of compilation.

Off ZeroGPU (tests, a CPU), `TorchAOTI` does the same with PyTorch's own AOTInductor calls, which the
`spaces` ones wrap; `spaces.zero.torch` cannot even be imported with a CPU-only PyTorch.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from unittest.mock import patch

from umo_pipeline import params
from umo_pipeline.customizers.loading import is_fp8_storage
from umo_pipeline.customizers.speed import has_lora_layers
from umo_pipeline.customizers.uno import MAX_REFERENCES

log = logging.getLogger("umo.aoti")

#: the example the programs are captured with (the page's default)
EXAMPLE_SIZE, EXAMPLE_REFERENCES = (768, 768), 2
#: ZeroGPU duration for the start-up compilation: 2 block kinds x up to 2 adapters, each a capture,
#: an export and an AOTInductor build (the zerogpu-aoti blog: about 30 s per FLUX block kind)
COMPILE_SECONDS = 900


def image_token_bounds(sizes: Sequence[tuple[int, int]] | None = None,
                       max_references: int = MAX_REFERENCES) -> tuple[int, int]:
    """(fewest, most) image tokens (target + references) UNO sees for these sizes (default: every size
    preset of the page) and 0..max references."""
    from umo_pipeline.customizers.uno.pipeline import reference_tokens

    if sizes is None:
        sizes = [size for size in params.SIZE_PRESETS.values() if size is not None]
    targets = [(w // 16) * (h // 16) for w, h in sizes]
    most_references = max(reference_tokens(n) for n in range(max_references + 1))
    return min(targets), max(targets) + most_references


def repeated_block_lists(transformer) -> dict[str, list]:
    """ModuleList name -> its blocks, for every list of the transformer's `_repeated_blocks` kinds."""
    import torch

    kinds = set(getattr(transformer, "_repeated_blocks", None) or ())
    return {name: list(module) for name, module in transformer.named_children()
            if isinstance(module, torch.nn.ModuleList) and module and type(module[0]).__name__ in kinds}


def supported(customizer) -> bool:
    """FLUX-style block lists called with keyword arguments (UMO-UNO, tiny), on the GPU as a whole:
    not OmniGen2 (its blocks take positional arguments and variable text lengths), not under fp8
    storage (per-layer casting hooks) or model CPU offload (weights move between calls)."""
    lists = repeated_block_lists(customizer.pipe.transformer)
    storage = is_fp8_storage(getattr(customizer, "fp8", False))
    return {"transformer_blocks", "single_transformer_blocks"} <= set(lists) and not storage and not getattr(
        customizer, "offload", False)


def adapter_key(transformer, has_lora: bool | None = None) -> str:
    """Which LoRA adapter is active ("" without LoRA layers): a compiled graph holds exactly one.
    `has_lora`: whether the transformer has LoRA layers, when the caller knows (finding out walks
    every module when there are none: milliseconds on FLUX, too slow for every block call)."""
    if not (has_lora_layers(transformer) if has_lora is None else has_lora):
        return ""
    return ",".join(transformer.active_adapters())


# -- capture and export ---------------------------------------------------------------------------
class _Captured(Exception):
    def __init__(self, args, kwargs):
        super().__init__("captured")
        self.call = (args, kwargs)


@contextlib.contextmanager
def capture_call(module):
    """Record the first call of `module.forward` and stop the run there (the semantics of
    `spaces.aoti_capture`). Yields a dict that holds "args" and "kwargs" after the block."""
    call: dict = {}

    def stop(*args, **kwargs):
        raise _Captured(args, kwargs)

    with patch.object(module, "forward", new=stop):
        try:
            yield call
        except _Captured as captured:
            call["args"], call["kwargs"] = captured.call


def dynamic_shapes(kwargs: dict, bounds: tuple[int, int]) -> dict:
    """torch.export dynamic_shapes for a FLUX block call: the image tokens vary within `bounds`; the
    rotary table covers text + image tokens, so its length is derived from the same dimension."""
    import torch
    from torch.export import Dim

    tokens = Dim("image_tokens", min=bounds[0], max=bounds[1])
    text = kwargs["encoder_hidden_states"].shape[1]
    shapes = {}
    for name, value in kwargs.items():
        if name == "hidden_states":
            shapes[name] = {1: tokens}
        elif name == "image_rotary_emb":
            shapes[name] = tuple({0: tokens + text} for _ in value)
        elif isinstance(value, torch.Tensor):
            shapes[name] = {}
        else:
            shapes[name] = None
    return shapes


def export_block(block, kwargs: dict, bounds: tuple[int, int]):
    import torch

    return torch.export.export(block, args=(), kwargs=kwargs, dynamic_shapes=dynamic_shapes(kwargs, bounds))


# -- compilers: PyTorch's own calls, or ZeroGPU's ---------------------------------------------------
class TorchAOTI:
    """AOTInductor through PyTorch directly: one .pt2 package per (block kind, adapter)."""

    def __init__(self, directory):
        self.directory = Path(directory)

    capture = staticmethod(capture_call)

    def package(self, kind: str, key: str) -> Path:
        return self.directory / f"{kind}{'.' + key if key else ''}.pt2"

    def compile(self, exported, kind: str, key: str) -> None:
        import torch

        self.directory.mkdir(parents=True, exist_ok=True)
        torch._inductor.aoti_compile_and_package(exported, package_path=str(self.package(kind, key)))

    def load(self, transformer, kind: str, key: str) -> list[Callable]:
        """One callable per block of `kind`, all running one loaded program with their own weights."""
        import torch

        program = torch._inductor.aoti_load_package(str(self.package(kind, key)))
        shared = _SharedProgram(program)
        return [shared.bind(block) for block in repeated_block_lists(transformer)[kind]]


class _SharedProgram:
    """One AOTInductor program for many blocks: each call points its constants at the calling block's
    own tensors (user-managed, so nothing is copied), as ZeroGPU's aoti_patch does."""

    def __init__(self, program):
        self.program = program
        self.names = set(program.get_constant_fqns())
        self.current = None

    def bind(self, block) -> Callable:
        weights = {name: tensor for name, tensor in block.state_dict(keep_vars=False).items() if name in self.names}

        def run(*args, **kwargs):
            if self.current is not block:
                self.program.load_constants(weights, check_full_update=True, user_managed=True)
                self.current = block
            return self.program(*args, **kwargs)

        return run


class SpacesAOTI(TorchAOTI):
    """The same through the `spaces` package on ZeroGPU (its weight handling for the forked worker)."""

    @staticmethod
    @contextlib.contextmanager
    def capture(module):
        import spaces

        with spaces.aoti_capture(module) as call:
            yield (captured := {})
        captured["args"], captured["kwargs"] = call.args, call.kwargs

    def package_dir(self, key: str) -> Path:
        return self.directory / (key or "plain")

    def compile(self, exported, kind: str, key: str) -> None:
        import spaces

        spaces.aoti_compile_and_save(self.package_dir(key), exported, submodule=kind)

    def load(self, transformer, kind: str, key: str) -> list[Callable]:
        import spaces

        lists = repeated_block_lists(transformer)
        # spaces patches every block list it has a package for; keep what each block had
        before = {id(block): block.__dict__.get("forward") for blocks in lists.values() for block in blocks}
        spaces.aoti_load_from_package_dir(transformer, self.package_dir(key))
        compiled = [block.forward for block in lists[kind]]
        for blocks in lists.values():  # install() decides per call: restore the forwards
            for block in blocks:
                if before[id(block)] is None:
                    block.__dict__.pop("forward", None)
                else:
                    block.forward = before[id(block)]
        return compiled


# -- dispatch -------------------------------------------------------------------------------------
@dataclass
class KindState:
    """Compiled programs of one block kind, by adapter key, and whether they may still be used."""

    kind: str
    bounds: tuple[int, int]
    text_tokens: int
    programs: dict[str, list[Callable]] = field(default_factory=dict)
    failure: str | None = None
    compiled_calls: int = 0
    eager_calls: int = 0

    def accepts(self, kwargs: dict) -> bool:
        hidden, text = kwargs.get("hidden_states"), kwargs.get("encoder_hidden_states")
        return (hidden is not None and text is not None and hidden.shape[0] == 1
                and self.bounds[0] <= hidden.shape[1] <= self.bounds[1] and text.shape[1] == self.text_tokens)


def _dispatcher(state: KindState, index: int, eager: Callable, transformer, has_lora: bool) -> Callable:
    def forward(*args, **kwargs):
        programs = state.programs.get(adapter_key(transformer, has_lora)) if state.failure is None else None
        if programs is not None and not args and state.accepts(kwargs):
            try:
                result = programs[index](**kwargs)
                state.compiled_calls += 1
                return tuple(result) if isinstance(result, list) else result
            except Exception as error:  # noqa: BLE001 - compiled code is an optimisation; eager is the truth
                state.failure = f"{type(error).__name__}: {error}"
                log.warning("Compiled %s blocks failed (%s); running them eagerly from now on.", state.kind,
                            state.failure)
        state.eager_calls += 1
        return eager(*args, **kwargs)

    return forward


def run_example(pipe, size: tuple[int, int] = EXAMPLE_SIZE, n_references: int = EXAMPLE_REFERENCES) -> None:
    """One denoising step at the page's default shape (the run a capture stops at its first block)."""
    from PIL import Image

    references = [Image.new("RGB", (512, 512), (128 + 40 * i, 110, 90)) for i in range(n_references)]
    pipe(prompt="two people", ref_images=references, width=size[0], height=size[1], num_inference_steps=1,
         output_type="latent")


def compile_packages(customizer, compiler, *, bounds: tuple[int, int] | None = None,
                     kinds: Sequence[str] | None = None, variants: Sequence[str] | None = None,
                     example: tuple[tuple[int, int], int] = (EXAMPLE_SIZE, EXAMPLE_REFERENCES)) -> dict[str, str]:
    """Capture, export and compile every (block kind, adapter) of the customizer's transformer (or
    the `kinds` and `variants` named). Returns "kind/adapter" -> "compiled" or the reason it is not;
    never raises. On ZeroGPU this is the function to run in a spaces.GPU worker (plain strings back)."""
    from umo_pipeline.customizers.uno.customizer import VARIANT_ADAPTERS

    transformer = customizer.pipe.transformer
    bounds = bounds or image_token_bounds()
    report = {}
    for variant in variants or customizer.variants:
        if customizer.mode == "compare":
            customizer.pipe.set_adapters(VARIANT_ADAPTERS[variant])
        key = adapter_key(transformer)
        for kind, blocks in repeated_block_lists(transformer).items():
            if kinds is not None and kind not in kinds:
                continue
            label = f"{kind}/{key or 'plain'}"
            try:
                with compiler.capture(blocks[0]) as call:
                    run_example(customizer.pipe, *example)
                compiler.compile(export_block(blocks[0], call["kwargs"], bounds), kind, key)
                report[label] = "compiled"
            except Exception as error:  # noqa: BLE001 - that kind stays eager
                report[label] = f"not compiled ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
                log.warning("AoTI: %s %s", label, report[label])
    if customizer.mode == "compare":
        customizer.pipe.set_adapters(VARIANT_ADAPTERS["umo"])
    return report


def install(customizer, compiler, report: dict[str, str], *, bounds: tuple[int, int] | None = None,
            text_tokens: int = 512) -> dict[str, KindState]:
    """Load the compiled programs named in `report` and route each block call: the program when one
    exists for the active adapter and the call's shape is within bounds, else the eager forward."""
    transformer = customizer.pipe.transformer
    bounds = bounds or image_token_bounds()
    # LoRA layers are added at loading, never after: looked for once, not at every block call
    has_lora = has_lora_layers(transformer)
    states = {}
    for kind, blocks in repeated_block_lists(transformer).items():
        state = states[kind] = KindState(kind, bounds, text_tokens)
        for label, outcome in report.items():
            name, key = label.split("/")
            if name != kind or outcome != "compiled":
                continue
            key = "" if key == "plain" else key
            try:
                state.programs[key] = compiler.load(transformer, kind, key)
            except Exception as error:  # noqa: BLE001
                log.warning("AoTI: %s could not be loaded (%s); eager.", label, error)
        if state.programs:
            for index, block in enumerate(blocks):
                block.forward = _dispatcher(state, index, block.forward, transformer, has_lora)
    return states
