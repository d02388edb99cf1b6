"""Input checks both pipelines (UNOPipeline, OmniGen2Pipeline) share, in diffusers' convention: a
ValueError in plain words, which the customizers turn into an InputError."""

from __future__ import annotations

import numbers

import numpy as np
from PIL import Image

#: what `output_type` may ask a pipeline for
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, not {output_type!r}.")


def reference_list(ref_images, maximum: int, model: str) -> list[Image.Image]:
    """A pipeline's ref_images (None, one image or a sequence) as a list; ValueError for too many
    or for something that is not an image (the pipelines' convention)."""
    if ref_images is None:
        return []
    references = [ref_images] if isinstance(ref_images, Image.Image) else list(ref_images)
    if len(references) > maximum:
        raise ValueError(f"{model} takes at most {maximum} reference images; {len(references)} were given.")
    for number, reference in enumerate(references, start=1):
        if not isinstance(reference, Image.Image):
            raise ValueError(f"Reference image {number} is not an image (got {type(reference).__name__}).")
    return references



# --- inpainting (image, mask_image, strength), in diffusers' FluxInpaintPipeline convention ---------

def denoising_start(num_inference_steps: int, strength: float) -> int:
    """Index of the first of the `num_inference_steps` steps an inpainting of `strength` runs.

    diffusers' rule (img2img and inpaint pipelines): the last min(N * strength, N) steps run, the
    count truncated towards more steps, so any strength above 0 runs at least one."""
    initial = min(num_inference_steps * strength, num_inference_steps)
    return int(max(num_inference_steps - initial, 0))


def check_inpainting_inputs(image, mask_image, strength, width: int, height: int,
                            num_inference_steps: int) -> float | None:
    """The strength an inpainting runs at (None: no inpainting), or ValueError in plain words for one
    the pipelines cannot use: `image` and `mask_image` PIL images of exactly width x height, strength
    a number in (0, 1] (a Python or numpy number; default 1) that leaves at least one of the steps,
    and no strength without an image to repaint."""
    if image is None and mask_image is None:
        if strength is not None:
            raise ValueError(f"strength={strength!r} was given without an image to repaint: strength is the share "
                             "of the steps an inpainting runs, so give image and mask_image too, or leave it out.")
        return None
    for what, picture in (("image to repaint", image), ("mask_image", mask_image)):
        if not isinstance(picture, Image.Image):
            raise ValueError(f"The {what} must be a PIL image, not {type(picture).__name__}.")
        if picture.size != (width, height):
            raise ValueError(f"The {what} is {picture.width}x{picture.height} pixels but {width}x{height} is "
                             "generated: give the image, the mask and the size alike.")
    if strength is None:
        return 1.0
    if isinstance(strength, (bool, np.bool_)) or not isinstance(strength, numbers.Real) \
            or not 0.0 < float(strength) <= 1.0:
        raise ValueError(f"The strength must be a number above 0 and at most 1, not {strength!r}.")
    strength = float(strength)
    steps = num_inference_steps - denoising_start(num_inference_steps, strength)
    if steps < 1:
        raise ValueError(f"strength={strength!r} leaves {steps} of the {num_inference_steps} steps to run "
                         f"(strength x steps, rounded up, must be at least 1): give a strength of at least "
                         f"1/{num_inference_steps}, or more steps.")
    return strength


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
