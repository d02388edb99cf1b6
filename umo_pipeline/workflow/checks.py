"""The per-request checks `prepare` runs on what a caller passes beside the settings (names,
face-crop choices, compare mode), each refusing in plain words before any GPU time."""

from __future__ import annotations

from collections.abc import Sequence

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
