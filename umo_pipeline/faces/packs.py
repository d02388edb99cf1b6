"""Where an insightface model pack (ArcFace recognizer + SCRFD detector) comes from, the way Spaces
get them: a local folder, the Hugging Face cache, or - only when asked - a download from the hub.

Order: the `root` argument, $UMO_INSIGHTFACE_ROOT, ~/.insightface/models/<pack>, the Hugging Face
cache (what a Space's `preload_from_hub` fills), a hub download. A root given explicitly is final:
when the pack is not there the error names that folder instead of quietly using another copy.
Downloads need an explicit opt-in (`download=True` or UMO_INSIGHTFACE_DOWNLOAD=1); without it
nothing here opens a network connection, so an offline machine fails in well under a second.
The packs are licensed by insightface for non-commercial research only; a download says so.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from umo_pipeline.errors import FaceModelUnavailable, InputError

logger = logging.getLogger(__name__)

DEFAULT_PACK = "buffalo_l"
ROOT_ENV = "UMO_INSIGHTFACE_ROOT"
DOWNLOAD_ENV = "UMO_INSIGHTFACE_DOWNLOAD"
#: "owner/name" or "owner/name/folder/in/repo": another hub repository holding the pack's files
REPO_ENV = "UMO_INSIGHTFACE_REPO"
DEFAULT_ROOT = "~/.insightface"
LICENCE = ("insightface's model packs are licensed for non-commercial research purposes only "
           "(https://github.com/deepinsight/insightface/tree/master/python-package#license)")
#: where insightface itself downloads packs from (utils/storage.py in insightface 2.1)
PACK_ZIP_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo/{pack}.zip"


@dataclass(frozen=True)
class PackSource:
    """A pack's two files needed here (detection, recognition) and the hub folder holding them."""

    repo_id: str
    folder: str  # inside the repository; "" for its root
    detector: str
    recognizer: str

    @property
    def files(self) -> tuple[str, str]:
        return tuple(f"{self.folder}/{name}" if self.folder else name for name in (self.detector, self.recognizer))


# Checked on the hub (2026-12): public-data/insightface (kept by Hugging Face staff) holds
# models/buffalo_l/{det_10g,w600k_r50,1k3d68,2d106det,genderage}.onnx but no antelopev2;
# DIAMONIK7777/antelopev2, the copy PuLID's Space downloads, has antelopev2's files at its root
# (scrfd_10g_bnkps, glintr100, 1k3d68, 2d106det, genderage). Only detection and recognition
# are fetched: the landmark and age models are 150 MB this project never uses.
HUB_PACKS = {
    "buffalo_l": PackSource("public-data/insightface", "models/buffalo_l", "det_10g.onnx", "w600k_r50.onnx"),
    "antelopev2": PackSource("DIAMONIK7777/antelopev2", "", "scrfd_10g_bnkps.onnx", "glintr100.onnx"),
}


@dataclass(frozen=True)
class ResolvedPack:
    """A pack found on disk: the folder holding its .onnx files and where that folder came from."""

    name: str
    folder: Path
    origin: str  # "argument", "UMO_INSIGHTFACE_ROOT", "~/.insightface", "hub cache", "hub download"
    repo_id: str | None = None


def check_pack_name(pack: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", pack or ""):
        raise InputError(f"insightface pack name {pack!r} is not a plain name (like buffalo_l or antelopev2)")
    return pack


def onnx_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def pack_folder_in(root: str | os.PathLike, pack: str) -> Path:
    """root/models/<pack>, or the folder one level down where a pack zip unpacked into its own
    name (antelopev2/antelopev2/*.onnx, the layout that makes insightface assert 'detection')."""
    folder = Path(root).expanduser().resolve() / "models" / check_pack_name(pack)
    nested = folder / pack
    if not onnx_files(folder) and onnx_files(nested):
        return nested
    return folder


def hub_source(pack: str, repo: str | None = None) -> PackSource | None:
    """Where the hub holds `pack`: the known source, or `repo` / $UMO_INSIGHTFACE_REPO instead
    ("owner/name" or "owner/name/folder"). None for a pack whose file names are not known."""
    known = HUB_PACKS.get(pack)
    override = repo or os.environ.get(REPO_ENV)
    if known is None:
        return None
    if not override:
        return known
    parts = override.strip("/").split("/")
    if len(parts) < 2:
        raise InputError(f"{REPO_ENV}={override!r} is not a hub repository name like owner/name")
    folder = "/".join(parts[2:])
    return PackSource("/".join(parts[:2]), folder if len(parts) > 2 else "*", known.detector, known.recognizer)


def _folder_candidates(source: PackSource, pack: str) -> list[str]:
    # "*": an overriding repo that did not say where the pack sits; try the usual layouts.
    if source.folder != "*":
        return [source.folder]
    return [f"models/{pack}", pack, f"{pack}/{pack}", ""]


def _paths(folder: str, source: PackSource) -> list[str]:
    return [f"{folder}/{name}" if folder else name for name in (source.detector, source.recognizer)]


def find_in_hub_cache(pack: str, *, repo: str | None = None, cache_dir=None) -> ResolvedPack | None:
    """The pack in the local Hugging Face cache (models--owner--name/snapshots/<rev>/..., revision
    from refs/main), without any network access; None when it is not there."""
    source = hub_source(pack, repo)
    if source is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    for folder in _folder_candidates(source, pack):
        found = []
        for path in _paths(folder, source):
            cached = try_to_load_from_cache(source.repo_id, path, cache_dir=cache_dir)
            if isinstance(cached, str) and Path(cached).is_file():
                found.append(Path(cached))
        if len(found) == 2 and found[0].parent == found[1].parent:
            return ResolvedPack(pack, found[1].parent, "hub cache", source.repo_id)
    return None


def downloads_allowed(download: bool | None = None) -> bool:
    if download is not None:
        return bool(download)
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_pack(
    pack: str = DEFAULT_PACK,
    root: str | os.PathLike | None = None,
    *,
    download: bool | None = None,
    repo: str | None = None,
    cache_dir=None,
) -> ResolvedPack:
    """Find the pack (see the module docstring for the order); FaceModelUnavailable saying which
    folder to fill, or how to opt in to the download, when it is nowhere."""
    check_pack_name(pack)
    for origin, chosen in (("argument", root), (ROOT_ENV, os.environ.get(ROOT_ENV))):
        if chosen:
            folder = pack_folder_in(chosen, pack)
            if onnx_files(folder):
                return ResolvedPack(pack, folder, origin)
            where = "insightface_root=" if origin == "argument" else f"{ROOT_ENV}="
            raise unavailable(pack, folder, f"{where}{chosen} has no .onnx files in {folder}", repo=repo)
    default = pack_folder_in(DEFAULT_ROOT, pack)
    if onnx_files(default):
        return ResolvedPack(pack, default, DEFAULT_ROOT)
    if hub_source(pack, repo) is None:
        raise unavailable(pack, default, f"it is not in {default}, and no hub repository is known for it")
    cached = find_in_hub_cache(pack, repo=repo, cache_dir=cache_dir)
    if cached is not None:
        return cached
    if not downloads_allowed(download):
        raise unavailable(pack, default, "not in ~/.insightface nor in the Hugging Face cache, and "
                                         f"downloads are off ({DOWNLOAD_ENV} is not set)", repo=repo)
    return _download(pack, default, repo=repo, cache_dir=cache_dir)


def _download(pack: str, default: Path, *, repo, cache_dir) -> ResolvedPack:
    source = hub_source(pack, repo)
    from huggingface_hub import is_offline_mode, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    from umo_pipeline.hub import hub_reachable

    if is_offline_mode():
        raise unavailable(pack, default, "downloads are on, but the hub is switched off (HF_HUB_OFFLINE=1)",
                          repo=repo)
    if not hub_reachable():
        raise unavailable(pack, default, "downloads are on, but the hub cannot be reached (no network?)",
                          repo=repo)
    patterns = [path for folder in _folder_candidates(source, pack) for path in _paths(folder, source)]
    logger.warning("Downloading the insightface pack %s (%s) from %s. %s.", pack,
                   ", ".join(patterns[:2]), source.repo_id, LICENCE)
    try:
        snapshot_download(source.repo_id, allow_patterns=patterns, cache_dir=cache_dir)
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise unavailable(pack, default, f"the download from {source.repo_id} failed ({error})", repo=repo) from error
    found = find_in_hub_cache(pack, repo=repo, cache_dir=cache_dir)
    if found is None:
        raise unavailable(pack, default, f"{source.repo_id} does not hold {' and '.join(patterns[:2])}", repo=repo)
    return ResolvedPack(pack, found.folder, "hub download", source.repo_id)


def unavailable(pack: str, folder: Path, why: str, *, repo: str | None = None) -> FaceModelUnavailable:
    """The error for a pack that is nowhere: why, the folder to fill, and the hub route."""
    source = hub_source(pack, repo)
    lines = [f"The insightface model pack {pack!r} is not available: {why}.",
             (f"Put its .onnx files (a face detector and a recognition model) in {folder}: unzip "
              f"{PACK_ZIP_URL.format(pack=pack)} there.")]
    if source is not None:
        files = _paths(source.folder if source.folder != "*" else "", source)
        lines.append(f"Or allow the download from the Hugging Face hub with {DOWNLOAD_ENV}=1 (fetches "
                     f"{', '.join(files)} from {source.repo_id}; on a Space, list them under "
                     f"preload_from_hub: - {source.repo_id} {','.join(files)}).")
    lines.append(f"Or set {ROOT_ENV} to a folder holding models/{pack}, or use the dlib backend. {LICENCE}.")
    return FaceModelUnavailable(" ".join(lines))
