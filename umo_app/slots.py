"""The page's reference slots (and the Compare tab's method slots): how many there are, their names
in the API, and handlers whose parameters are named per slot.

The API names each slot's image `reference_N` and its face-crop choice `face_crop_N` (N from 1), so a
client writes `reference_2=...`; /compare_methods names each method's image `image_N` and its name
`name_N`. A handler takes them as lists instead (`slot_images`, `slot_crops`, `method_images`,
`method_names`), and `per_slot` shows Gradio (and gradio_client) the per-slot names in their place:
one more slot is one change of SLOTS (or METHODS).
"""

from __future__ import annotations

import functools
import inspect

from umo_pipeline.params import MAX_PEOPLE
from umo_pipeline.workflow.methods import MAX_METHODS

#: reference slots the page builds and the API takes: one per person of a group (params.MAX_PEOPLE);
#: a tab shows the model's max_references of them at first, and "Add a person" reveals the others
SLOTS = MAX_PEOPLE
#: method slots on the Compare tab: as many images as one comparison takes
METHODS = MAX_METHODS
#: what a handler names the slots' images and crop choices, and the methods' images and names
#: (per_slot expands them)
IMAGES, CROPS = "slot_images", "slot_crops"
METHOD_IMAGES, METHOD_NAMES = "method_images", "method_names"


def image_name(slot: int) -> str:
    """The API's name for slot `slot`'s image (0-based slot: "reference_1" for the first)."""
    return f"reference_{slot + 1}"


def crop_name(slot: int) -> str:
    """The API's name for slot `slot`'s face-crop choice."""
    return f"face_crop_{slot + 1}"


def method_image_name(slot: int) -> str:
    """/compare_methods' name for method slot `slot`'s image (0-based: "image_1" for the first)."""
    return f"image_{slot + 1}"


def method_name_name(slot: int) -> str:
    """/compare_methods' name for method slot `slot`'s name ("name_1" for the first)."""
    return f"name_{slot + 1}"


#: list parameter -> (its API name for slot n, how many slots, each one's default)
EXPANDED = {
    IMAGES: (image_name, SLOTS, None),
    CROPS: (crop_name, SLOTS, False),
    METHOD_IMAGES: (method_image_name, METHODS, None),
    METHOD_NAMES: (method_name_name, METHODS, None),
}


class per_slot:
    """A handler method as Gradio sees it: its `slot_images` parameter stands as reference_1..
    reference_SLOTS (default None) and its `slot_crops` as face_crop_1..face_crop_SLOTS (default False),
    `method_images` as image_1..image_METHODS and `method_names` as name_1..name_METHODS (both None),
    in their place in the signature (EXPANDED); a call gathers them back into the lists.

    A descriptor, so that the method bound to its object shows the signature without `self`: a
    `__signature__` on the function itself would travel with it (functools.wraps copies it onto the
    page's wrappers) and show `self` to Gradio as an input."""

    def __init__(self, handler) -> None:
        self.handler = handler
        functools.update_wrapper(self, handler)
        own = inspect.signature(handler)
        self.expanded = [name for name in EXPANDED if name in own.parameters]
        shown = []
        for parameter in list(own.parameters.values())[1:]:  # without self
            if parameter.name in EXPANDED:
                api_name, slots, default = EXPANDED[parameter.name]
                shown += [parameter.replace(name=api_name(slot), default=default) for slot in range(slots)]
            else:
                shown.append(parameter)
        self.signature = own.replace(parameters=shown)

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        handler, signature = self.handler, self.signature

        def gathered(args, kwargs) -> dict:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = dict(bound.arguments)
            for name in self.expanded:
                api_name, slots, _ = EXPANDED[name]
                given[name] = [given.pop(api_name(slot)) for slot in range(slots)]
            return given

        if inspect.isgeneratorfunction(handler):  # a streaming handler stays one (Gradio streams it)
            @functools.wraps(handler)
            def call(*args, **kwargs):
                yield from handler(instance, **gathered(args, kwargs))
        else:
            @functools.wraps(handler)
            def call(*args, **kwargs):
                return handler(instance, **gathered(args, kwargs))

        call.__signature__ = signature
        del call.__wrapped__  # Gradio reads __signature__; the inner method's parameters are not the API's
        instance.__dict__[self.name] = call  # one bound handler per object, as a method would be
        return call
