"""What a request gives back: analysed images (`Panel`), one per variant for each seed (`Candidate`),
the candidates ranked best first, and the whole `WorkflowResult` with its JSON form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from umo_pipeline.matching import difference, report_number
from umo_pipeline.workflow.files import generation_settings

if TYPE_CHECKING:
    from umo_pipeline.analysis import IdentityReport
    from umo_pipeline.customizers.request import GenerationRequest
    from umo_pipeline.workflow.placement import Placement


@dataclass
class Panel:
    """One analysed image: a generated variant ("umo", "base") or an uploaded image ("image")."""

    variant: str
    title: str
    image: Image.Image
    #: the identity analysis (with no references: the faces found, nothing to match them to)
    report: IdentityReport
    #: None without references: there is nothing to put on its rows
    heatmap: Image.Image | None
    overlay: Image.Image


@dataclass
class Candidate:
    """One seed of a request: its analysed image per variant ("umo" first), and its rank (1 = best)."""

    rank: int
    seed: int
    panels: list[Panel]

    @property
    def report(self):
        """The report candidates are ranked by: UMO's (the first variant)."""
        return self.panels[0].report

    def to_dict(self) -> dict:
        report = self.report
        data = {"rank": self.rank, "seed": self.seed, "matching_score": report_number(report.matching_score),
                "mean_id_sim": report_number(report.mean_id_sim), "mean_id_conf": report_number(report.mean_id_conf),
                "summary": report.summary, "report": report.to_dict()}
        if len(self.panels) > 1:
            data["comparison"] = {panel.variant: panel.report.to_dict() for panel in self.panels[1:]}
        return data


@dataclass
class WorkflowResult:
    """Everything a UI or the CLI shows or saves after one request."""

    backend: str
    reference_names: list[str]
    references: list[Image.Image]
    panels: list[Panel]
    sheet: Image.Image
    #: set for generations, None for the analysis of an uploaded image
    request: GenerationRequest | None = None
    model: str | None = None
    #: mean ID-Sim / ID-Conf of UMO minus base (compare mode with references), else None
    deltas: dict | None = None
    #: things the user should know (no references, faceless reference, ...), in plain words
    notes: list[str] = field(default_factory=list)
    #: which face model scored the numbers and how they compare with the papers' (describe_backend)
    backend_note: str = ""
    #: every candidate, best first (one for a single seed); `panels` are the best one's (with people
    #: placed: the first panel is the best one's image after placing, `placement.composed` before)
    candidates: list[Candidate] = field(default_factory=list)
    #: set when the request placed people after composing (workflow.placement.Placement)
    placement: Placement | None = None
    #: names of the references the model was conditioned on (a generation; all of them within its limit)
    conditioned: list[str] | None = None

    def to_dict(self) -> dict:
        """The JSON report: the first panel's identity report fields at the top level (the same
        fields as `analyze --json`), plus the generation settings and, in compare mode, the base."""
        first = self.panels[0]
        data = first.report.to_dict()
        data["variant"] = first.variant
        data["reference_names"] = list(self.reference_names)
        data["notes"] = list(self.notes)
        if self.request is not None:
            data["model"] = self.model
            data["prompt"] = self.request.prompt
            data["seed"] = self.request.seed
            data["settings"] = generation_settings(self.request)
            data["conditioned"] = list(self.conditioned if self.conditioned is not None else self.reference_names)
        if len(self.panels) > 1:
            data["comparison"] = {
                panel.variant: panel.report.to_dict() for panel in self.panels[1:]
            }
            data["comparison"]["delta"] = self.deltas
        if len(self.candidates) > 1:
            data["candidates"] = [candidate.to_dict() for candidate in self.candidates]
        if self.placement is not None:
            data["placement"] = self.placement.to_dict(self.panels[0].report)
        return data


def rank_candidates(reports: Sequence, wanted_faces: int = 0) -> list[int]:
    """Indices of `reports` best first: those holding at least `wanted_faces` faces (one per person
    to be seen) before those that do not, then the highest matching score (the reward UMO was
    trained with), ties broken by the higher mean ID-Sim, then by the order given (seed order).
    Reports without a score (no references, or no face in the image) come after those with one."""
    def key(index: int):
        report = reports[index]
        score, similarity = report.matching_score, report.mean_id_sim
        too_few = wanted_faces > 0 and len(report.faces) < wanted_faces
        return (too_few, score is None, -(score or 0.0), similarity is None, -(similarity or 0.0), index)

    return sorted(range(len(reports)), key=key)


def mean_metric(report, metric: str) -> float | None:
    """A report's mean "id_sim" or "id_conf"."""
    return report.mean_id_sim if metric == "id_sim" else report.mean_id_conf


def deltas(panels: list[Panel]) -> dict | None:
    """Mean ID-Sim and ID-Conf of UMO minus the base model's, when both were generated with references."""
    by_variant = {panel.variant: panel.report for panel in panels}
    umo, base = by_variant.get("umo"), by_variant.get("base")
    if umo is None or base is None or not umo.labels:
        return None
    return {metric: difference(mean_metric(umo, metric), mean_metric(base, metric))
            for metric in ("id_sim", "id_conf")}

