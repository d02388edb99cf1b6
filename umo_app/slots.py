"""The page's reference slots: how many there are, their names in the API, and handlers whose
parameters are named per slot.

The API names each slot's image `reference_N` and its face-crop choice `face_crop_N` (N from 1), so a
client writes `reference_2=...`. A handler takes them as two lists instead (`slot_images`,
`slot_crops`), and `per_slot` shows Gradio (and gradio_client) the per-slot names in their place:
one more slot is one change of SLOTS.
"""

from __future__ import annotations

import functools
import inspect

#: reference slots the page builds and the API takes; a model shows its own max_references of them
SLOTS = 5
#: what a handler names the slots' images and crop choices (per_slot expands them)
IMAGES, CROPS = "slot_images", "slot_crops"


def image_name(slot: int) -> str:
    """The API's name for slot `slot`'s image (0-based slot: "reference_1" for the first)."""
    return f"reference_{slot + 1}"


def crop_name(slot: int) -> str:
    """The API's name for slot `slot`'s face-crop choice."""
    return f"face_crop_{slot + 1}"


class per_slot:
    """A handler method as Gradio sees it: its `slot_images` parameter stands as reference_1..
    reference_SLOTS (default None) and its `slot_crops` as face_crop_1..face_crop_SLOTS (default False),
    in their place in the signature; a call gathers them back into the two lists.

    A descriptor, so that the method bound to its object shows the signature without `self`: a
    `__signature__` on the function itself would travel with it (functools.wraps copies it onto the
    page's wrappers) and show `self` to Gradio as an input."""

    def __init__(self, handler) -> None:
        self.handler = handler
        functools.update_wrapper(self, handler)
        own = inspect.signature(handler)
        self.takes_images, self.takes_crops = IMAGES in own.parameters, CROPS in own.parameters
        shown = []
        for parameter in list(own.parameters.values())[1:]:  # without self
            if parameter.name == IMAGES:
                shown += [parameter.replace(name=image_name(slot), default=None) for slot in range(SLOTS)]
            elif parameter.name == CROPS:
                shown += [parameter.replace(name=crop_name(slot), default=False) for slot in range(SLOTS)]
            else:
                shown.append(parameter)
        self.signature = own.replace(parameters=shown)

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        handler, signature = self.handler, self.signature

        @functools.wraps(handler)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = dict(bound.arguments)
            if self.takes_images:
                given[IMAGES] = [given.pop(image_name(slot)) for slot in range(SLOTS)]
            if self.takes_crops:
                given[CROPS] = [given.pop(crop_name(slot)) for slot in range(SLOTS)]
            return handler(instance, **given)

        call.__signature__ = signature
        del call.__wrapped__  # Gradio reads __signature__; the inner method's parameters are not the API's
        instance.__dict__[self.name] = call  # one bound handler per object, as a method would be
        return call
