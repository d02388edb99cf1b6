"""Errors whose message is written for the person using the demo, CLI or library.

Everything raised as a `UMOError` carries a message in plain words that a UI can show as is
(the app turns them into `gr.Error`, the CLI into a one-line message and a non-zero exit).
"""


class UMOError(Exception):
    """Base class: the message is meant to be shown to the user unchanged."""


class InputError(UMOError):
    """An input (image file, argument, setting) cannot be used; the message says which and why."""


class FaceModelUnavailable(UMOError):
    """A face analysis backend cannot run here (missing package or model files)."""


class WeightsUnavailable(UMOError):
    """Model weights cannot be found locally or downloaded (offline, gated, missing token)."""


class LoraFormatError(UMOError):
    """A LoRA file is not of the expected kind, is truncated, or does not match the model."""


class GenerationError(UMOError):
    """Generation failed (out of memory, no GPU, ...); the server stays usable."""


class GenerationCancelled(UMOError):
    """A generation was stopped before its end (the person pressed Stop, or left the page)."""
