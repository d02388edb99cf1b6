"""The reference cache: analysed references kept by content (their pixels, and a file's raw bytes)
and face backend, so a reference seen before is neither decoded nor detected again. Bounded (the
oldest entry goes first) and safe to share between the page's threads."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

#: Cache entries (a reference takes one or two: its pixels, and its file's bytes when it came as a
#: file): a few sessions' worth of slots, each about 1 kB plus a 160 px crop.
REFERENCE_CACHE_SIZE = 64
#: Files bigger than this are not hashed whole for the cache (a real photo is a few MB).
_MAX_HASHED_FILE_BYTES = 64 * 1024 * 1024

#: (backend name, content key) -> the analysed reference (analysis.ReferenceFace)
_reference_cache: OrderedDict[tuple[str, str], object] = OrderedDict()
_cache_lock = threading.Lock()


def cached_reference(key):
    """The reference kept under `key`, now the most recently used; None when there is none."""
    with _cache_lock:
        reference = _reference_cache.get(key)
        if reference is not None:
            _reference_cache.move_to_end(key)
        return reference


def keep_reference(keys, reference) -> None:
    """Keep `reference` under each of `keys`, dropping the least recently used beyond the bound."""
    with _cache_lock:
        for key in keys:
            _reference_cache[key] = reference
            _reference_cache.move_to_end(key)
        while len(_reference_cache) > REFERENCE_CACHE_SIZE:
            _reference_cache.popitem(last=False)


def clear_reference_cache() -> None:
    with _cache_lock:
        _reference_cache.clear()


def pixels_hash(image: Image.Image) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"pixels{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def file_content_hash(source) -> str | None:
    """Hash of a path's or a bytes object's raw content; None for anything else or unreadable
    files (load_image then reports the problem)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            path = Path(source)
            if path.stat().st_size > _MAX_HASHED_FILE_BYTES:
                return None
            data = path.read_bytes()
        except OSError:
            return None
    else:
        return None
    return "file" + hashlib.blake2b(data, digest_size=16).hexdigest()
