"""Groups past the model's reference limit: compose, assign, repair.

UNO takes 4 references and OmniGen2 5; a request takes up to params.MAX_PEOPLE. The scene is composed
with the references the model sees (`Job.conditioned`: the first ones, or those chosen); the best
candidate is the one that holds a face for every person, then the highest matching score
(rank_candidates); the Hungarian assignment of *all* the references to its faces says which face
should become whom; then every reference whose assigned face is not matched is repaired onto that
face, one at a time, each from the image as the previous kept repair left it, each kept only by
umo_pipeline.judge. The same option ("then repair faces that are not matched") serves a generation
within the limit too.

    for result in placements(job, result):   # after finish(job, images): the image after each person
        ...

Each person is one GPU call (`repair(repair_job, count)`: workflow.generate_repairs by default, the
app's ZeroGPU entry point on a Space), so no call needs more than one repair's GPU time; `count`
(JobCount) carries the whole job's progress count into the call. A stop (GenerationCancelled from the progress
callback) during a repair ends the placing there and keeps what was done. When no candidate holds a
face per person, nobody is placed (two people are never given one face): the result says so in
plain words and keeps the image and its analysis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from umo_pipeline import params
from umo_pipeline.customizers.pipeline_inputs import denoising_start
from umo_pipeline.errors import GenerationCancelled, InputError
from umo_pipeline.workflow.candidates import Panel, WorkflowResult, deltas
from umo_pipeline.workflow.face_repair import (
    RepairOutcome, generate_repairs, judge_repairs, offered_for_repair, prepare_repair,
)
from umo_pipeline.workflow.job import Job, WorkflowProgress
from umo_pipeline.workflow.repair_result import changes

#: one seed per person: each placement is a whole repair call, and the cost goal (bench/group_cost.py)
#: is 0.35 of a generation per person placed
PLACE_CANDIDATES = 1


@dataclass
class Placement:
    """What placing did to a generation's best candidate."""

    #: the composed scene (the best candidate), analysed with every reference
    composed: Panel
    #: names of the references the model was conditioned on, and of those it did not see
    conditioned: list[str]
    unseen: list[str]
    #: the references (indices) to place, in order: those whose assigned face was not matched
    planned: list[int] = field(default_factory=list)
    #: one per person placed so far, in order (kept or not)
    outcomes: list[RepairOutcome] = field(default_factory=list)
    #: people not placed, with why (their face is too small to repair, ...)
    skipped: list[str] = field(default_factory=list)
    #: when no candidate held a face per person: what was found, with advice; nobody is placed
    too_few_faces: str | None = None
    #: set when Stop (or a departure) ended the placing before its end
    stopped: str | None = None

    @property
    def placed(self) -> list[str]:
        """Names of the people whose repair the judge kept."""
        return [outcome.reference_name for outcome in self.outcomes if outcome.kept]

    def changes(self, placed) -> list[dict]:
        """Per person, composed -> placed (repair_result.changes); `placed`: the placed image's report."""
        return changes(self.composed.report.labels, self.composed.report, placed)

    def to_dict(self, placed=None) -> dict:
        """The JSON report's "placement"; with `placed` (the placed image's report), "references":
        each person's face, similarity, ID-Conf and status, composed -> placed."""
        report = self.composed.report
        return {**({"references": self.changes(placed)} if placed is not None else {}),
                "conditioned": list(self.conditioned), "not_seen_by_the_model": list(self.unseen),
                "to_place": [report.labels[ref] for ref in self.planned], "placed": self.placed,
                "repairs": [outcome.to_dict() for outcome in self.outcomes], "skipped": list(self.skipped),
                "too_few_faces": self.too_few_faces, "stopped": self.stopped,
                "composed": report.to_dict()}


def how_extra_people_are_placed(limit: int) -> str:
    """The one line the page, the CLI and the README say about people past the model's `limit`."""
    return (f"Past {limit} people, the scene is composed with the {limit} the model sees (the first {limit}, or "
            "those chosen), then each other person's photo is repainted onto the face the assignment gives them, "
            "one at a time, kept only if the repair judge keeps it.")


def placement_steps(job: Job) -> int:
    """Denoising steps of placing one person: one repair candidate at the default strength."""
    steps = job.request.steps
    return (steps - denoising_start(steps, params.STRENGTH.default)) * job.customizer.batch_count(PLACE_CANDIDATES)


def people_with_faces(references) -> int:
    """How many faces a scene must hold: one per reference (analysis.ReferenceFace) in whose photo a
    face was found."""
    return sum(1 for reference in references if reference.face is not None)


def too_few_faces(result: WorkflowResult, wanted: int) -> str | None:
    """The plain message when no candidate holds `wanted` faces (None when the best one does: the
    candidates that do rank first)."""
    found = [len(candidate.report.faces) for candidate in result.candidates]  # best first
    if not found or found[0] >= wanted:
        return None
    each = f" (the other candidates have {', '.join(map(str, found[1:]))})" if len(found) > 1 else ""
    return (f"{found[0]} face(s) were found for {wanted} people{each}, so nobody was placed: one face is never "
            "given to two people. The image and its analysis are kept. Say the number of people in the prompt "
            f"(\"{_number_word(wanted)} friends ...\"), try more candidates, or a wider image.")


def _number_word(count: int) -> str:
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")
    return words[count] if count < len(words) else str(count)


def start(job: Job, result: WorkflowResult) -> Placement:
    """Who is to be placed on the best candidate of `result` (CPU only): every reference whose
    assigned face is not matched, or nobody when the scene holds too few faces."""
    composed = result.candidates[0].panels[0]
    report = composed.report
    seen = job.conditioned if job.conditioned is not None else list(range(len(job.reference_names)))
    placement = Placement(composed=composed, conditioned=[job.reference_names[i] for i in seen],
                          unseen=[name for i, name in enumerate(job.reference_names) if i not in seen])
    placement.too_few_faces = too_few_faces(result, people_with_faces(report.references))
    if placement.too_few_faces is None:
        placement.planned = [ref for ref, (status, face) in enumerate(zip(report.statuses, report.assignment))
                             if offered_for_repair(status, face)]
        placement.skipped = [f"{job.reference_names[ref]}: no face was found in its photo, so it cannot be placed"
                             for ref, reference in enumerate(report.references) if reference.face is None]
    return placement


@dataclass(frozen=True)
class JobCount:
    """Where one GPU call's steps stand in the whole job's count, and what they are called (plain
    values: it crosses into a ZeroGPU worker with the call)."""

    offset: int
    total: int
    message: str

    def step(self, done: int) -> tuple[int, int, str]:
        """(done, total, message) of the whole job after `done` steps of this call."""
        return min(self.offset + done, self.total), self.total, self.message

    def relay(self, progress: WorkflowProgress | None) -> WorkflowProgress | None:
        """A call's own progress(done, total, message) as the whole job's."""
        if progress is None:
            return None
        return lambda done, _total, _message: progress(*self.step(done))


def placements(job: Job, result: WorkflowResult, *, repair=None,
               progress: WorkflowProgress | None = None) -> Iterator[WorkflowResult]:
    """The result after each person placed (kept or not), the last one final; the first is the
    composed scene itself. `repair(repair_job, count)`: a face repair's GPU part, one call per
    person, `count` (JobCount) saying where its steps stand in the whole job (default:
    workflow.generate_repairs, reporting to `progress`). The count continues the job's after the
    composition, with the message "Placing person 5 of 6"."""
    if repair is None:
        def repair(repair_job, count: JobCount):
            return generate_repairs(repair_job, count.relay(progress))

    placement = start(job, result)
    current = _with_placement(job, result, placement, result.candidates[0].panels[0])
    yield current
    if placement.too_few_faces is not None or not placement.planned:
        return
    per_person = placement_steps(job)
    total = job.compose_steps + per_person * len(placement.planned)
    for number, ref in enumerate(placement.planned):
        panel = current.panels[0]
        name = job.reference_names[ref]
        try:
            repair_job = prepare_repair(
                job.customizer, job.backend, panel.image, job.references, reference_names=job.reference_names,
                choose=[ref], candidates=PLACE_CANDIDATES, settings=job.request, seed=result.request.seed,
                gpu_seconds_limit=job.gpu_seconds_limit, image_name="The composed scene",
                analysed=(job.reference_faces, panel.report))
        except InputError as error:  # this person's face cannot be repaired (too small, none assigned now)
            placement.skipped.append(f"{name}: {error}")
            current = _with_placement(job, current, placement, panel)
            yield current
            continue
        count = JobCount(job.compose_steps + per_person * number, total,
                         f"Placing person {ref + 1} of {len(job.reference_names)}")
        try:
            crops = repair(repair_job, count)
        except GenerationCancelled as stop:
            placement.stopped = (f"{stop} {len(placement.outcomes)} of {len(placement.planned)} people were "
                                 "placed before it; the image is as they left it.")
            yield _with_placement(job, current, placement, panel)
            return
        image, report, outcomes = judge_repairs(repair_job, crops)
        placement.outcomes += outcomes
        if outcomes[0].kept:
            from umo_pipeline.workflow.phases import make_panel

            panel = make_panel(panel.variant, _placed_title(job, placement), image, report)
        current = _with_placement(job, current, placement, panel)
        yield current


def place_people(job: Job, result: WorkflowResult, *, repair=None,
                 progress: WorkflowProgress | None = None) -> WorkflowResult:
    """`placements` to its end: the result with every person placed (or why not)."""
    final = result
    for final in placements(job, result, repair=repair, progress=progress):
        pass
    return final


def _placed_title(job: Job, placement: Placement) -> str:
    title = job.customizer.variant_title(job.variants[0])
    return f"{title}, {len(placement.placed)} placed" if placement.placed else title


def _with_placement(job: Job, result: WorkflowResult, placement: Placement, panel: Panel) -> WorkflowResult:
    """`result` showing `panel` first, with (a copy of) `placement` and its sheet drawn again."""
    from umo_pipeline.workflow.phases import result_sheet
    from umo_pipeline.workflow.text import sheet_title

    snapshot = replace(placement, outcomes=list(placement.outcomes), skipped=list(placement.skipped),
                       planned=list(placement.planned))
    panels = [panel, *result.panels[1:]]
    shown = replace(result, panels=panels, placement=snapshot, deltas=deltas(panels))
    shown.sheet = result_sheet(shown, sheet_title(shown.request, job.customizer, shown.deltas, len(shown.candidates)))
    return shown


__all__ = ["PLACE_CANDIDATES", "JobCount", "Placement", "how_extra_people_are_placed", "people_with_faces",
           "place_people", "placement_steps", "placements", "start", "too_few_faces"]
