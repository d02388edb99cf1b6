"""Finding model weights: local paths first, then the Hugging Face cache, then the hub.

Every item is resolved before anything big is loaded, so a missing one is reported within seconds,
all together, with what to do about each (accept a licence, log in, pass a local path).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from umo_pipeline.errors import WeightsUnavailable

#: the diffusers-format parts of a FLUX repo (leaves out the single-file checkpoints at its root)
FLUX_PATTERNS = (
    "model_index.json", "scheduler/*", "vae/*", "transformer/*",
    "text_encoder/*", "text_encoder_2/*", "tokenizer/*", "tokenizer_2/*",
)
NETWORK_PROBE_SECONDS = 3.0


@dataclass(frozen=True)
class WeightItem:
    """One thing to find: a folder (diffusers model, `filename` None) or a single file in a hub repo."""

    what: str
    repo_id: str
    filename: str | None
    argument: str
    env_var: str
    gated: bool = False
    #: for a folder item: the files of the repo to fetch
    patterns: tuple[str, ...] = FLUX_PATTERNS

    @property
    def hub_name(self) -> str:
        return f"{self.repo_id}/{self.filename}" if self.filename else self.repo_id

    def how_to_get(self) -> str:
        licence = (
            f"accept its licence at https://huggingface.co/{self.repo_id} (gated model), " if self.gated else ""
        )
        local = "a local diffusers-format folder" if self.filename is None else "a local .safetensors file"
        return (
            f"{licence}log in with `hf auth login` or set HF_TOKEN, and run once with network access; "
            f"or pass {local} as {self.argument}= or in the environment variable {self.env_var}"
        )


FLUX_DEV = WeightItem("FLUX.1-dev base model", "black-forest-labs/FLUX.1-dev", None, "flux_path",
                      "UMO_FLUX_PATH", gated=True)
UNO_LORA = WeightItem("UNO LoRA", "bytedance-research/UNO", "dit_lora.safetensors", "uno_lora_path",
                      "UMO_UNO_LORA")
UMO_UNO_LORA = WeightItem("UMO LoRA for UNO", "bytedance-research/UMO", "UMO_UNO.safetensors", "lora_path",
                          "UMO_UMO_LORA")


class _Missing(Exception):
    """One item could not be resolved; the message says why."""


def _check_local(item: WeightItem, path: Path, origin: str) -> Path:
    if item.filename is None:
        if not (path / "model_index.json").is_file():
            raise _Missing(f"{origin} {path} is not a diffusers-format model folder (no model_index.json)")
    elif not path.is_file():
        raise _Missing(f"{origin} {path} does not exist")
    return path


def _from_cache(item: WeightItem, token, cache_dir) -> Path | None:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        if item.filename is None:
            folder = Path(snapshot_download(item.repo_id, allow_patterns=list(item.patterns),
                                            local_files_only=True, cache_dir=cache_dir, token=token))
            return folder if (folder / "model_index.json").is_file() else None
        return Path(hf_hub_download(item.repo_id, item.filename, local_files_only=True,
                                    cache_dir=cache_dir, token=token))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None


def hub_reachable(timeout: float = NETWORK_PROBE_SECONDS) -> bool:
    """A quick TCP connection to the hub, so an offline machine fails in seconds, not after retries."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _check_access(item: WeightItem, token) -> None:
    from huggingface_hub import auth_check
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        auth_check(item.repo_id, token=token)
    except GatedRepoError as error:
        raise _Missing("your account has no access to this gated model yet") from error
    except RepositoryNotFoundError as error:
        raise _Missing("the hub says this repository does not exist or needs a login (401)") from error
    except HfHubHTTPError as error:
        raise _Missing(f"the hub refused access ({error})") from error


def _download(item: WeightItem, token, cache_dir) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    try:
        if item.filename is None:
            return Path(snapshot_download(item.repo_id, allow_patterns=list(item.patterns),
                                          cache_dir=cache_dir, token=token))
        return Path(hf_hub_download(item.repo_id, item.filename, cache_dir=cache_dir, token=token))
    except EntryNotFoundError as error:
        raise _Missing(f"{item.filename} is not in {item.repo_id}") from error
    except (HfHubHTTPError, OSError) as error:
        raise _Missing(f"the download failed ({error})") from error


def resolve_weights(items: dict[str, tuple[WeightItem, str | os.PathLike | None]], *, token=None,
                    cache_dir=None) -> dict[str, Path]:
    """key -> local path for each (item, override); raises WeightsUnavailable naming every gap.

    Order per item: the override argument, its environment variable, the local hub cache. Only what
    is still missing is looked up online, and only after a quick check that the hub is reachable.
    """
    from huggingface_hub import is_offline_mode

    found: dict[str, Path] = {}
    problems: dict[str, str] = {}
    to_fetch = []
    for key, (item, override) in items.items():
        try:
            if override is not None:
                found[key] = _check_local(item, Path(override), f"{item.argument}=")
            elif os.environ.get(item.env_var):
                found[key] = _check_local(item, Path(os.environ[item.env_var]), f"{item.env_var}=")
            elif (cached := _from_cache(item, token, cache_dir)) is not None:
                found[key] = cached
            else:
                to_fetch.append(key)
        except _Missing as why:
            problems[key] = str(why)

    if to_fetch and is_offline_mode():
        problems.update(dict.fromkeys(to_fetch, "not in the local Hugging Face cache, and downloads are "
                                                "disabled (HF_HUB_OFFLINE=1)"))
    elif to_fetch and not hub_reachable():
        problems.update(dict.fromkeys(to_fetch, "not in the local Hugging Face cache, and the hub cannot be "
                                                "reached (no network?)"))
    elif to_fetch:
        for key in to_fetch:
            try:
                _check_access(items[key][0], token)
            except _Missing as why:
                problems[key] = str(why)
    if problems:
        raise WeightsUnavailable(_report(items, problems))
    for key in to_fetch:  # every item is reachable: now the long downloads
        try:
            found[key] = _download(items[key][0], token, cache_dir)
        except _Missing as why:
            raise WeightsUnavailable(_report(items, {key: str(why)})) from None
    return found


def _report(items, problems: dict[str, str]) -> str:
    lines = ["Model weights are missing:"]
    for key, why in problems.items():
        item = items[key][0]
        lines.append(f"- {item.what} ({item.hub_name}): {why}. To get it: {item.how_to_get()}.")
    return "\n".join(lines)
