"""insightface backend (placeholder until the full backend lands)."""

from __future__ import annotations

import os
from pathlib import Path


def insightface_root(root=None) -> Path:
    return Path(root or os.environ.get("UMO_INSIGHTFACE_ROOT") or "~/.insightface").expanduser()


def pack_is_available(root, pack: str) -> bool:
    return any((insightface_root(root) / "models" / pack).glob("*.onnx"))
