"""The per-request checks `prepare` runs on what a caller passes beside the settings (names,
face-crop choices, compare mode), each refusing in plain words before any GPU time."""

from __future__ import annotations

from collections.abc import Sequence

from umo_pipeline import params
from umo_pipeline.errors import InputError
from umo_pipeline.labels import reference_label


def default_reference_names(count: int) -> list[str]:
    return [reference_label(index) for index in range(count)]


def reference_names(names: Sequence[str] | None, count: int) -> list[str]:
    """The names given (one per reference), or "Reference 1", "Reference 2", ..."""
    checked = list(names or default_reference_names(count))
    if len(checked) != count:
        raise InputError(f"{len(checked)} names given for {count} references.")
    return checked


def face_crop_choices(face_crops: Sequence[bool] | None, count: int) -> list[bool]:
    """Per reference, whether the customizer gets it cropped around its face (none by default)."""
    crops = [bool(crop) for crop in face_crops] if face_crops is not None else [False] * count
    if len(crops) != count:
        raise InputError(f"{len(crops)} face-crop choices given for {count} references.")
    return crops


def variants(customizer, compare: bool) -> tuple[str, ...]:
    """("umo",), or ("umo", "base") in compare mode when the model has a base to compare with."""
    if compare and "base" not in customizer.variants:
        raise InputError(f"{customizer.name} has no base model to compare with.")
    return ("umo", "base") if compare else ("umo",)


def people(references: Sequence, customizer) -> list:
    """The references as a list, at most params.MAX_PEOPLE, each an image (the model sees at most its
    own max_references of them: `conditioned`)."""
    from umo_pipeline.customizers.base import check_images

    references = list(references)
    if len(references) > params.MAX_PEOPLE:
        raise InputError(f"At most {params.MAX_PEOPLE} people can be given (got {len(references)}): "
                         f"{customizer.name} sees {customizer.max_references} of them and the others are placed "
                         "after the scene is composed.")
    return check_images(references)


def conditioned(condition_on: Sequence[int] | None, names: Sequence[str], max_references: int) -> list[int]:
    """The references (indices, in slot order) the model is conditioned on: those chosen, or the
    first `max_references` when none are chosen."""
    count = len(names)
    if condition_on is None or len(condition_on) == 0:
        return list(range(min(count, max_references)))
    chosen = []
    for value in condition_on:
        if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
            raise InputError(f"Choose the people the model sees by their number, not {value!r}.")
        index = int(value)
        if not 0 <= index < count:
            raise InputError(f"There is no reference at index {index} to show the model: choose from 0 "
                             f"({names[0] if names else 'none given'}) to {count - 1}.")
        if index in chosen:
            raise InputError(f"{names[index]} was chosen twice for the model to see.")
        chosen.append(index)
    if len(chosen) > max_references:
        raise InputError(f"The model sees at most {max_references} people, and {len(chosen)} were chosen: choose "
                         f"{max_references} or fewer; the others are placed after the scene is composed.")
    return sorted(chosen)
