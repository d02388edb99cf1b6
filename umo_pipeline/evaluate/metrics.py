"""Per-reference ID-Sim / ID-Conf (and, where a case has a ground-truth photo, GT-Sim and the
copy-paste score) for the evaluation tables, under three sets of rules.

"app": the numbers the app shows (umo_pipeline.matching): ID-Sim floored at 0, ID-Conf undefined
  (None) when the best similarity is not positive, a reference contributes its largest face.
"umo-eval": UMO's released evaluation scripts, bytedance/UMO eval/id_conf_xversebench.py (with
  XVerse's eval/tools/idip_face_score.py for ID-Sim) and eval/id_omnicontext.py:
  - raw cosines, not floored (negative ID-Sim counts as it is);
  - ID-Conf = min(1, (s1 - s2) / s1) when s1 > 0, else 0 (not undefined); only with 2+ faces;
  - XVerseBench: x100; a reference whose face is not found compares as 0 with every face
    (XVerse's FaceID returns 0), so it scores ID-Sim 0 and ID-Conf 0; its face is the first one the
    detector returns, i.e. the most confident;
  - OmniContext: ID-Sim = cosine x 100 / 10, ID-Conf x 10 (both 0-10, like OmniContext's GPT
    scores); a reference without a face is left out; its face is the largest detected one;
  - the means are over every (image, reference) score pooled, per task type and overall.
  Prompt sets in this project's JSONL form, and MultiID-Bench, follow the XVerseBench rules.
"multiid-bench": MultiID-Bench's MultiID-Bench/eval.py and metrics/arcface_metric.py (Doby-Xu/
  WithAnyone at 996d152):
  - a reference contributes its most confident face (insightface's first, arcface_metric.py:185);
  - ID-Sim is their Sim(Ref): the raw cosine with the output face the Hungarian method assigns the
    reference (arcface_metric.py:350-389), not the best face, not floored; ID-Conf (not theirs)
    stays the app's;
  - an image without a face, or a case with a reference without one, is a failed sample
    (eval.py:276-278, arcface_metric.py:179-181): it counts in no mean;
  - a summary figure is the mean of the per-image means (eval.py:951-961), outliers outside
    1.5 IQR dropped first, the median when that would drop over half (eval.py:491-585).
Ground truth (any rules): per reference, GT-Sim = cosine of its output face with the ground-truth
face matched to that face, and the copy-paste score (umo_pipeline.ground_truth); under "app" GT-Sim
is floored at 0 like the app's similarities; under "multiid-bench" an image's GT-Sim is their
Sim(GT), the mean over every matched (output, ground-truth) pair (arcface_metric.py:310-348).
Every figure is x100, the app's unit (MultiID-Bench's tables print the raw value: divide by 100).

Everything here works on plain similarity matrices (references x output faces) so the rules can
be checked against the scripts' formulas on hand-made numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from umo_pipeline.ground_truth import match_ground_truth
from umo_pipeline.labels import x100
from umo_pipeline.matching import assign, mean_or_none, report_number, similarity_matrix

METRICS = ("app", "umo-eval", "multiid-bench")
#: benchmark -> (ID-Sim scale, ID-Conf scale, which face a reference contributes, faceless reference)
UMO_EVAL_RULES = {
    "xversebench": (100.0, 100.0, "most_confident", "zero"),
    "jsonl": (100.0, 100.0, "most_confident", "zero"),
    "omnicontext": (10.0, 10.0, "largest", "dropped"),
    "multiid-bench": (100.0, 100.0, "most_confident", "zero"),
}
#: the insightface detector's score threshold a rule set asks for; absent: the app's
#: (faces/insightface_backend.py DETECTION_MIN_SCORE). MultiID-Bench's ArcFace scorer prepares its
#: detector with det_thresh=0.45 (metrics/arcface_metric.py:58-59 at 996d152).
DETECTION_THRESHOLDS = {"multiid-bench": 0.45}
#: MultiID-Bench's outlier rule: drop values outside [Q1 - k IQR, Q3 + k IQR] (eval.py:491, 539-548)
IQR_FACTOR = 1.5


def scoring_backend(rules: str, name: str = "auto", **options):
    """The face backend `name` as `rules` needs it: with the rule set's detection threshold (only
    insightface's detector has one; dlib ignores it). options: get_face_backend's others."""
    from umo_pipeline.faces import get_face_backend

    return get_face_backend(name, detection_threshold=DETECTION_THRESHOLDS.get(rules), **options)


def reference_face(faces, benchmark: str):
    """The face a reference contributes under umo-eval's rules for `benchmark` (None: no face)."""
    if not faces:
        return None
    rule = UMO_EVAL_RULES[benchmark][2]
    if rule == "largest":
        return max(faces, key=lambda f: f.area)
    return max(faces, key=lambda f: f.det_score)


def umo_eval_scores(S, benchmark: str, reference_has_face=None) -> tuple[list[float | None], list[float | None]]:
    """Per reference (rows of S): scaled ID-Sim and ID-Conf, None where the script records nothing.

    reference_has_face: per reference, whether a face was found in it; by default a row of NaN
    marks a reference without a face (give it explicitly when the output has no face at all).
    """
    sim_scale, conf_scale, _, faceless = UMO_EVAL_RULES[benchmark]
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2:
        S = S.reshape(len(S), -1)
    n_refs, n_faces = S.shape
    if reference_has_face is None:
        reference_has_face = [n_faces == 0 or not np.all(np.isnan(row)) for row in S]
    sims, confs = [], []
    for row, has_face in zip(S, reference_has_face):
        if not has_face:
            if faceless == "dropped":
                sims.append(None)
                confs.append(None)
                continue
            row = np.zeros(n_faces)
        if n_faces == 0:
            # No output face: ID-Sim 0; ID-Conf is only recorded with two faces or more.
            sims.append(0.0)
            confs.append(None)
            continue
        ordered = np.sort(row)[::-1]
        sims.append(float(ordered[0]) * sim_scale)
        if n_faces > 1:
            s1, s2 = ordered[0], ordered[1]
            conf = min(1.0, (s1 - s2) / s1) if s1 > 0 else 0.0
            confs.append(float(conf) * conf_scale)
        else:
            confs.append(None)
    return sims, confs


def umo_eval_similarity(reference_faces, output_faces) -> np.ndarray:
    """references x output faces raw cosine similarity; rows of NaN for references without a face."""
    S = np.full((len(reference_faces), len(output_faces)), np.nan)
    rows = [i for i, face in enumerate(reference_faces) if face is not None]
    if rows and output_faces:
        S[rows] = similarity_matrix([reference_faces[i].embedding for i in rows],
                                    [f.embedding for f in output_faces])
    return S


def app_scores(report, identities) -> tuple[list[float | None], list[float | None]]:
    """The app's per-reference ID-Sim / ID-Conf (x100) for the references in `identities`."""
    def scaled(value):
        return None if value is None or not np.isfinite(value) else x100(value)

    return ([scaled(report.id_sim[i]) for i in identities], [scaled(report.id_conf[i]) for i in identities])


#: mean over every recorded score (None skipped), as the scripts pool them; None when empty
pooled_mean = mean_or_none


def trimmed_mean(values) -> float | None:
    """MultiID-Bench's summary "mean" (eval.py:491-585): the mean of the values inside
    [Q1 - 1.5 IQR, Q3 + 1.5 IQR]; the median of all of them when that would keep under half."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return None
    q1, q3 = np.percentile(data, 25), np.percentile(data, 75)
    spread = q3 - q1
    kept = data[(data >= q1 - IQR_FACTOR * spread) & (data <= q3 + IQR_FACTOR * spread)]
    if kept.size < data.size * 0.5:
        return float(np.median(data))
    return float(np.mean(kept))


def summary_figure(records: list[dict], metric: str, rules: str) -> tuple[float | None, int]:
    """A table's figure for `metric` ("id_sim", "id_conf", "gt_sim", "copy_paste") over `records`,
    and how many scores it is made of: every (image, reference) score pooled, or under
    "multiid-bench" the trimmed mean of the per-image means."""
    if rules == "multiid-bench":
        values = [r.get(f"mean_{metric}") for r in records]
        values = [v for v in values if v is not None]
        return trimmed_mean(values), len(values)
    values = [v for r in records for v in (r.get(metric) or []) if v is not None]
    return pooled_mean(values), len(values)


def scoring_reference_faces(rules: str, backend, images, case) -> list | None:
    """The face each identity of `case` contributes under `rules`; None under "app" (the identity
    report's own reference faces are used)."""
    if rules == "umo-eval":
        return [reference_face(backend.detect(images[i]), case.benchmark) for i in case.identities]
    if rules == "multiid-bench":
        from umo_pipeline.faces.common import detect_with_border

        # MultiID-Bench pads every reference 1.5x with black before detecting (eval.py:47-76,
        # 251-252); the border retry does that for the references that need it. Its ArcFace scorer
        # takes the detector's first face, i.e. its most confident (the "multiid-bench" rule).
        return [reference_face(detect_with_border(backend, images[i]), "multiid-bench") for i in case.identities]
    return None


@dataclass
class ItemScores:
    """An image's scores in the unit people read (x100, or 0-10 on OmniContext under umo-eval):
    per identity, and the image's means; GT-Sim and copy-paste only when the case has a ground truth."""

    id_sim: list[float | None]
    id_conf: list[float | None]
    mean_id_sim: float | None
    mean_id_conf: float | None
    gt_sim: list[float | None] | None = None
    copy_paste: list[float | None] | None = None
    mean_gt_sim: float | None = None
    mean_copy_paste: float | None = None
    #: why the image counts in no mean (MultiID-Bench's failed sample); None when it counts
    excluded: str | None = None
    #: the ground-truth match in raw cosines (GroundTruthMatch.to_dict()), None without a ground truth
    ground_truth: dict | None = None

    def record_fields(self) -> dict:
        rounded = lambda values: None if values is None else [report_number(v) for v in values]  # noqa: E731
        return {
            "id_sim": rounded(self.id_sim), "id_conf": rounded(self.id_conf),
            "mean_id_sim": report_number(self.mean_id_sim), "mean_id_conf": report_number(self.mean_id_conf),
            "gt_sim": rounded(self.gt_sim), "copy_paste": rounded(self.copy_paste),
            "mean_gt_sim": report_number(self.mean_gt_sim), "mean_copy_paste": report_number(self.mean_copy_paste),
            "excluded": self.excluded, "ground_truth_match": self.ground_truth,
        }


def score_item(rules: str, case, report, reference_faces=None, ground_truth_faces=None) -> ItemScores:
    """Scores of one generated image under `rules`.

    report: the app's IdentityReport of the image; reference_faces: `scoring_reference_faces`'s
    answer; ground_truth_faces: the faces found in the case's ground truth, None when it has none.
    """
    identities = list(case.identities)
    if rules == "app":
        id_sim, id_conf = app_scores(report, identities)
        faces = [report.references[i].face for i in identities]
    elif rules == "umo-eval":
        S = umo_eval_similarity(reference_faces, report.faces)
        id_sim, id_conf = umo_eval_scores(S, case.benchmark, [f is not None for f in reference_faces])
        faces = reference_faces
    elif rules == "multiid-bench":
        return _multiid_scores(case, report, reference_faces, ground_truth_faces)
    else:
        raise ValueError(f"unknown metrics {rules!r}; choose one of {', '.join(METRICS)}")
    scores = ItemScores(id_sim=id_sim, id_conf=id_conf, mean_id_sim=pooled_mean(id_sim),
                        mean_id_conf=pooled_mean(id_conf))
    if ground_truth_faces is not None:
        match = _ground_truth_match(faces, report.faces, ground_truth_faces)
        floor = 0.0 if rules == "app" else -np.inf  # the app's similarities are floored at 0
        scores.gt_sim = [None if v is None else x100(max(v, floor)) for v in match.gt_similarity]
        scores.copy_paste = _scaled(match.copy_paste)
        scores.mean_gt_sim, scores.mean_copy_paste = pooled_mean(scores.gt_sim), pooled_mean(scores.copy_paste)
        scores.ground_truth = match.to_dict()
    return scores


def _ground_truth_match(reference_faces, output_faces, ground_truth_faces):
    return match_ground_truth([None if f is None else f.embedding for f in reference_faces],
                              [f.embedding for f in output_faces], [f.embedding for f in ground_truth_faces])


def _scaled(values) -> list[float | None]:
    return [None if v is None else x100(v) for v in values]


def _multiid_scores(case, report, reference_faces, ground_truth_faces) -> ItemScores:
    n = len(reference_faces)
    _, app_conf = app_scores(report, list(case.identities))
    match = None if ground_truth_faces is None else _ground_truth_match(reference_faces, report.faces,
                                                                        ground_truth_faces)
    faceless = sum(f is None for f in reference_faces)
    excluded = ("no face in the output" if not report.faces else
                f"no face found in {faceless} of the {n} references" if faceless else None)
    if excluded:
        # A failed sample in eval.py: it adds to none of the lists the means are taken over.
        nothing = [None] * n
        return ItemScores(id_sim=nothing, id_conf=nothing, mean_id_sim=None, mean_id_conf=None,
                          gt_sim=None if match is None else nothing, copy_paste=None if match is None else nothing,
                          excluded=excluded, ground_truth=None if match is None else match.to_dict())
    S = umo_eval_similarity(reference_faces, report.faces)
    id_sim = [None if j is None else x100(S[i, j]) for i, j in enumerate(assign(S))]
    scores = ItemScores(id_sim=id_sim, id_conf=app_conf, mean_id_sim=pooled_mean(id_sim),
                        mean_id_conf=pooled_mean(app_conf))
    if match is not None:
        scores.gt_sim = _scaled(match.gt_similarity)
        scores.copy_paste = _scaled(match.copy_paste)
        scores.mean_gt_sim = None if match.sample_gt_similarity is None else x100(match.sample_gt_similarity)
        scores.mean_copy_paste = pooled_mean(scores.copy_paste)
        scores.ground_truth = match.to_dict()
    return scores
