"""Similarity, reference-to-face assignment and the UMO paper's identity metrics (numpy/scipy only).

Conventions: S is a (references x output faces) matrix of cosine similarities. A row of NaN stands
for a reference in which no face was found: it takes part in nothing and gets its own status.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATCHED = "matched"
WEAK = "weak"
NOT_FOUND = "not found"
CONFUSED = "confused"
NO_REFERENCE_FACE = "no face in reference"


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

    @property
    def mean_id_sim(self) -> float | None:
        return mean_or_none(self.id_sim)

    @property
    def mean_id_conf(self) -> float | None:
        return mean_or_none(self.id_conf)


def match_identities(S: np.ndarray, thresholds) -> IdentityMatch:
    """Assignment, metrics and statuses for a matrix whose all-NaN rows are faceless references."""
    S = np.asarray(S, dtype=np.float64)
    n_refs = S.shape[0]
    has_face = [not np.all(np.isnan(row)) for row in S] if S.shape[1] else [True] * n_refs
    valid = [i for i in range(n_refs) if has_face[i]]
    sub = S[valid] if valid else np.zeros((0, S.shape[1]))

    sub_assignment = assign(sub)
    sub_statuses, sub_confused = statuses(sub, sub_assignment, thresholds)
    sub_sim, sub_conf = id_sim(sub), id_conf(sub)

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
