"""Input checks both pipelines (UNOPipeline, OmniGen2Pipeline) share, in diffusers' convention: a
ValueError in plain words, which the customizers turn into an InputError."""

from __future__ import annotations

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

