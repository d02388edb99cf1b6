"""A checked request ready for the GPU (`Job`; a repair's `RepairJob` shares its base, `GpuWork`),
and the table that lets such work cross into a ZeroGPU worker without its models."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from umo_pipeline.workflow.budget import candidate_seeds

if TYPE_CHECKING:
    from umo_pipeline.analysis import ReferenceFace
    from umo_pipeline.customizers.base import Customizer
    from umo_pipeline.customizers.request import GenerationRequest
    from umo_pipeline.faces.base import FaceBackend

#: progress(done, total, message) after every denoising step of every variant
WorkflowProgress = Callable[[int, int, str], None]


def candidates_at(done: int, steps: int, per_call: int, candidates: int) -> str:
    """Which candidates a batched run is working on after `done` of its steps (`steps` per pipeline
    call, up to `per_call` seeds each): "candidate 2", or "candidates 1-4" for a batch."""
    first = max(done - 1, 0) // steps * per_call + 1
    last = min(first + per_call - 1, candidates)
    return f"candidate {first}" if first == last else f"candidates {first}-{last}"

#: live customizers and face backends, by id: a Job crossing a process boundary (ZeroGPU pickles a
#: GPU function's arguments into a worker forked from this process) carries these keys instead of
#: gigabytes of weights, and the worker finds the same objects in its copy of this table. Entries are
#: made when a Job is built: spaces forks a new worker first and pickles the arguments after, so an
#: entry made while pickling would be missing in that worker. Weak: a Job does not keep models alive.
_SHARED: weakref.WeakValueDictionary[int, object] = weakref.WeakValueDictionary()


@dataclass
class GpuWork:
    """Checked work for the GPU with the models it runs on. Pickled (for a ZeroGPU worker), it carries
    the models' keys in _SHARED instead of the models."""

    customizer: Customizer
    backend: FaceBackend

    def __post_init__(self):
        for shared in (self.customizer, self.backend):
            _SHARED[id(shared)] = shared

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in ("customizer", "backend"):
            state[name] = id(state[name])
        return state

    def __setstate__(self, state):
        for name in ("customizer", "backend"):
            try:
                state[name] = _SHARED[state[name]]
            except KeyError:
                raise RuntimeError(f"This job's {name} is not loaded in this process: a job can only "
                                   "go to a process forked from the one that prepared it.") from None
        self.__dict__.update(state)


@dataclass
class Job(GpuWork):
    """One request, checked and ready for the GPU: nothing in it can be refused any more."""

    request: GenerationRequest
    references: list[Image.Image]
    reference_names: list[str]
    #: ("umo",) or ("umo", "base"): every variant from the same seed, hence the same noise
    variants: tuple[str, ...]
    #: the face each reference contributes (analysed once, before generation)
    reference_faces: list[ReferenceFace]
    #: images per variant, from candidate_seeds(request.seed, candidates)
    candidates: int = 1
    #: what the user should know about the inputs (a face crop that fell back to the whole image, ...)
    notes: list[str] = field(default_factory=list)
    #: the references (indices) the model is conditioned on; None: all of them
    conditioned: list[int] | None = None
    #: after composing, place every reference whose assigned face is not matched (workflow.placement)
    place: bool = False
    #: the most GPU seconds one call may take (each placement's repair is checked against it too)
    gpu_seconds_limit: float | None = None

    @property
    def compare(self) -> bool:
        return len(self.variants) > 1

    @property
    def model_references(self) -> list[Image.Image]:
        """What the customizer receives: the conditioned references, in slot order."""
        if self.conditioned is None:
            return list(self.references)
        return [self.references[index] for index in self.conditioned]

    @property
    def seeds(self) -> list[int]:
        return candidate_seeds(self.request.seed, self.candidates)

    @property
    def steps_per_variant(self) -> int:
        """Denoising steps of one variant's images (one pipeline call per batch of candidates)."""
        return self.request.denoising_steps * self.customizer.batch_count(self.candidates)

    @property
    def compose_steps(self) -> int:
        """Denoising steps of the generation itself (every variant, every candidate)."""
        return self.steps_per_variant * len(self.variants)

    @property
    def total_steps(self) -> int:
        """The whole job's steps as planned: the generation, then (placing) one repair per reference
        the model does not see; the count is made exact once the assignment says who is placed."""
        from umo_pipeline.workflow.placement import placement_steps

        planned = len(self.references) - len(self.model_references) if self.place else 0
        return self.compose_steps + planned * placement_steps(self)
