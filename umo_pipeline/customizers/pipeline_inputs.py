"""What the two pipelines (UNOPipeline, OmniGen2Pipeline) share: their input checks, in diffusers'
convention (a ValueError in plain words, which the customizers turn into an InputError), the steps that
turn checked inputs into the values the recipe uses, the inpainting start and blend, and a small mixin."""

from __future__ import annotations

import numbers

import numpy as np
from PIL import Image

#: what `output_type` may ask a pipeline for
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, not {output_type!r}.")


def check_step_count(num_inference_steps) -> None:
    if not isinstance(num_inference_steps, (int, np.integer)) or num_inference_steps < 1:
        raise ValueError(f"The number of steps must be a whole number of at least 1, not {num_inference_steps!r}.")


def check_image_count(num_images_per_prompt) -> None:
    if not isinstance(num_images_per_prompt, (int, np.integer)) or num_images_per_prompt < 1:
        raise ValueError(f"The number of images must be a whole number of at least 1, "
                         f"not {num_images_per_prompt!r}.")


def check_generators(generator, batch_size: int) -> None:
    """A list of generators must hold one per image (image k is then the image its generator gives alone)."""
    if isinstance(generator, list) and len(generator) != batch_size:
        raise ValueError(f"{len(generator)} generators were given for {batch_size} images: give one per image.")


def as_reference_list(ref_images) -> list:
    """A pipeline's ref_images (None, one image or a sequence) as a list."""
    if ref_images is None:
        return []
    return [ref_images] if isinstance(ref_images, Image.Image) else list(ref_images)


def check_references(ref_images, maximum: int, model: str) -> None:
    """ValueError for more than `maximum` references or for one that is not a PIL image."""
    references = as_reference_list(ref_images)
    if len(references) > maximum:
        raise ValueError(f"{model} takes at most {maximum} reference images; {len(references)} were given.")
    for number, reference in enumerate(references, start=1):
        if not isinstance(reference, Image.Image):
            raise ValueError(f"Reference image {number} is not an image (got {type(reference).__name__}).")


class CustomizationPipelineMixin:
    """The parts of UNOPipeline and OmniGen2Pipeline that do not depend on the model: diffusers'
    `interrupt` flag and the VAE decode."""

    _interrupt = False

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` from a step callback to skip the remaining steps."""
        return self._interrupt

    def decode_each(self, latents):
        """VAE-decode latents already un-normalised for the VAE, one image at a time.

        A batched decode differs from a lone one in the last float bits (so a candidate would not be
        its seed's image), and the VAE's peak memory stays one image's."""
        import torch

        return torch.cat([self.vae.decode(latent[None], return_dict=False)[0] for latent in latents])


# --- inpainting (image, mask_image, strength), in diffusers' FluxInpaintPipeline convention ---------

def denoising_start(num_inference_steps: int, strength: float) -> int:
    """Index of the first of the `num_inference_steps` steps an inpainting of `strength` runs.

    diffusers' rule (img2img and inpaint pipelines): the last min(N * strength, N) steps run, the
    count truncated towards more steps, so any strength above 0 runs at least one."""
    initial = min(num_inference_steps * strength, num_inference_steps)
    return int(max(num_inference_steps - initial, 0))


def check_inpainting_inputs(image, mask_image, strength, width: int, height: int,
                            num_inference_steps: int) -> None:
    """ValueError in plain words for an inpainting the pipelines cannot use: `image` and `mask_image`
    must be PIL images of exactly width x height, strength a number in (0, 1] (a Python or numpy number;
    None for 1) that leaves at least one of the steps, and no strength without an image to repaint.

    The pipelines take diffusers' whole range, (0, 1], as diffusers' own inpaint pipelines do, and say
    when a strength leaves no step; params.STRENGTH (0.05-1) is the narrower rule the app, the CLI and
    the workflow offer people, checked by the customizers before a pipeline is called."""
    if image is None and mask_image is None:
        if strength is not None:
            raise ValueError(f"strength={strength!r} was given without an image to repaint: strength is the share "
                             "of the steps an inpainting runs, so give image and mask_image too, or leave it out.")
        return
    for what, picture in (("image to repaint", image), ("mask_image", mask_image)):
        if not isinstance(picture, Image.Image):
            raise ValueError(f"The {what} must be a PIL image, not {type(picture).__name__}.")
        if picture.size != (width, height):
            raise ValueError(f"The {what} is {picture.width}x{picture.height} pixels but {width}x{height} is "
                             "generated: give the image, the mask and the size alike.")
    if strength is None:
        return
    if isinstance(strength, (bool, np.bool_)) or not isinstance(strength, numbers.Real) \
            or not 0.0 < float(strength) <= 1.0:
        raise ValueError(f"The strength must be a number above 0 and at most 1, not {strength!r}.")
    strength = float(strength)
    steps = num_inference_steps - denoising_start(num_inference_steps, strength)
    if steps < 1:
        raise ValueError(f"strength={strength!r} leaves {steps} of the {num_inference_steps} steps to run "
                         f"(strength x steps, rounded up, must be at least 1): give a strength of at least "
                         f"1/{num_inference_steps}, or more steps.")


def inpainting_strength(image, mask_image, strength) -> float | None:
    """The strength a checked inpainting runs at, as a float (default 1); None when there is none."""
    if image is None and mask_image is None:
        return None
    return 1.0 if strength is None else float(strength)


def mask_weights(mask_image: Image.Image, rows: int, cols: int):
    """The mask as a float tensor (1, 1, rows, cols) in [0, 1] (1 = regenerate): each cell the mean of
    the pixels it covers, so a feathered edge stays soft on the latent grid."""
    import torch
    import torch.nn.functional as F

    values = np.asarray(mask_image.convert("L"), dtype=np.float32) / 255.0
    return F.interpolate(torch.from_numpy(values)[None, None], size=(rows, cols), mode="area")


def start_inpainting(scheduler, timesteps, num_inference_steps: int, strength: float, image_latents, noise):
    """(first, the timesteps that run, the start latents) of an inpainting of `strength`: the schedule
    from its step `first` (denoising_start), the scheduler told so, and the image's latents (one row
    per image) noised to the first of those steps with the seeded noise."""
    first = denoising_start(num_inference_steps, strength)
    timesteps = timesteps[first:]
    scheduler.set_begin_index(first)  # before scale_noise, which reads it
    latents = scheduler.scale_noise(image_latents, timesteps[:1].repeat(image_latents.shape[0]), noise)
    return first, timesteps, latents


def keep_unmasked(scheduler, latents, image_latents, noise, mask, timesteps, step: int):
    """After step `step` of `timesteps`: the latents where the mask regenerates, the image's latents
    noised to the next timestep (after the last step: clean) where it keeps, blended by the mask in
    between.

    diffusers' blend: `scheduler.scale_noise` is read after `scheduler.step`, whose step index is
    then the next step's, so the image is noised to the level the latents have just reached."""
    kept = image_latents
    if step < len(timesteps) - 1:
        kept = scheduler.scale_noise(image_latents, timesteps[step + 1][None], noise)
    return (1 - mask) * kept + mask * latents
