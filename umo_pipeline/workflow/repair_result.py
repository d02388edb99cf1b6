"""What a face repair gives back: each candidate with the judge's verdict (CandidateRepair), what
became of each chosen face (RepairOutcome), and the repaired image with before/after per reference
(RepairResult), as generation keeps its results in candidates.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from umo_pipeline.analysis import IdentityReport
from umo_pipeline.judge import Verdict, rule
from umo_pipeline.labels import face_label
from umo_pipeline.matching import difference, report_number
from umo_pipeline.workflow.candidates import Panel


@dataclass
class CandidateRepair:
    """One seed's repaint of a face, pasted, analysed and judged."""

    seed: int
    verdict: Verdict
    report: IdentityReport = field(repr=False)
    #: the whole image with this repaint pasted in
    image: Image.Image = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"seed": self.seed, **self.verdict.to_dict()}


@dataclass
class RepairOutcome:
    """What became of one chosen face."""

    reference: int
    reference_name: str
    face: int
    crop_box: tuple[int, int, int, int]
    mask: Image.Image = field(repr=False)
    #: best first (Verdict.rank_key)
    candidates: list[CandidateRepair] = field(default_factory=list)
    kept_seed: int | None = None
    message: str = ""

    @property
    def kept(self) -> bool:
        return self.kept_seed is not None

    @property
    def verdict(self) -> Verdict:
        """The judge's verdict on the kept candidate, or on the best one when none was kept."""
        return self.candidates[0].verdict

    def to_dict(self) -> dict:
        verdict = self.verdict
        after = verdict if self.kept else None
        return {"reference": self.reference_name, "face": face_label(self.face), "crop_box": list(self.crop_box),
                "kept": self.kept, "kept_seed": self.kept_seed, "message": self.message,
                "similarity_before": report_number(verdict.similarity_before),
                "similarity_after": report_number(after.similarity_after if after else verdict.similarity_before),
                "id_conf_before": report_number(verdict.id_conf_before),
                "id_conf_after": report_number(after.id_conf_after if after else verdict.id_conf_before),
                "matching_score_before": report_number(verdict.score_before),
                "matching_score_after": report_number(after.score_after if after else verdict.score_before),
                "candidates": [candidate.to_dict() for candidate in self.candidates]}


@dataclass
class RepairResult:
    """The repaired image, before/after per reference, which repairs were kept, and notes."""

    image: Image.Image
    original: Image.Image
    reference_names: list[str]
    before: Panel
    after: Panel
    repairs: list[RepairOutcome]
    settings: dict
    backend: str
    model: str
    notes: list[str] = field(default_factory=list)
    backend_note: str = ""
    #: the files written by `repair(..., folder=...)` / `save_repair`
    files: list[Path] = field(default_factory=list)
    #: the input's alpha channel, when it had transparency (RepairJob.alpha)
    alpha: Image.Image | None = None

    def picture(self) -> Image.Image:
        """The repaired image as its file holds it: with the input's alpha channel where it had one."""
        if self.alpha is None:
            return self.image
        picture = self.image.copy()
        picture.putalpha(self.alpha)
        return picture

    def paste_mask(self) -> Image.Image:
        """Where the repaired image may differ from the original ("L", 0 = byte-identical)."""
        mask = Image.new("L", self.image.size, 0)
        for repair in self.repairs:
            if repair.kept:
                region = mask.crop(repair.crop_box)
                mask.paste(Image.fromarray(np.maximum(np.asarray(region), np.asarray(repair.mask))), repair.crop_box)
        return mask

    @property
    def matching_scores(self) -> tuple[float | None, float | None]:
        """The whole image's matching score before and after the repair."""
        return self.before.report.matching_score, self.after.report.matching_score

    def changes(self) -> list[dict]:
        """Per reference, on the assignment before and after the repair (`changes`)."""
        return changes(self.reference_names, self.before.report, self.after.report)

    def to_dict(self) -> dict:
        before, after = self.matching_scores
        return {"reference_names": list(self.reference_names), "model": self.model, "backend": self.backend,
                "settings": dict(self.settings), "rule": rule(), "references": self.changes(),
                "matching_score_before": report_number(before), "matching_score_after": report_number(after),
                "repairs": [repair.to_dict() for repair in self.repairs], "notes": list(self.notes),
                "before": self.before.report.to_dict(), "after": self.after.report.to_dict()}


def changes(names, old: IdentityReport, new: IdentityReport) -> list[dict]:
    """Per reference, on the assignment of two analyses of one picture (before and after repaints):
    its assigned face, the similarity on it, ID-Conf and status (values are cosines, None undefined);
    ID-Sim beside them, reported only."""
    return [{"reference": name, "face_before": _face_name(old.assignment[i]),
             "face_after": _face_name(new.assignment[i]),
             "similarity_before": report_number(old.assigned_similarity[i]),
             "similarity_after": report_number(new.assigned_similarity[i]),
             "delta": report_number(difference(new.assigned_similarity[i], old.assigned_similarity[i])),
             "id_conf_before": report_number(old.id_conf[i]), "id_conf_after": report_number(new.id_conf[i]),
             "id_sim_before": report_number(old.id_sim[i]), "id_sim_after": report_number(new.id_sim[i]),
             "status_before": old.statuses[i], "status_after": new.statuses[i]}
            for i, name in enumerate(names)]


def _face_name(face: int | None) -> str | None:
    return None if face is None else face_label(face)

