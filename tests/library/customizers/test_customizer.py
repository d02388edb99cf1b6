"""load_customizer: the tiny build, UNO vs UMO switching, fused / fp8 modes, loading from local files,
and fast, explicit failures when weights are missing offline."""

from __future__ import annotations

import inspect
import json
import socket
import time
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter
from safetensors.torch import save_file

from umo_pipeline import load_customizer
from umo_pipeline.customizers import available_customizers, register_customizer
from umo_pipeline.customizers.base import GenerationRequest, Inpainting
from umo_pipeline.customizers.uno.customizer import TINY_LORA_RANK, load_tiny
from umo_pipeline.errors import GenerationError, InputError, WeightsUnavailable

REQUEST = GenerationRequest(prompt="two people in a park", width=256, height=256, steps=4, seed=7)


@pytest.fixture(scope="module")
def references(photos):
    return [Image.open(photos["obama1"]).convert("RGB"), Image.open(photos["hopper"]).convert("RGB")]


@pytest.fixture(scope="module")
def tiny():
    return load_customizer("tiny")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def test_tiny_says_it_is_noise_and_generates_the_requested_size(tiny, references):
    assert tiny.is_test_model and tiny.name == "tiny"
    assert "outputs are noise" in tiny.label and "512 px" in tiny.label
    assert tiny.variants == ("umo", "base")
    steps = []
    image = tiny.generate(REQUEST, references, progress=lambda done, total: steps.append((done, total)))
    assert image.mode == "RGB" and image.size == (256, 256)
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_uno_brings_its_own_prompt_tips(tiny):
    assert "Say how many people" in tiny.prompt_tips  # the page shows them next to the prompt


def test_switching_variants_is_exact_and_changes_the_image(tiny, references):
    umo = pixels(tiny.generate(REQUEST, references, variant="umo"))
    base = pixels(tiny.generate(REQUEST, references, variant="base"))
    umo_again = pixels(tiny.generate(REQUEST, references, variant="umo"))
    assert np.array_equal(umo, umo_again)
    assert np.abs(umo - base).max() > 20
    other_seed = GenerationRequest(**{**REQUEST.__dict__, "seed": 8})
    assert not np.array_equal(umo, pixels(tiny.generate(other_seed, references, variant="umo")))


def test_tiny_caps_its_sampling_size_but_returns_the_requested_size(tiny):
    request = GenerationRequest(prompt="a face", width=1024, height=768, steps=1)
    assert tiny.generate(request, []).size == (1024, 768)
    # the size rule is the page's and the CLI's: a side off the 16-pixel grid is refused, with the way out
    with pytest.raises(InputError, match="Width must be a multiple of 16 .got 1030; try 1024 or 1040"):
        tiny.generate(GenerationRequest(prompt="a face", width=1030, height=768, steps=1), [])


def test_fused_mode_matches_the_umo_adapter(tiny, references):
    fused = load_customizer("tiny", mode="fused")
    assert fused.variants == ("umo",)
    assert not any(".lora_" in name for name, _ in fused.pipe.transformer.named_parameters())
    difference = np.abs(pixels(fused.generate(REQUEST, references)) - pixels(tiny.generate(REQUEST, references)))
    assert difference.max() <= 2  # float rounding of the fused weights, then 8-bit quantisation
    with pytest.raises(InputError, match="offers umo, not 'base'"):
        fused.generate(REQUEST, references, variant="base")


def test_fp8_storage_with_both_adapters(references):
    fp8 = load_customizer("tiny", fp8=True)
    transformer = fp8.pipe.transformer
    assert {p.dtype for n, p in transformer.named_parameters() if ".lora_" in n} == {torch.float32}
    assert torch.float8_e4m3fn in {p.dtype for n, p in transformer.named_parameters() if "base_layer" in n}
    assert "fp8 weights" in fp8.label
    umo = pixels(fp8.generate(REQUEST, references, variant="umo"))
    base = pixels(fp8.generate(REQUEST, references, variant="base"))
    assert np.abs(umo - base).max() > 20
    assert np.array_equal(umo, pixels(fp8.generate(REQUEST, references, variant="umo")))


def test_fused_mode_under_fp8_keeps_the_umo_lora_unfused_in_compute_dtype(references):
    # fusing first would round the LoRA delta to fp8 together with the weight it is added to
    fp8 = load_customizer("tiny", mode="fused", fp8=True)
    transformer = fp8.pipe.transformer
    assert set(transformer.peft_config) == {"umo"}
    assert {p.dtype for n, p in transformer.named_parameters() if ".lora_" in n} == {torch.float32}
    assert "UMO LoRA unfused (fp8)" in fp8.label and fp8.variants == ("umo",)
    compare_fp8 = load_customizer("tiny", fp8=True)
    assert np.array_equal(pixels(fp8.generate(REQUEST, references)),
                          pixels(compare_fp8.generate(REQUEST, references, variant="umo")))


def test_noise_is_seeded_on_the_device_the_pipeline_runs_on(tiny, references, monkeypatch):
    # UNO seeds its noise on the execution device; CPU and CUDA random streams differ, so this is
    # what makes a seed give UNO's own image on a GPU. The pipeline is made to report a CUDA device
    # and the generator's creation is recorded (then stopped: there is no GPU here).
    class Stop(Exception):
        pass

    asked = []

    def recording_generator(device="cpu"):
        asked.append(torch.device(device))
        raise Stop

    monkeypatch.setattr(type(tiny.pipe), "_execution_device", property(lambda pipe: torch.device("cuda", 0)))
    monkeypatch.setattr(torch, "Generator", recording_generator)
    with pytest.raises(GenerationError, match="Stop"):  # any failure inside sampling reaches callers so
        tiny.generate(REQUEST, references)
    assert asked == [torch.device("cuda", 0)]


def test_offload_or_cuda_without_a_gpu_fails_plainly(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GenerationError, match="CPU offload needs a CUDA GPU"):
        load_customizer("tiny", offload=True)
    with pytest.raises(GenerationError, match="device 'cuda' needs a CUDA GPU"):
        load_customizer("tiny", device="cuda")


def test_registry_and_bad_names():
    with pytest.raises(InputError, match="Unknown model 'nope'; available: .*tiny.*umo-uno"):
        load_customizer("nope")
    register_customizer("tiny-fused", partial(load_tiny, mode="fused"))
    assert "tiny-fused" in available_customizers()
    assert load_customizer("tiny-fused").variants == ("umo",)
    with pytest.raises(InputError, match="The 'tiny' model does not take the option.s. lora_path"):
        load_customizer("tiny", lora_path="x.safetensors")
    with pytest.raises(InputError, match="Unknown mode"):
        load_customizer("tiny", mode="fast")
    with pytest.raises(InputError, match="Unknown dtype"):
        load_customizer("tiny", dtype="int8")


class FailingTransformerForward:
    """Test double for a transformer forward pass that fails (GPU out of memory, a runtime error)."""

    def __init__(self, error):
        self.error = error

    def __call__(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    ("error", "message"),
    [(torch.cuda.OutOfMemoryError("CUDA out of memory"), "ran out of memory generating 256x256.*--offload or --fp8"),
     (RuntimeError("shapes cannot be multiplied"),
      r"Generation failed \(RuntimeError: shapes cannot be multiplied\)")],
)
def test_runtime_failures_become_generation_errors(tiny, references, monkeypatch, error, message):
    with monkeypatch.context() as patch:
        patch.setattr(tiny.pipe.transformer, "forward", FailingTransformerForward(error))
        with pytest.raises(GenerationError, match=message):
            tiny.generate(REQUEST, references)
    assert tiny.generate(REQUEST, references).size == (256, 256)  # still usable afterwards


def test_estimate_grows_with_the_work():
    from umo_pipeline.customizers.uno.customizer import UNOCustomizer

    umo_uno = UNOCustomizer(None, name="umo-uno", label="", mode="compare", device="cuda")
    base = umo_uno.estimate_seconds(GenerationRequest(prompt=""), n_references=2)
    assert 3 < base < 10  # the GPU bench on an H200: 3.9 s for the transformer loop with two adapters
    assert umo_uno.estimate_seconds(GenerationRequest(prompt="", steps=50), 2) > 1.8 * base - 4
    assert umo_uno.estimate_seconds(GenerationRequest(prompt="", width=1024, height=1024), 2) > base
    assert umo_uno.estimate_seconds(GenerationRequest(prompt=""), 4) > base
    assert umo_uno.estimate_seconds(GenerationRequest(prompt=""), 2, n_variants=2) == pytest.approx(2 * base)


# ---------------------------------------------------------------------------------------------
# inpainting (request.inpaint): the masked re-generation a face repair runs


@pytest.fixture(scope="module")
def portrait(photos):
    return Image.open(photos["hopper"]).convert("RGB").resize((256, 256), Image.LANCZOS)


def face_mask(feather: int = 8) -> Image.Image:
    """A feathered ellipse in the middle of a 256x256 picture (what a face repair's mask looks like)."""
    mask = Image.new("L", (256, 256), 0)
    ImageDraw.Draw(mask).ellipse((80, 64, 176, 176), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(feather))


def round_trip(customizer, image: Image.Image) -> np.ndarray:
    """The picture through the tiny model's VAE and back: all an unmasked region may change."""
    pipe = customizer.pipe
    with torch.no_grad():
        latents = pipe.image_latents(image)
        return pixels(pipe.decode_latents(latents, image.height, image.width, "pil")[0])


def repaint(portrait, mask, strength=0.6, **changes) -> GenerationRequest:
    return GenerationRequest(**{**REQUEST.__dict__, "inpaint": Inpainting(portrait, mask, strength), **changes})


def test_inpainting_repaints_inside_the_mask_and_keeps_the_rest(tiny, references, portrait):
    mask = face_mask()
    steps = []
    image = pixels(tiny.generate(repaint(portrait, mask), references, progress=lambda *step: steps.append(step)))
    assert image.shape == (256, 256, 3)
    # 4 steps at strength 0.6: the last 3 run (diffusers' count), and the progress says so
    assert steps == [(1, 3), (2, 3), (3, 3)]
    kept = round_trip(tiny, portrait)
    far = np.asarray(mask.filter(ImageFilter.MaxFilter(65))) == 0  # 32 px and more outside the mask
    inside = np.asarray(mask) > 250
    # outside, the latents are the picture's exactly; the tiny VAE's decoder (group norms, attention)
    # still mixes in a little of the repainted face
    outside_change = np.abs(image - kept)[far].mean()
    assert outside_change < 10 and np.abs(image - kept)[inside].mean() > 40
    plain = pixels(tiny.generate(REQUEST, references))
    assert np.abs(plain - kept)[far].mean() > 2 * outside_change  # what no mask would have changed


def test_a_zero_mask_gives_the_pictures_vae_round_trip(tiny, references, portrait):
    nothing = Image.new("L", (256, 256), 0)
    for variant in tiny.variants:
        image = pixels(tiny.generate(repaint(portrait, nothing, 0.8), references, variant=variant))
        assert np.array_equal(image, round_trip(tiny, portrait))


def test_inpainting_in_a_batch_matches_each_seed_alone(tiny, references, portrait):
    request = repaint(portrait, face_mask(), 0.5)
    batch = tiny.generate_batch(request, references, [3, 4])
    for seed, image in zip([3, 4], batch):
        alone = tiny.generate(GenerationRequest(**{**request.__dict__, "seed": seed}), references)
        assert np.abs(pixels(image) - pixels(alone)).max() <= 1
    assert not np.array_equal(pixels(batch[0]), pixels(batch[1]))


def test_inpainting_that_cannot_be_used_is_an_input_error(tiny, references, portrait):
    cases = [
        (repaint(portrait.resize((128, 128)), face_mask()), "picture to repaint is 128x128 pixels but the request "
                                                             "is 256x256"),
        (repaint(portrait, face_mask().resize((256, 128))), "repaint mask is 256x128 pixels"),
        (repaint(portrait, face_mask().convert("RGB")), "greyscale image .mode \"L\".*not mode 'RGB'"),
        (repaint(portrait, face_mask(), strength=0.0), "Strength must be between 0.05 and 1 .got 0."),
        (repaint(portrait, face_mask(), strength=1.5), "Strength must be between 0.05 and 1 .got 1.5."),
        (repaint(np.asarray(portrait), face_mask()), "picture to repaint is not an image .got ndarray."),
    ]
    for request, message in cases:
        with pytest.raises(InputError, match=message):
            tiny.generate(request, references)
    # a picture in another mode, and a 1-bit mask, are taken as what they show
    checked = tiny.check_request(repaint(portrait.convert("L"), face_mask().convert("1")))
    assert (checked.inpaint.image.mode, checked.inpaint.mask.mode) == ("RGB", "L")


def test_a_repaint_takes_its_one_reference_at_the_multi_reference_side(tiny, references, portrait, monkeypatch):
    # a face repair conditions one face of the picture: its reference goes in at 320 px (UNO's side for
    # several references), not the 512 px of a single-reference generation
    grids = []
    encode = tiny.pipe.encode_references

    def recording(*args, **kwargs):
        tokens, found = encode(*args, **kwargs)
        grids.extend(found)
        return tokens, found

    monkeypatch.setattr(tiny.pipe, "encode_references", recording)
    square = references[0].resize((400, 400))
    tiny.generate(REQUEST, [square])
    tiny.generate(repaint(portrait, face_mask()), [square])
    assert grids == [(32, 32), (20, 20)]


def test_inpainting_counts_only_the_steps_it_runs():
    from umo_pipeline.customizers.uno.customizer import UNOCustomizer

    umo_uno = UNOCustomizer(None, name="umo-uno", label="", mode="compare", device="cuda")
    full = GenerationRequest(prompt="", steps=25)
    mask = Image.new("L", (768, 768), 255)
    half = GenerationRequest(prompt="", steps=25, inpaint=Inpainting(Image.new("RGB", (768, 768)), mask, 0.5))
    assert (full.denoising_steps, half.denoising_steps) == (25, 13)  # diffusers: 25 - int(25 - 12.5)
    fixed = umo_uno.estimate_seconds(GenerationRequest(prompt="", steps=0), 2)
    assert umo_uno.estimate_seconds(half, 2) - fixed == pytest.approx(
        (umo_uno.estimate_seconds(full, 2) - fixed) * 13 / 25)


# ---------------------------------------------------------------------------------------------
# weights on disk and on the hub


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return refuse


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    for variable in ("UMO_FLUX_PATH", "UMO_UNO_LORA", "UMO_UMO_LORA"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_missing_weights_offline_fail_fast_naming_everything(empty_hub_cache, no_network):
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as failure:
        load_customizer("umo-uno", device="cpu")
    assert time.perf_counter() - start < 5
    message = str(failure.value)
    for expected in ("black-forest-labs/FLUX.1-dev", "accept its licence at https://huggingface.co/black-forest-labs/FLUX.1-dev",
                     "hf auth login", "HF_TOKEN", "UMO_FLUX_PATH", "flux_path=",
                     "bytedance-research/UNO/dit_lora.safetensors", "UMO_UNO_LORA",
                     "bytedance-research/UMO/UMO_UNO.safetensors", "UMO_UMO_LORA", "HF_HUB_OFFLINE=1"):
        assert expected in message
    assert message.count("accept its licence") == 1  # only FLUX.1-dev is gated


def test_unreachable_hub_fails_fast_without_offline_mode(empty_hub_cache, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(inspect.getmodule(huggingface_hub.is_offline_mode), "HF_HUB_OFFLINE", False)
    probes = []

    def unreachable(address, timeout=None, *args, **kwargs):
        probes.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable, match="the hub cannot be reached"):
        load_customizer("umo-uno", device="cpu")
    assert time.perf_counter() - start < 5
    assert probes == [(("huggingface.co", 443), 3.0)]  # one quick probe, no retries


@pytest.fixture(scope="module")
def weights_on_disk(tmp_path_factory):
    """FLUX-layout folder + UNO/UMO LoRA files holding exactly what the tiny build uses."""
    from umo_pipeline.customizers.uno.lora import random_uno_lora
    from umo_pipeline.customizers.uno.pipeline import UNOPipeline
    from umo_pipeline.customizers.uno.tiny import build_tiny_components

    folder = tmp_path_factory.mktemp("weights")
    pipe = UNOPipeline(**build_tiny_components(seed=0))
    pipe.save_pretrained(folder / "flux", safe_serialization=True)
    index_path = folder / "flux" / "model_index.json"
    index = json.loads(index_path.read_text())
    # as in black-forest-labs/FLUX.1-dev: written for FluxPipeline, with unused optional entries
    index.update(_class_name="FluxPipeline", image_encoder=[None, None], feature_extractor=[None, None])
    index_path.write_text(json.dumps(index))
    for name, seed in (("dit_lora", 1), ("UMO_UNO", 2)):
        lora = random_uno_lora(pipe.transformer, rank=TINY_LORA_RANK, seed=seed, std=0.3)
        save_file(lora, str(folder / f"{name}.safetensors"))
    return folder


def test_umo_uno_loads_from_local_paths_like_the_tiny_build(weights_on_disk, tiny, references, empty_hub_cache,
                                                            no_network):
    customizer = load_customizer(
        "umo-uno", device="cpu", dtype="float32", flux_path=weights_on_disk / "flux",
        uno_lora_path=weights_on_disk / "dit_lora.safetensors", lora_path=weights_on_disk / "UMO_UNO.safetensors",
    )
    assert not customizer.is_test_model
    assert customizer.label.startswith("UMO-UNO (FLUX.1-dev + UNO + UMO LoRA), float32, cpu")
    loaded, built = customizer.pipe.transformer.state_dict(), tiny.pipe.transformer.state_dict()
    assert loaded.keys() == built.keys() and all(torch.equal(loaded[k], built[k]) for k in built)
    for variant in ("umo", "base"):
        difference = (pixels(customizer.generate(REQUEST, references, variant=variant))
                      - pixels(tiny.generate(REQUEST, references, variant=variant)))
        assert np.abs(difference).max() <= 1  # same weights; memory layout of loaded tensors may round differently


def test_environment_variables_point_at_local_weights(weights_on_disk, empty_hub_cache, no_network, monkeypatch):
    monkeypatch.setenv("UMO_FLUX_PATH", str(weights_on_disk / "flux"))
    monkeypatch.setenv("UMO_UNO_LORA", str(weights_on_disk / "dit_lora.safetensors"))
    monkeypatch.setenv("UMO_UMO_LORA", str(weights_on_disk / "absent.safetensors"))
    with pytest.raises(WeightsUnavailable, match="UMO_UMO_LORA= .*absent.safetensors does not exist") as failure:
        load_customizer("umo-uno", device="cpu", dtype="float32")
    assert "FLUX.1-dev" not in str(failure.value)  # only the missing item is reported
    monkeypatch.setenv("UMO_UMO_LORA", str(weights_on_disk / "UMO_UNO.safetensors"))
    assert load_customizer("umo-uno", device="cpu", dtype="float32", mode="fused").variants == ("umo",)


def test_a_wrong_lora_file_is_named(weights_on_disk, empty_hub_cache, no_network, tmp_path):
    from umo_pipeline.errors import LoraFormatError

    wrong = tmp_path / "other_lora.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(4, 8)}, str(wrong))
    with pytest.raises(LoraFormatError, match="not a UNO/UMO LoRA"):
        load_customizer("umo-uno", device="cpu", dtype="float32", flux_path=weights_on_disk / "flux",
                        uno_lora_path=weights_on_disk / "dit_lora.safetensors", lora_path=wrong)


def test_weights_in_the_hub_cache_are_used_offline(weights_on_disk, empty_hub_cache, no_network):
    """The Hugging Face cache layout (refs/main -> snapshots/<commit>/...) as a download leaves it."""
    import shutil

    commit = "0" * 40
    for repo, files in (("black-forest-labs/FLUX.1-dev", {"": weights_on_disk / "flux"}),
                        ("bytedance-research/UNO", {"dit_lora.safetensors": weights_on_disk / "dit_lora.safetensors"}),
                        ("bytedance-research/UMO", {"UMO_UNO.safetensors": weights_on_disk / "UMO_UNO.safetensors"})):
        repo_dir = empty_hub_cache / f"models--{repo.replace('/', '--')}"
        (repo_dir / "refs").mkdir(parents=True)
        (repo_dir / "refs" / "main").write_text(commit)
        snapshot = repo_dir / "snapshots" / commit
        for name, source in files.items():
            if source.is_dir():
                shutil.copytree(source, snapshot)
            else:
                snapshot.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, snapshot / name)
    customizer = load_customizer("umo-uno", device="cpu", dtype="float32", mode="fused")
    assert customizer.generate(REQUEST, []).size == (256, 256)


class HubAnswers:
    """Test double for huggingface_hub.auth_check: the hub's answer per repository (no network here)."""

    def __init__(self, errors):
        self.errors = errors

    def __call__(self, repo_id, token=None, **kwargs):
        if repo_id in self.errors:
            raise self.errors[repo_id]


def test_gated_and_missing_repositories_are_told_apart(empty_hub_cache, no_network, monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from umo_pipeline import hub

    def response(status):
        return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/models/x"))

    monkeypatch.setattr(inspect.getmodule(huggingface_hub.is_offline_mode), "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(huggingface_hub, "auth_check", HubAnswers({
        "black-forest-labs/FLUX.1-dev": GatedRepoError("gated", response=response(403)),
        "bytedance-research/UMO": RepositoryNotFoundError("not found", response=response(401)),
    }))
    with pytest.raises(WeightsUnavailable) as failure:
        load_customizer("umo-uno", device="cpu")
    lines = str(failure.value).splitlines()
    assert len(lines) == 3  # the title, FLUX.1-dev, UMO; UNO's LoRA is accessible
    assert "FLUX.1-dev" in lines[1] and "no access to this gated model yet" in lines[1]
    assert "accept its licence" in lines[1]
    assert "UMO_UNO.safetensors" in lines[2] and "does not exist or needs a login (401)" in lines[2]


def test_a_broken_flux_folder_is_named(weights_on_disk, empty_hub_cache, no_network, tmp_path):
    import shutil

    broken = tmp_path / "flux"
    shutil.copytree(weights_on_disk / "flux", broken)
    for weights in (broken / "transformer").glob("*.safetensors"):
        weights.unlink()  # as an interrupted download leaves it
    with pytest.raises(WeightsUnavailable, match="The FLUX.1-dev folder .* could not be loaded"):
        load_customizer("umo-uno", device="cpu", dtype="float32", flux_path=broken,
                        uno_lora_path=weights_on_disk / "dit_lora.safetensors",
                        lora_path=weights_on_disk / "UMO_UNO.safetensors")


@pytest.mark.parametrize("model", ["umo-uno", "umo-omnigen2"])
def test_full_size_models_without_a_gpu_or_a_device_refuse_before_looking_for_weights(monkeypatch, model):
    import torch

    import umo_pipeline.hub

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(umo_pipeline.hub, "resolve_weights",
                        lambda *a, **k: pytest.fail("weights looked up for a model this machine cannot run"))
    with pytest.raises(GenerationError, match="No CUDA GPU found"):
        load_customizer(model)


def test_a_too_narrow_reference_is_an_input_error(tiny):
    # the same mistake gives the same kind of error for every model (see test_omnigen2_customizer)
    sliver = Image.new("RGB", (2000, 20), "white")
    with pytest.raises(InputError, match="Reference image 1 .2000x20. is too narrow"):
        tiny.generate(REQUEST, [sliver])
