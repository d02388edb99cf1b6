"""The customizer interface the app and CLI use: prompt + reference images -> image.

A customizer wraps one diffusers pipeline (UNO on FLUX, OmniGen2, or a tiny test build) and, when
it can, two variants of it: "umo" (with the UMO LoRA) and "base" (the base customizer without it),
sampled from the same noise for a given seed so a comparison isolates the effect of UMO.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image

#: progress(step_done, total_steps) called after every denoising step
ProgressFn = Callable[[int, int], None]


@dataclass
class GenerationRequest:
    """Everything that determines one generation (and that is written into the PNG metadata)."""

    prompt: str
    width: int = 768
    height: int = 768
    steps: int = 25
    guidance: float = 4.0
    seed: int = 0
    #: model-specific settings (OmniGen2: image_guidance, cfg_range_start, cfg_range_end)
    extra: dict = field(default_factory=dict)


class Customizer(ABC):
    """A loaded base customizer, ready to generate."""

    #: "umo-uno", "umo-omnigen2", "tiny"
    name: str
    #: human description shown in the UI ("UMO-UNO (FLUX.1-dev + UNO + UMO LoRA), bf16, cuda")
    label: str
    #: True for random-weight test builds: outputs are noise, and every UI must say so
    is_test_model: bool = False
    max_references: int = 4
    #: variants this customizer can produce; ("umo", "base") when a comparison is possible
    variants: tuple[str, ...] = ("umo",)
    device: str = "cpu"
    #: names of model-specific settings the UI should show (read from GenerationRequest.extra), e.g.
    #: ("image_guidance", "cfg_range_start", "cfg_range_end") for OmniGen2; () for UNO
    extra_settings: tuple[str, ...] = ()
    #: default settings for the UI / CLI
    defaults: GenerationRequest = GenerationRequest(prompt="")

    @abstractmethod
    def generate(
        self,
        request: GenerationRequest,
        references: Sequence[Image.Image],
        *,
        variant: str = "umo",
        progress: ProgressFn | None = None,
    ) -> Image.Image:
        """One RGB image of request.width x request.height (after rounding to the model's grid)."""

    def estimate_seconds(self, request: GenerationRequest, n_references: int, n_variants: int = 1) -> float:
        """Rough wall time on the target GPU, for ZeroGPU's duration; subclasses refine it."""
        return 10.0 + 2.0 * request.steps * n_variants
