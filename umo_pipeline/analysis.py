"""Identity analysis of one output image against its references: which reference went where,
how faithfully, and whether identities were confused (the report behind the heatmap and the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from umo_pipeline import identity_summary, matching
from umo_pipeline.errors import InputError
from umo_pipeline.faces import get_face_backend
from umo_pipeline.faces.base import Face, FaceBackend, Thresholds
from umo_pipeline.faces.common import detect_with_border, reading_order
from umo_pipeline.images import load_image
from umo_pipeline.labels import face_label, format_score, reference_label
from umo_pipeline.reference_cache import (
    cached_reference,
    clear_reference_cache,
    file_content_hash,
    keep_reference,
    pixels_hash,
)

__all__ = ["IdentityReport", "ReferenceFace", "analyze_identity", "analyze_reference", "analyze_references",
           "clear_reference_cache", "load_analysed_image", "resolve_backend"]


@dataclass(frozen=True)
class ReferenceFace:
    """The face a reference image contributes (its largest), and how many faces it had."""

    face: Face | None
    n_faces: int
    backend: str
    image_size: tuple[int, int]

    @property
    def warning(self) -> str | None:
        """Plain words on what went wrong with this reference, None when it has exactly one face."""
        if self.face is None:
            return "no face found in this image, so it cannot be compared"
        if self.n_faces > 1:
            x0, y0, x1, y1 = self.face.bbox
            where = _horizontal_position((x0 + x1) / 2, self.image_size[0])
            return (
                f"{self.n_faces} faces found; the largest one ({where}, "
                f"{round(x1 - x0)} x {round(y1 - y0)} px) was used"
            )
        return None


def _horizontal_position(centre_x: float, width: int) -> str:
    third = centre_x / max(width, 1) * 3
    return "on the left" if third < 1 else "in the centre" if third < 2 else "on the right"


def resolve_backend(backend) -> FaceBackend:
    if isinstance(backend, FaceBackend):
        return backend
    return get_face_backend(backend or "auto")


def analyze_reference(image, backend="auto", *, name: str | None = None) -> ReferenceFace:
    """Find the largest face of a reference image; cached by image content and backend name.

    Files and bytes are also looked up by their raw content first, so a reference seen before is
    not even decoded again.
    """
    backend = resolve_backend(backend)
    file_key = file_content_hash(image)
    cached = cached_reference((backend.name, file_key)) if file_key else None
    if cached is not None:
        return cached
    rgb = load_image(image, name=name)
    pixels_key = pixels_hash(rgb)
    reference = cached_reference((backend.name, pixels_key))
    if reference is None:
        # A face-only reference (what UMO's authors advise) needs a border for most detectors.
        faces = detect_with_border(backend, rgb)
        reference = ReferenceFace(
            face=faces[0] if faces else None, n_faces=len(faces), backend=backend.name, image_size=rgb.size
        )
    keep_reference([(backend.name, k) for k in (pixels_key, file_key) if k], reference)
    return reference


@dataclass
class IdentityReport:
    """Faces of one output image matched against the references' faces."""

    backend: str
    thresholds: Thresholds
    labels: list[str]
    references: list[ReferenceFace]
    faces: list[Face]
    image_size: tuple[int, int]
    match: matching.IdentityMatch
    warnings: list[str] = field(default_factory=list)

    similarity = property(lambda self: self.match.similarity)
    assignment = property(lambda self: self.match.assignment)
    id_sim = property(lambda self: self.match.id_sim)
    id_conf = property(lambda self: self.match.id_conf)
    statuses = property(lambda self: self.match.statuses)
    mean_id_sim = property(lambda self: self.match.mean_id_sim)
    mean_id_conf = property(lambda self: self.match.mean_id_conf)
    matching_score = property(lambda self: self.match.matching_score)
    assigned_similarity = property(lambda self: self.match.assigned_similarity)
    mean_assigned_similarity = property(lambda self: self.match.mean_assigned_similarity)
    best_similarity = property(lambda self: self.match.best_similarity)
    runner_up_similarity = property(lambda self: self.match.runner_up_similarity)

    #: column titles of `table_rows`, in order
    #: short enough for a page column: ID-Sim is the best similarity (with its face), "Hungarian" the
    #: similarity to the Hungarian-assigned face
    TABLE_HEADERS = ("Reference", "Face", "ID-Sim", "Runner-up", "ID-Conf", "Hungarian", "Status")

    def table_rows(self) -> list[list[str]]:
        """One row per reference, every number x100 with one decimal ("n/a" when undefined); best
        and runner-up similarities sit beside ID-Conf so its value can be read off them."""
        m = self.match
        rows = []
        for i, label in enumerate(self.labels):
            def similarity_at(face, value):
                return "n/a" if face is None else f"{format_score(value)} ({face_label(face)})"

            rows.append([
                label,
                face_label(m.assignment[i]) if m.reference_has_face[i] else "n/a",
                similarity_at(m.best_face[i], m.id_sim[i]),  # ID-Sim is the best similarity, floored at 0
                similarity_at(m.runner_up_face[i], m.runner_up_similarity[i]),
                format_score(m.id_conf[i]),
                format_score(m.assigned_similarity[i]),
                m.statuses[i],
            ])
        return rows

    @property
    def face_owners(self) -> list[int | None]:
        """Per output face: the index of the reference assigned to it, or None."""
        owners: list[int | None] = [None] * len(self.faces)
        for ref, face in enumerate(self.assignment):
            if face is not None:
                owners[face] = ref
        return owners

    @property
    def face_identities(self) -> list[int | None]:
        """Per output face: the reference it shows, i.e. its assigned reference when that reference
        at least weakly resembles it; None otherwise (pictures label such faces "no match")."""
        return [
            ref if ref is not None and self.similarity[ref][j] >= self.thresholds.weak else None
            for j, ref in enumerate(self.face_owners)
        ]

    @property
    def summary(self) -> str:
        return identity_summary.summary(self)

    def to_dict(self) -> dict:
        """A JSON-ready report (plain lists, floats and None; bboxes in output-image pixels)."""
        owners, identities = self.face_owners, self.face_identities
        return {
            "backend": self.backend,
            "thresholds": {
                "match": self.thresholds.match,
                "weak": self.thresholds.weak,
                "confusion_ratio": self.thresholds.confusion_ratio,
            },
            "image_size": list(self.image_size),
            "definitions": dict(matching.DEFINITIONS),
            "summary": self.summary,
            "labels": list(self.labels),
            "references": [self._reference_dict(i) for i in range(len(self.references))],
            "faces": [
                {
                    "number": j + 1,
                    "label": face_label(j),
                    "bbox": _rounded(face.bbox),
                    "det_score": round(float(face.det_score), 4),
                    "assigned_reference": owners[j],
                    "identity": self.labels[identities[j]] if identities[j] is not None else None,
                }
                for j, face in enumerate(self.faces)
            ],
            "similarity": [[matching.report_number(v) for v in row] for row in self.similarity],
            "assignment": list(self.assignment),
            "id_sim": [matching.report_number(v) for v in self.id_sim],
            "id_conf": [matching.report_number(v) for v in self.id_conf],
            "statuses": list(self.statuses),
            "mean_id_sim": matching.report_number(self.mean_id_sim),
            "mean_id_conf": matching.report_number(self.mean_id_conf),
            "assigned_similarity": [matching.report_number(v) for v in self.assigned_similarity],
            "mean_assigned_similarity": matching.report_number(self.mean_assigned_similarity),
            "matching_score": matching.report_number(self.matching_score),
            "warnings": list(self.warnings),
        }

    def _reference_dict(self, i: int) -> dict:
        reference = self.references[i]
        return {
            "label": self.labels[i],
            "status": self.statuses[i],
            "faces_in_reference": reference.n_faces,
            "bbox": _rounded(reference.face.bbox) if reference.face else None,
            "assigned_face": self.assignment[i],
            "assigned_face_label": face_label(self.assignment[i]) if self.assignment[i] is not None else None,
            "assigned_similarity": matching.report_number(self.assigned_similarity[i]),
            "id_sim": matching.report_number(self.id_sim[i]),
            "id_conf": matching.report_number(self.id_conf[i]),
            "best_face": self.match.best_face[i],
            "best_similarity": matching.report_number(self.match.best_similarity[i]),
            "runner_up_face": self.match.runner_up_face[i],
            "runner_up_similarity": matching.report_number(self.match.runner_up_similarity[i]),
            "confused_with": [self.labels[k] for k in self.match.confused_with[i]],
            "warning": reference.warning,
        }


def _rounded(bbox) -> list[float]:
    return [round(float(v), 1) for v in bbox]


def analyze_identity(references, image, backend="auto", *, labels: list[str] | None = None) -> IdentityReport:
    """Match the faces of `image` (the output) against the largest face of each reference.

    references: images (PIL, paths, bytes) or ReferenceFace objects from `analyze_reference`.
    backend: a FaceBackend or a name for `get_face_backend` ("auto", "dlib", "insightface").
    labels: names for the references; "Reference 1".."Reference N" by default.
    """
    backend = resolve_backend(backend)
    labels, analysed = analyze_references(references, backend, labels)
    output = load_analysed_image(image, "output image")
    # Numbered once, here, in reading order: the JSON, the table and the pictures all agree.
    faces = reading_order(backend.detect(output))
    S = _similarity_with_gaps(analysed, faces)
    return IdentityReport(
        backend=backend.name,
        thresholds=backend.thresholds,
        labels=labels,
        references=analysed,
        faces=faces,
        image_size=output.size,
        match=matching.match_identities(S, backend.thresholds, [r.face is not None for r in analysed]),
        warnings=[f"{label}: {r.warning}" for label, r in zip(labels, analysed) if r.warning],
    )


def analyze_references(references, backend: FaceBackend, labels: list[str] | None = None
                       ) -> tuple[list[str], list[ReferenceFace]]:
    """Each reference's label and the face it contributes, as every comparison with references
    reads them (`analyze_identity`, ground_truth.compare_with_ground_truth).

    references: images (PIL, paths, bytes) or ReferenceFace objects, which must come from `backend`.
    labels: names for the references; "Reference 1".."Reference N" by default.
    """
    labels = list(labels) if labels is not None else [reference_label(i) for i in range(len(references))]
    if len(labels) != len(references):
        raise InputError(f"{len(labels)} labels given for {len(references)} references")
    return labels, [_as_reference_face(r, backend, label) for r, label in zip(references, labels)]


def load_analysed_image(image, name: str) -> Image.Image:
    """`load_image`, calling the image `name` in messages when it carries no name of its own (a
    path names itself; a PIL image or bytes do not)."""
    return load_image(image, name=None if _has_own_name(image) else name)


def _has_own_name(source) -> bool:
    return not isinstance(source, (Image.Image, bytes, bytearray, memoryview))


def _as_reference_face(reference, backend: FaceBackend, label: str) -> ReferenceFace:
    if isinstance(reference, ReferenceFace):
        if reference.backend != backend.name:
            raise InputError(
                f"{label} was analysed with the {reference.backend} face backend but the output "
                f"with {backend.name}; their similarities cannot be compared"
            )
        return reference
    return analyze_reference(reference, backend, name=None if _has_own_name(reference) else label)


def _similarity_with_gaps(references: list[ReferenceFace], faces: list[Face]) -> np.ndarray:
    """references x faces similarity; rows of NaN for references without a face."""
    S = np.full((len(references), len(faces)), np.nan)
    rows = [i for i, r in enumerate(references) if r.face is not None]
    if rows and faces:
        embeddings = [references[i].face.embedding for i in rows]
        S[rows] = matching.similarity_matrix(embeddings, [f.embedding for f in faces])
    return S
