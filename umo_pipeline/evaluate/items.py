"""Prompt cases (one prompt with its references) and work items (case x seed x variant)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PromptCase:
    """One prompt of a prompt set with the reference images the generator is given.

    references: file paths, or image bytes (OmniContext embeds its images in parquet files).
    names: one per reference, used as labels in reports (XVerseBench: "human_05_man.jpg").
    identities: indices of the references that are people whose identity is scored; XVerseBench
      also gives objects and animals as references, which are generated but not scored.
    where: "file:line" of the case in its prompt set, for messages.
    ground_truth: a photo of the same people in the target scene (a path or image bytes), when the
      benchmark has one (MultiID-Bench); never given to the generator, only scored against.
    """

    id: str
    prompt: str
    references: tuple = ()
    names: tuple[str, ...] = ()
    identities: tuple[int, ...] = ()
    category: str = "all"
    n_identities: int = 0
    benchmark: str = "jsonl"
    where: str = ""
    ground_truth: object = None
    extra: dict = field(default_factory=dict, compare=False)


#: the variant that is not generated but made from another: the UMO image of the same case and seed,
#: then `workflow.repair` with its default settings (every reference not matched, those the model
#: did not see included): a generation's "then repair faces that are not matched" option
REPAIRED = "umo+repair"
#: each made variant -> the variant of the same (case, seed) it is made from
MADE_FROM = {REPAIRED: "umo"}


@dataclass(frozen=True)
class WorkItem:
    """One generation: a case, a seed and a variant ("base", "umo", or "umo+repair": the "umo" image
    with its wrong faces repaired).

    Each item carries its own seed, so what it produces never depends on which process ran it or
    how many there were; base and UMO of one (case, seed) start from the same noise.
    """

    case: PromptCase
    seed: int
    variant: str

    @property
    def id(self) -> str:
        return f"{self.case.id}__s{self.seed}__{self.variant}"

    @property
    def source(self) -> WorkItem | None:
        """The item whose image this one is made from (the "umo" item of a "umo+repair"), or None."""
        made_from = MADE_FROM.get(self.variant)
        return None if made_from is None else WorkItem(self.case, self.seed, made_from)


def work_items(cases: list[PromptCase], seeds: list[int], variants: list[str]) -> list[WorkItem]:
    """Every case x seed x variant, in a fixed order (the order of records.jsonl)."""
    return [WorkItem(case, seed, variant) for case in cases for seed in seeds for variant in variants]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """A file-name-safe form of a case id (ids become file names of the per-item outputs)."""
    cleaned = _UNSAFE.sub("-", str(text)).strip("-.")
    return cleaned[:80] or "case"
