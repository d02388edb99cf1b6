"""Test double: a customizer that composes the reference photos into its output.

`ComposingCustomizer` stands in for a real generator in tests, so the generate -> analysis path can
be checked end to end on real faces: the "umo" variant paints each reference (mirrored, so the pixels
differ from the reference) into its own tile (`tile_boxes`: two columns, reading order); the "base"
variant imitates identity mixing by painting the first reference into every column. The expected
assignment, labels and metrics are therefore known in advance.

For ranking candidates, `mixing_seeds` makes the "umo" variant behave like "base" for those seeds
only, and `faceless_seeds` paints no reference at all: which seeds keep every identity is then
known before the candidates are generated. Every image it paints and the references it received
are recorded (`seeds`, `received`).

For a group larger than the references it receives, `crowd` holds photos of other people: each is
painted in a tile after the references, as a real model draws a stranger for a person the prompt asks
for but gives no photo of (`crowdless_seeds` leave them out, for a scene with too few faces).

Masked re-generation (a face repair, `request.inpaint` set) paints the first reference's face into
the mask: its face box (found by dlib), widened by the repair's mask scale, fitted onto the mask's
ellipse and blended by the mask, so the repaint carries that person's identity. For ranking repairs,
`impostor_seeds` paint the `impostor` photo's face instead (the wrong identity) and `untouched_seeds`
paint nothing (the picture comes back as it went in). Every inpainting request is recorded
(`inpaints`: (seed, request, references)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from umo_pipeline.customizers.base import Customizer, GenerationRequest, StepCallback


class ComposingCustomizer(Customizer):
    name = "composing-test-double"
    label = "Composing test double (pastes the references side by side)"
    is_test_model = True
    test_model_kind = "a test double that pastes the reference photos; its {what} show real faces, not a model's"
    max_references = 4
    variants = ("umo", "base")
    device = "cpu"
    defaults = GenerationRequest(prompt="", width=768, height=384, steps=3, guidance=4.0)

    def __init__(self, mixing_seeds=(), faceless_seeds=(), *, impostor: Image.Image | None = None,
                 impostor_seeds=(), untouched_seeds=(), crowd: Sequence[Image.Image] = (),
                 crowdless_seeds=()) -> None:
        self.crowd, self.crowdless_seeds = list(crowd), set(crowdless_seeds)
        self.calls: list[tuple[str, int]] = []
        self.mixing_seeds, self.faceless_seeds = set(mixing_seeds), set(faceless_seeds)
        self.seeds: list[tuple[str, int]] = []
        self.received: list[Image.Image] = []
        self.impostor, self.impostor_seeds, self.untouched_seeds = impostor, set(impostor_seeds), set(untouched_seeds)
        self.inpaints: list[tuple[int, GenerationRequest, list[Image.Image]]] = []

    def sample(
        self,
        request: GenerationRequest,
        references: Sequence[Image.Image],
        *,
        variant: str,
        step_callback: StepCallback | None,
    ) -> Image.Image:
        self.calls.append((variant, len(references)))
        self.seeds.append((variant, request.seed))
        self.received = list(references)
        if request.inpaint is not None:
            return self._repaint(request, references, step_callback)
        canvas = Image.new("RGB", (request.width, request.height), (128, 128, 128))
        if request.seed in self.faceless_seeds:
            references = []
        mixing = variant == "base" or request.seed in self.mixing_seeds
        strangers = [] if request.seed in self.crowdless_seeds or not references else self.crowd
        for index, (left, top, width, height) in enumerate(tile_boxes(len(references) + len(strangers), request)):
            if index >= len(references):
                source = strangers[index - len(references)]
            else:
                source = references[0] if mixing else references[index]
            tile = ImageOps.fit(ImageOps.mirror(source.convert("RGB")), (width, height), centering=(0.5, 0.25))
            canvas.paste(tile, (left, top))
        for step in range(request.steps):
            if step_callback is not None:
                step_callback(self, step, None, {})
        return canvas


    def _repaint(self, request, references, step_callback) -> Image.Image:
        self.inpaints.append((request.seed, request, list(references)))
        inpaint = request.inpaint
        painted = inpaint.image.copy()
        source = self.impostor if request.seed in self.impostor_seeds else references[0]
        region = (np.asarray(inpaint.mask) >= 128).nonzero()
        if request.seed not in self.untouched_seeds and len(region[0]):
            top, bottom, left, right = region[0].min(), region[0].max() + 1, region[1].min(), region[1].max() + 1
            face = ImageOps.mirror(_face_with_forehead_and_jaw(source.convert("RGB")))
            painted.paste(face.resize((right - left, bottom - top), Image.Resampling.LANCZOS), (left, top))
        for step in range(request.denoising_steps):
            if step_callback is not None:
                step_callback(self, step, None, {})
        return Image.composite(painted, inpaint.image, inpaint.mask)


def _face_with_forehead_and_jaw(photo: Image.Image) -> Image.Image:
    """The photo's face box widened by the repair mask's scale: what the mask's ellipse covers."""
    from umo_pipeline.analysis import analyze_reference
    from umo_pipeline.workflow.geometry import MASK_SCALE

    x0, y0, x1, y1 = analyze_reference(photo, "dlib").face.bbox
    cx, cy, half_w, half_h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * MASK_SCALE, (y1 - y0) / 2 * MASK_SCALE
    return photo.crop((round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h)))


def tile_boxes(n_references: int, request: GenerationRequest) -> list[tuple[int, int, int, int]]:
    """(left, top, width, height) of each reference's tile: two columns, rows in reading order."""
    if n_references == 0:
        return []
    columns = min(n_references, 2)
    rows = -(-n_references // columns)
    width, height = request.width // columns, request.height // rows
    return [((i % columns) * width, (i // columns) * height, width, height) for i in range(n_references)]


class FailingCustomizer(ComposingCustomizer):
    """Test double whose generation fails the way a GPU running out of memory does."""

    name = "failing-test-double"
    label = "Failing test double (always runs out of memory)"

    def sample(self, request, references, *, variant, step_callback):
        if step_callback is not None:
            step_callback(self, 0, None, {})
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")


class PacedCustomizer(ComposingCustomizer):
    """Test double that takes `step_seconds` per denoising step, like a real generator on a busy GPU,
    and records how many steps each run got through: a departed visitor's run must stop early."""

    name = "paced-test-double"
    label = "Paced test double (composes the references, a fixed time per step)"
    defaults = GenerationRequest(prompt="", width=256, height=256, steps=60, guidance=4.0)

    def __init__(self, step_seconds: float = 0.1, **options) -> None:
        super().__init__(**options)
        self.step_seconds = step_seconds
        #: steps completed by each run, in order (the last entry grows while a run is going)
        self.steps_run: list[int] = []

    def sample(self, request, references, *, variant, step_callback):
        import time

        self.steps_run.append(0)

        def paced(pipe, step, timestep, kwargs):
            time.sleep(self.step_seconds)
            self.steps_run[-1] = step + 1
            if step_callback is not None:
                step_callback(pipe, step, timestep, kwargs)

        return super().sample(request, references, variant=variant, step_callback=paced)
