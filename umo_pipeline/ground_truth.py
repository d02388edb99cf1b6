"""Identity against a ground-truth photo, as MultiID-Bench (WithAnyone) scores it: how close each
generated person is to the same person photographed in the target scene, and the copy-paste score
that tells resemblance from copying the reference photo.

The math (`match_ground_truth`, `copy_paste_score`) is numpy only, on embeddings, like matching.py;
`compare_with_ground_truth` detects the faces first (the face backend is imported when called).

Matching, as MultiID-Bench's metrics/arcface_metric.py does it (Doby-Xu/WithAnyone at 996d152):
- each reference gets an output face by the Hungarian method on the references x output cosines
  (`compare_faces_with_confusion_matrix_with_ref`, lines 350-389);
- each output face gets a ground-truth face by the Hungarian method on output x ground-truth
  cosines (`compare_faces_with_confusion_matrix`, lines 310-348): so the ground-truth face of a
  reference is the one matched to *its* output face ("Hungarian on both sides");
- copy-paste, per (output g, ground truth t, reference r): (theta(g,t) - theta(g,r)) / theta(t,r),
  theta = arccos of the cosine clipped to [-1, 1]; 0 when theta(t,r) < 1e-6 (lines 24-51); only
  when the output, the ground truth and the references hold the same number of faces (lines 269-275).
  +1: the output face is the reference photo's face; -1: it is the ground truth's. Lower is better.
Values are raw cosines and raw scores here; people read them x100 (umo_pipeline.labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from umo_pipeline.matching import assign, mean_or_none, report_number, similarity_matrix

#: theta(t, r) below this (radians) gives copy-paste 0, as arcface_metric.py:48 does
COPY_PASTE_EPSILON = 1e-6


def angle(a, b) -> float:
    """Angle in radians between two embeddings: arccos of their cosine, clipped to [-1, 1].

    MultiID-Bench divides each vector by (its norm + 1e-6), harmless on the unnormalised ArcFace
    embeddings it scores; on this project's unit-length embeddings that would put about 0.002 rad
    between a face and itself, so the vectors are normalised exactly (a zero vector stays zero).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    cosine = float(np.dot(a, b) / norms) if norms > 0 else 0.0
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def copy_paste_score(generated, ground_truth, reference, eps: float = COPY_PASTE_EPSILON) -> float:
    """(theta(g, t) - theta(g, r)) / theta(t, r) for one person; 0 when theta(t, r) < eps.

    Positive: the generated face is closer to the reference photo than to the person in the
    scene (copied); negative: closer to the ground truth. Bounded by [-1, 1] (triangle inequality
    on the sphere).
    """
    theta_tr = angle(ground_truth, reference)
    if theta_tr < eps:
        return 0.0
    return (angle(generated, ground_truth) - angle(generated, reference)) / theta_tr


@dataclass
class GroundTruthMatch:
    """One output image against its references and its ground truth, per reference where it applies.

    output_face: the output face the reference was assigned (None: no face left for it, or the
      reference has none). ground_truth_face: the ground-truth face matched to that output face.
    gt_similarity: cosine of those two faces (raw, may be negative).
    copy_paste: the copy-paste score of (output face, ground-truth face, reference); None for every
      reference when it is undefined (`copy_paste_undefined` says why).
    sample_gt_similarity: MultiID-Bench's per-image Sim(GT), the mean cosine over every matched
      (output, ground-truth) pair, including output faces no reference was given.
    """

    output_face: list[int | None]
    ground_truth_face: list[int | None]
    gt_similarity: list[float | None]
    copy_paste: list[float | None]
    copy_paste_undefined: str | None
    sample_gt_similarity: float | None
    n_output_faces: int
    n_ground_truth_faces: int
    reference_has_face: list[bool]

    @property
    def mean_gt_similarity(self) -> float | None:
        """Mean of the per-reference GT similarities that are defined."""
        return mean_or_none(self.gt_similarity)

    @property
    def mean_copy_paste(self) -> float | None:
        """MultiID-Bench's per-image copy-paste score: the mean over its people (None: undefined)."""
        return mean_or_none(self.copy_paste)

    def to_dict(self) -> dict:
        """JSON-ready (raw cosines and scores, 4 decimals; None where undefined)."""
        return {
            "output_face": list(self.output_face),
            "ground_truth_face": list(self.ground_truth_face),
            "gt_similarity": [report_number(v) for v in self.gt_similarity],
            "copy_paste": [report_number(v) for v in self.copy_paste],
            "copy_paste_undefined": self.copy_paste_undefined,
            "mean_gt_similarity": report_number(self.mean_gt_similarity),
            "mean_copy_paste": report_number(self.mean_copy_paste),
            "sample_gt_similarity": report_number(self.sample_gt_similarity),
            "faces": {"output": self.n_output_faces, "ground_truth": self.n_ground_truth_faces,
                      "references_with_a_face": sum(self.reference_has_face)},
        }


def match_ground_truth(reference_embeddings, output_embeddings, ground_truth_embeddings) -> GroundTruthMatch:
    """Per reference: its output face, that face's ground-truth face, their similarity, and the
    copy-paste score.

    reference_embeddings: one per reference, None for a reference in which no face was found.
    output_embeddings, ground_truth_embeddings: every face found in the output / the ground truth.
    """
    n_refs = len(reference_embeddings)
    has_face = [e is not None for e in reference_embeddings]
    rows = [i for i in range(n_refs) if has_face[i]]
    refs = [reference_embeddings[i] for i in rows]
    outputs, truths = list(output_embeddings), list(ground_truth_embeddings)

    output_face: list[int | None] = [None] * n_refs
    for k, face in enumerate(assign(similarity_matrix(refs, outputs)) if refs and outputs else []):
        output_face[rows[k]] = face
    G = similarity_matrix(outputs, truths)  # output faces x ground-truth faces
    truth_of_output = assign(G) if outputs and truths else [None] * len(outputs)
    matched = [G[j, t] for j, t in enumerate(truth_of_output) if t is not None]
    sample_gt = float(np.mean(matched)) if matched else None

    ground_truth_face = [None if j is None else truth_of_output[j] for j in output_face]
    gt_similarity = [None if j is None or t is None else float(G[j, t])
                     for j, t in zip(output_face, ground_truth_face)]

    why = _copy_paste_undefined(n_refs, sum(has_face), len(outputs), len(truths))
    copy_paste: list[float | None] = [None] * n_refs
    if why is None:
        for i in range(n_refs):
            j, t = output_face[i], ground_truth_face[i]
            copy_paste[i] = copy_paste_score(outputs[j], truths[t], reference_embeddings[i])
    return GroundTruthMatch(
        output_face=output_face, ground_truth_face=ground_truth_face, gt_similarity=gt_similarity,
        copy_paste=copy_paste, copy_paste_undefined=why, sample_gt_similarity=sample_gt,
        n_output_faces=len(outputs), n_ground_truth_faces=len(truths), reference_has_face=has_face,
    )


def _copy_paste_undefined(n_refs: int, n_with_face: int, n_outputs: int, n_truths: int) -> str | None:
    """Why the copy-paste score is undefined (MultiID-Bench returns None), or None when it is not."""
    if n_refs == 0:
        return "no references"
    if n_with_face < n_refs:
        return f"no face found in {n_refs - n_with_face} of the {n_refs} references"
    if n_outputs == 0 or n_truths == 0:
        return "no face in the " + ("output" if n_outputs == 0 else "ground truth")
    if not n_outputs == n_truths == n_refs:
        return (f"face counts differ: {n_outputs} in the output, {n_truths} in the ground truth, "
                f"{n_refs} references")
    return None


@dataclass
class GroundTruthReport:
    """`compare_with_ground_truth`'s answer: the match, with the faces it was computed on."""

    backend: str
    labels: list[str]
    match: GroundTruthMatch
    output_faces: list
    ground_truth_faces: list

    gt_similarity = property(lambda self: self.match.gt_similarity)
    copy_paste = property(lambda self: self.match.copy_paste)
    copy_paste_undefined = property(lambda self: self.match.copy_paste_undefined)
    mean_gt_similarity = property(lambda self: self.match.mean_gt_similarity)
    mean_copy_paste = property(lambda self: self.match.mean_copy_paste)
    sample_gt_similarity = property(lambda self: self.match.sample_gt_similarity)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "labels": list(self.labels), **self.match.to_dict(),
                "unit": "raw cosines and copy-paste scores; people read them x100"}


def compare_with_ground_truth(references, output, ground_truth, backend="auto", *,
                              labels: list[str] | None = None) -> GroundTruthReport:
    """Per reference: similarity of its output face to the same person in the ground truth, and the
    copy-paste score (see the module's docstring).

    references, output, ground_truth: images (PIL, paths, bytes); references may also be
    ReferenceFace objects from `umo_pipeline.analysis.analyze_reference`. Each reference contributes
    its largest face, as in `analyze_identity`. backend: a FaceBackend or a name ("auto", "dlib",
    "insightface").
    """
    from umo_pipeline.analysis import analyze_references, load_analysed_image, resolve_backend
    from umo_pipeline.faces.common import reading_order

    backend = resolve_backend(backend)
    labels, analysed = analyze_references(references, backend, labels)

    def faces(image, name):
        return reading_order(backend.detect(load_analysed_image(image, name)))

    output_faces, truth_faces = faces(output, "output image"), faces(ground_truth, "ground-truth image")
    match = match_ground_truth([None if r.face is None else r.face.embedding for r in analysed],
                               [f.embedding for f in output_faces], [f.embedding for f in truth_faces])
    return GroundTruthReport(backend=backend.name, labels=labels, match=match,
                             output_faces=output_faces, ground_truth_faces=truth_faces)
