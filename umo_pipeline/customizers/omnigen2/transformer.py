"""The OmniGen2 diffusion transformer, written for this project from the paper and public description.

Loads the published `OmniGen2/OmniGen2` transformer checkpoint (config and weights) unchanged: every
parameter name and shape matches (tests/data/omnigen2_transformer_params.json.gz pins them).

Token layout of one sample in the joint stream: [text tokens][reference 1]...[reference k][target].
Each part is first refined alone (text without timestep modulation; target and each reference with
it, every reference in its own sequence), then all tokens attend to each other in the main layers.
Rotary positions use three axes: text token n sits at (n, n, n); reference j at (s_j, row, col) and
the target at (s_target, row, col), where s starts at the text length and advances by the longer
side (in tokens) of each reference, so images never share a first-axis position.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_1d_rotary_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import LuminaLayerNormContinuous, RMSNorm
from diffusers.models.transformers.transformer_lumina2 import Lumina2TransformerBlock
from torch import nn

# learned embeddings tell the references apart: one per reference slot, the checkpoint's five
from umo_pipeline.customizers.omnigen2 import MAX_REFERENCES


class TimestepAndTextEmbedding(nn.Module):
    """Timestep -> conditioning vector (width min(hidden, 1024)); text features -> hidden width."""

    def __init__(self, hidden_size: int, text_feat_dim: int, norm_eps: float, timestep_scale: float):
        super().__init__()
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0.0, scale=timestep_scale)
        self.timestep_embedder = TimestepEmbedding(in_channels=256, time_embed_dim=min(hidden_size, 1024))
        self.caption_embedder = nn.Sequential(
            RMSNorm(text_feat_dim, eps=norm_eps), nn.Linear(text_feat_dim, hidden_size, bias=True)
        )

    def forward(self, timestep: torch.Tensor, text_features: torch.Tensor, dtype: torch.dtype):
        temb = self.timestep_embedder(self.time_proj(timestep).to(dtype))
        return temb, self.caption_embedder(text_features)


def patchify(latent: torch.Tensor, p: int) -> torch.Tensor:
    """[C, H, W] -> [(H/p)(W/p), p*p*C], row-major tokens, each token ordered (p1, p2, c)."""
    c, h, w = latent.shape
    x = latent.reshape(c, h // p, p, w // p, p).permute(1, 3, 2, 4, 0)
    return x.reshape((h // p) * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, h: int, w: int, p: int) -> torch.Tensor:
    """Inverse of patchify: [(H/p)(W/p), p*p*C] -> [C, H, W]."""
    c = tokens.shape[-1] // (p * p)
    x = tokens.reshape(h // p, w // p, p, p, c).permute(4, 0, 2, 1, 3)
    return x.reshape(c, h, w)


def grid_positions(first: int, rows: int, cols: int, device) -> torch.Tensor:
    r = torch.arange(rows, device=device).repeat_interleave(cols)
    c = torch.arange(cols, device=device).repeat(rows)
    return torch.stack([torch.full_like(r, first), r, c], dim=-1)


class OmniGen2Transformer2DModel(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """OmniGen2's diffusion transformer (Lumina2-style blocks, grouped-query attention, 3-axis RoPE)."""

    _supports_gradient_checkpointing = False
    _no_split_modules = ["Lumina2TransformerBlock"]
    #: what regional compilation (compile_repeated_blocks) and fp8 compute work on
    _repeated_blocks = ["Lumina2TransformerBlock"]
    _skip_layerwise_casting_patterns = ["x_embedder", "norm"]

    @register_to_config
    def __init__(
        self,
        patch_size: int = 2,
        in_channels: int = 16,
        out_channels: int | None = None,
        hidden_size: int = 2304,
        num_layers: int = 26,
        num_refiner_layers: int = 2,
        num_attention_heads: int = 24,
        num_kv_heads: int = 8,
        multiple_of: int = 256,
        ffn_dim_multiplier: float | None = None,
        norm_eps: float = 1e-5,
        axes_dim_rope: tuple[int, int, int] = (32, 32, 32),
        axes_lens: tuple[int, int, int] = (300, 512, 512),
        text_feat_dim: int = 1024,
        timestep_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if hidden_size // num_attention_heads != sum(axes_dim_rope):
            raise ValueError(
                f"head width {hidden_size // num_attention_heads} must equal the sum of axes_dim_rope {axes_dim_rope}"
            )
        self.out_channels = out_channels or in_channels
        token_width = patch_size * patch_size * in_channels

        def blocks(n: int, modulation: bool) -> nn.ModuleList:
            return nn.ModuleList(
                Lumina2TransformerBlock(
                    hidden_size, num_attention_heads, num_kv_heads, multiple_of, ffn_dim_multiplier, norm_eps,
                    modulation=modulation,
                )
                for _ in range(n)
            )

        self.x_embedder = nn.Linear(token_width, hidden_size)
        self.ref_image_patch_embedder = nn.Linear(token_width, hidden_size)
        self.time_caption_embed = TimestepAndTextEmbedding(hidden_size, text_feat_dim, norm_eps, timestep_scale)
        self.noise_refiner = blocks(num_refiner_layers, True)
        self.ref_image_refiner = blocks(num_refiner_layers, True)
        self.context_refiner = blocks(num_refiner_layers, False)
        self.layers = blocks(num_layers, True)
        self.norm_out = LuminaLayerNormContinuous(
            embedding_dim=hidden_size,
            conditioning_embedding_dim=min(hidden_size, 1024),
            elementwise_affine=False,
            eps=1e-6,
            bias=True,
            out_dim=patch_size * patch_size * self.out_channels,
        )
        self.image_index_embedding = nn.Parameter(torch.randn(MAX_REFERENCES, hidden_size) * 0.02)
        self._rope_tables: list[torch.Tensor] | None = None

    # --- rotary positions -------------------------------------------------------------------
    def rope_tables(self) -> list[torch.Tensor]:
        """Per-axis complex rotation tables (float64 precision, like the original), built once."""
        if self._rope_tables is None:
            self._rope_tables = [
                get_1d_rotary_pos_embed(d, n, theta=10000, freqs_dtype=torch.float64)
                for d, n in zip(self.config.axes_dim_rope, self.config.axes_lens)
            ]
        return self._rope_tables

    def rotary(self, positions: torch.Tensor) -> torch.Tensor:
        """positions [..., 3] (int) -> complex rotations [..., head_dim / 2]."""
        tables = self.rope_tables()
        if positions.numel() and any(int(positions[..., a].max()) >= len(t) for a, t in enumerate(tables)):
            raise ValueError(f"an image or prompt is too large for this model's positions {self.config.axes_lens}")
        parts = [table.to(positions.device)[positions[..., axis]] for axis, table in enumerate(tables)]
        return torch.cat(parts, dim=-1)

    # --- forward ------------------------------------------------------------------------------
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        text_hidden_states: torch.Tensor,
        text_attention_mask: torch.Tensor,
        references: Sequence[torch.Tensor] | None = None,
        return_dict: bool = False,
    ):
        """Velocity for target latents [B, C, H, W] at times t in [0, 1] (0 = noise, 1 = image).

        text_hidden_states [B, L, text_feat_dim] with its mask [B, L]; references: latents [C, h, w]
        shared by every sample of the batch (None or empty: no reference).
        """
        references = list(references or [])
        if len(references) > MAX_REFERENCES:
            raise ValueError(f"at most {MAX_REFERENCES} references, got {len(references)}")
        p = self.config.patch_size
        batch, _, height, width = hidden_states.shape
        device, dtype = hidden_states.device, hidden_states.dtype
        timestep = timestep.expand(batch) if timestep.ndim == 0 or timestep.shape[0] == 1 else timestep
        text_mask = text_attention_mask.bool()

        temb, text = self.time_caption_embed(timestep, text_hidden_states, dtype)
        text_lengths = [int(n) for n in text_mask.sum(dim=1)]
        text_pos = torch.arange(text.shape[1], device=device)[:, None].expand(-1, 3)
        # like the original, the first `length` slots are the prompt (tokenizers pad on the right)
        leading = torch.arange(text.shape[1], device=device)[None] < torch.tensor(text_lengths, device=device)[:, None]
        text_rot = self.rotary(text_pos)[None] * leading[..., None]
        for layer in self.context_refiner:
            text = layer(text, text_mask, text_rot)

        target = torch.stack([patchify(latent, p) for latent in hidden_states])
        target = self.x_embedder(target)
        ref_tokens = self.embed_references(references, batch, dtype)
        ref_grids = [(r.shape[1] // p, r.shape[2] // p) for r in references]
        target_grid = (height // p, width // p)

        outputs = []
        for i in range(batch):
            positions = self.image_positions(text_lengths[i], ref_grids, target_grid, device)
            n_ref = sum(h * w for h, w in ref_grids)
            ref_rot = self.rotary(positions[:n_ref])
            target_rot = self.rotary(positions[n_ref:])
            refined_refs = self.refine_references(ref_tokens, ref_grids, ref_rot, temb[i : i + 1], i)
            refined_target = target[i : i + 1]
            for layer in self.noise_refiner:
                refined_target = layer(refined_target, None, target_rot[None], temb[i : i + 1])
            text_i = text[i : i + 1, : text_lengths[i]]
            joint = torch.cat([text_i, *refined_refs, refined_target], dim=1)
            joint_rot = torch.cat([self.rotary(text_pos[: text_lengths[i]]), ref_rot, target_rot])[None]
            for layer in self.layers:
                joint = layer(joint, None, joint_rot, temb[i : i + 1])
            joint = self.norm_out(joint, temb[i : i + 1])
            outputs.append(unpatchify(joint[0, -target.shape[1]:], height, width, p))
        sample = torch.stack(outputs)
        return Transformer2DModelOutput(sample=sample) if return_dict else (sample,)

    def image_positions(self, text_length: int, ref_grids, target_grid, device) -> torch.Tensor:
        """Rotary positions of every reference token then every target token."""
        first = text_length
        parts = []
        for rows, cols in ref_grids:
            parts.append(grid_positions(first, rows, cols, device))
            first += max(rows, cols)
        parts.append(grid_positions(first, *target_grid, device))
        return torch.cat(parts)

    def embed_references(self, references: list[torch.Tensor], batch: int, dtype) -> list[torch.Tensor]:
        p = self.config.patch_size
        embedded = []
        for index, latent in enumerate(references):
            tokens = self.ref_image_patch_embedder(patchify(latent.to(dtype), p))
            embedded.append(tokens + self.image_index_embedding[index])
        return embedded

    def refine_references(self, ref_tokens, ref_grids, ref_rot, temb, sample: int) -> list[torch.Tensor]:
        """Each reference goes through the reference refiner in its own sequence."""
        refined, start = [], 0
        for tokens, (rows, cols) in zip(ref_tokens, ref_grids):
            n = rows * cols
            x = tokens[None]
            for layer in self.ref_image_refiner:
                x = layer(x, None, ref_rot[start : start + n][None], temb)
            refined.append(x)
            start += n
        return refined
