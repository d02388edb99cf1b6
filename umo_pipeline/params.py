"""What each generation setting accepts: one rule per parameter, read by the customizers (which check
every request), the app (slider bounds, the /generate API) and the command line.

A rule turns whatever a UI, an API client or a command line delivered (768, 768.0, "768") into the
value to use, or refuses it with an InputError in plain words: no silent rounding, no NaN, no
values beyond what the page's controls offer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from umo_pipeline.errors import InputError


@dataclass(frozen=True)
class NumberRule:
    """A numeric setting: its name in the API and JSON, its label for people, and what it accepts."""

    name: str
    label: str
    minimum: float
    maximum: float
    #: the UI's step; for whole-number settings with multiple_of, also the grid values must lie on
    step: float
    integer: bool = False
    multiple_of: int | None = None
    info: str = ""
    #: the value a model-specific setting takes when a model declares it without a default of its own
    default: float | None = None

    def check(self, value) -> int | float:
        """The value to use, or an InputError naming the setting, the value and what would do."""
        number = self._as_number(value)
        if self.integer and not number.is_integer():
            raise InputError(f"{self.label} must be a whole number (got {_shown(value)}).")
        if not self.minimum <= number <= self.maximum:
            raise InputError(f"{self.label} must be between {self.minimum:g} and {self.maximum:g} "
                             f"(got {_shown(value)}).")
        if not self.integer:
            return number
        whole = int(number)
        if self.multiple_of and whole % self.multiple_of:
            lower = whole - whole % self.multiple_of
            raise InputError(f"{self.label} must be a multiple of {self.multiple_of} "
                             f"(got {whole}; try {lower} or {lower + self.multiple_of}).")
        return whole

    def _as_number(self, value) -> float:
        if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
            raise InputError(f"{self.label} is missing: give a number between {self.minimum:g} and {self.maximum:g}.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{self.label} must be a number (got {_shown(value)}).") from None
        if not math.isfinite(number):
            raise InputError(f"{self.label} must be a finite number (got {_shown(value)}).")
        return number

    def span(self) -> str:
        """The accepted range as a help text writes it: "0.05-1", "1-4"."""
        return f"{self.minimum:g}-{self.maximum:g}"

    def ui(self, value=None) -> dict:
        """Keyword arguments for a slider showing this rule (label, bounds, step, info, value)."""
        shown = value if value is not None else self.default if self.default is not None else self.minimum
        return dict(label=self.label, minimum=self.minimum, maximum=self.maximum, step=self.step,
                    value=shown, info=self.info or None)


def _shown(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a command line's 64.0 is the 64 the person typed
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


SIZE_STEP = 16
WIDTH = NumberRule("width", "Width", 256, 2048, SIZE_STEP, integer=True, multiple_of=SIZE_STEP)
HEIGHT = NumberRule("height", "Height", 256, 2048, SIZE_STEP, integer=True, multiple_of=SIZE_STEP)
STEPS = NumberRule("steps", "Steps", 1, 100, 1, integer=True)
GUIDANCE = NumberRule("guidance", "Guidance", 0.0, 10.0, 0.1)
MAX_SEED = 2**32 - 1
SEED = NumberRule("seed", "Seed", 0, MAX_SEED, 1, integer=True)

#: the standard settings of every request, in GenerationRequest's field order
REQUEST_RULES = (WIDTH, HEIGHT, STEPS, GUIDANCE, SEED)

#: the page's size choices; "Custom" leaves the sliders free. The ZeroGPU ahead-of-time programs
#: cover exactly these sizes (customizers' AoTI bounds read them from here)
SIZE_PRESETS = {
    "Square 768 x 768": (768, 768),
    "Square 1024 x 1024": (1024, 1024),
    "Portrait 768 x 1024": (768, 1024),
    "Landscape 1024 x 768": (1024, 768),
    "Wide 1216 x 704": (1216, 704),
    "Small 512 x 512": (512, 512),
    "Custom": None,
}

#: model-specific settings (GenerationRequest.extra); a customizer declares which of these it takes
IMAGE_GUIDANCE = NumberRule("image_guidance", "Image guidance", 1.0, 5.0, 0.1, default=2.0,
                            info="How closely the output follows the reference images.")
CFG_RANGE_START = NumberRule("cfg_range_start", "Guidance starts at", 0.0, 1.0, 0.05, default=0.0,
                             info="Fraction of the steps after which guidance is applied.")
CFG_RANGE_END = NumberRule("cfg_range_end", "Guidance ends at", 0.0, 1.0, 0.05, default=1.0,
                           info="Fraction of the steps after which guidance stops.")
EXTRA_RULES = {rule.name: rule for rule in (IMAGE_GUIDANCE, CFG_RANGE_START, CFG_RANGE_END)}

#: how many images (one per seed: seed, seed + 1, ...) a request generates before the best is chosen
#: by the identity reward; four keeps a batch of full-size FLUX images within one ZeroGPU slice
CANDIDATES = NumberRule("candidates", "Candidates", 1, 4, 1, integer=True, default=1,
                        info="Images to generate from consecutive seeds; the one that keeps the identities "
                             "best (UMO's matching reward) is shown first.")

#: a face repair's masked re-generation: the share of the steps that run, from the picture noised to
#: that point (diffusers' strength). Default 0.6 (diffusers' inpaint default), not ADetailer's 0.4 or
#: FaceDetailer's 0.5: those polish the same person's face, while a repair must replace an identity.
#: At 0.4 both models start from about half noise (UNO at 512 px, 25 steps: sigma 0.51; OmniGen2, 50
#: steps, also 512 px: 0.52), where the eyes, nose and jaw of the wrong face are already set and the reference can
#: only retouch them; 0.6 starts at sigma 0.70 (UNO) / 0.71 (OmniGen2), enough to rebuild the face
#: while the pose, lighting and framing around it stay. A repair that makes things worse costs
#: nothing: the identity reward keeps the original then.
STRENGTH = NumberRule("strength", "Strength", 0.05, 1.0, 0.05, default=0.6,
                      info="How much of the face is redrawn: 1 starts from noise inside the mask; lower "
                           "values keep more of the original face's shape.")

#: the most people one request takes (references): the models take fewer (UNO 4, OmniGen2 5; each
#: model package's MAX_REFERENCES), and a group past that limit is composed with the references the
#: model takes and the others placed afterwards (workflow.placement). Eight is a family or team photo
#: whose faces still get the 48 px a repair needs at 1024 px, and the heatmap's rows stay readable.
MAX_PEOPLE = 8

#: prompts longer than this are refused: far beyond what the text encoders read (T5: 512 tokens,
#: about 2,000 characters of English), and a log or a PNG text chunk should not carry a novel
MAX_PROMPT_CHARS = 2000
def check_prompt(prompt, max_chars: int = MAX_PROMPT_CHARS) -> str:
    text = (prompt if isinstance(prompt, str) else "" if prompt is None else str(prompt)).strip()
    if not text:
        raise InputError("The prompt is empty: describe the picture you want, e.g. 'two friends at a cafe'.")
    if len(text) > max_chars:
        raise InputError(f"The prompt is {len(text):,} characters long; the model reads about the first "
                         f"{max_chars:,} at most. Shorten it to {max_chars:,} characters or fewer.")
    return text
