"""The downloads folder: one folder of result files per request, under a size cap and an age, inside
Gradio's own upload folder so that Gradio serves them without a second copy."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from umo_app import gradio_internals

log = logging.getLogger("umo.downloads")

#: result files are removed oldest first beyond this size or this age
DOWNLOADS_MAX_BYTES = int(float(os.environ.get("UMO_DOWNLOADS_MAX_MB", "1024")) * 2**20)
DOWNLOADS_MAX_AGE_S = 3600
#: no result is removed younger than this, whatever the cap: its visitor's page or API client fetches
#: the files once the result arrives. Under the worst load measured (bench/load.py --users 50: 200 or
#: 500 analyses from 50 clients at once on 2 shared cores, p50 15-26 s each, three runs) a result was at
#: most 1.5 s old when its client had fetched it; a browser on a slow phone connection needs a few
#: seconds more for the pictures. A minute is forty times the measured worst: the cap becomes a target
#: that a burst may overshoot for that minute (a warning says so), never a reason to lose a result.
DOWNLOADS_MIN_AGE_S = 60


class DownloadsFolder:
    """One folder per result (an unguessable name, since the file names inside are predictable),
    under a total size cap and an age; oldest removed first, and the latest result of each page
    still open kept as long as the cap allows. No result younger than `min_age_s` is removed: when
    everything left is that young, the folder stays over its cap and a warning says so.

    Ages are measured against each result folder's modification time (its last file written), by
    `clock` (time.time; tests pass their own)."""

    #: at most one warning about the cap this often while the folder stays over it
    WARN_EVERY_S = 60.0

    def __init__(self, root: str | Path, max_bytes: int, max_age_s: float,
                 min_age_s: float = DOWNLOADS_MIN_AGE_S, clock: Callable[[], float] = time.time):
        if min_age_s > max_age_s:
            raise ValueError(f"min_age_s ({min_age_s}) must not exceed max_age_s ({max_age_s})")
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self.min_age_s = float(min_age_s)
        self._clock = clock
        self._lock = threading.Lock()
        #: session -> its latest folder; ends with the page (forget) or with the folder
        self._latest: dict[str, Path] = {}
        #: folder -> bytes: folders are written once, so each is measured once
        self._sizes: dict[Path, int] = {}
        #: folders handed out whose files are still being written: never removed, not yet measured
        self._writing: set[Path] = set()
        #: the largest result so far: room kept free for each result being written
        self._largest = 0
        #: when the folder last warned that it is over its cap (None: it is not over)
        self._over_since_warning: float | None = None
        #: a pass due once what holds the folder over its cap is old enough, should no result come first
        self._pass_due: threading.Timer | None = None
        #: called with the folders just removed (the app drops them from Gradio's file records)
        self.on_removed: Callable[[list[Path]], object] | None = None

    def new_folder(self, session: str | None = None) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            folder = self.root / secrets.token_hex(16)
            folder.mkdir()
            self._writing.add(folder)
            if session:
                self._latest[session] = folder
            self._prune(keep=folder)
            return folder

    def written(self, folder: Path) -> None:
        """Call once a folder's files are written: measures it and brings the total back under the cap,
        as far as results older than the minimum age allow."""
        with self._lock:
            self._writing.discard(folder)
            self._sizes[folder] = _bytes_in(folder)
            self._largest = max(self._largest, self._sizes[folder])
            total, results = self._prune(keep=folder)
            self._tell_when_over_the_cap(total, results)

    def forget(self, session: str) -> None:
        with self._lock:
            self._latest.pop(session, None)

    def total_bytes(self) -> int:
        return sum(_bytes_in(folder) for folder in self._folders())

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [entry for entry in self.root.iterdir() if entry.is_dir()]

    def _prune(self, keep: Path | None) -> tuple[int, int]:
        """Remove what the cap and the ages ask for; the bytes and the number of finished results left."""
        now = self._clock()
        folders = []
        for folder in self._folders():
            if folder in self._writing:
                continue
            try:
                mtime = folder.stat().st_mtime
            except FileNotFoundError:
                continue
            if folder not in self._sizes:  # left by an earlier run, or written without written()
                self._sizes[folder] = _bytes_in(folder)
            folders.append((mtime, folder))
        live = set(self._latest.values())
        # the page's latest results go last: older first within each kind
        folders.sort(key=lambda item: (item[1] in live, item[0]))
        total = sum(self._sizes[folder] for _, folder in folders)
        # what is finished must leave room for what is being written, so the folder stays under the cap
        budget = self.max_bytes - self._largest * len(self._writing)
        removed = []
        for mtime, folder in folders:
            age = now - mtime
            if folder == keep or age < self.min_age_s:  # its visitor may not have fetched it yet
                continue
            too_old = age > self.max_age_s and folder not in live
            if not (too_old or total > budget):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            total -= self._sizes.pop(folder, 0)
            removed.append(folder)
        if removed and self.on_removed is not None:
            self.on_removed(removed)
        gone = [session for session, folder in self._latest.items() if not folder.exists()]
        for session in gone:
            del self._latest[session]
        for folder in [folder for folder in self._sizes if not folder.exists()]:
            del self._sizes[folder]
        return total, len(folders) - len(removed)

    def _prune_when_aged(self) -> None:
        with self._lock:
            self._pass_due = None
            self._tell_when_over_the_cap(*self._prune(keep=None))

    def _tell_when_over_the_cap(self, total: int, results: int) -> None:
        # once a result is written and measured: new_folder's pass does not count the one it makes
        now = self._clock()
        if total > self.max_bytes and self._pass_due is None:
            # after a burst, the folder comes back under its cap without waiting for the next result
            self._pass_due = threading.Timer(self.min_age_s + 1.0, self._prune_when_aged)
            self._pass_due.daemon = True
            self._pass_due.start()
        if total <= self.max_bytes:
            if self._over_since_warning is not None:
                log.info("The downloads folder is back under its %.0f MB cap (%.1f MB).",
                         self.max_bytes / 2**20, total / 2**20)
            self._over_since_warning = None
            return
        if self._over_since_warning is not None and now - self._over_since_warning < self.WARN_EVERY_S:
            return
        self._over_since_warning = now
        log.warning("The downloads folder holds %.1f MB, over its %.0f MB cap: its %d results are all younger "
                    "than %.0f s, and are kept so that their visitors can fetch them "
                    "(raise UMO_DOWNLOADS_MAX_MB if this lasts).",
                    total / 2**20, self.max_bytes / 2**20, results, self.min_age_s)


def page_downloads(root: str | Path | None = None) -> DownloadsFolder:
    """The page's downloads folder: by default inside Gradio's upload folder, where Gradio serves the
    files as they are instead of copying them; a file removed from it answers 404."""
    downloads = DownloadsFolder(root or gradio_internals.upload_folder() / "umo_downloads",
                                DOWNLOADS_MAX_BYTES, DOWNLOADS_MAX_AGE_S)
    gradio_internals.serve_results_from(downloads.root)
    return downloads


def _bytes_in(folder: Path) -> int:
    total = 0
    try:
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass
    return total
