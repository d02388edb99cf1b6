"""An independent OmniGen2 sampling loop, written from the description (paper + REFERENCE.md), not from
the pipeline: it drives the raw transformer, VAE and text encoder itself, so a pipeline bug that is
not also made here shows up as a mismatch.

Description followed:
- prompt: Qwen chat markup (system message, then the user prompt), last hidden state of the encoder;
  the negative prompt goes through the same markup.
- reference: shrink (never enlarge) so that w*h <= max_pixels and the long side <= max_side, floor
  both sides to a multiple of 16, LANCZOS, scale to [-1, 1], VAE posterior mean, (z - shift) * scale.
- size: one reference -> the output takes that reference's size; otherwise the requested size,
  shrunk to max_pixels and floored to 16.
- noise: standard normal [1, 16, H/8, W/8] from a CPU generator seeded with the seed.
- time: t_k = k/n (k < n), m = sqrt((H/8)(W/8))/40, t' = t/(m - m t + t), then t_n = 1;
  Euler x += (t_{k+1} - t_k) * v.
- "dpmsolver++" instead of Euler: noise level s = 1 - t (then 0), image estimate x0 = x + s v,
  l(s) = log((1 - s) / s), h = l(s_next) - l(s), e = (1 - s_next)(exp(-h) - 1);
  x_next = (s_next / s) x - e x0, minus e/2 (x0 - x0_prev) / r with r = (l(s) - l(s_prev)) / h from
  the second step on, except on the last step.
- guidance at step k applies only when start <= k/n <= end; then with text and image guidance both
  > 1, v = u + gi (r - u) + gt (c - r) (c: prompt + refs, r: negative + refs, u: negative, no refs);
  with text guidance only, v = u + gt (c - u); with no references, image guidance counts as 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

SYSTEM = "You are a helpful assistant that generates high-quality images based on user instructions."


def encode_text(mllm, tokenizer, text: str):
    markup = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
    ids = torch.tensor([tokenizer.encode(markup, add_special_tokens=False)])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        states = mllm(ids, attention_mask=mask, output_hidden_states=True).hidden_states
    return states[-1], mask


def encode_reference(vae, image: Image.Image, max_pixels: int, max_side: int) -> torch.Tensor:
    w, h = image.size
    shrink = min(1.0, math.sqrt(max_pixels / (w * h)), max_side / max(w, h))
    size = (int(w * shrink) // 16 * 16, int(h * shrink) // 16 * 16)
    pixels = np.asarray(image.convert("RGB").resize(size, Image.LANCZOS), dtype=np.float32) / 255.0
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
    return ((z - vae.config.shift_factor) * vae.config.scaling_factor)[0]


def times(n: int, latent_pixels: int) -> list[float]:
    m = math.sqrt(latent_pixels) / 40
    ts = [(k / n) / (m - m * (k / n) + (k / n)) for k in range(n)]
    return ts + [1.0]


def log_snr(s: float) -> float:
    if s == 0:
        return math.inf
    return -math.inf if s == 1 else math.log((1 - s) / s)


def dpm_step(x, vel, k, sigmas, previous_x0, last):
    s, s_next = sigmas[k], sigmas[k + 1]
    x0 = x + s * vel
    h = log_snr(s_next) - log_snr(s)
    e = (1 - s_next) * (math.exp(-h) - 1)
    x_next = (s_next / s) * x - e * x0
    if previous_x0 is not None and not last:
        r = (log_snr(s) - log_snr(sigmas[k - 1])) / h
        x_next = x_next - 0.5 * e * (x0 - previous_x0) / r
    return x_next, x0


def sample(pipe, prompt, negative, images, width, height, steps, text_g, image_g, cfg_range, seed,
           max_pixels=1024 * 1024, max_side=2048, solver="euler") -> torch.Tensor:
    """Final normalised latents [1, 16, H/8, W/8]."""
    model, vae = pipe.transformer, pipe.vae
    cond = encode_text(pipe.mllm, pipe.tokenizer, prompt)
    neg = encode_text(pipe.mllm, pipe.tokenizer, negative)
    refs = [encode_reference(vae, im, max_pixels, max_side) for im in images]
    if len(refs) == 1:
        height, width = refs[0].shape[1] * 8, refs[0].shape[2] * 8
    else:
        shrink = min(1.0, math.sqrt(max_pixels / (width * height)))
        height, width = int(height * shrink) // 16 * 16, int(width * shrink) // 16 * 16
    x = torch.randn(1, 16, height // 8, width // 8, generator=torch.Generator().manual_seed(seed))
    ts = times(steps, (height // 8) * (width // 8))
    if not refs:
        image_g = 1.0

    def v(text, with_refs, t):
        with torch.no_grad():
            return model(x, torch.tensor([t], dtype=torch.float32), text[0], text[1],
                         references=refs if with_refs else None)[0]

    sigmas = [1 - t for t in ts[:-1]] + [0.0]
    previous_x0 = None
    for k in range(steps):
        t = ts[k]
        gt, gi = (text_g, image_g) if cfg_range[0] <= k / steps <= cfg_range[1] else (1.0, 1.0)
        c = v(cond, True, t)
        if gt > 1 and gi > 1:
            r, u = v(neg, True, t), v(neg, False, t)
            vel = u + gi * (r - u) + gt * (c - r)
        elif gt > 1:
            u = v(neg, False, t)
            vel = u + gt * (c - u)
        else:
            vel = c
        if solver == "euler":
            x = x + (ts[k + 1] - t) * vel
        else:
            x, previous_x0 = dpm_step(x, vel, k, sigmas, previous_x0, last=k == steps - 1)
    return x
