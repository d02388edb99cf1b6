"""Similarity, reference-to-face assignment and the identity metrics, named as the papers name them
(numpy/scipy only).

Conventions: S is a (references x output faces) matrix of cosine similarities. A row of NaN stands
for a reference in which no face was found: it takes part in nothing and gets its own status.
Values stay cosines (0..1) in code and JSON; people read them x100 with one decimal, through
`umo_pipeline.labels`, the one formatting rule for the page, pictures and CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATCHED = "matched"
WEAK = "weak"
NOT_FOUND = "not found"
CONFUSED = "confused"
NO_REFERENCE_FACE = "no face in the reference"

#: what each per-reference field of a report means, written into the JSON next to the numbers
DEFINITIONS = {
    "similarity": "cosine similarity of L2-normalised face embeddings, references (rows) x output faces "
                  "(columns, in reading order: left to right, then top to bottom)",
    "id_sim": "ID-Sim as UMO's evaluation scripts compute it: best match per reference, the highest "
              "similarity to any output face, floored at 0; 0 when the output has no face",
    "id_conf": "ID-Conf as UMO's evaluation scripts compute it: 1 - s2/s1 clipped to 0..1, s1 and s2 the "
               "reference's best and runner-up similarity; undefined with fewer than 2 output faces or s1 <= 0",
    "best_similarity": "s1: the reference's highest similarity to any output face",
    "runner_up_similarity": "s2: the reference's second-highest similarity (undefined with fewer than 2 faces)",
    "assigned_similarity": "similarity with the face the Hungarian assignment gives the reference (one face "
                           "per reference, maximum total similarity), floored at 0; the score MultiID-Bench "
                           "and MultiHuman-Testbench report; undefined when no face is left for it",
    "mean_assigned_similarity": "mean of assigned_similarity over references that have a face, a reference "
                                "left without an output face counting 0",
    "matching_score": "UMO's training reward: mean of S * W, W = +1 on assigned pairs and -1 elsewhere",
    "unit": "values are cosines (0..1); the page, pictures and CLI show them x100 with one decimal",
}


def report_number(value) -> float | None:
    """A metric as the JSON reports store it: 4 decimals; None when undefined (JSON has no NaN)."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 4)


def similarity_matrix(reference_embeddings, face_embeddings) -> np.ndarray:
    """Cosine similarity of every reference embedding (rows) with every output face (columns)."""
    refs = _as_rows(reference_embeddings)
    faces = _as_rows(face_embeddings)
    if len(refs) == 0 or len(faces) == 0:
        return np.zeros((len(refs), len(faces)), dtype=np.float64)
    if refs.shape[1] != faces.shape[1]:
        raise ValueError(
            f"embedding sizes differ ({refs.shape[1]} vs {faces.shape[1]}): "
            "references and output were analysed with different face backends"
        )
    return _normalised(refs) @ _normalised(faces).T


def _as_rows(embeddings) -> np.ndarray:
    rows = [np.asarray(e, dtype=np.float64).ravel() for e in embeddings]
    return np.stack(rows) if rows else np.zeros((0, 0))


def _normalised(rows: np.ndarray) -> np.ndarray:
    # Backends already L2-normalise; doing it again keeps S a true cosine for any caller's input.
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def assign(S: np.ndarray) -> list[int | None]:
    """Hungarian assignment maximising total similarity: per reference, a face index or None.

    Rectangular either way: with more references than faces some references get None; with more
    faces than references some faces stay unassigned.
    """
    from scipy.optimize import linear_sum_assignment

    S = np.asarray(S, dtype=np.float64)
    assignment: list[int | None] = [None] * S.shape[0]
    if S.size == 0:
        return assignment
    rows, cols = linear_sum_assignment(-S)
    for r, c in zip(rows, cols):
        assignment[int(r)] = int(c)
    return assignment


def id_sim(S: np.ndarray) -> np.ndarray:
    """Per reference: its highest similarity to any output face, 0 when no face was found.

    Negative cosines are floored at 0 so the metric stays on the paper's 0..1 (x100) scale.
    """
    S = np.asarray(S, dtype=np.float64)
    if S.shape[1] == 0:
        return np.zeros(S.shape[0])
    return np.clip(S.max(axis=1), 0.0, 1.0)


def id_conf(S: np.ndarray) -> list[float | None]:
    """Per reference: clip(1 - s2/s1, 0, 1) over its two best faces; None (undefined) with fewer
    than two faces or when s1 <= 0. High = the reference resembles one face far more than any other.
    """
    S = np.asarray(S, dtype=np.float64)
    if S.shape[1] < 2:
        return [None] * S.shape[0]
    top_two = -np.sort(-S, axis=1)[:, :2]
    return [
        None if s1 <= 0 else float(np.clip(1.0 - s2 / s1, 0.0, 1.0))
        for s1, s2 in top_two
    ]


def best_two(S: np.ndarray) -> list[tuple[int | None, float | None, int | None, float | None]]:
    """Per reference (best face, s1, runner-up face, s2); None where there are too few faces."""
    S = np.asarray(S, dtype=np.float64)
    rows = []
    for row in S:
        order = np.argsort(-row, kind="stable")
        best = int(order[0]) if len(order) else None
        second = int(order[1]) if len(order) > 1 else None
        rows.append((
            best, None if best is None else float(row[best]),
            second, None if second is None else float(row[second]),
        ))
    return rows


def assigned_similarity(S: np.ndarray, assignment: list[int | None]) -> list[float | None]:
    """Per reference: its similarity with the face the assignment gave it (floored at 0), or None."""
    S = np.asarray(S, dtype=np.float64)
    return [None if c is None else float(np.clip(S[r, c], 0.0, 1.0)) for r, c in enumerate(assignment)]


def matching_reward(S: np.ndarray, assignment: list[int | None] | None = None) -> float | None:
    """The training reward: mean of S * W with W = +1 on assigned pairs and -1 elsewhere.

    Equals (sum of assigned - sum of the rest) / (references x faces); None for an empty matrix.
    """
    S = np.asarray(S, dtype=np.float64)
    if S.size == 0:
        return None
    if assignment is None:
        assignment = assign(S)
    W = -np.ones_like(S)
    for r, c in enumerate(assignment):
        if c is not None:
            W[r, c] = 1.0
    return float((S * W).mean())


def difference(after, before) -> float | None:
    """after - before; None when either is undefined (a missing face is not a change of 0)."""
    return None if after is None or before is None else after - before


def mean_or_none(values) -> float | None:
    """Mean of the defined values (None skipped); None when there are none."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


@dataclass
class IdentityMatch:
    """Everything derived from one similarity matrix, one entry per reference where it applies."""

    similarity: np.ndarray
    assignment: list[int | None]
    id_sim: list[float | None]
    id_conf: list[float | None]
    matching_score: float | None
    statuses: list[str]
    #: per reference: indices of the references it was confused with (empty when not confused)
    confused_with: list[list[int]]
    #: per reference: similarity with its assigned face (Hungarian), None when it got none
    assigned_similarity: list[float | None]
    #: per reference: best face and its similarity s1, runner-up face and s2 (None where undefined)
    best_face: list[int | None]
    best_similarity: list[float | None]
    runner_up_face: list[int | None]
    runner_up_similarity: list[float | None]
    #: per reference: whether a face was found in it (False: it takes part in nothing)
    reference_has_face: list[bool]

    @property
    def mean_id_sim(self) -> float | None:
        return mean_or_none(self.id_sim)

    @property
    def mean_assigned_similarity(self) -> float | None:
        """Over references with a face; one the assignment left without a face counts 0, as a person
        missing from the picture should."""
        values = [
            0.0 if v is None else v
            for v, face in zip(self.assigned_similarity, self.reference_has_face) if face
        ]
        return float(np.mean(values)) if values else None

    @property
    def mean_id_conf(self) -> float | None:
        return mean_or_none(self.id_conf)


def match_identities(S: np.ndarray, thresholds, reference_has_face: list[bool] | None = None) -> IdentityMatch:
    """Assignment, metrics and statuses for a matrix whose all-NaN rows are faceless references.

    reference_has_face says which references had a face when the output has none (then S has no
    columns to carry the NaN marks).
    """
    S = np.asarray(S, dtype=np.float64)
    n_refs = S.shape[0]
    if reference_has_face is not None:
        has_face = [bool(v) for v in reference_has_face]
    else:
        has_face = [not np.all(np.isnan(row)) for row in S] if S.shape[1] else [True] * n_refs
    valid = [i for i in range(n_refs) if has_face[i]]
    sub = S[valid] if valid else np.zeros((0, S.shape[1]))

    sub_assignment = assign(sub)
    sub_statuses, sub_confused = statuses(sub, sub_assignment, thresholds)
    sub_sim, sub_conf = id_sim(sub), id_conf(sub)
    sub_best = best_two(sub)

    def scatter(values, missing):
        full = [missing() for _ in range(n_refs)]
        for k, i in enumerate(valid):
            full[i] = values[k]
        return full

    return IdentityMatch(
        similarity=S,
        assignment=scatter(sub_assignment, lambda: None),
        id_sim=scatter([float(v) for v in sub_sim], lambda: None),
        id_conf=scatter(sub_conf, lambda: None),
        matching_score=matching_reward(sub, sub_assignment),
        statuses=scatter(sub_statuses, lambda: NO_REFERENCE_FACE),
        confused_with=scatter([[valid[k] for k in c] for c in sub_confused], list),
        assigned_similarity=scatter(assigned_similarity(sub, sub_assignment), lambda: None),
        best_face=scatter([b[0] for b in sub_best], lambda: None),
        best_similarity=scatter([b[1] for b in sub_best], lambda: None),
        runner_up_face=scatter([b[2] for b in sub_best], lambda: None),
        runner_up_similarity=scatter([b[3] for b in sub_best], lambda: None),
        reference_has_face=has_face,
    )


def statuses(S: np.ndarray, assignment: list[int | None], thresholds) -> tuple[list[str], list[list[int]]]:
    """Per reference a status ("matched" / "weak" / "not found" / "confused") and who it was
    confused with.

    A reference is confused when another reference's best face is also its own best face, or when
    its second-best face scores nearly as high as its best (s2 >= confusion_ratio * s1) or also
    reaches the match threshold (the identity was copied onto two faces). All cases only count
    for faces that resemble the reference at least weakly.
    """
    S = np.asarray(S, dtype=np.float64)
    n_refs, n_faces = S.shape
    if n_faces == 0:
        return [NOT_FOUND] * n_refs, [[] for _ in range(n_refs)]
    best = S.argmax(axis=1)
    best_score = S.max(axis=1)
    owner = {c: r for r, c in enumerate(assignment) if c is not None}

    labels, confused_with = [], []
    for r in range(n_refs):
        others = _confusing_references(S, r, best, best_score, owner, thresholds)
        confused_with.append(others)
        assigned = assignment[r]
        score = S[r, assigned] if assigned is not None else -np.inf
        if best_score[r] < thresholds.weak:
            labels.append(NOT_FOUND)
        elif others or _second_face_also_resembles(S[r], thresholds):
            labels.append(CONFUSED)
        elif score >= thresholds.match:
            labels.append(MATCHED)
        elif score >= thresholds.weak:
            labels.append(WEAK)
        else:
            labels.append(NOT_FOUND)
    return labels, confused_with


def _confusing_references(S, r, best, best_score, owner, thresholds) -> list[int]:
    if best_score[r] < thresholds.weak:
        return []
    same_face = {
        k for k in range(len(S))
        if k != r and best[k] == best[r] and best_score[k] >= thresholds.weak
    }
    if _second_face_also_resembles(S[r], thresholds):
        # The rival face counts as another identity only if the reference assigned to it
        # actually resembles it; otherwise this one identity simply appears on two faces.
        second = int(np.argsort(-S[r])[1])
        for face in (int(best[r]), second):
            other = owner.get(face, r)
            if other != r and S[other, face] >= thresholds.weak:
                same_face.add(other)
    return sorted(same_face)


def _second_face_also_resembles(row: np.ndarray, thresholds) -> bool:
    if len(row) < 2:
        return False
    s1, s2 = -np.sort(-row)[:2]
    # Either ratio: the two faces are nearly interchangeable; or the second face is convincingly
    # the same person too (identity copying), which on compressed similarity scales such as
    # dlib's can happen well below the ratio.
    return s1 > 0 and s2 >= thresholds.weak and (s2 >= thresholds.confusion_ratio * s1 or s2 >= thresholds.match)
