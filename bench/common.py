"""Full-size models with random weights, for the GPU bench (bench/gpu_speed.py) and any later one.

Speed and memory do not depend on the values of the weights, so nothing is downloaded and no licence
is needed: modules of the published shapes (FLUX.1-dev's transformer and VAE, T5-XXL, CLIP-L,
OmniGen2's transformer, a Qwen2.5-VL-3B text encoder) are built on the meta device and filled where
they run (`random_init_`). `small=True` gives narrow versions of the same classes for a CPU dry run.
"""

from __future__ import annotations

import gc
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

FLUX_TRANSFORMER = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
FLUX_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=16, norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
    use_quant_conv=False, use_post_quant_conv=False,
)
#: UNO's own FluxParams and AutoEncoderParams for the same two models
UNO_FLUX = dict(in_channels=64, vec_in_dim=768, context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0, num_heads=24,
                depth=19, depth_single_blocks=38, axes_dim=[16, 56, 56], theta=10_000, qkv_bias=True,
                guidance_embed=True)
UNO_AE = dict(resolution=256, in_channels=3, ch=128, out_ch=3, ch_mult=[1, 2, 4, 4], num_res_blocks=2, z_channels=16,
              scale_factor=0.3611, shift_factor=0.1159)
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768)
SMALL_T5 = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=8)
SMALL_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
OMNIGEN2_TRANSFORMER = dict(
    patch_size=2, in_channels=16, hidden_size=2520, num_layers=32, num_refiner_layers=2, num_attention_heads=21,
    num_kv_heads=7, multiple_of=256, norm_eps=1e-5, axes_dim_rope=(40, 40, 40), axes_lens=(1024, 1664, 1664),
    text_feat_dim=2048, timestep_scale=1000.0,
)
QWEN_3B_TEXT = dict(
    vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
    num_key_value_heads=2, max_position_embeddings=128000, rope_theta=1e6, tie_word_embeddings=True,
    rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, bos_token_id=0, eos_token_id=2, pad_token_id=0,
)
QWEN_3B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                      fullatt_block_indexes=[7, 15, 23, 31])


def random_init_(module: torch.nn.Module, device: str, dtype) -> torch.nn.Module:
    """Allocate a meta-built module on the device and fill it: norms at 1, biases 0, the rest small noise.
    Integer buffers are left alone."""
    module = module.to(dtype=dtype).to_empty(device=device)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            if "norm" in name and name.endswith("weight"):
                tensor.fill_(1.0)
            elif name.endswith("bias"):
                tensor.zero_()
            else:
                tensor.normal_(0.0, 0.02)
    return module.eval()


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def example_references(n: int):
    """The first n example photos of the repository, as RGB images."""
    from PIL import Image

    paths = sorted((ROOT / "examples").glob("*.jpg"))[:n]
    return [Image.open(p).convert("RGB") for p in paths]


def flux_configs(small: bool) -> tuple[dict, dict, dict, dict]:
    """(diffusers transformer config, UNO FluxParams kwargs, diffusers VAE config, UNO AE kwargs)."""
    flux, uno, vae, ae = dict(FLUX_TRANSFORMER), dict(UNO_FLUX), dict(FLUX_VAE), dict(UNO_AE)
    if small:  # one block of each kind at full width (diffusers' converter assumes width 3072)
        flux.update(num_layers=1, num_single_layers=1, joint_attention_dim=64, pooled_projection_dim=32)
        uno.update(depth=1, depth_single_blocks=1, context_in_dim=64, vec_in_dim=32)
        vae.update(block_out_channels=(32, 32, 32, 32), norm_num_groups=8)
        ae.update(ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1)
    return flux, uno, vae, ae


def flux_text_encoders(device: str, dtype, small: bool):
    """(CLIP-L, T5-XXL) text encoders with their own random init."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    t5 = T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                  pad_token_id=0, eos_token_id=1, **(SMALL_T5 if small else T5_XXL))
    clip = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                          pad_token_id=1, **(SMALL_CLIP if small else CLIP_L))
    with torch.device(device):  # integer buffers (position ids) need a real build, not a meta one
        return CLIPTextModel(clip).eval().to(dtype), T5EncoderModel(t5).eval().to(dtype)


def omnigen2_pipeline(device: str, dtype, small: bool):
    """OmniGen2 at full size (3.97 B transformer, FLUX-size VAE, Qwen2.5-VL-3B shapes), or the tiny
    build; prompts go through the tiny byte-level tokenizer (a few hundred tokens, like real ones)."""
    from diffusers import AutoencoderKL
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from umo_pipeline.customizers.omnigen2 import (
        OmniGen2EulerScheduler,
        OmniGen2Pipeline,
        OmniGen2Transformer2DModel,
        build_tiny_omnigen2,
    )
    from umo_pipeline.customizers.omnigen2.tiny import tiny_tokenizer

    if small:
        pipe = build_tiny_omnigen2().to(device=device, dtype=dtype)
    else:
        with torch.device("meta"):
            transformer = OmniGen2Transformer2DModel(**OMNIGEN2_TRANSFORMER)
            vae = AutoencoderKL(**FLUX_VAE)
            mllm = Qwen2_5_VLForConditionalGeneration(
                Qwen2_5_VLConfig(text_config=QWEN_3B_TEXT, vision_config=QWEN_3B_VISION, bos_token_id=0,
                                 eos_token_id=2, pad_token_id=0))
        pipe = OmniGen2Pipeline(
            transformer=random_init_(transformer, device, dtype), vae=random_init_(vae, device, dtype),
            scheduler=OmniGen2EulerScheduler(), mllm=random_init_(mllm, device, dtype), processor=tiny_tokenizer(),
        )
        # rotary tables of the text encoder live in non-persistent buffers that to_empty left unset
        language_model = pipe.mllm.model.language_model
        language_model.rotary_emb = type(language_model.rotary_emb)(pipe.mllm.config.text_config).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------------------
# face repair benches (bench/repair.py, bench/gpu_speed.py's "repair" part)


def face_scene(photos, face_boxes, *, size: int = 768, tile: int = 320):
    """A size x size grey picture with each photo's face in a square tile, the tiles spread on one row:
    the square of twice the face box's long side around it, scaled to `tile` (so the face's long side
    is about tile / 2). Returns (picture, each face's box in it)."""
    from PIL import Image

    canvas = Image.new("RGB", (size, size), (128, 128, 128))
    gap = (size - tile * len(photos)) // (len(photos) + 1)
    boxes = []
    for k, (photo, box) in enumerate(zip(photos, face_boxes)):
        half = max(box[2] - box[0], box[3] - box[1])
        left, top = (box[0] + box[2]) / 2 - half, (box[1] + box[3]) / 2 - half
        square = photo.convert("RGB").crop((round(left), round(top), round(left + 2 * half), round(top + 2 * half)))
        spot, scale = (gap + k * (tile + gap), (size - tile) // 2), tile / (2 * half)
        canvas.paste(square.resize((tile, tile), Image.Resampling.LANCZOS), spot)
        boxes.append(tuple(spot[i % 2] + (box[i] - (left, top)[i % 2]) * scale for i in range(4)))
    return canvas, boxes


def _placed_faces_class():
    from umo_pipeline.faces.base import FaceBackend, Thresholds

    class PlacedFaces(FaceBackend):
        """A stand-in face backend for speed benches on a machine without face-model weights (the GPU
        machine has neither dlib's nor ArcFace's): it knows the faces the bench placed, a box and an
        identity each, per picture, and finds none in any other picture. The GPU time of a repair
        does not depend on which backend found the face."""

        name = "placed faces (bench stand-in)"
        thresholds = Thresholds(match=0.9, weak=0.5)

        def __init__(self, identities: int = 8):
            self.identities = identities
            self.known: dict[tuple, list] = {}

        @staticmethod
        def _key(picture) -> tuple:
            import hashlib

            rgb = picture.convert("RGB")
            return rgb.size, hashlib.sha1(rgb.tobytes()).hexdigest()

        def place(self, picture, boxes, identities) -> None:
            """The faces `picture` holds: face k at boxes[k] ((x0, y0, x1, y1)) is person identities[k]."""
            import numpy as np

            from umo_pipeline.faces.base import Face

            faces = []
            for box, identity in zip(boxes, identities):
                x0, y0, x1, y1 = box
                w, h = x1 - x0, y1 - y0
                # eyes, nose, mouth corners where a frontal face has them
                marks = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.78], [0.65, 0.78]], np.float32)
                embedding = np.zeros(self.identities, np.float32)
                embedding[identity] = 1.0
                faces.append(Face(bbox=tuple(float(v) for v in box), landmarks=marks * [w, h] + [x0, y0],
                                  det_score=1.0, embedding=embedding,
                                  crop=picture.convert("RGB").crop(tuple(round(v) for v in box))))
            self.known[self._key(picture)] = sorted(faces, key=lambda f: -f.area)

        def _detect(self, image):
            return list(self.known.get(self._key(image), []))

    return PlacedFaces


def placed_faces():
    """A new PlacedFaces backend (the class is made on first use: importing bench.common stays light)."""
    return _placed_faces_class()()


def repair_scene(references, size: int = 768):
    """A picture to repair for a speed bench, with a PlacedFaces backend that knows it: the references'
    middles (taken as their faces) side by side, Reference 1's face right and a stranger's where
    Reference 2's should be, so `workflow.prepare_repair(..., choose=[1])` has one face to repair.
    Each face's long side is size * 5 / 24 (160 px at 768), so its 3x crop is regenerated at the
    smallest working size, 512 x 512. Returns (picture, backend)."""
    backend = placed_faces()
    middles = []
    for k, photo in enumerate(references):
        side = min(photo.size) * 0.4
        box = ((photo.width - side) / 2, (photo.height - side) / 2, (photo.width + side) / 2, (photo.height + side) / 2)
        backend.place(photo, [box], [k])
        middles.append(box)
    picture, boxes = face_scene(references[:2], middles[:2], size=size, tile=size * 5 // 12)
    backend.place(picture, boxes, [0, backend.identities - 1])
    return picture, backend
