"""OmniGen2 transformer: the published checkpoint's names and shapes, and token-layout behaviour."""

import gzip
import json
from pathlib import Path

import pytest
import torch

from umo_pipeline.customizers.omnigen2.tiny import TINY_TRANSFORMER
from umo_pipeline.customizers.omnigen2.transformer import OmniGen2Transformer2DModel

DATA = Path(__file__).parents[3] / "data"


def recorded(name: str) -> dict:
    with gzip.open(DATA / name, "rt") as f:
        return json.load(f)


def test_full_size_model_has_every_published_parameter_name_and_shape():
    # recorded once by instantiating the original OmniGen2 code on the meta device with the
    # published transformer config (hidden 2520, 32 layers, 21/7 heads, rope 40/40/40)
    published = recorded("omnigen2_transformer_params.json.gz")
    with torch.device("meta"):
        model = OmniGen2Transformer2DModel(**published["config"])
    ours = {name: list(t.shape) for name, t in model.state_dict().items()}
    assert sorted(set(ours) - set(published["parameters"])) == []
    assert sorted(set(published["parameters"]) - set(ours)) == []
    wrong = {k: (ours[k], s) for k, s in published["parameters"].items() if ours[k] != s}
    assert wrong == {}
    assert 3.96e9 < sum(p.numel() for p in model.parameters()) < 3.98e9


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = OmniGen2Transformer2DModel(**TINY_TRANSFORMER).eval()
    for p in model.parameters():  # large random weights so every part visibly matters
        torch.nn.init.normal_(p, std=0.2)
    return model


def run(model, latents, text, mask, references=None, t=0.4):
    with torch.no_grad():
        return model(latents, torch.tensor([t]), text, mask, references=references)[0]


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 16, 8, 12, generator=g)
    text = torch.randn(1, 5, TINY_TRANSFORMER["text_feat_dim"], generator=g)
    refs = [torch.randn(16, 8, 8, generator=g), torch.randn(16, 6, 10, generator=g)]
    return latents, text, torch.ones(1, 5, dtype=torch.long), refs


def test_output_is_a_velocity_of_the_target_shape(tiny):
    latents, text, mask, refs = inputs()
    out = run(tiny, latents, text, mask, refs)
    assert out.shape == latents.shape and torch.isfinite(out).all()


def test_references_and_their_order_change_the_prediction(tiny):
    latents, text, mask, refs = inputs()
    none = run(tiny, latents, text, mask)
    one = run(tiny, latents, text, mask, refs[:1])
    both = run(tiny, latents, text, mask, refs)
    swapped = run(tiny, latents, text, mask, refs[::-1])
    for a, b in [(none, one), (one, both), (both, swapped)]:
        assert (a - b).abs().max() > 1e-3


def test_padded_prompt_tokens_are_ignored(tiny):
    latents, text, mask, refs = inputs()
    padded_text = torch.cat([text, torch.randn(1, 3, text.shape[-1])], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    a = run(tiny, latents, text, mask, refs)
    b = run(tiny, latents, padded_text, padded_mask, refs)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_batch_items_match_single_runs(tiny):
    latents, text, mask, refs = inputs()
    latents2, text2, _, _ = inputs(seed=1)
    batch = torch.cat([latents, latents2]), torch.cat([text, text2]), torch.cat([mask, mask])
    with torch.no_grad():
        out = tiny(*batch[:1], torch.tensor([0.4, 0.4]), *batch[1:], references=refs)[0]
    torch.testing.assert_close(out[1:], run(tiny, latents2, text2, mask, refs), atol=1e-5, rtol=1e-5)


def test_more_than_five_references_is_refused(tiny):
    latents, text, mask, refs = inputs()
    with pytest.raises(ValueError, match="at most 5"):
        run(tiny, latents, text, mask, refs * 3)


def test_save_and_load_round_trip_keeps_the_prediction(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = OmniGen2Transformer2DModel.from_pretrained(tmp_path).eval()
    latents, text, mask, refs = inputs()
    torch.testing.assert_close(run(loaded, latents, text, mask, refs), run(tiny, latents, text, mask, refs))
