"""Test-only: UNO's sampling written plainly from its description (REFERENCE.md section 2).

Independent of umo_pipeline on purpose: its own preprocessing, packing, position ids, schedule
and Euler steps, driving the raw FLUX components. The pipeline must agree with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def preprocess(image: Image.Image, long_side: int) -> Image.Image:
    """Long side to `long_side` (LANCZOS, truncated short side), centre crop to multiples of 16."""
    image = image.convert("RGB")
    w, h = image.size
    scale = long_side / max(w, h)
    new_w = long_side if w >= h else int(scale * w)
    new_h = long_side if h > w else int(scale * h)
    image = image.resize((new_w, new_h), Image.LANCZOS)
    keep_w, keep_h = new_w - new_w % 16, new_h - new_h % 16
    x0, y0 = (new_w - keep_w) // 2, (new_h - keep_h) // 2
    return image.crop((x0, y0, x0 + keep_w, y0 + keep_h))


def pack(z: torch.Tensor) -> torch.Tensor:
    """(B, C, 2h, 2w) -> (B, h*w, 4C); a token holds its channels, each as a 2x2 (row, col) patch."""
    b, c, hh, ww = z.shape
    tokens = []
    for r in range(hh // 2):
        for col in range(ww // 2):
            patch = z[:, :, 2 * r:2 * r + 2, 2 * col:2 * col + 2]  # (B, C, 2, 2)
            tokens.append(patch.reshape(b, c * 4))
    return torch.stack(tokens, dim=1)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of `pack` for a latent grid of (2h, 2w)."""
    b, _, d = tokens.shape
    c = d // 4
    z = torch.empty(b, c, 2 * h, 2 * w, dtype=tokens.dtype)
    for i in range(h * w):
        r, col = divmod(i, w)
        z[:, :, 2 * r:2 * r + 2, 2 * col:2 * col + 2] = tokens[:, i].reshape(b, c, 2, 2)
    return z


def grid_ids(rows: int, cols: int, row0: int, col0: int) -> torch.Tensor:
    return torch.tensor([[0.0, row0 + r, col0 + c] for r in range(rows) for c in range(cols)])


def schedule(steps: int, height: int, width: int) -> list[float]:
    """linspace(1, 0, steps+1) shifted by exp(mu)/(exp(mu) + (1/t - 1)), UNO's L = (W//8)*(H//8)//256."""
    length = (width // 8) * (height // 8) // 256
    mu = 0.5 + (length - 256) * (1.15 - 0.5) / (4096 - 256)
    times = [1 - i / steps for i in range(steps + 1)]
    return [0.0 if t == 0 else math.exp(mu) / (math.exp(mu) + (1 / t - 1)) for t in times]


def encode_text(components: dict, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """T5 last hidden state padded to 512 tokens, CLIP pooled output padded to 77."""
    t5_ids = components["tokenizer_2"](prompt, padding="max_length", max_length=512, truncation=True,
                                       return_tensors="pt").input_ids
    clip_ids = components["tokenizer"](prompt, padding="max_length", max_length=77, truncation=True,
                                       return_tensors="pt").input_ids
    with torch.no_grad():
        t5 = components["text_encoder_2"](t5_ids).last_hidden_state
        pooled = components["text_encoder"](clip_ids).pooler_output
    return t5, pooled


@torch.no_grad()
def sample(components: dict, *, seed: int, references: list[Image.Image], height: int, width: int,
           steps: int, guidance: float, prompt: str | None = None,
           prompt_embeds: torch.Tensor | None = None, pooled: torch.Tensor | None = None):
    """UNO's loop for one image: returns (final packed target latents, decoded HxWx3 float image in [0, 1])."""
    vae, transformer = components["vae"], components["transformer"]
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor
    if prompt is not None:
        prompt_embeds, pooled = encode_text(components, prompt)

    height, width = height // 16 * 16, width // 16 * 16
    rows, cols = math.ceil(height / 16), math.ceil(width / 16)
    noise = torch.randn(1, 16, 2 * rows, 2 * cols, generator=torch.Generator().manual_seed(seed))
    x = pack(noise)
    ids = [grid_ids(rows, cols, 0, 0)]

    ref_tokens = []
    row_shift, col_shift = rows, cols
    long_side = 512 if len(references) == 1 else 320
    for image in references:
        image = preprocess(image, long_side)
        pixels = torch.tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1)[None] / 255 * 2 - 1
        z = (vae.encode(pixels).latent_dist.mode() - shift) * scale
        ref_tokens.append(pack(z))
        ref_rows, ref_cols = z.shape[2] // 2, z.shape[3] // 2
        ids.append(grid_ids(ref_rows, ref_cols, row_shift, col_shift))
        row_shift, col_shift = row_shift + ref_rows, col_shift + ref_cols
    ids = torch.cat(ids)
    text_ids = torch.zeros(prompt_embeds.shape[1], 3)

    times = schedule(steps, height, width)
    for t, t_next in zip(times[:-1], times[1:]):
        velocity = transformer(
            hidden_states=torch.cat([x, *ref_tokens], dim=1),
            timestep=torch.full((1,), t),
            guidance=torch.full((1,), guidance),
            pooled_projections=pooled,
            encoder_hidden_states=prompt_embeds,
            txt_ids=text_ids,
            img_ids=ids,
            return_dict=False,
        )[0][:, : rows * cols]
        x = x + (t_next - t) * velocity

    decoded = vae.decode(unpack(x, rows, cols) / scale + shift).sample
    image = (decoded[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()
    return x, image
