"""What one generation is asked to do: the prompt and settings (GenerationRequest), an optional
masked re-generation (Inpainting), the inpainting's checks, and how a pipeline receives it.

Plain values only (PIL images, numbers, text): the page, the workflow, the CLI and the benches build
requests without loading any model; a customizer checks them (Customizer.check_request).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from umo_pipeline import params
from umo_pipeline.customizers.pipeline_inputs import denoising_start
from umo_pipeline.errors import InputError


@dataclass
class Inpainting:
    """A masked re-generation: repaint `image` where `mask` says, keep it elsewhere.

    image: RGB, the request's width x height. mask: "L", the same size; 255 = regenerate, 0 = keep,
    values between blend (a feathered mask gives no seam). strength (0.05..1, params.STRENGTH): the
    fraction of the request's steps that run, starting from the image noised to that point of the
    schedule (diffusers' convention: 1 starts from pure noise, so only the mask keeps the image).
    """

    image: Image.Image
    mask: Image.Image
    strength: float


@dataclass
class GenerationRequest:
    """Everything that determines one generation (and that is written into the PNG metadata; of an
    inpainting, only its strength is)."""

    prompt: str
    width: int = 768
    height: int = 768
    steps: int = 25
    guidance: float = 4.0
    seed: int = 0
    #: model-specific settings (OmniGen2: image_guidance, cfg_range_start, cfg_range_end)
    extra: dict = field(default_factory=dict)
    #: None: generate from noise; else repaint inpaint.image inside inpaint.mask
    inpaint: Inpainting | None = None

    @property
    def denoising_steps(self) -> int:
        """The steps the pipeline actually runs: `steps`, or its `strength` share of them when
        inpainting (as diffusers counts: steps - int(steps - steps * strength))."""
        if self.inpaint is None:
            return self.steps
        return self.steps - denoising_start(self.steps, self.inpaint.strength)


def check_inpainting(inpaint: Inpainting, width: int, height: int) -> Inpainting:
    """The inpainting with its image in RGB and its mask in "L" and its strength checked; InputError
    in plain words for anything else (sizes that differ from the request's, a mask with colours)."""
    if not isinstance(inpaint, Inpainting):
        raise InputError(f"The inpainting must be an Inpainting(image, mask, strength), not {type(inpaint).__name__}.")
    image, mask = inpaint.image, inpaint.mask
    for what, picture in (("picture to repaint", image), ("repaint mask", mask)):
        if not isinstance(picture, Image.Image):
            raise InputError(f"The {what} is not an image (got {type(picture).__name__}).")
        if picture.size != (width, height):
            raise InputError(f"The {what} is {picture.width}x{picture.height} pixels but the request is "
                             f"{width}x{height}: give both the same size.")
    if mask.mode not in ("L", "1"):
        raise InputError(f"The repaint mask must be a greyscale image (mode \"L\": 255 where the picture is "
                         f"repainted, 0 where it is kept), not mode {mask.mode!r}.")
    strength = params.STRENGTH.check(inpaint.strength)
    return Inpainting(image=image if image.mode == "RGB" else image.convert("RGB"),
                      mask=mask if mask.mode == "L" else mask.convert("L"), strength=strength)


def inpainting_inputs(request: GenerationRequest, width: int, height: int) -> dict:
    """A pipeline's image / mask_image / strength for a checked request sampled at width x height
    ({} without an inpainting). A model that samples at another size than the request's gets the
    picture resized (LANCZOS) and the mask area-averaged (BOX), so a feathered edge stays soft."""
    inpaint = request.inpaint
    if inpaint is None:
        return {}
    image, mask = inpaint.image, inpaint.mask
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
        mask = mask.resize((width, height), Image.Resampling.BOX)
    return {"image": image, "mask_image": mask, "strength": inpaint.strength}
