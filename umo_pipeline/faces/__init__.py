"""Face detection + embedding backends behind one interface (see base.py)."""

from umo_pipeline.faces.base import Face, FaceBackend, Thresholds

__all__ = ["Face", "FaceBackend", "Thresholds"]
