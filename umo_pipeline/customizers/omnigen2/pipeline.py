"""OmniGen2Pipeline: prompt + up to 5 reference images -> image, sampled as OmniGen2 does.

The recipe (`__call__`): encode the chat-templated prompt with Qwen2.5-VL (last hidden state),
resize and VAE-encode the references (posterior mode, so the result depends only on the seed),
draw seeded noise, then run Euler steps from t = 0 to 1 with OmniGen2's three-pass guidance:

    v = v_uncond + g_img * (v_ref - v_uncond) + g_text * (v_cond - v_ref)

where v_cond sees prompt + references, v_ref the negative prompt + references and v_uncond the
negative prompt alone. Outside the cfg range (fraction of steps done) both scales are 1 and only
v_cond is computed; with text guidance only, v = v_uncond + g_text * (v_cond - v_uncond).

Given an `image` and a `mask_image`, the pipeline repaints the image inside the mask, in diffusers'
FluxInpaintPipeline convention (see UNOPipeline): the last `strength` share of the steps, from the
image's latents noised to the first of them, the image's latents put back outside the mask after
every step. The output then has the image's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from umo_pipeline.customizers.diffusers_internals import resolve_dtype
from umo_pipeline.customizers.pipeline_inputs import (
    check_inpainting_inputs, check_output_type, keep_unmasked, mask_weights, reference_list, start_inpainting,
)
from umo_pipeline.customizers.omnigen2.scheduler import OmniGen2EulerScheduler
from umo_pipeline.customizers.omnigen2.transformer import MAX_REFERENCES, OmniGen2Transformer2DModel

#: the parts of the OmniGen2 checkpoint folder, each loaded from its own subfolder
COMPONENTS = ("transformer", "vae", "scheduler", "mllm", "processor")
SYSTEM_PROMPT = "You are a helpful assistant that generates high-quality images based on user instructions."
#: the negative prompt of the OmniGen2 and UMO demos
DEMO_NEGATIVE_PROMPT = (
    "(((deformed))), blurry, over saturation, bad anatomy, disfigured, poorly drawn face, mutation, mutated, "
    "(extra_limb), (ugly), (poorly drawn hands), fused fingers, messy drawing, broken legs censor, censored, "
    "censor_bar"
)


@dataclass
class OmniGen2PipelineOutput(BaseOutput):
    images: list[Image.Image] | np.ndarray | torch.Tensor


def fit_size(width: int, height: int, max_pixels: int, max_side: int | None = None) -> tuple[int, int]:
    """Shrink (never enlarge) to fit max_pixels and max_side, aspect kept, then floor both to 16."""
    ratio = min((max_pixels / (width * height)) ** 0.5, 1.0)
    if max_side is not None:
        ratio = min(ratio, max_side / max(width, height))
    return int(width * ratio) // 16 * 16, int(height * ratio) // 16 * 16


def guidance_at(step: int, num_steps: int, text: float, image: float, cfg_range) -> tuple[float, float]:
    """Text and image guidance of one step: the given scales inside the cfg range, 1 outside."""
    inside = cfg_range[0] <= step / num_steps <= cfg_range[1]
    return (text, image) if inside else (1.0, 1.0)


class OmniGen2Pipeline(DiffusionPipeline):
    """OmniGen2 in-context generation: transformer + FLUX VAE + Qwen2.5-VL prompt encoder."""

    model_cpu_offload_seq = "mllm->transformer->vae"

    def __init__(self, transformer: OmniGen2Transformer2DModel, vae, scheduler: OmniGen2EulerScheduler, mllm,
                 processor):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, scheduler=scheduler, mllm=mllm, processor=processor)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor * 2)
        self._interrupt = False

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` from a step callback to skip the remaining steps."""
        return self._interrupt

    @classmethod
    def from_pretrained(cls, folder, dtype=None, torch_dtype=None, **unsupported) -> OmniGen2Pipeline:
        """Load a local copy of the OmniGen2/OmniGen2 checkpoint (each part from its subfolder).

        diffusers' generic loader cannot be used: the checkpoint's model_index.json names the original
        project's classes. Download a copy with load_customizer("umo-omnigen2") or `hf download`.
        `torch_dtype` is taken for `dtype` as diffusers takes it (with its deprecation warning).
        """
        from pathlib import Path

        from diffusers import AutoencoderKL
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        from umo_pipeline.errors import WeightsUnavailable

        if unsupported:
            raise TypeError(f"OmniGen2Pipeline.from_pretrained: unsupported options {sorted(unsupported)}")
        dtype = resolve_dtype(dtype, torch_dtype)
        folder = Path(folder)
        missing = [part for part in COMPONENTS if not (folder / part).is_dir()]
        if missing:
            parts = ", ".join(m + "/" for m in missing)
            raise WeightsUnavailable(f"The OmniGen2 folder {folder} lacks {parts}: it is not a complete copy of "
                                     "OmniGen2/OmniGen2.")
        local = {"local_files_only": True}
        safe = {"use_safetensors": True, **local}
        return cls(
            transformer=OmniGen2Transformer2DModel.from_pretrained(
                folder, subfolder="transformer", dtype=dtype, **safe),
            vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", dtype=dtype, **safe),
            scheduler=OmniGen2EulerScheduler.from_pretrained(folder, subfolder="scheduler", **local),
            mllm=Qwen2_5_VLForConditionalGeneration.from_pretrained(
                folder, subfolder="mllm", dtype=dtype, **safe).eval(),
            processor=AutoTokenizer.from_pretrained(folder, subfolder="processor", **local),
        )

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    # --- prompt -------------------------------------------------------------------------------
    def chat_prompt(self, prompt: str) -> str:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    @torch.no_grad()
    def encode_prompt(self, prompt: str, device=None, max_sequence_length: int = 1024):
        """(features [1, L, D], attention mask [1, L]) of the chat-templated prompt: last hidden state."""
        device = device or self._execution_device
        tokens = self.tokenizer(
            [self.chat_prompt(prompt)], padding="longest", max_length=max_sequence_length, truncation=True,
            return_tensors="pt",
        )
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        features = self.mllm(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        return features.to(dtype=self.mllm.dtype, device=device), mask

    # --- references ---------------------------------------------------------------------------
    def prepare_reference(self, image: Image.Image, max_pixels: int, max_side: int) -> torch.Tensor:
        """Reference image -> normalised VAE latent [C, h, w] (posterior mode: no random draw)."""
        image = image.convert("RGB")
        width, height = fit_size(image.width, image.height, max_pixels, max_side)
        return self.image_latents(image.resize((width, height), Image.LANCZOS))[0]

    def image_latents(self, image: Image.Image) -> torch.Tensor:
        """An RGB image (sides multiples of 16) -> normalised VAE latents [1, C, h, w] in the
        transformer's dtype (posterior mode: no random draw)."""
        pixels = self.image_processor.preprocess(image.convert("RGB"))
        vae = self.vae
        latent = vae.encode(pixels.to(device=self._execution_device, dtype=vae.dtype)).latent_dist.mode()
        latent = (latent - (vae.config.shift_factor or 0.0)) * (vae.config.scaling_factor or 1.0)
        return latent.to(self.transformer.dtype)

    # --- denoising ----------------------------------------------------------------------------
    def velocity(self, latents, t, text, references) -> torch.Tensor:
        features, mask = text
        timestep = t.expand(latents.shape[0]).to(latents.dtype)
        return self.transformer(latents, timestep, features, mask, references=references)[0]

    def guided_velocity(self, latents, t, cond, negative, references, text_scale: float, image_scale: float):
        v_cond = self.velocity(latents, t, cond, references)
        if text_scale > 1.0 and image_scale > 1.0:
            v_ref = self.velocity(latents, t, negative, references)
            v_uncond = self.velocity(latents, t, negative, None)
            return v_uncond + image_scale * (v_ref - v_uncond) + text_scale * (v_cond - v_ref)
        if text_scale > 1.0:
            v_uncond = self.velocity(latents, t, negative, None)
            return v_uncond + text_scale * (v_cond - v_uncond)
        return v_cond

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | None = None,
        ref_images: Sequence[Image.Image] | Image.Image | None = None,
        negative_prompt: str | None = None,
        height: int = 1024,
        width: int = 1024,
        num_inference_steps: int = 50,
        text_guidance_scale: float = 5.0,
        image_guidance_scale: float = 2.0,
        cfg_range: tuple[float, float] = (0.0, 1.0),
        max_pixels: int = 1024 * 1024,
        max_input_image_side_length: int = 2048,
        align_res: bool = True,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        max_sequence_length: int = 1024,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        image: Image.Image | None = None,
        mask_image: Image.Image | None = None,
        strength: float | None = None,
    ):
        """Generate num_images_per_prompt images (a list of generators: one per image, so image k is
        the image its generator gives alone). With exactly one reference and align_res, the output
        takes its size.

        output_type: "pil", "np", "pt" or "latent" (the final normalised latents, no decoding).
        callback_on_step_end(pipe, step, t, {"latents": ...}) may return {"latents": ...}.

        Inpainting: `image` (PIL, width x height, sides multiples of 16, at most max_pixels) is
        repainted where `mask_image` (PIL, same size, greyscale: 255 regenerate, 0 keep, values
        between blend) asks; `strength` (0 < s <= 1, default 1; only with an image) is the share of the
        steps that run. The output
        has the image's size (align_res does not apply); `latents`, if given, are the noise.
        """
        references = self.check_inputs(prompt, prompt_embeds, ref_images, num_inference_steps, cfg_range,
                                       max_pixels, max_input_image_side_length, output_type)
        strength = self.check_inpainting(image, mask_image, strength, width, height, max_pixels,
                                         num_inference_steps)
        inpainting = strength is not None
        batch = self._batch_size(num_images_per_prompt, generator, latents)
        self._interrupt = False
        device = self._execution_device

        cond = self._text_input(prompt, prompt_embeds, prompt_attention_mask, device, max_sequence_length, batch)
        negative = None
        if text_guidance_scale > 1.0:
            negative = self._text_input(
                negative_prompt or "", negative_prompt_embeds, negative_prompt_attention_mask, device,
                max_sequence_length, batch,
            )
        ref_latents = [self.prepare_reference(r, max_pixels, max_input_image_side_length) for r in references]
        if not ref_latents:
            image_guidance_scale = 1.0

        if inpainting:
            out_width, out_height = gen_width, gen_height = width, height
        elif len(ref_latents) == 1 and align_res:
            out_width, out_height = (d * self.vae_scale_factor for d in ref_latents[0].shape[:0:-1])
            gen_width, gen_height = out_width, out_height
        else:
            out_width, out_height = width, height
            gen_width, gen_height = fit_size(width, height, max_pixels)

        latents = noise = self.initial_latents(gen_height, gen_width, generator, latents, device, batch)
        latent_pixels = latents.shape[-2] * latents.shape[-1]
        self.scheduler.set_timesteps(num_inference_steps, device=device, latent_pixels=latent_pixels)
        timesteps = self.scheduler.timesteps
        first = 0
        if inpainting:
            image_latents = self.image_latents(image).to(device).expand(batch, -1, -1, -1)
            mask = mask_weights(mask_image, *latents.shape[-2:]).to(device=device, dtype=latents.dtype)
            first, timesteps, latents = start_inpainting(self.scheduler, timesteps, num_inference_steps, strength,
                                                         image_latents, noise)
        for i, t in enumerate(self.progress_bar(timesteps)):
            if self.interrupt:
                continue
            # the cfg range is a share of the whole schedule, also when an inpainting starts later in it
            text_scale, image_scale = guidance_at(
                first + i, num_inference_steps, text_guidance_scale, image_guidance_scale, cfg_range
            )
            v = self.guided_velocity(latents, t, cond, negative, ref_latents, text_scale, image_scale)
            latents = self.scheduler.step(v, t, latents)[0].to(self.transformer.dtype)
            if inpainting:
                latents = keep_unmasked(self.scheduler, latents, image_latents, noise, mask, timesteps, i)
            if callback_on_step_end is not None:
                latents = (callback_on_step_end(self, i, t, {"latents": latents}) or {}).get("latents", latents)

        if output_type == "latent":
            image = latents
        else:
            image = self.decode(latents, out_height, out_width, output_type)
        self.maybe_free_model_hooks()
        return OmniGen2PipelineOutput(images=image) if return_dict else (image,)

    def check_inputs(self, prompt, prompt_embeds, ref_images, num_inference_steps, cfg_range, max_pixels,
                     max_input_image_side_length, output_type="pil") -> list[Image.Image]:
        """The references as a list; ValueError for anything the recipe cannot use."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Give either a prompt or prompt_embeds, not both.")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError("The prompt must be a text.")
        if not isinstance(num_inference_steps, (int, np.integer)) or num_inference_steps < 1:
            raise ValueError(f"The number of steps must be a whole number of at least 1, not {num_inference_steps!r}.")
        start, end = cfg_range
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"The cfg range must satisfy 0 <= start <= end <= 1; got {start} to {end}.")
        check_output_type(output_type)
        references = reference_list(ref_images, MAX_REFERENCES, "OmniGen2")
        for number, reference in enumerate(references, start=1):
            width, height = fit_size(reference.width, reference.height, max_pixels, max_input_image_side_length)
            if min(width, height) < 16:
                raise ValueError(f"Reference image {number} ({reference.width}x{reference.height}) is too narrow: "
                                 "fitted to the model's size limits, its short side falls below 16 pixels.")
        return references

    @staticmethod
    def check_inpainting(image, mask_image, strength, width, height, max_pixels, num_inference_steps) -> float | None:
        """The inpainting's strength (None: none), or ValueError for one this pipeline cannot use
        (sizes, strength, the steps it leaves, the pixel budget)."""
        strength = check_inpainting_inputs(image, mask_image, strength, width, height, num_inference_steps)
        if strength is not None and fit_size(width, height, max_pixels) != (width, height):
            raise ValueError(f"The image to repaint ({width}x{height}) must have sides that are multiples of 16 "
                             f"and at most {max_pixels:,} pixels (max_pixels): resize it first.")
        return strength

    @staticmethod
    def _batch_size(num_images_per_prompt, generator, latents) -> int:
        if not isinstance(num_images_per_prompt, (int, np.integer)) or num_images_per_prompt < 1:
            raise ValueError(f"The number of images must be a whole number of at least 1, "
                             f"not {num_images_per_prompt!r}.")
        if isinstance(generator, list) and len(generator) != num_images_per_prompt:
            raise ValueError(f"{len(generator)} generators were given for {num_images_per_prompt} images: "
                             "give one per image.")
        if latents is not None and latents.shape[0] != num_images_per_prompt:
            raise ValueError(f"latents hold {latents.shape[0]} images but {num_images_per_prompt} were asked for.")
        return int(num_images_per_prompt)

    def _text_input(self, prompt, embeds, mask, device, max_sequence_length, batch: int = 1):
        """(features, mask) with one row per image; the prompt is encoded once for all of them."""
        if embeds is not None:
            if mask is None:
                mask = torch.ones(embeds.shape[:2], dtype=torch.long)
            embeds, mask = embeds.to(device), mask.to(device)
        else:
            embeds, mask = self.encode_prompt(prompt, device, max_sequence_length)
        return embeds.expand(batch, -1, -1), mask.expand(batch, -1)

    def initial_latents(self, height: int, width: int, generator, latents, device, batch: int = 1) -> torch.Tensor:
        factor = self.vae_scale_factor
        shape = (batch, self.transformer.config.in_channels, height // factor, width // factor)
        if latents is not None:
            return latents.to(device=device, dtype=self.transformer.dtype)
        return randn_tensor(shape, generator=generator, device=device, dtype=self.transformer.dtype)

    def decode(self, latents: torch.Tensor, height: int, width: int, output_type: str):
        vae = self.vae
        latents = latents.to(vae.dtype) / (vae.config.scaling_factor or 1.0) + (vae.config.shift_factor or 0.0)
        # one image at a time: a batched decode differs from a lone one in the last float bits (so a
        # candidate would not be its seed's image), and the VAE's peak memory stays one image's
        image = torch.cat([vae.decode(latent[None], return_dict=False)[0] for latent in latents])
        if image.shape[-2:] != (height, width):
            image = F.interpolate(image, size=(height, width), mode="bilinear")
        return self.image_processor.postprocess(image, output_type=output_type)
