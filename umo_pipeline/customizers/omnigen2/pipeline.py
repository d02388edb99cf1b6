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
from pathlib import Path

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
    CustomizationPipelineMixin, as_reference_list, check_generators, check_image_count, check_inpainting_inputs,
    check_output_type, check_references, check_step_count, inpainting_strength, keep_unmasked, mask_weights,
    start_inpainting,
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


class OmniGen2Pipeline(DiffusionPipeline, CustomizationPipelineMixin):
    r"""OmniGen2 in-context generation: prompt + 0..5 reference images -> image, sampled as OmniGen2 does.

    Args:
        transformer ([`OmniGen2Transformer2DModel`]):
            OmniGen2's diffusion transformer, which reads the references' latents in its own token
            sequence; usually with the UMO LoRA loaded (`omnigen2.lora.load_omnigen2_lora`).
        vae ([`AutoencoderKL`]):
            FLUX's VAE, which encodes the references and the image to repaint and decodes the result.
        scheduler ([`OmniGen2EulerScheduler`] or [`OmniGen2DPMSolverScheduler`]):
            The flow-matching schedule from t = 0 (noise) to 1, shifted by the image's size.
        mllm ([`Qwen2_5_VLForConditionalGeneration`]):
            Qwen2.5-VL, whose last hidden state over the chat-templated prompt conditions the transformer.
        processor ([`Qwen2_5_VLProcessor`] or its tokenizer):
            Qwen2.5-VL's processor; only its tokenizer (and chat template) is used.
    """

    model_cpu_offload_seq = "mllm->transformer->vae"

    def __init__(self, transformer: OmniGen2Transformer2DModel, vae, scheduler: OmniGen2EulerScheduler, mllm,
                 processor):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, scheduler=scheduler, mllm=mllm, processor=processor)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor * 2)

    @classmethod
    def from_pretrained(cls, folder, dtype=None, torch_dtype=None, **unsupported) -> OmniGen2Pipeline:
        """Load a local copy of the OmniGen2/OmniGen2 checkpoint (each part from its subfolder).

        diffusers' generic loader cannot be used: the checkpoint's model_index.json names the original
        project's classes. Download a copy with load_customizer("umo-omnigen2") or `hf download`.
        `torch_dtype` is taken for `dtype` as diffusers takes it (with its deprecation warning).
        """
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

    # --- the recipe's parts, in the order __call__ uses them ---

    def check_inputs(self, prompt, ref_images, height, width, num_inference_steps, cfg_range, max_pixels,
                     max_input_image_side_length, num_images_per_prompt=1, generator=None, latents=None,
                     prompt_embeds=None, output_type="pil", image=None, mask_image=None, strength=None) -> None:
        """ValueError for anything the recipe cannot use, before any model runs (arguments as in __call__)."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Give either a prompt or prompt_embeds, not both.")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError("The prompt must be a text.")
        check_step_count(num_inference_steps)
        start, end = cfg_range
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"The cfg range must satisfy 0 <= start <= end <= 1; got {start} to {end}.")
        check_output_type(output_type)
        check_references(ref_images, MAX_REFERENCES, "OmniGen2")
        for number, reference in enumerate(as_reference_list(ref_images), start=1):
            fitted = fit_size(reference.width, reference.height, max_pixels, max_input_image_side_length)
            if min(fitted) < 16:
                raise ValueError(f"Reference image {number} ({reference.width}x{reference.height}) is too narrow: "
                                 "fitted to the model's size limits, its short side falls below 16 pixels.")
        check_inpainting_inputs(image, mask_image, strength, width, height, num_inference_steps)
        if image is not None and fit_size(width, height, max_pixels) != (width, height):
            raise ValueError(f"The image to repaint ({width}x{height}) must have sides that are multiples of 16 "
                             f"and at most {max_pixels:,} pixels (max_pixels): resize it first.")
        check_image_count(num_images_per_prompt)
        check_generators(generator, num_images_per_prompt)
        if latents is not None and latents.shape[0] != num_images_per_prompt:
            raise ValueError(f"latents hold {latents.shape[0]} images but {num_images_per_prompt} were asked for.")

    def chat_prompt(self, prompt: str) -> str:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def encode_text(self, prompt: str, device, max_sequence_length: int = 1024):
        """(features [1, L, D], attention mask [1, L]) of the chat-templated prompt: Qwen's last hidden state."""
        tokens = self.tokenizer(
            [self.chat_prompt(prompt)], padding="longest", max_length=max_sequence_length, truncation=True,
            return_tensors="pt",
        )
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        features = self.mllm(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        return features.to(dtype=self.mllm.dtype, device=device), mask

    @torch.no_grad()
    def encode_prompt(self, prompt, device, num_images_per_prompt=1, prompt_embeds=None, prompt_attention_mask=None,
                      max_sequence_length=1024):
        """(features, attention mask), one row per image; the prompt is encoded once for all of them."""
        if prompt_embeds is None:
            prompt_embeds, prompt_attention_mask = self.encode_text(prompt, device, max_sequence_length)
        else:
            if prompt_attention_mask is None:
                prompt_attention_mask = torch.ones(prompt_embeds.shape[:2], dtype=torch.long)
            prompt_embeds, prompt_attention_mask = prompt_embeds.to(device), prompt_attention_mask.to(device)
        return (prompt_embeds.expand(num_images_per_prompt, -1, -1),
                prompt_attention_mask.expand(num_images_per_prompt, -1))

    def encode_references(self, references: Sequence[Image.Image], max_pixels: int, max_side: int):
        """Each reference fitted to the size limits -> its normalised VAE latent [C, h, w]."""
        latents = []
        for reference in references:
            reference = reference.convert("RGB")
            width, height = fit_size(reference.width, reference.height, max_pixels, max_side)
            latents.append(self.image_latents(reference.resize((width, height), Image.LANCZOS))[0])
        return latents

    def image_latents(self, image: Image.Image) -> torch.Tensor:
        """An RGB image (sides multiples of 16) -> normalised VAE latents [1, C, h, w] in the
        transformer's dtype (posterior mode: no random draw)."""
        pixels = self.image_processor.preprocess(image.convert("RGB"))
        vae = self.vae
        latent = vae.encode(pixels.to(device=self._execution_device, dtype=vae.dtype)).latent_dist.mode()
        latent = (latent - (vae.config.shift_factor or 0.0)) * (vae.config.scaling_factor or 1.0)
        return latent.to(self.transformer.dtype)

    def mask_latents(self, mask_image: Image.Image, height: int, width: int) -> torch.Tensor:
        """The mask averaged over each latent pixel: (1, 1, H/8, W/8)."""
        return mask_weights(mask_image, height // self.vae_scale_factor, width // self.vae_scale_factor)

    def prepare_latents(self, batch_size: int, height: int, width: int, dtype, device, generator,
                        latents: torch.Tensor | None = None) -> torch.Tensor:
        """Gaussian noise (batch, C, H/8, W/8), or the given `latents` moved to the device and dtype."""
        if latents is not None:
            return latents.to(device=device, dtype=dtype)
        shape = (batch_size, self.transformer.config.in_channels, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype)

    def prepare_timesteps(self, num_inference_steps: int, latents: torch.Tensor, device) -> torch.Tensor:
        """Sets the scheduler to OmniGen2's schedule, shifted by the latents' pixel count."""
        self.scheduler.set_timesteps(num_inference_steps, device=device,
                                     latent_pixels=latents.shape[-2] * latents.shape[-1])
        return self.scheduler.timesteps

    def velocity(self, latents, timestep, text, references) -> torch.Tensor:
        features, mask = text
        timestep = timestep.expand(latents.shape[0]).to(latents.dtype)
        return self.transformer(latents, timestep, features, mask, references=references)[0]

    def guided_velocity(self, latents, timestep, cond, negative, references, text_scale: float, image_scale: float):
        """The guided prediction of one step: one, two or three transformer passes (module docstring)."""
        v_cond = self.velocity(latents, timestep, cond, references)
        if text_scale > 1.0 and image_scale > 1.0:
            v_ref = self.velocity(latents, timestep, negative, references)
            v_uncond = self.velocity(latents, timestep, negative, None)
            return v_uncond + image_scale * (v_ref - v_uncond) + text_scale * (v_cond - v_ref)
        if text_scale > 1.0:
            v_uncond = self.velocity(latents, timestep, negative, None)
            return v_uncond + text_scale * (v_cond - v_uncond)
        return v_cond

    def decode_latents(self, latents: torch.Tensor, height: int, width: int, output_type: str):
        """Normalised latents -> images of `output_type` ("pil", "np" or "pt"), resized to height x width."""
        vae = self.vae
        latents = latents.to(vae.dtype) / (vae.config.scaling_factor or 1.0) + (vae.config.shift_factor or 0.0)
        image = self.decode_each(latents)
        if image.shape[-2:] != (height, width):
            image = F.interpolate(image, size=(height, width), mode="bilinear")
        return self.image_processor.postprocess(image, output_type=output_type)

    # --- the recipe ---

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
        r"""Generate images of `prompt` showing the subjects of `ref_images`.

        Args:
            prompt (`str`, *optional*):
                What to generate. Give either `prompt` or `prompt_embeds`.
            ref_images (`PIL.Image.Image` or a sequence of them, *optional*):
                0 to 5 reference images whose subjects the image should show, in the order the prompt
                names them; each is shrunk to fit `max_pixels` and `max_input_image_side_length`.
            negative_prompt (`str`, *optional*):
                What to steer away from, read by the guidance passes; by default the empty text.
                `DEMO_NEGATIVE_PROMPT` is the one OmniGen2's and UMO's demos use.
            height (`int`, *optional*, defaults to 1024):
                Height of the image in pixels (see `align_res` and `image`).
            width (`int`, *optional*, defaults to 1024):
                Width of the image in pixels. A size over `max_pixels` is generated smaller and resized.
            num_inference_steps (`int`, *optional*, defaults to 50):
                Denoising steps; more are slower and usually finer.
            text_guidance_scale (`float`, *optional*, defaults to 5.0):
                How strongly the prompt steers the image (`g_text` in the module docstring); 1 turns
                guidance off, leaving one transformer pass per step.
            image_guidance_scale (`float`, *optional*, defaults to 2.0):
                How strongly the references steer it (`g_img`); taken as 1 without references.
            cfg_range (`tuple[float, float]`, *optional*, defaults to `(0.0, 1.0)`):
                The share of the schedule (0 start, 1 end) where guidance applies; outside it each step
                runs one pass.
            max_pixels (`int`, *optional*, defaults to 1048576):
                The most pixels a reference or the generated image may have; larger ones are shrunk.
            max_input_image_side_length (`int`, *optional*, defaults to 2048):
                The longest side a reference may have; longer ones are shrunk.
            align_res (`bool`, *optional*, defaults to `True`):
                With exactly one reference, generate at that reference's fitted size instead of
                height x width.
            num_images_per_prompt (`int`, *optional*, defaults to 1):
                Images to generate; the prompt is encoded once for all of them.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Seeds the noise. A list holds one generator per image, so that image k is the image its
                generator gives alone.
            latents (`torch.Tensor`, *optional*):
                Noise to start from, (num_images_per_prompt, C, H/8, W/8), instead of drawing it.
            prompt_embeds (`torch.Tensor`, *optional*):
                Qwen2.5-VL features of the prompt to use instead of `prompt`.
            prompt_attention_mask (`torch.Tensor`, *optional*):
                The attention mask of `prompt_embeds`; by default every token counts.
            negative_prompt_embeds (`torch.Tensor`, *optional*):
                Features to use instead of `negative_prompt`.
            negative_prompt_attention_mask (`torch.Tensor`, *optional*):
                The attention mask of `negative_prompt_embeds`; by default every token counts.
            max_sequence_length (`int`, *optional*, defaults to 1024):
                Tokens the chat-templated prompt is truncated to.
            output_type (`str`, *optional*, defaults to `"pil"`):
                `"pil"`, `"np"`, `"pt"`, or `"latent"` for the final normalised latents, not decoded.
            return_dict (`bool`, *optional*, defaults to `True`):
                Return an [`OmniGen2PipelineOutput`] rather than a one-element tuple.
            callback_on_step_end (`Callable`, *optional*):
                Called after every step as `callback_on_step_end(pipe, step, timestep, {"latents": ...})`;
                it may return `{"latents": ...}` to replace them. Setting `pipe._interrupt = True` in it
                skips the remaining steps.
            image (`PIL.Image.Image`, *optional*):
                An image to repaint with `mask_image`: width x height, sides multiples of 16, at most
                `max_pixels`. The output then has its size (`align_res` does not apply).
            mask_image (`PIL.Image.Image`, *optional*):
                Where to repaint `image`, same size, greyscale: 255 regenerate, 0 keep, values between
                blend (averaged over each latent pixel).
            strength (`float`, *optional*, defaults to 1.0 with an image):
                The share of the steps an inpainting runs (0 < strength <= 1), from `image` noised to
                the first of them; only with an image.

        Examples:
            ```py
            >>> import torch
            >>> from huggingface_hub import hf_hub_download, snapshot_download
            >>> from PIL import Image
            >>> from umo_pipeline import OmniGen2Pipeline
            >>> from umo_pipeline.customizers.omnigen2.lora import load_omnigen2_lora
            >>> from umo_pipeline.customizers.omnigen2.pipeline import DEMO_NEGATIVE_PROMPT

            >>> pipe = OmniGen2Pipeline.from_pretrained(snapshot_download("OmniGen2/OmniGen2"), dtype=torch.bfloat16)
            >>> load_omnigen2_lora(pipe.transformer,
            ...                    hf_hub_download("bytedance-research/UMO", "UMO_OmniGen2.safetensors"))
            >>> pipe.to("cuda")
            >>> people = [Image.open("first.jpg"), Image.open("second.jpg")]
            >>> image = pipe("the two people having coffee in a cafe", ref_images=people,
            ...              negative_prompt=DEMO_NEGATIVE_PROMPT,
            ...              generator=torch.Generator("cuda").manual_seed(0)).images[0]
            >>> image.save("cafe.png")
            ```

        Returns:
            [`OmniGen2PipelineOutput`] with `images` (a list of PIL images, an array or a tensor, per
            `output_type`), or the tuple `(images,)` when `return_dict` is False.
        """
        # 1. Check inputs
        self.check_inputs(prompt, ref_images, height, width, num_inference_steps, cfg_range, max_pixels,
                          max_input_image_side_length, num_images_per_prompt, generator, latents, prompt_embeds,
                          output_type, image, mask_image, strength)

        # 2. Define call parameters
        references = as_reference_list(ref_images)
        strength = inpainting_strength(image, mask_image, strength)
        inpainting = strength is not None
        batch_size = int(num_images_per_prompt)
        self._interrupt = False
        device = self._execution_device

        # 3. Encode the prompt, and the negative prompt when text guidance reads it
        cond = self.encode_prompt(prompt, device, batch_size, prompt_embeds, prompt_attention_mask,
                                  max_sequence_length)
        negative = None
        if text_guidance_scale > 1.0:
            negative = self.encode_prompt(negative_prompt or "", device, batch_size, negative_prompt_embeds,
                                          negative_prompt_attention_mask, max_sequence_length)

        # 4. Encode the references
        ref_latents = self.encode_references(references, max_pixels, max_input_image_side_length)
        if not ref_latents:
            image_guidance_scale = 1.0

        # 5. Prepare latents, at the image's size, a lone reference's, or the request's within max_pixels
        if inpainting:
            out_width, out_height = gen_width, gen_height = width, height
        elif len(ref_latents) == 1 and align_res:
            out_width, out_height = (d * self.vae_scale_factor for d in ref_latents[0].shape[:0:-1])
            gen_width, gen_height = out_width, out_height
        else:
            out_width, out_height = width, height
            gen_width, gen_height = fit_size(width, height, max_pixels)
        latents = noise = self.prepare_latents(batch_size, gen_height, gen_width, self.transformer.dtype, device,
                                               generator, latents)

        # 6. Prepare timesteps; an inpainting starts later in them, from the image noised to that step
        timesteps = self.prepare_timesteps(num_inference_steps, latents, device)
        first = 0
        if inpainting:
            image_latents = self.image_latents(image).to(device).expand(batch_size, -1, -1, -1)
            mask = self.mask_latents(mask_image, height, width).to(device=device, dtype=latents.dtype)
            first, timesteps, latents = start_inpainting(self.scheduler, timesteps, num_inference_steps, strength,
                                                         image_latents, noise)

        # 7. Denoising loop
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step, timestep in enumerate(timesteps):
                if self.interrupt:
                    continue
                # the cfg range is a share of the whole schedule, also when an inpainting starts later in it
                text_scale, image_scale = guidance_at(
                    first + step, num_inference_steps, text_guidance_scale, image_guidance_scale, cfg_range
                )
                v = self.guided_velocity(latents, timestep, cond, negative, ref_latents, text_scale, image_scale)
                latents = self.scheduler.step(v, timestep, latents)[0].to(self.transformer.dtype)
                if inpainting:
                    latents = keep_unmasked(self.scheduler, latents, image_latents, noise, mask, timesteps, step)
                if callback_on_step_end is not None:
                    replaced = callback_on_step_end(self, step, timestep, {"latents": latents}) or {}
                    latents = replaced.get("latents", latents)
                progress_bar.update()

        # 8. Decode
        images = latents if output_type == "latent" else self.decode_latents(latents, out_height, out_width,
                                                                               output_type)
        self.maybe_free_model_hooks()
        return OmniGen2PipelineOutput(images=images) if return_dict else (images,)
