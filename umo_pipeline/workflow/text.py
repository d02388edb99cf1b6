"""A result in words: the lines every UI prints (`describe`, `describe_repair` for a repair and
`describe_methods` for a methods comparison), the notes a result carries, and the comparison sheet's
title."""

from __future__ import annotations

from umo_pipeline.faces import describe_backend
from typing import TYPE_CHECKING

from umo_pipeline.judge import rule
from umo_pipeline.labels import (
    backend_line, candidate_caption, excerpt, format_delta, format_score, format_signed, status_change,
)
from umo_pipeline.workflow.candidates import Candidate, WorkflowResult, mean_metric

if TYPE_CHECKING:
    from umo_pipeline.workflow.face_repair import RepairResult
    from umo_pipeline.workflow.methods import MethodComparison
    from umo_pipeline.workflow.placement import Placement

#: the sheet draws its title on one line; one panel is ~36 characters of it wide
SHEET_PROMPT_CHARS = 40


def describe(result: WorkflowResult) -> list[tuple[str | None, str]]:
    """The result in words, as (label or None, text) lines, for the page, the CLI and logs alike."""
    lines: list[tuple[str | None, str]] = []
    request = result.request
    if request is not None:
        lines.append((f"Seed {request.seed}", f"{request.width}x{request.height}, {request.steps} steps, "
                                              f"guidance {request.guidance:g}"))
    for panel in result.panels:
        summary = panel.report.summary if panel.report is not None else "No identity analysis (no references)."
        lines.append((panel.title if len(result.panels) > 1 or request is not None else None, summary))
    if len(result.candidates) > 1:
        lines.append((f"Best of {len(result.candidates)} candidates", _candidates_line(result.candidates)))
    if result.deltas:
        by_variant = {panel.variant: panel.report for panel in result.panels}
        umo, base = by_variant["umo"], by_variant["base"]
        lines.append(("UMO minus base (same seed)", ", ".join(
            f"{label} {format_delta(mean_metric(umo, key), mean_metric(base, key))}"
            for key, label in (("id_sim", "ID-Sim"), ("id_conf", "ID-Conf")))))
    if result.placement is not None:
        lines += describe_placement(result.placement)
    lines += [("Note", note) for note in result.notes]
    lines.append(backend_line(result.backend_note or f"{result.backend}."))
    return lines


def describe_placement(placement: Placement) -> list[tuple[str, str]]:
    """What placing did, as (label, text) lines: who the model saw, each person placed (kept or not,
    with the numbers), who could not be, and what is still to come or why it stopped."""
    seen = f"The model saw {_names(placement.conditioned)}"
    if placement.unseen:
        seen += f"; {_names(placement.unseen)} {'was' if len(placement.unseen) == 1 else 'were'} left for placing"
    lines = [("People", seen + ".")]
    if placement.too_few_faces is not None:
        return lines + [("Too few faces", placement.too_few_faces)]
    if not placement.planned and not placement.skipped:
        return lines + [("Placed", "nobody: every person's face was matched already.")]
    lines += [("Placed" if outcome.kept else "Not placed", outcome.message) for outcome in placement.outcomes]
    lines += [("Not placed", reason) for reason in placement.skipped]
    waiting = len(placement.planned) - len(placement.outcomes) - len(placement.skipped)
    if placement.stopped is not None:
        lines.append(("Stopped", placement.stopped))
    elif waiting > 0:
        lines.append(("Placing", f"{waiting} of {len(placement.planned)} people still to place."))
    if placement.planned:
        lines.append(("Rule", rule()))
    return lines


def _names(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else (names[0] if names else "nobody")


def _candidates_line(candidates: list[Candidate]) -> str:
    return ("ranked by UMO's matching score (the reward it was trained with; ties: mean ID-Sim): "
            + "; ".join(candidate_caption(candidate) for candidate in candidates))


def generation_notes(customizer, references) -> list[str]:
    """What the user should know about a generation's inputs and model."""
    notes = []
    if not references:
        notes.append("No references: the image was generated from the prompt alone. "
                     "The identity heatmap and metrics need at least one reference photo.")
    if customizer.is_test_model:
        notes.append(test_model_note(customizer, "images"))
    return notes


def test_model_note(customizer, what: str) -> str:
    """The note on every result of a test model: what it is, and what its `what` are worth."""
    return f"{customizer.label}: {customizer.test_model_kind.format(what=what)}."


def backend_note(backend) -> str:
    """Which face model scored the numbers, as one sentence."""
    note = describe_backend(backend).removeprefix("Face backend: ")
    return note if note.endswith(".") else note + "."


def sheet_title(request, customizer, deltas: dict | None, n_candidates: int = 1) -> str:
    prompt = excerpt(request.prompt, SHEET_PROMPT_CHARS)
    title = f'"{prompt}"  seed {request.seed}  {customizer.name}'
    if n_candidates > 1:
        title = f'"{prompt}"  best of {n_candidates} seeds  {customizer.name}'
    if deltas and deltas["id_sim"] is not None:
        title += f"  |  UMO vs base: ID-Sim {format_signed(deltas['id_sim'])}"
    return title


def describe_repair(result: RepairResult) -> list[tuple[str, str]]:
    """The result in words, as (label, text) lines: per reference its face after, the similarity on
    its assigned face and ID-Conf before -> after, and its status; the matching score; what became
    of each face; the rule; the notes."""
    lines = []
    for change in result.changes():
        status = status_change(change["status_before"], change["status_after"])
        lines.append((change["reference"],
                      f"{change['face_after'] or 'no face'}: similarity "
                      f"{format_score(change['similarity_before'])} -> {format_score(change['similarity_after'])} "
                      f"({format_delta(change['similarity_after'], change['similarity_before'])}), ID-Conf "
                      f"{format_score(change['id_conf_before'])} -> {format_score(change['id_conf_after'])}, {status}"))
    before, after = result.matching_scores
    lines.append(("Matching score", f"{format_score(before)} -> {format_score(after)} ({format_delta(after, before)})"))
    lines += [("Kept" if repair.kept else "Not kept", repair.message) for repair in result.repairs]
    lines.append(("Rule", rule()))
    lines += [("Note", note) for note in result.notes]
    lines.append(backend_line(result.backend_note or f"{result.backend}."))
    return lines


def describe_methods(result: MethodComparison) -> list[tuple[str, str]]:
    """A methods comparison in words: the ranking (one caption per method), the images that could
    not be scored, the notes."""
    lines = []
    if result.ranked:
        lines.append(("Ranked by the matching score", "UMO's reward; ties: mean ID-Sim, then the order given. "
                      + "; ".join(method.caption() for method in result.ranked)))
    lines += [("Not scored", method.message) for method in result.methods if method.failed]
    lines += [("Note", note) for note in result.notes]
    lines.append(backend_line(result.backend_note or f"{result.backend}."))
    return lines
