"""Loading, validating and converting UNO / UMO LoRA checkpoints (placeholder, being written)."""

from diffusers.loaders import FluxLoraLoaderMixin


class UNOLoraLoaderMixin(FluxLoraLoaderMixin):
    """load_lora_weights for UNO/UMO XLabs-format files, validated (being written)."""
