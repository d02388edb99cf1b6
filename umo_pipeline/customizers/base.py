"""The customizer interface the app and CLI use: prompt + reference images -> image.

A customizer wraps one diffusers pipeline (UNO on FLUX, OmniGen2, or a tiny test build) and, when
it can, two variants of it: "umo" (with the UMO LoRA) and "base" (the base customizer without it),
sampled from the same noise for a given seed so a comparison isolates the effect of UMO.

`Customizer.generate` is the one recipe every model shares: check the request against the declared
rules, check the variant, check the pipeline's inputs, seed the generator, report progress per step,
and translate failures once into errors written for the user. A model implements only `sample`
(its pipeline call) and declares its limits, settings, tips and titles. The helpers its loader
uses live in loading.py, those its pipeline uses in pipeline_inputs.py.
"""

from __future__ import annotations

import gc
import sys
from abc import ABC
from collections.abc import Callable, Sequence
from dataclasses import replace

from PIL import Image

from umo_pipeline import params
# the request and its checks live in request.py; importable from here as they always were
from umo_pipeline.customizers.request import (  # noqa: F401
    GenerationRequest, Inpainting, check_inpainting, inpainting_inputs,
)
from umo_pipeline.errors import GenerationError, InputError, UMOError

#: progress(step_done, total_steps) called after every denoising step
ProgressFn = Callable[[int, int], None]
#: diffusers' callback_on_step_end(pipe, step, timestep, tensors) -> replaced tensors
StepCallback = Callable[[object, int, object, dict], dict]

#: "compare": the UMO LoRA as a switchable adapter (base and UMO from the same noise);
#: "fused": the LoRA baked into the weights (faster, no comparison)
MODES = ("compare", "fused")
DEFAULT_VARIANT_TITLES = {"umo": "With UMO", "base": "Base model (no UMO)"}


class Customizer(ABC):
    """A loaded base customizer, ready to generate."""

    #: "umo-uno", "umo-omnigen2", "tiny"
    name: str
    #: human description shown in the UI ("UMO-UNO (FLUX.1-dev + UNO + UMO LoRA), bf16, cuda")
    label: str
    #: True for random-weight test builds: outputs are noise, and every UI must say so
    is_test_model: bool = False
    #: what a test model's results are, for the note every result of it carries ({what}: "images",
    #: "repaints")
    test_model_kind: str = "a tiny test model with random weights; its {what} are noise"
    #: the most references the model takes (each model package's MAX_REFERENCES)
    max_references: int
    mode: str = "compare"
    device: str = "cpu"
    #: model-specific settings (rules from umo_pipeline.params.EXTRA_RULES) read from request.extra
    extra_settings: tuple[str, ...] = ()
    #: default settings for the UI / CLI
    defaults: GenerationRequest = GenerationRequest(prompt="")
    #: advice on writing prompts for this model (Markdown), shown next to the prompt; None: no advice
    prompt_tips: str | None = None
    variant_titles: dict[str, str] = DEFAULT_VARIANT_TITLES
    #: where the seeded noise is drawn: "execution" (the pipeline's device) or a device name
    generator_device: str = "execution"
    #: the sizes this model is offered at: sides from min_side to max_side on a size_step grid
    min_side: int = params.WIDTH.minimum
    max_side: int = params.WIDTH.maximum
    size_step: int = params.SIZE_STEP
    #: "Use face crop": the square around the reference's face gets this much of the face box's long
    #: side as margin on each side (see the subclasses for why their value suits their model)
    face_crop_margin: float = 0.5
    #: whether the page starts with "Use face crop" ticked
    face_crop_default: bool = False

    @property
    def variants(self) -> tuple[str, ...]:
        """("umo", "base") when the base model can be compared from the same noise, else ("umo",)."""
        return ("umo", "base") if self.mode == "compare" else ("umo",)

    def variant_title(self, variant: str) -> str:
        return self.variant_titles.get(variant) or DEFAULT_VARIANT_TITLES.get(variant, variant)

    # -- checks, shared by every caller (the workflow, the app, the CLI, Python users) --------------
    def rules(self) -> tuple[params.NumberRule, ...]:
        """The rules of the standard settings for this model (its size grid and limits included)."""
        size = dict(minimum=self.min_side, maximum=self.max_side, step=self.size_step, multiple_of=self.size_step)
        return tuple(replace(rule, **size) if rule.name in ("width", "height") else rule
                     for rule in params.REQUEST_RULES)

    def check_request(self, request: GenerationRequest) -> GenerationRequest:
        """The request with its prompt, every setting and its inpainting checked against their rules
        (whole numbers as int); InputError in plain words otherwise."""
        checked = replace(self.check_settings(request), prompt=params.check_prompt(request.prompt))
        if checked.inpaint is not None:
            checked = replace(checked, inpaint=check_inpainting(checked.inpaint, checked.width, checked.height))
        return checked

    def request_with(self, prompt: str = "", extra: dict | None = None, **settings) -> GenerationRequest:
        """A request from the model's defaults with the settings given (width, height, steps, guidance,
        seed; None takes the default) and `extra` over the default extra settings; not checked yet
        (check_settings / check_request), so a setting the model lacks is refused there."""
        chosen = {name: value for name, value in settings.items() if value is not None}
        given = {name: value for name, value in (extra or {}).items() if value is not None}
        return replace(self.defaults, prompt=prompt, extra={**self.defaults.extra, **given}, **chosen)

    def check_settings(self, request: GenerationRequest) -> GenerationRequest:
        """Like check_request, for everything but the prompt (settings shared by many prompts)."""
        checked = {rule.name: rule.check(getattr(request, rule.name)) for rule in self.rules()}
        unknown = sorted(set(request.extra) - set(self.extra_settings))
        if unknown:
            raise InputError(f"{self.name} has no setting called {', '.join(unknown)}"
                             + (f"; it has {', '.join(self.extra_settings)}." if self.extra_settings else "."))
        extra = {name: params.EXTRA_RULES[name].check(value) for name, value in request.extra.items()}
        return replace(request, extra=extra, **checked)

    def check_references(self, references: Sequence[Image.Image]) -> list[Image.Image]:
        if len(references) > self.max_references:
            raise InputError(f"{self.name} takes at most {self.max_references} references (got {len(references)}).")
        return check_images(references)

    def check_variant(self, variant: str) -> None:
        if variant not in self.variants:
            raise InputError(f"{self.name} in {self.mode} mode offers {', '.join(self.variants)}, not {variant!r}.")

    def check_inputs(self, request: GenerationRequest, references: Sequence[Image.Image]) -> None:
        """Model-specific checks before any sampling; raise ValueError (the pipelines' convention),
        which `generate` turns into an InputError."""

    # -- the recipe ----------------------------------------------------------------------------
    def generate(
        self,
        request: GenerationRequest,
        references: Sequence[Image.Image],
        *,
        variant: str = "umo",
        progress: ProgressFn | None = None,
    ) -> Image.Image:
        """One RGB image of request.width x request.height, from noise seeded by request.seed.

        Every failure reaches the caller as a UMOError in plain words: InputError for inputs the
        model cannot use, GenerationError for anything that broke while sampling (out of GPU
        memory included, after releasing it); a UMOError raised from `progress` (e.g. a
        cancellation) passes through unchanged.
        """
        return self.generate_batch(request, references, [request.seed], variant=variant, progress=progress)[0]

    def generate_batch(
        self,
        request: GenerationRequest,
        references: Sequence[Image.Image],
        seeds: Sequence[int],
        *,
        variant: str = "umo",
        progress: ProgressFn | None = None,
    ) -> list[Image.Image]:
        """One image per seed (request.seed is ignored), each the image `generate` gives for that seed.

        Models that can (`max_batch` > 1) sample up to `max_batch` seeds in one pipeline call: one
        noise draw per seed, so the images match separate runs while the GPU works on them together.
        If a batch runs out of GPU memory it is retried one seed at a time before giving up.
        progress(done, total) counts denoising steps of the whole call. Errors as for `generate`.
        """
        request = self.check_request(request)
        seeds = [params.SEED.check(seed) for seed in seeds]
        if not seeds:
            raise InputError("Give at least one seed.")
        references = self.check_references(references)
        self.check_variant(variant)
        try:
            self.check_inputs(request, references)
        except ValueError as error:
            raise InputError(_sentence(str(error))) from None
        tracker = _BatchProgress(progress, request.denoising_steps, self.batch_count(len(seeds)))
        images: list[Image.Image] = []
        try:
            for chunk in self._chunks(seeds):
                images += self._sample_chunk(request, references, chunk, variant, tracker)
            return images
        except UMOError:
            release_memory()
            raise
        except Exception as error:  # noqa: BLE001 - any model failure must leave the server usable
            message = _failure_message(error, request, len(references))
            del error
            release_memory()
            raise GenerationError(message) from None

    #: the most seeds one pipeline call samples together; 1: one call per seed (no batch support)
    max_batch: int = 1

    def batch_count(self, n_seeds: int) -> int:
        """Pipeline calls `generate_batch` makes for n_seeds (each runs request.denoising_steps steps)."""
        return -(-n_seeds // max(1, self.max_batch))

    def _chunks(self, seeds: list[int]) -> list[list[int]]:
        size = max(1, self.max_batch)
        return [seeds[start:start + size] for start in range(0, len(seeds), size)]

    def _sample_chunk(self, request, references, seeds, variant, tracker) -> list[Image.Image]:
        if len(seeds) == 1:
            return [self.sample(replace(request, seed=seeds[0]), references, variant=variant,
                                step_callback=tracker.callback())]
        try:
            return list(self.sample_batch(request, references, seeds, variant=variant,
                                          step_callback=tracker.callback()))
        except Exception as error:  # noqa: BLE001 - only running out of memory is retried
            if not is_out_of_memory(error):
                raise
        # a batch that does not fit: one seed at a time needs only one image's activations
        release_memory()
        tracker.redo_as(len(seeds))
        return [self.sample(replace(request, seed=seed), references, variant=variant,
                            step_callback=tracker.callback()) for seed in seeds]

    # A model implements `sample`, or `sample_batch` (then `sample` is its batch of one).
    def sample(self, request: GenerationRequest, references: list[Image.Image], *, variant: str,
               step_callback: StepCallback | None) -> Image.Image:
        """Run the model for a checked request: select `variant`, draw the noise from
        `self.generator(request.seed)`, pass `step_callback` as callback_on_step_end."""
        return self.sample_batch(request, references, [request.seed], variant=variant,
                                 step_callback=step_callback)[0]

    def sample_batch(self, request: GenerationRequest, references: list[Image.Image], seeds: list[int], *,
                     variant: str, step_callback: StepCallback | None) -> list[Image.Image]:
        """One pipeline call for several seeds (only called when max_batch > 1): noise drawn per seed
        from `self.generator(seed)`, so each image matches `sample` for that seed."""
        raise NotImplementedError(f"{type(self).__name__} implements neither sample nor sample_batch")

    def generator(self, seed: int):
        """A torch generator seeded with `seed` on `generator_device`."""
        import torch

        device = self.generator_device
        if device == "execution":
            device = self.pipe._execution_device
        return torch.Generator(device).manual_seed(int(seed))

    def estimate_seconds(self, request: GenerationRequest, n_references: int, n_variants: int = 1) -> float:
        """Rough wall time on the target GPU, for ZeroGPU's duration; subclasses refine it."""
        return 10.0 + 2.0 * request.denoising_steps * n_variants


class _BatchProgress:
    """Counts steps across the pipeline calls of one `generate_batch` (done, total) for `progress`."""

    def __init__(self, progress: ProgressFn | None, steps: int, runs: int):
        self.progress, self.steps, self.runs, self.finished_runs = progress, steps, runs, 0

    def redo_as(self, runs: int) -> None:
        """The last pipeline call failed and is replaced by `runs` calls."""
        self.finished_runs -= 1
        self.runs += runs - 1

    def callback(self) -> StepCallback | None:
        """The step callback of the next pipeline call."""
        if self.progress is None:
            return None
        offset = self.finished_runs * self.steps
        self.finished_runs += 1

        def report_step(pipe, step, timestep, tensors):
            self.progress(offset + step + 1, self.steps * self.runs)
            return {}

        return report_step


def check_images(references: Sequence) -> list[Image.Image]:
    """The references as a list; InputError naming the first that is not a PIL image ("Reference 2")."""
    for number, reference in enumerate(references, start=1):
        if not isinstance(reference, Image.Image):
            raise InputError(f"Reference {number} is not an image (got {type(reference).__name__}).")
    return list(references)


def _sentence(text: str) -> str:
    text = text.strip() or "the inputs cannot be used"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def is_out_of_memory(error: BaseException) -> bool:
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def _failure_message(error: Exception, request: GenerationRequest, n_references: int) -> str:
    if is_out_of_memory(error):
        return (
            f"The GPU ran out of memory generating {request.width}x{request.height} with "
            f"{n_references} reference(s). Try a smaller size, fewer references or no comparison, "
            "or start the app with --offload or --fp8. The memory was released; you can try again."
        )
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    return f"Generation failed ({type(error).__name__}: {first_line}). The app is still running; try again."


def release_memory() -> None:
    """Free what a failed generation left behind (GPU cache included, when torch is loaded)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
