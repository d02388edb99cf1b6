"""How the library names and formats things for people: scores x100, references and faces, candidate
captions, prompt excerpts and the methods' names. The page, the pictures, the CLI and the evaluation
all go through these, so one rule changes in one place.

Values stay cosines (0..1) in code and JSON; people read them x100 with one decimal.
"""

from __future__ import annotations

import math

#: model name -> (base label, UMO label), as the paper's tables name the methods
METHOD_NAMES = {
    "umo-uno": ("UNO", "UMO-UNO"),
    "umo-omnigen2": ("OmniGen2", "UMO-OmniGen2"),
}

#: how much of a prompt a log line shows
LOG_EXCERPT_CHARS = 80
#: people read cosines and scores in hundredths
SCORE_SCALE = 100.0


def _defined(value) -> bool:
    return value is not None and math.isfinite(value)


def x100(value) -> float:
    """A cosine or score (or a difference of two) in the unit people read: times SCORE_SCALE."""
    return float(value) * SCORE_SCALE


#: how every result says its unit, after naming the face backend
SCALE_NOTE = "Similarities, ID-Sim and ID-Conf are x100; higher is better."


def backend_line(backend_text: str) -> tuple[str, str]:
    """The last line of a result in words: ("Face backend", the backend's note and the unit)."""
    return "Face backend", f"{backend_text} {SCALE_NOTE}"


def format_score(value) -> str:
    """A similarity or metric as people read it: x100 with one decimal; "n/a" when undefined."""
    return f"{x100(value):.1f}" if _defined(value) else "n/a"


def format_signed(difference) -> str:
    """A difference of two scores as people read it: x100, signed, one decimal; "n/a" when undefined."""
    return f"{x100(difference):+.1f}" if _defined(difference) else "n/a"


def format_delta(after, before) -> str:
    """after - before in the same unit, signed; "n/a" when either side is undefined (for instance no
    face on one side), never a misleading +0.0."""
    if not (_defined(after) and _defined(before)):
        return "n/a"
    return format_signed(float(after) - float(before))


def reference_label(index: int) -> str:
    """How the UI, pictures and texts name the reference in slot `index` (0-based)."""
    return f"Reference {index + 1}"


def face_label(index: int | None) -> str:
    """How the UI, pictures and texts name output face `index` (0-based, reading order)."""
    return "no face" if index is None else f"Face {index + 1}"


def method_name(model: str, variant: str) -> str:
    """"UMO-UNO", "OmniGen2", ...: a model's variant ("umo", "base") as the paper's tables name it;
    "umo+repair" (the UMO image with its wrong faces repaired) is "UMO-UNO + repair"."""
    base, umo = METHOD_NAMES.get(model, (f"{model} base", f"{model} UMO"))
    return {"base": base, "umo": umo, "umo+repair": f"{umo} + repair"}.get(variant, f"{model} {variant}")


def candidate_caption(candidate, compact: bool = False) -> str:
    """One candidate (rank, seed, report) in a line.

    Full: "#1 seed 42: score 12.3, ID-Sim 45.6". Compact, for a thumbnail that shows ~28 characters:
    "#1 · score 12.3 · seed 42", the score before the seed, which a ten-digit seed would push out of
    sight."""
    report = candidate.report
    score = report.matching_score
    if compact:
        shown = "no score" if score is None else f"score {format_score(score)}"
        return f"#{candidate.rank} · {shown} · seed {candidate.seed}"
    if score is None:
        reason = "no face found" if report.labels else "no references"
        return f"#{candidate.rank} seed {candidate.seed}: no score ({reason})"
    return (f"#{candidate.rank} seed {candidate.seed}: score {format_score(score)}, "
            f"ID-Sim {format_score(report.mean_id_sim)}")


def excerpt(text, limit: int = LOG_EXCERPT_CHARS) -> str:
    """User text on one line, cut to `limit` characters with "..." when longer (logs, titles)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def status_change(before: str, after: str) -> str:
    """A reference's status across a change: "matched", or "not found -> matched"."""
    return before if before == after else f"{before} -> {after}"
