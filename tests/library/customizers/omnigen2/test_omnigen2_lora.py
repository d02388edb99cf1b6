"""UMO_OmniGen2 LoRA: the released key format, adapters, base-vs-UMO switching, fusing, bad files."""

import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from umo_pipeline.customizers.lora import fuse_adapter
from umo_pipeline.customizers.omnigen2.lora import (
    load_omnigen2_lora,
    random_omnigen2_lora,
    to_diffusers_keys,
    validate_omnigen2_lora,
)
from umo_pipeline.customizers.omnigen2.tiny import TINY_TRANSFORMER
from umo_pipeline.customizers.omnigen2.transformer import OmniGen2Transformer2DModel
from umo_pipeline.errors import LoraFormatError

DATA = Path(__file__).parents[3] / "data"


def recorded(name):
    with gzip.open(DATA / name, "rt") as f:
        return json.load(f)


def test_released_key_list_maps_onto_every_attention_layer_of_the_full_size_model():
    # the key names and shapes UMO's demo loads: peft LoraConfig(r=512, alpha=512, to_q/k/v/out.0)
    # added to the ORIGINAL OmniGen2 transformer on the meta device, recorded once
    lora = recorded("omnigen2_umo_lora_keys.json.gz")["parameters"]
    config = recorded("omnigen2_transformer_params.json.gz")["config"]
    with torch.device("meta"):
        model = OmniGen2Transformer2DModel(**config)
    state_dict = {k: torch.empty(shape, device="meta") for k, shape in lora.items()}
    summary = validate_omnigen2_lora(state_dict, model)
    assert (summary.rank, summary.n_modules, summary.n_parameters) == (512, 152, 326_860_800)
    renamed = to_diffusers_keys(state_dict)
    assert "transformer.layers.31.attn.to_out.0.lora_B.weight" in renamed
    assert "transformer.noise_refiner.0.attn.to_q.lora_A.weight" in renamed
    assert len(renamed) == len(lora) == 304


@pytest.fixture
def model():
    torch.manual_seed(0)
    return OmniGen2Transformer2DModel(**TINY_TRANSFORMER).eval()


def predict(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 16, 8, 8, generator=g)
    text = torch.randn(1, 4, TINY_TRANSFORMER["text_feat_dim"], generator=g)
    refs = [torch.randn(16, 6, 6, generator=g)]
    with torch.no_grad():
        return model(latents, torch.tensor([0.5]), text, torch.ones(1, 4), references=refs)[0]


def test_adapter_switching_gives_base_and_umo_from_one_model(model):
    base = predict(model)
    load_omnigen2_lora(model, random_omnigen2_lora(model, rank=4, seed=1, std=0.3), "umo")
    umo = predict(model)
    assert (umo - base).abs().max() > 1e-2
    model.disable_lora()
    torch.testing.assert_close(predict(model), base)
    model.enable_lora()
    model.set_adapters(["umo"])
    torch.testing.assert_close(predict(model), umo)


def test_fused_lora_equals_the_adapter_and_adds_b_times_a(model):
    lora = random_omnigen2_lora(model, rank=4, seed=1, std=0.3)
    weight = model.layers[0].attn.to_k.weight.detach().clone()
    load_omnigen2_lora(model, lora, "umo")
    with_adapter = predict(model)
    fuse_adapter(model, "umo")
    assert not any("lora_A" in name for name, _ in model.named_modules())
    delta = lora["layers.0.attn.to_k.lora_B.default.weight"] @ lora["layers.0.attn.to_k.lora_A.default.weight"]
    torch.testing.assert_close(model.layers[0].attn.to_k.weight, weight + delta, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(predict(model), with_adapter, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spelling", ["transformer.{m}.lora_{p}.weight", "diffusion_model.{m}.lora_{p}.weight"])
def test_other_spellings_of_the_same_keys_are_accepted(model, spelling):
    lora = random_omnigen2_lora(model, rank=2, seed=3)
    respelled = {}
    for key, tensor in lora.items():
        module, part = key.removesuffix(".default.weight").rsplit(".lora_", 1)
        respelled[spelling.format(m=module, p=part)] = tensor
    assert load_omnigen2_lora(model, respelled, "umo").n_modules == 20


def bad_files():
    def drop_one(lora):
        return dict(list(lora.items())[2:])

    def wrong_shape(lora):
        key = "layers.1.attn.to_v.lora_B.default.weight"
        return {**lora, key: torch.zeros(7, 4)}

    def unknown_key(lora):
        return {**lora, "layers.0.attn.to_q.alpha": torch.ones(1)}

    def no_such_module(lora):
        return {**lora, "layers.9.attn.to_q.lora_A.default.weight": torch.zeros(4, 48),
                "layers.9.attn.to_q.lora_B.default.weight": torch.zeros(48, 4)}

    def uno_file(lora):
        return {"double_blocks.0.processor.qkv_lora1.down.weight": torch.zeros(4, 48)}

    def mixed_rank(lora):
        return {**lora, "layers.0.attn.to_q.lora_A.default.weight": torch.zeros(2, 48),
                "layers.0.attn.to_q.lora_B.default.weight": torch.zeros(48, 2)}

    return {
        "incomplete": (drop_one, "have no LoRA weights"),
        "wrong shape": (wrong_shape, "do not fit"),
        "unknown key": (unknown_key, "not OmniGen2 LoRA weights"),
        "no such module": (no_such_module, "no such module"),
        "UNO file": (uno_file, "UNO/FLUX LoRA"),
        "mixed rank": (mixed_rank, "mixed LoRA ranks"),
    }


@pytest.mark.parametrize("case", bad_files())
def test_wrong_files_are_refused_with_a_reason_and_leave_no_adapter(model, tmp_path, case):
    corrupt, message = bad_files()[case]
    path = tmp_path / "lora.safetensors"
    save_file(corrupt(random_omnigen2_lora(model, rank=4)), str(path))
    with pytest.raises(LoraFormatError, match=message):
        load_omnigen2_lora(model, path, "umo")
    assert not getattr(model, "peft_config", None)


def test_pickles_and_truncated_files_are_refused(model, tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file(random_omnigen2_lora(model, rank=4), str(path))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(LoraFormatError, match="truncated or corrupted"):
        load_omnigen2_lora(model, truncated)
    pickle = tmp_path / "lora.bin"
    pickle.write_bytes(b"not read")
    with pytest.raises(LoraFormatError, match="pickle"):
        load_omnigen2_lora(model, pickle)


def test_fp8_storage_before_the_lora_keeps_the_lora_in_compute_dtype():
    # peft casts a new adapter to the base weights' storage dtype; under fp8 storage that would
    # destroy the LoRA. The shared loader restores it: both orders give the same output.
    def build():
        torch.manual_seed(0)
        return OmniGen2Transformer2DModel(**TINY_TRANSFORMER).eval()

    lora = random_omnigen2_lora(build(), rank=4, seed=1, std=0.3)
    lora_first = build()
    load_omnigen2_lora(lora_first, lora, "umo")
    lora_first.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    fp8_first = build()
    fp8_first.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    load_omnigen2_lora(fp8_first, lora, "umo")
    lora_dtypes = {p.dtype for n, p in fp8_first.named_parameters() if "lora_" in n}
    assert lora_dtypes == {torch.float32}
    torch.testing.assert_close(predict(fp8_first), predict(lora_first), rtol=0, atol=0)
