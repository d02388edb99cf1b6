"""UNOPipeline: UNO's multi-reference sampler (FLUX.1-dev + reference tokens + UnoPE) on diffusers.

UNO conditions FLUX on up to four reference images by VAE-encoding them, packing them like the
image being generated, and appending their tokens after the target tokens in every attention block.
Their rotary position ids continue diagonally after the target grid ("UnoPE"), so each reference
sits in its own region of position space. The UNO and UMO LoRAs were trained with exactly this
recipe, including UNO's own resolution shift (mu) for the schedule, so it is reproduced exactly
here rather than approximated with FluxPipeline's defaults.

Given an `image` and a `mask_image`, the pipeline repaints the image inside the mask (diffusers'
FluxInpaintPipeline convention): it runs the last `strength` share of the steps, from the image's
latents noised to the first of them, and after every step puts back the image's latents, noised to
the next step's level (clean after the last), wherever the mask says keep; a soft mask blends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from diffusers.pipelines.flux.pipeline_output import FluxPipelineOutput
from diffusers.utils.torch_utils import get_module_execution_device, randn_tensor
from PIL import Image

from umo_pipeline.customizers.diffusers_internals import (
    clip_pooled_prompt_embeds, pack_latents, t5_prompt_embeds, token_position_ids, unpack_latents,
)
from umo_pipeline.customizers.pipeline_inputs import (
    CustomizationPipelineMixin, as_reference_list, check_generators, check_image_count, check_inpainting_inputs,
    check_output_type, check_references, check_step_count, inpainting_strength, keep_unmasked, mask_weights,
    start_inpainting,
)
from umo_pipeline.customizers.uno import MAX_REFERENCES
from umo_pipeline.customizers.uno.lora import UNOLoraLoaderMixin
from umo_pipeline.customizers.uno.references import (  # still importable from here (__all__)
    MULTI_REFERENCE_LONG_SIDE, PIXELS_PER_TOKEN, SINGLE_REFERENCE_LONG_SIDE, check_reference_sizes,
    preprocess_reference, reference_long_side, reference_tokens,
)

__all__ = [
    "MAX_SIDE", "MIN_SIDE", "MULTI_REFERENCE_LONG_SIDE", "PIXELS_PER_TOKEN", "SINGLE_REFERENCE_LONG_SIDE",
    "UNOPipeline", "check_reference_sizes", "images_to_generate", "output_size", "preprocess_reference",
    "reference_long_side", "reference_tokens", "uno_mu", "unope_position_ids",
]

MIN_SIDE = 64
MAX_SIDE = 2048


def uno_mu(height: int, width: int) -> float:
    """UNO's schedule shift: FLUX's linear rule, evaluated at (W//8)*(H//8)//256.

    That is the target token count divided by 64 (36 at 768x768, mu ~0.463), not the token count
    FluxPipeline uses (2304, mu ~0.847); the LoRAs were trained and tuned with UNO's value.
    """
    return calculate_shift((width // 8) * (height // 8) // 256, 256, 4096, 0.5, 1.15)


def unope_position_ids(target_grid: tuple[int, int], reference_grids: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Rotary ids (0, row, col) for the target tokens, then each reference's tokens (UnoPE).

    Grids are (rows, cols) in tokens. Reference k is shifted down and right by the target grid plus
    the grids of references 0..k-1, so no two images share a position; the first axis stays 0
    (FLUX Kontext marks references with 1 there instead).
    """
    row_offset, col_offset = target_grid
    ids = [token_position_ids(*target_grid)]
    for rows, cols in reference_grids:
        reference_ids = token_position_ids(rows, cols)
        reference_ids[:, 1] += row_offset
        reference_ids[:, 2] += col_offset
        ids.append(reference_ids)
        row_offset += rows
        col_offset += cols
    return torch.cat(ids)


def output_size(height: int, width: int) -> tuple[int, int]:
    """The size UNO generates for a requested size: each side floored to a multiple of 16.

    Requests outside MIN_SIDE..MAX_SIDE pixels are refused rather than silently changed.
    """
    sides = []
    for name, value in (("height", height), ("width", width)):
        # UI number fields often deliver 768.0: accept whole floats, refuse 768.5 rather than guess
        whole = isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and value.is_integer())
        if not whole or isinstance(value, bool):
            raise ValueError(f"The image {name} must be a whole number of pixels, not {value!r}.")
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise ValueError(
                f"The image {name} must be between {MIN_SIDE} and {MAX_SIDE} pixels; {value:g} was asked for."
            )
        sides.append(int(value) // PIXELS_PER_TOKEN * PIXELS_PER_TOKEN)
    return sides[0], sides[1]


def images_to_generate(prompt, prompt_embeds, num_images_per_prompt: int) -> int:
    """How many images a call makes: num_images_per_prompt for each prompt (or row of prompt_embeds)."""
    prompts = (1 if isinstance(prompt, str) else len(prompt)) if prompt is not None else len(prompt_embeds)
    return prompts * num_images_per_prompt


class UNOPipeline(DiffusionPipeline, UNOLoraLoaderMixin, CustomizationPipelineMixin):
    r"""Prompt + 0..4 reference images -> image, sampled exactly as UNO does, on FLUX.1-dev components.

    Sizes that are not multiples of 16 are floored to the nearest multiple of 16 (as UNO does), so
    a 770x500 request gives a 768x496 image; sides must be 64..2048 pixels.

    Args:
        scheduler ([`FlowMatchEulerDiscreteScheduler`]):
            FLUX's scheduler, configured with `use_dynamic_shifting=True`; each call sets UNO's schedule on it.
        vae ([`AutoencoderKL`]):
            FLUX's VAE. It encodes the references and the image to repaint and decodes the result; UNO
            runs it in float32.
        text_encoder ([`CLIPTextModel`], *optional*):
            CLIP ViT-L/14, whose pooled output conditions every block. May be None when `prompt_embeds`
            and `pooled_prompt_embeds` are passed instead of a prompt; so may the other text components.
        tokenizer ([`CLIPTokenizer`], *optional*):
            CLIP's tokenizer (77 tokens).
        text_encoder_2 ([`T5EncoderModel`], *optional*):
            T5-XXL, whose token embeddings the transformer attends to.
        tokenizer_2 ([`T5TokenizerFast`], *optional*):
            T5's tokenizer; prompts are padded to `max_sequence_length` tokens.
        transformer ([`FluxTransformer2DModel`]):
            FLUX.1-dev's transformer, usually with UNO's and UMO's LoRAs loaded (`load_lora_weights`,
            `load_umo_adapters`).
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->vae"
    _optional_components = ["text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"]
    _callback_tensor_inputs = ["latents", "prompt_embeds"]

    def __init__(self, scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer):
        super().__init__()
        self.register_modules(
            scheduler=scheduler,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            text_encoder_2=text_encoder_2,
            tokenizer_2=tokenizer_2,
            transformer=transformer,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor * 2)
        self.tokenizer_max_length = self.tokenizer.model_max_length if self.tokenizer is not None else 77

    # --- the recipe's parts, in the order __call__ uses them ---

    def check_inputs(self, prompt, ref_images, height, width, num_inference_steps, num_images_per_prompt, generator,
                     prompt_embeds, pooled_prompt_embeds, output_type, callback_on_step_end_tensor_inputs,
                     image=None, mask_image=None, strength=None, ref_long_side=None) -> None:
        """ValueError for anything the recipe cannot use, before any model runs (arguments as in __call__)."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Give either a prompt or prompt_embeds (with pooled_prompt_embeds), not both.")
        texts = [prompt] if isinstance(prompt, str) else prompt
        if prompt is not None and not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
            raise ValueError("The prompt must be a text or a list of texts.")
        if prompt_embeds is not None and pooled_prompt_embeds is None:
            raise ValueError("prompt_embeds were given without pooled_prompt_embeds: pass both (T5 and CLIP).")
        if prompt is not None and (self.text_encoder is None or self.text_encoder_2 is None):
            raise ValueError("This pipeline was loaded without its text encoders: pass prompt_embeds and "
                             "pooled_prompt_embeds instead of a prompt.")
        check_step_count(num_inference_steps)
        check_image_count(num_images_per_prompt)
        check_output_type(output_type)
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"Step callbacks can receive {self._callback_tensor_inputs}, not {sorted(unknown)}.")
        check_references(ref_images, MAX_REFERENCES, "UNO")
        check_reference_sizes(as_reference_list(ref_images), ref_long_side)
        height, width = output_size(height, width)  # the image to repaint must have the floored size
        check_inpainting_inputs(image, mask_image, strength, width, height, num_inference_steps)
        check_generators(generator, images_to_generate(prompt, prompt_embeds, num_images_per_prompt))

    def encode_prompt(self, prompt, device, num_images_per_prompt=1, prompt_embeds=None,
                      pooled_prompt_embeds=None, max_sequence_length=512):
        """(T5 token embeddings, CLIP pooled embedding, text ids), one row per image to generate.

        FLUX's encoding is UNO's too: T5 padded to `max_sequence_length` tokens without a mask, and
        CLIP's pooled output."""
        if prompt_embeds is None:
            pooled_prompt_embeds = clip_pooled_prompt_embeds(self, prompt, num_images_per_prompt, device)
            prompt_embeds = t5_prompt_embeds(self, prompt, num_images_per_prompt, max_sequence_length, device)
        else:
            # given embeddings hold one row per prompt; FluxPipeline forgets to repeat them
            prompt_embeds = prompt_embeds.to(device).repeat_interleave(num_images_per_prompt, dim=0)
            pooled_prompt_embeds = pooled_prompt_embeds.to(device).repeat_interleave(num_images_per_prompt, dim=0)
        text_ids = torch.zeros(prompt_embeds.shape[1], 3, device=device, dtype=prompt_embeds.dtype)
        return prompt_embeds, pooled_prompt_embeds, text_ids

    def encode_references(self, references: Sequence[Image.Image], batch_size: int, device, dtype,
                          long_side: int | None = None):
        """Packed, normalised reference latents (batch, tokens, 64) and each reference's token grid."""
        long_side = reference_long_side(len(references), long_side)
        tokens, grids = [], []
        for reference in references:
            image = preprocess_reference(reference, long_side)
            tokens.append(self.image_latents(image))
            grids.append((image.height // PIXELS_PER_TOKEN, image.width // PIXELS_PER_TOKEN))
        if not tokens:
            return None, grids
        packed = torch.cat(tokens, dim=1).to(device=device, dtype=dtype)
        return packed.expand(batch_size, -1, -1), grids

    def image_latents(self, image: Image.Image) -> torch.Tensor:
        """An RGB image (sides multiples of 16) as packed, normalised latents (1, tokens, 64), in the
        VAE's dtype on its device: the posterior's mode, so no random draw."""
        pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0
        pixels = pixels.to(device=get_module_execution_device(self.vae), dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.mode()
        latents = (latents - self.vae.config.shift_factor) * self.vae.config.scaling_factor
        _, channels, rows, cols = latents.shape
        return pack_latents(latents, 1, channels, rows, cols)

    def mask_latents(self, mask_image: Image.Image, height: int, width: int) -> torch.Tensor:
        """The mask averaged over each latent pixel and packed like the latents: (1, tokens, 64)."""
        rows, cols = height // self.vae_scale_factor, width // self.vae_scale_factor
        channels = self.transformer.config.in_channels // 4
        weights = mask_weights(mask_image, rows, cols).repeat(1, channels, 1, 1)
        return pack_latents(weights, 1, channels, rows, cols)

    def prepare_latents(self, batch_size: int, height: int, width: int, dtype, device, generator) -> torch.Tensor:
        """Packed Gaussian noise for the target, drawn as UNO does: (16, H/8, W/8) per image."""
        channels = self.transformer.config.in_channels // 4
        rows, cols = height // self.vae_scale_factor, width // self.vae_scale_factor
        noise = randn_tensor((batch_size, channels, rows, cols), generator=generator, device=device, dtype=dtype)
        return pack_latents(noise, batch_size, channels, rows, cols)

    def prepare_timesteps(self, num_inference_steps: int, height: int, width: int, device) -> torch.Tensor:
        """Sets the scheduler to UNO's schedule: linspace(1, 0, n+1) time-shifted with UNO's mu."""
        if not self.scheduler.config.get("use_dynamic_shifting", False):
            raise ValueError("UNO needs FLUX's scheduler (FlowMatchEulerDiscreteScheduler with "
                             "use_dynamic_shifting=True); this pipeline was given another configuration.")
        sigmas = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]  # the scheduler appends the final 0
        self.scheduler.set_timesteps(sigmas=sigmas, mu=uno_mu(height, width), device=device)
        self.scheduler.set_begin_index(0)
        return self.scheduler.timesteps

    def decode_latents(self, latents: torch.Tensor, height: int, width: int, output_type: str):
        """Packed target latents -> images of `output_type` ("pil", "np" or "pt")."""
        latents = unpack_latents(latents, height, width, self.vae_scale_factor)
        # into the VAE's dtype first, so the un-normalisation runs at its precision (fp32 in UNO)
        latents = latents.to(device=get_module_execution_device(self.vae), dtype=self.vae.dtype)
        latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        return self.image_processor.postprocess(self.decode_each(latents), output_type=output_type)

    # --- the recipe ---

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        ref_images: Sequence[Image.Image] | Image.Image | None = None,
        height: int = 768,
        width: int = 768,
        num_inference_steps: int = 25,
        guidance_scale: float = 4.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        joint_attention_kwargs: dict | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        max_sequence_length: int = 512,
        image: Image.Image | None = None,
        mask_image: Image.Image | None = None,
        strength: float | None = None,
        ref_long_side: int | None = None,
    ):
        r"""Generate images of `prompt` showing the subjects of `ref_images`.

        Args:
            prompt (`str` or `list[str]`, *optional*):
                What to generate; a list makes `num_images_per_prompt` images for each text. Give either
                `prompt` or `prompt_embeds`.
            ref_images (`PIL.Image.Image` or a sequence of them, *optional*):
                0 to 4 reference images whose subjects the image should show, in the order the prompt
                names them. Each is resized (long side `ref_long_side`) and centre-cropped to multiples
                of 16 pixels, as UNO does.
            height (`int`, *optional*, defaults to 768):
                Height of the image in pixels, 64 to 2048; floored to a multiple of 16.
            width (`int`, *optional*, defaults to 768):
                Width of the image in pixels, 64 to 2048; floored to a multiple of 16.
            num_inference_steps (`int`, *optional*, defaults to 25):
                Denoising steps on UNO's schedule; more are slower and usually finer.
            guidance_scale (`float`, *optional*, defaults to 4.0):
                FLUX.1-dev's distilled guidance, fed to the transformer as an input (one pass per step,
                no negative prompt). Ignored by a transformer without guidance embeddings.
            num_images_per_prompt (`int`, *optional*, defaults to 1):
                Images to generate for each prompt.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Seeds the noise. A list holds one generator per image, so that image k is the image its
                generator gives alone.
            prompt_embeds (`torch.Tensor`, *optional*):
                T5 token embeddings (one row per prompt) to use instead of `prompt`; the text components
                may then be None.
            pooled_prompt_embeds (`torch.Tensor`, *optional*):
                CLIP pooled embeddings (one row per prompt); required with `prompt_embeds`.
            output_type (`str`, *optional*, defaults to `"pil"`):
                `"pil"`, `"np"`, `"pt"`, or `"latent"` for the final packed target latents
                (batch, H/16 * W/16, 64), not decoded.
            return_dict (`bool`, *optional*, defaults to `True`):
                Return a [`FluxPipelineOutput`] rather than a one-element tuple.
            joint_attention_kwargs (`dict`, *optional*):
                Passed to the transformer's attention processors (for instance a LoRA `scale`).
            callback_on_step_end (`Callable`, *optional*):
                Called after every step as `callback_on_step_end(pipe, step, timestep, tensors)` with the
                tensors named in `callback_on_step_end_tensor_inputs`; it may return a dict replacing
                some of them. Setting `pipe._interrupt = True` in it skips the remaining steps.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, *optional*, defaults to `("latents",)`):
                The tensors the callback receives: `"latents"` and/or `"prompt_embeds"`.
            max_sequence_length (`int`, *optional*, defaults to 512):
                T5 tokens the prompt is padded or truncated to (UNO's 512).
            image (`PIL.Image.Image`, *optional*):
                An image to repaint, exactly the generated size (after flooring), with `mask_image`.
            mask_image (`PIL.Image.Image`, *optional*):
                Where to repaint `image`, same size, greyscale: 255 regenerate, 0 keep, values between
                blend (averaged over each latent pixel).
            strength (`float`, *optional*, defaults to 1.0 with an image):
                The share of the steps an inpainting runs (0 < strength <= 1), from `image` noised to
                the first of them; only with an image. The seeded noise is drawn as without an image,
                so strength 1 with an all-white mask gives the plain generation.
            ref_long_side (`int`, *optional*):
                The long side references are resized to, in pixels; by default UNO's: 512 for one
                reference, 320 for several.

        Examples:
            ```py
            >>> import torch
            >>> from huggingface_hub import hf_hub_download
            >>> from PIL import Image
            >>> from umo_pipeline import UNOPipeline

            >>> pipe = UNOPipeline.from_pretrained("black-forest-labs/FLUX.1-dev", dtype=torch.bfloat16)
            >>> pipe.vae.to(torch.float32)  # UNO encodes and decodes in float32
            >>> pipe.load_umo_adapters(hf_hub_download("bytedance-research/UNO", "dit_lora.safetensors"),
            ...                        hf_hub_download("bytedance-research/UMO", "UMO_UNO.safetensors"))
            >>> pipe.set_adapters("umo")
            >>> pipe.to("cuda")
            >>> people = [Image.open("first.jpg"), Image.open("second.jpg")]
            >>> image = pipe("the two people having coffee in a cafe", ref_images=people,
            ...              generator=torch.Generator("cuda").manual_seed(0)).images[0]
            >>> image.save("cafe.png")
            ```

        Returns:
            [`FluxPipelineOutput`] with `images` (a list of PIL images, an array or a tensor, per
            `output_type`), or the tuple `(images,)` when `return_dict` is False.
        """
        # 1. Check inputs
        self.check_inputs(prompt, ref_images, height, width, num_inference_steps, num_images_per_prompt, generator,
                          prompt_embeds, pooled_prompt_embeds, output_type, callback_on_step_end_tensor_inputs,
                          image, mask_image, strength, ref_long_side)

        # 2. Define call parameters
        height, width = output_size(height, width)
        references = as_reference_list(ref_images)
        strength = inpainting_strength(image, mask_image, strength)
        inpainting = strength is not None
        self._interrupt = False
        device = self._execution_device
        batch_size = images_to_generate(prompt, prompt_embeds, num_images_per_prompt)

        # 3. Encode the prompt
        prompt_embeds, pooled_prompt_embeds, text_ids = self.encode_prompt(
            prompt, device, num_images_per_prompt, prompt_embeds, pooled_prompt_embeds, max_sequence_length
        )
        dtype = prompt_embeds.dtype

        # 4. Encode the references
        reference_latents, reference_grids = self.encode_references(references, batch_size, device, dtype,
                                                                   ref_long_side)

        # 5. Prepare latents, and the rotary ids of the target then each reference (UnoPE)
        latents = noise = self.prepare_latents(batch_size, height, width, dtype, device, generator)
        target_grid = (height // PIXELS_PER_TOKEN, width // PIXELS_PER_TOKEN)
        image_ids = unope_position_ids(target_grid, reference_grids).to(device)
        n_target_tokens = latents.shape[1]

        # 6. Prepare timesteps; an inpainting starts later in them, from the image noised to that step
        timesteps = self.prepare_timesteps(num_inference_steps, height, width, device)
        first = 0
        if inpainting:
            image_latents = self.image_latents(image).to(device=device, dtype=dtype).expand(batch_size, -1, -1)
            mask = self.mask_latents(mask_image, height, width).to(device=device, dtype=dtype)
            first, timesteps, latents = start_inpainting(self.scheduler, timesteps, num_inference_steps, strength,
                                                         image_latents, noise)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((batch_size,), guidance_scale, device=device, dtype=torch.float32)

        # 7. Denoising loop
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step, timestep in enumerate(timesteps):
                if self.interrupt:
                    continue
                tokens = latents if reference_latents is None else torch.cat([latents, reference_latents], dim=1)
                # UNO feeds the sigma itself; timestep / 1000 could differ from it in the last bit
                sigma = self.scheduler.sigmas[first + step].to(device=device, dtype=dtype).expand(batch_size)
                # diffusers' cache hooks (the "Faster, approximate" preset) keep their state per context
                with self.transformer.cache_context("cond"):
                    prediction = self.transformer(
                        hidden_states=tokens,
                        timestep=sigma,
                        guidance=guidance,
                        pooled_projections=pooled_prompt_embeds,
                        encoder_hidden_states=prompt_embeds,
                        txt_ids=text_ids,
                        img_ids=image_ids,
                        joint_attention_kwargs=joint_attention_kwargs,
                        return_dict=False,
                    )[0][:, :n_target_tokens]
                latents = self.scheduler.step(prediction, timestep, latents, return_dict=False)[0].to(dtype)
                if inpainting:
                    latents = keep_unmasked(self.scheduler, latents, image_latents, noise, mask, timesteps, step)

                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                    wanted = {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                    replaced = callback_on_step_end(self, step, timestep, wanted) or {}
                    latents = replaced.get("latents", latents)
                    prompt_embeds = replaced.get("prompt_embeds", prompt_embeds)
                progress_bar.update()

        # 8. Decode
        images = latents if output_type == "latent" else self.decode_latents(latents, height, width, output_type)
        self.maybe_free_model_hooks()
        return FluxPipelineOutput(images=images) if return_dict else (images,)
