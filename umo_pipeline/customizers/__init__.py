"""Base customizers (UNO on FLUX, OmniGen2) with the UMO LoRA, and a tiny offline build."""

from umo_pipeline.customizers.base import Customizer, GenerationRequest

__all__ = ["Customizer", "GenerationRequest"]
