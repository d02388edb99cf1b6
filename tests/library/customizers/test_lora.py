"""UNO/UMO LoRA loading on a small real FluxTransformer2DModel with files in the real XLabs format."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from umo_pipeline.customizers.lora import lora_adapter_tensors, read_lora_file
from umo_pipeline.customizers.uno.lora import load_uno_lora, merge_umo_into_uno, validate_uno_lora
from umo_pipeline.errors import InputError, LoraFormatError

DOUBLE, SINGLE, HEADS, HEAD_DIM, RANK = 2, 2, 2, 8, 4
HIDDEN = HEADS * HEAD_DIM


def make_transformer(num_layers=DOUBLE, num_single_layers=SINGLE, heads=HEADS):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=8, num_layers=num_layers, num_single_layers=num_single_layers,
        attention_head_dim=HEAD_DIM, num_attention_heads=heads, joint_attention_dim=12,
        pooled_projection_dim=10, axes_dims_rope=(2, 2, 4), guidance_embeds=True,
    ).eval()


def xlabs_lora(seed: int, double=DOUBLE, single=SINGLE, hidden=HIDDEN, rank=RANK, prefix="") -> dict:
    """Written by hand from REFERENCE.md section 3 (key names and shape relations), not from lora.py."""
    generator = torch.Generator().manual_seed(seed)

    def pair(key, in_features, out_features):
        return {
            f"{prefix}{key}.down.weight": torch.randn(rank, in_features, generator=generator) * 0.2,
            f"{prefix}{key}.up.weight": torch.randn(out_features, rank, generator=generator) * 0.2,
        }

    state = {}
    for i in range(double):
        for stream in "12":
            state |= pair(f"double_blocks.{i}.processor.qkv_lora{stream}", hidden, 3 * hidden)
            state |= pair(f"double_blocks.{i}.processor.proj_lora{stream}", hidden, hidden)
    for i in range(single):
        state |= pair(f"single_blocks.{i}.processor.qkv_lora", hidden, 3 * hidden)
        state |= pair(f"single_blocks.{i}.processor.proj_lora", hidden + 4 * hidden, hidden)
    return state


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    return dict(
        hidden_states=torch.randn(1, 16, 8, generator=generator),
        encoder_hidden_states=torch.randn(1, 5, 12, generator=generator),
        pooled_projections=torch.randn(1, 10, generator=generator),
        timestep=torch.tensor([0.5]), img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(5, 3),
        guidance=torch.tensor([4.0]), return_dict=False,
    )


def run(transformer, inputs):
    with torch.no_grad():
        return transformer(**inputs)[0]


def test_real_format_file_loads_every_key_and_changes_output(tmp_path, inputs):
    transformer = make_transformer()
    base = run(transformer, inputs)
    path = tmp_path / "dit_lora.safetensors"
    save_file(xlabs_lora(0), str(path))

    assert load_uno_lora(transformer, path, "uno") == "uno"

    # each double block: q,k,v + out (image) and add_q,k,v + add_out (text); single: q,k,v + proj_out
    modules = DOUBLE * 8 + SINGLE * 4
    assert lora_adapter_tensors(transformer, "uno") == 2 * modules
    with_lora = run(transformer, inputs)
    assert (with_lora - base).abs().max() > 1e-3
    transformer.disable_lora()
    assert torch.equal(run(transformer, inputs), base)


def test_summary_and_prefixed_keys(inputs):
    transformer = make_transformer()
    summary = validate_uno_lora(xlabs_lora(0, prefix="diffusion_model."), transformer)
    assert (summary.rank, summary.n_tensors, summary.double_blocks, summary.single_blocks) == (RANK, 24, 2, 2)
    load_uno_lora(transformer, xlabs_lora(0, prefix="diffusion_model."), "uno")
    plain = make_transformer()
    load_uno_lora(plain, xlabs_lora(0), "uno")
    assert torch.equal(run(transformer, inputs), run(plain, inputs))


def test_adapter_switching_is_exact(inputs):
    transformer = make_transformer()
    load_uno_lora(transformer, xlabs_lora(0), "uno")
    load_uno_lora(transformer, xlabs_lora(1), "umo")
    transformer.set_adapters("uno")
    first = run(transformer, inputs)
    transformer.set_adapters("umo")
    other = run(transformer, inputs)
    transformer.set_adapters("uno")
    assert torch.equal(run(transformer, inputs), first)
    assert (other - first).abs().max() > 1e-3


def test_merge_replaces_only_the_umo_tensors():
    transformer = make_transformer()
    uno, umo_full = xlabs_lora(0), xlabs_lora(1)
    partial = {k: v for k, v in umo_full.items() if k.startswith("single_blocks.1.")}
    merged = merge_umo_into_uno(uno, partial, transformer)
    assert set(merged) == set(uno)
    for key in uno:
        assert merged[key] is (partial[key] if key in partial else uno[key])
    with pytest.raises(LoraFormatError, match="incomplete"):
        merge_umo_into_uno(partial, uno, transformer)


@pytest.mark.parametrize(
    ("make_state", "message"),
    [
        (lambda: {"transformer.x.lora_A.weight": torch.zeros(4, 16)}, "not a UNO/UMO LoRA .found keys like"),
        (lambda: xlabs_lora(0) | {"double_blocks.0.norm.weight": torch.zeros(16)}, "1 of 25 keys are not"),
        (lambda: xlabs_lora(0, double=19), "made for a model with 19 double blocks; this transformer has 2"),
        (lambda: xlabs_lora(0, hidden=24), "rank/shape mismatch at double_blocks.0.processor.qkv_lora1"),
        (lambda: {k: v for k, v in xlabs_lora(0).items() if "single_blocks.1.processor.proj_lora.up" not in k},
         "incomplete UNO/UMO LoRA: 1 tensors missing"),
        (lambda: xlabs_lora(0) | {"double_blocks.0.processor.qkv_lora1.up.weight": torch.zeros(48, 3)},
         "rank/shape mismatch"),
        (lambda: {}, "no tensors at all"),
    ],
    ids=["peft-keys", "extra-key", "block-count", "width", "missing", "rank", "empty"],
)
def test_wrong_lora_fails_and_leaves_no_adapter(make_state, message):
    transformer = make_transformer()
    with pytest.raises(LoraFormatError, match=message):
        load_uno_lora(transformer, make_state(), "uno")
    assert lora_adapter_tensors(transformer, "uno") == 0


def test_truncated_or_pickle_or_missing_files(tmp_path):
    path = tmp_path / "dit_lora.safetensors"
    save_file(xlabs_lora(0), str(path))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(LoraFormatError, match="cut.safetensors is a truncated or corrupted safetensors file"):
        read_lora_file(truncated)
    not_safetensors = tmp_path / "text.safetensors"
    not_safetensors.write_text("hello")
    with pytest.raises(LoraFormatError, match="truncated or corrupted"):
        read_lora_file(not_safetensors)
    pickle_file = tmp_path / "dit_lora.bin"
    pickle_file.write_bytes(b"\x80\x04")
    with pytest.raises(LoraFormatError, match="only .safetensors"):
        read_lora_file(pickle_file)
    with pytest.raises(InputError, match="not found"):
        read_lora_file(tmp_path / "absent.safetensors")


def test_duplicate_adapter_name_is_refused():
    transformer = make_transformer()
    load_uno_lora(transformer, xlabs_lora(0), "uno")
    with pytest.raises(InputError, match="already loaded"):
        load_uno_lora(transformer, xlabs_lora(1), "uno")


def test_fp8_storage_keeps_lora_in_compute_dtype_in_either_order(inputs):
    """LoRA then fp8 (the order the customizer uses) and fp8 then LoRA give the same output."""
    reference = make_transformer()
    load_uno_lora(reference, xlabs_lora(0), "uno")
    full_precision = run(reference, inputs)

    lora_first = make_transformer()
    load_uno_lora(lora_first, xlabs_lora(0), "uno")
    lora_first.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)

    fp8_first = make_transformer()
    fp8_first.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    load_uno_lora(fp8_first, xlabs_lora(0), "uno")  # peft would cast this LoRA to fp8; the loader undoes it

    for transformer in (lora_first, fp8_first):
        lora_dtypes = {p.dtype for n, p in transformer.named_parameters() if ".lora_" in n}
        base_dtypes = {p.dtype for n, p in transformer.named_parameters() if "base_layer" in n}
        assert lora_dtypes == {torch.float32} and base_dtypes == {torch.float8_e4m3fn}
    out_lora_first, out_fp8_first = run(lora_first, inputs), run(fp8_first, inputs)
    assert torch.equal(out_lora_first, out_fp8_first)
    # fp8 rounding of the base weights moves the output a little, much less than the LoRA does
    assert (out_lora_first - full_precision).abs().max() < 0.5 * (full_precision - run(make_transformer(), inputs)).abs().max()
