"""Per-reference ID-Sim / ID-Conf for the evaluation tables, under two sets of rules.

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
  Prompt sets in this project's JSONL form follow the XVerseBench rules (the paper's x100 tables).

Everything here works on plain similarity matrices (references x output faces) so the rules can
be checked against the scripts' formulas on hand-made numbers.
"""

from __future__ import annotations

import numpy as np

from umo_pipeline.matching import mean_or_none, similarity_matrix

METRICS = ("app", "umo-eval")
#: benchmark -> (ID-Sim scale, ID-Conf scale, which face a reference contributes, faceless reference)
UMO_EVAL_RULES = {
    "xversebench": (100.0, 100.0, "most_confident", "zero"),
    "jsonl": (100.0, 100.0, "most_confident", "zero"),
    "omnicontext": (10.0, 10.0, "largest", "dropped"),
}


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
        return None if value is None or not np.isfinite(value) else float(value) * 100.0

    return ([scaled(report.id_sim[i]) for i in identities], [scaled(report.id_conf[i]) for i in identities])


#: mean over every recorded score (None skipped), as the scripts pool them; None when empty
pooled_mean = mean_or_none
