"""The one judge of a repaint: the assignment (Hungarian on references x faces) and its total.

A repair of the face assigned to reference R is measured on that face and on the assignment, never
on a reference's best face anywhere in the image (ID-Sim). On a confused image ID-Sim reads the
leak: when R's identity sits on another person's face too, R's best face may be that other face,
and repairing the other person's face makes R's ID-Sim *fall* while the image got better. So:

- R's similarity on the repaired face, before and after, must rise by MIN_GAIN;
- the repaired face must still be R's in the assignment after the repaint;
- every other reference's similarity on its own assigned face may fall by OTHERS_MARGIN at most;
- the matching score of the whole image (UMO's reward, the total the assignment maximises, by which
  candidates are ranked too) must not fall.

Plain numbers in, a `Verdict` out: `judge` reads two analyses (IdentityReport or IdentityMatch) of
the image before and after one repaint. The face repair (workflow.repair) keeps what it keeps by
this judge; so should anything else that changes faces in a finished image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# no numpy here (matching's report_number is imported where a report is written): the CLI says the
# rule in its help, and `python -m umo_pipeline --help` should not wait for numpy
from umo_pipeline.labels import format_score, format_signed, reference_label

#: R's similarity on its face must rise by at least this much (0.5 points x100): a crop scaled to the
#: working size and back with nothing repainted moved dlib's similarities by up to 0.25 points (4
#: faces, tests/library/workflow/test_repair.py's scenes), and a change of face for less than twice that noise
#: is no repair
MIN_GAIN = 0.005
#: another reference's similarity on its own assigned face may fall by at most this much (2 points
#: x100), eight times that round-trip noise: a bigger drop means the repaint took something from
#: another identity (a neighbouring face was touched, or the repainted face now resembles someone else)
OTHERS_MARGIN = 0.02


def rule() -> str:
    """The judge in one plain sentence, with its numbers (the page, the CLI and the README say it)."""
    return (f"A repair is kept only if the repainted face stays its reference's in the assignment, that "
            f"reference's similarity on it rises by at least {format_score(MIN_GAIN)}, no other reference's "
            f"similarity on its own assigned face falls by more than {format_score(OTHERS_MARGIN)}, and the "
            "matching score of the whole image does not fall (x100).")


@dataclass(frozen=True)
class Verdict:
    """One repaint of reference `reference`'s face, judged against the image before it."""

    reference: int
    #: the repaired face: its index before (None: no face was found there, as after an earlier repair
    #: that lost it), and the face found at its place after (None: lost)
    face_before: int | None
    face_after: int | None
    #: the reference the assignment gives that face after the repaint (None: nobody)
    owner_after: int | None
    similarity_before: float
    similarity_after: float | None
    id_conf_before: float | None
    id_conf_after: float | None
    #: the largest fall of another reference's similarity on its own assigned face (<= 0: none fell),
    #: and that reference (None when there is no other)
    others_drop: float
    worst_other: int | None
    score_before: float | None
    score_after: float | None
    labels: tuple[str, ...] = field(repr=False, default=())

    @property
    def gain(self) -> float | None:
        """R's similarity on the repaired face, after minus before (None: the face is gone)."""
        return None if self.similarity_after is None else self.similarity_after - self.similarity_before

    def _name(self, ref: int) -> str:
        return self.labels[ref] if ref < len(self.labels) else reference_label(ref)

    def harm(self) -> str | None:
        """What the repaint broke in the assignment, in words; None when it broke nothing there."""
        name = self._name(self.reference)
        if self.face_after is None:
            return "no face was found where the repainted face was"
        if self.owner_after != self.reference:
            owner = "no reference" if self.owner_after is None else self._name(self.owner_after)
            return f"the assignment gave the repainted face to {owner}, not {name}"
        if self.others_drop > OTHERS_MARGIN:
            return (f"{self._name(self.worst_other)}'s similarity on its own face fell by "
                    f"{format_score(self.others_drop)}, more than {format_score(OTHERS_MARGIN)}")
        return None

    def problem(self) -> str | None:
        """Why this repaint is not kept, in words (the first rule it fails); None when it is kept."""
        harm = self.harm()
        if harm is not None:
            return harm
        if self.gain < MIN_GAIN:
            return (f"{self._name(self.reference)}'s similarity on the face changed by "
                    f"{format_signed(self.gain)}, less than the {format_score(MIN_GAIN)} a repair must add")
        if self.score_before is not None and (self.score_after is None or self.score_after < self.score_before):
            return f"the matching score fell from {format_score(self.score_before)} to {format_score(self.score_after)}"
        return None

    @property
    def kept(self) -> bool:
        return self.problem() is None

    def rank_key(self) -> tuple:
        """Best first: kept ones, then those that broke nothing in the assignment (too little gain, or a
        lower matching score), then the others; within each, by the matching score after, then R's
        similarity on the face (sort is stable: ties keep seed order)."""
        tier = 0 if self.kept else 1 if self.harm() is None else 2
        score = -self.score_after if self.score_after is not None else float("inf")
        similarity = -self.similarity_after if self.similarity_after is not None else float("inf")
        return tier, score, similarity

    def to_dict(self) -> dict:
        from umo_pipeline.matching import report_number

        return {"face_before": self.face_before, "face_after": self.face_after, "owner_after": self.owner_after,
                "similarity_before": report_number(self.similarity_before),
                "similarity_after": report_number(self.similarity_after),
                "id_conf_before": report_number(self.id_conf_before),
                "id_conf_after": report_number(self.id_conf_after),
                "largest_drop_of_another_reference": report_number(self.others_drop),
                "matching_score_before": report_number(self.score_before),
                "matching_score_after": report_number(self.score_after),
                "kept": self.kept, "problem": self.problem()}


def judge(before, after, reference: int, face_before: int | None, face_after: int | None) -> Verdict:
    """The verdict on one repaint of `reference`'s face `face_before` in the analysis `before`,
    found at `face_after` in the analysis `after` (geometry.locate_face; None when no face is there;
    a face that was not there before counts similarity 0). `before` and `after`: IdentityReport or
    IdentityMatch of the same references."""
    old, new = getattr(before, "match", before), getattr(after, "match", after)
    labels = tuple(getattr(before, "labels", ()) or ())
    owner = None
    if face_after is not None:
        owner = next((ref for ref, face in enumerate(new.assignment) if face == face_after), None)
    drops = [(_assigned(old, other) - _assigned(new, other), other) for other in range(len(old.assignment))
             if other != reference and old.reference_has_face[other]]
    drop, worst = max(drops, default=(0.0, None), key=lambda pair: pair[0])
    return Verdict(
        reference=reference, face_before=face_before, face_after=face_after, owner_after=owner,
        similarity_before=0.0 if face_before is None else float(old.similarity[reference, face_before]),
        similarity_after=None if face_after is None else float(new.similarity[reference, face_after]),
        id_conf_before=old.id_conf[reference], id_conf_after=new.id_conf[reference],
        others_drop=float(drop), worst_other=worst,
        score_before=old.matching_score, score_after=new.matching_score, labels=labels)


def _assigned(match, ref: int) -> float:
    """A reference's similarity on its assigned face; 0 when the assignment left it without one (a
    person missing from the picture counts 0, as in mean_assigned_similarity)."""
    value = match.assigned_similarity[ref]
    return 0.0 if value is None else value
