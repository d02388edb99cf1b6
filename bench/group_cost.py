"""What a group past the model's reference limit costs: 6 people (4 conditioned, 2 placed) against one
768 x 768 generation of 4, on the tiny models on the CPU and by the real models' cost models.

The goal (the placement issue): the group costs at most 1 + 0.35 x the faces it repairs times the
generation of 4, so 1.70 with 2 people placed.

Tiny models ("tiny" = UNO, "tiny-omnigen2"; random weights, sampling caps lifted to the real models'
sizes as bench/repair.py does, so every call samples its real size and token count):

  baseline  prepare -> generate_images -> finish at 768 x 768 with 4 references, one image (what
            workflow.generate_and_analyze runs for 4 people).
  group     the sum of two parts, because a tiny model paints noise, in which no face can be placed:
            1. compose: prepare -> generate_images -> finish at 768 x 768 with the 6 references, the
               model conditioned on the first 4, placing on (the tiny model's own composition);
            2. place: workflow.placements with that same Job (its customizer is the tiny model) on a
               real-face scene of the six: the 4 conditioned people and 2 strangers cut from the Solvay
               photo, painted by tests/composing_customizer.py's ComposingCustomizer(crowd=...) with
               the people and strangers of tests/library/workflow/test_placement.py (imported from
               it). That scene is 640 x 960 (614,400 px, 4 % more than 768 x 768): at 768 x 768 the
               double's 2 x 3 tiles are 384 x 256 and dlib misses one face, at 640 x 960 they are
               square and it finds all 6. Each person placed is the library's own path: prepare_repair
               (analysed=), one repair GPU call (generate_repairs, the tiny model's real inpainting
               code at the working size, 512 x 512 for these faces) and judge_repairs (the whole
               picture analysed again, dlib, real weights), then the result's sheet drawn again.
            The scene's own analysis (finish on it, which place_people starts from) is not in the sum:
            the compose's finish stands for it. It is printed as information, with the baseline's
            analysis of a real-face scene of its 4 people (also 640 x 960: at 768 x 768 dlib misses one
            of the double's 4 faces), since an analysis of noise finds no faces and costs less than one
            of a picture with faces; the second ratio uses those two.
  The placements' outcomes do not matter for the cost: the judge keeps none of a tiny model's noise.
  Steps: 25 for tiny UNO (UNO's default: a repair at strength 0.6 runs 15 of them), 5 for tiny
  OmniGen2 (its 50 are minutes per image on 2 cores with 4 references at up to 1024 x 1024; a repair
  runs 3 of the 5, the same 0.6 share; at 5 steps the per-call work, such as encoding 4 large
  references, weighs more than at 50); --steps sets both. OmniGen2 takes each reference at its own
  size up to 1024 x 1024, so a placement costs with its reference's size (Gauss's photo, 1024 x 1305,
  costs more than Newton's, 768 x 432). Runs alternate baseline / group so machine load hits both
  alike; each figure is the median over --repeats with its range, the ratios paired per repeat. A
  warm-up of each at 1 step comes first (kernels, allocator, the reference-face cache).

Cost models (no weights: UNOCustomizer / OmniGen2Customizer built without a pipeline, in compare
mode as the app loads them; GPU seconds only, the analyses run on the CPU): `estimate_seconds` of
the baseline (768 x 768, 4 references, the model's default steps), of the group's compose (768 x 768,
4 of the 6 references) and of each placement's RepairJob (`estimated_gpu_seconds`), the RepairJobs
built by workflow.place_people itself on the same 640 x 960 scene with a repair that records the job
and hands back the crop unchanged. Also each call's ZeroGPU reservation (workflow.budget.reserved_seconds
via workflow.job_gpu_seconds / repair_gpu_seconds), against workflow.GPU_SECONDS_CAP.

    python bench/group_cost.py [--models [tiny tiny-omnigen2]] [--steps N] [--repeats 5] [--backend dlib]
                               [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the library, bench and tests helpers from this checkout

from bench.repair import flux_work, real_size, spread, timed  # noqa: E402
from umo_pipeline import params  # noqa: E402

PROMPT = "six friends at a picnic"
SIZE = 768
#: the 6-person real-face scene the placements work on (see the docstring for why not 768 x 768)
SCENE = (640, 960)
CONDITIONED = 4
#: the issue's goal: the group costs at most 1 + PER_FACE x faces repaired, in generations of 4
PER_FACE = 0.35
#: steps of the tiny models when --steps is not given (see the docstring)
TINY_STEPS = {"tiny": 25, "tiny-omnigen2": 5}


def load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def goal(placed: int) -> float:
    return 1 + PER_FACE * placed


def verdict(ratio: float, placed: int) -> str:
    return "met" if ratio <= goal(placed) else "missed"


def scenes(photos, backend, people):
    """(the 4-person and the 6-person scene, both SCENE), as ComposingCustomizer paints them
    (references mirrored in tiles, the strangers after them); SystemExit unless dlib finds every face."""
    from tests.composing_customizer import ComposingCustomizer
    from tests.library.workflow.test_placement import STRANGERS, solvay_face
    from umo_pipeline.customizers.request import GenerationRequest

    crowd = [solvay_face(photos, backend, index) for index in STRANGERS]
    request = GenerationRequest(prompt=PROMPT, width=SCENE[0], height=SCENE[1], steps=1)
    four = ComposingCustomizer().generate(request, people[:CONDITIONED])
    six = ComposingCustomizer(crowd=crowd).generate(request, people[:CONDITIONED])
    for picture, wanted in ((four, CONDITIONED), (six, len(people))):
        found = len(backend.detect(picture))
        if found != wanted:
            raise SystemExit(f"{backend.name} finds {found} faces in the {picture.width}x{picture.height} scene, "
                             f"not {wanted}: the bench needs a scene with one face per person")
    return four, six


# -- the tiny models, timed ---------------------------------------------------------------------------
def baseline_run(customizer, backend, request, people, scene4) -> dict:
    """Seconds of one generation of 4 with its analysis, by phase (+ the analysis of a real-face scene)."""
    from umo_pipeline import workflow

    job, checks = timed(lambda: workflow.prepare(customizer, backend, request, people[:CONDITIONED]))
    images, generation = timed(lambda: workflow.generate_images(job))
    _, analysis = timed(lambda: workflow.finish(job, images))
    _, real = timed(lambda: workflow.finish(job, {"umo": [scene4]}))
    return {"checks": checks, "generation": generation, "analysis": analysis, "total": checks + generation + analysis,
            "real-face analysis": real}


def group_run(customizer, backend, request, people, scene6) -> tuple[dict, list, object]:
    """Seconds of the group by phase: the tiny model's composition, then placing on the real-face scene.
    Also returns each placement's RepairJob and the final result."""
    from umo_pipeline import workflow

    job, checks = timed(lambda: workflow.prepare(customizer, backend, request, people,
                                                 condition_on=list(range(CONDITIONED))))
    if not job.place or len(job.model_references) != CONDITIONED:
        raise SystemExit(f"expected a placing job conditioned on {CONDITIONED}: got {job.conditioned}, "
                         f"place={job.place}")
    images, generation = timed(lambda: workflow.generate_images(job))
    _, analysis = timed(lambda: workflow.finish(job, images))
    scene_result, real = timed(lambda: workflow.finish(job, {"umo": [scene6]}))  # setup, not in the sum

    repair_jobs, repair_seconds = [], []

    def repair(repair_job, _count=None):  # the GPU part of one person, timed (no progress display)
        repair_jobs.append(repair_job)
        crops, seconds = timed(lambda: workflow.generate_repairs(repair_job))
        repair_seconds.append(seconds)
        return crops

    figures = {"checks": checks, "generation": generation, "analysis": analysis}
    clock, result, repaired = time.perf_counter(), None, 0
    for number, result in enumerate(workflow.placements(job, scene_result, repair=repair)):
        now = time.perf_counter()
        if number == 0:
            figures["placing: plan, sheet"] = now - clock
        else:  # one yield per person planned, repaired or skipped (a face too small to repair)
            name = job.reference_names[result.placement.planned[number - 1]]
            gpu = repair_seconds[repaired] if len(repair_seconds) > repaired else 0.0
            repaired = len(repair_seconds)
            figures[f"{name}: repair (GPU part)"] = gpu
            figures[f"{name}: crop, analysis + judge, sheet"] = now - clock - gpu
        clock = now
    figures["total"] = sum(figures.values())
    figures["real-face analysis"] = real
    return figures, repair_jobs, result


def face_side(face) -> str:
    """A repaired face's long side in pixels, as the repair's crop is sized from it."""
    box = face.face_box
    return f"{max(box[2] - box[0], box[3] - box[1]):.0f}"


def tiny_model(name: str, args, backend, people, scene4, scene6) -> dict:
    from umo_pipeline.customizers import load_customizer

    customizer = load_customizer(name)
    real_size(customizer)
    steps = args.steps or TINY_STEPS.get(name, customizer.defaults.steps)
    request = replace(customizer.defaults, prompt=PROMPT, width=SIZE, height=SIZE, steps=steps, seed=0)
    warm = replace(request, steps=1)
    baseline_run(customizer, backend, warm, people, scene4)
    group_run(customizer, backend, warm, people, scene6)

    runs = {"baseline": [], "group": []}
    for _ in range(args.repeats):  # alternating, so load on the machine hits both alike
        runs["baseline"].append(baseline_run(customizer, backend, request, people, scene4))
        figures, repair_jobs, result = group_run(customizer, backend, request, people, scene6)
        runs["group"].append(figures)
    placement = result.placement
    placed = len(placement.planned)
    faces = "; ".join(f"{job.reference_names[face.reference]}: face {face_side(face)} px, "
                      f"crop {face.crop_box[2] - face.crop_box[0]} px -> {face.request.width}x{face.request.height}, "
                      f"{face.request.denoising_steps} of {face.request.steps} steps"
                      for job in repair_jobs for face in job.faces)
    print(f"\n{name} (random weights, sampling cap lifted), {steps} steps; conditioned on "
          f"{', '.join(placement.conditioned)}; placed (attempted) {placed}: {faces}; kept by the judge: "
          f"{len(placement.placed)} (a tiny model paints noise)")
    print("| seconds, median (min-max) | baseline: 4, one generation | group: 6, 4 conditioned, 2 placed |")
    print("| --- | --- | --- |")
    rows = list(runs["group"][0])
    for row in rows:
        base = spread([run[row] for run in runs["baseline"]]) if row in runs["baseline"][0] else "-"
        group = spread([run[row] for run in runs["group"]])
        title = {"generation": "generation (GPU part)", "analysis": "analysis (finish)",
                 "real-face analysis": f"info, not in the totals: finish on a {SCENE[0]}x{SCENE[1]} real-face "
                                       "scene (4 faces / 6 faces)"}.get(row, row)
        print(f"| {title} | {base} | {group} |")
    ratios = [g["total"] / b["total"] for b, g in zip(runs["baseline"], runs["group"])]
    real_ratios = [(g["total"] - g["analysis"] + g["real-face analysis"]) /
                   (b["total"] - b["analysis"] + b["real-face analysis"])
                   for b, g in zip(runs["baseline"], runs["group"])]
    ratio = statistics.median(ratios)
    of_medians = statistics.median(g["total"] for g in runs["group"]) / \
        statistics.median(b["total"] for b in runs["baseline"])
    print(f"group / baseline, paired per repeat: {spread(ratios)} (of the medians: {of_medians:.3f}); goal "
          f"{goal(placed):.2f}: {verdict(ratio, placed)}. With both analyses on real-face scenes instead of noise: "
          f"{spread(real_ratios)}")

    def median(row):
        return statistics.median(run[row] for run in runs["group"])

    gpu_rows = [row for row in rows if row.endswith("(GPU part)")]
    cpu = statistics.median(run["total"] - run["generation"] - sum(run[r] for r in gpu_rows) for run in runs["group"])
    return {"model": f"{name}, CPU, {steps} steps", "baseline": statistics.median(b["total"] for b in runs["baseline"]),
            "group": median("total"), "ratio": ratio, "placed": placed, "compose": median("generation"),
            "placements": [median(row) for row in gpu_rows],
            "analyses": f"{cpu:.2f} s (CPU: checks, analyses, judge, sheets)"}


# -- the cost models ------------------------------------------------------------------------------------
def full_size(kind: str):
    """The real model's customizer without its pipeline: enough for checks and estimate_seconds."""
    if kind == "uno":
        from umo_pipeline.customizers.uno.customizer import UNOCustomizer

        return UNOCustomizer(None, name="umo-uno", label="UMO-UNO cost model", mode="compare", device="cuda")
    from umo_pipeline.customizers.omnigen2.customizer import OmniGen2Customizer

    return OmniGen2Customizer(None, name="umo-omnigen2", label="UMO-OmniGen2 cost model", mode="compare",
                              device="cuda")


def tokens(customizer, request, n_references: int) -> str:
    """The transformer's sequence per step, as the model's cost model counts it."""
    if customizer.name == "umo-uno":
        return f"{flux_work(request, n_references)[1]:,}"
    from umo_pipeline.customizers.omnigen2.customizer import step_tokens

    side = int(customizer.max_pixels ** 0.5) // 16
    passes = step_tokens(request.width, request.height, n_references * side**2, n_references)
    return f"{len(passes)} passes of {'/'.join(f'{n:,}' for n in passes)}"


def cost_model(kind: str, backend, people, scene6) -> dict:
    from umo_pipeline import workflow
    from umo_pipeline.workflow.budget import GPU_SECONDS_CAP, reserved_seconds

    customizer = full_size(kind)
    request = replace(customizer.defaults, prompt=PROMPT, width=SIZE, height=SIZE, seed=0)
    limit = GPU_SECONDS_CAP
    baseline = workflow.prepare(customizer, backend, request, people[:CONDITIONED], gpu_seconds_limit=limit)
    group = workflow.prepare(customizer, backend, request, people, gpu_seconds_limit=limit,
                             condition_on=list(range(CONDITIONED)))
    repairs = []

    def record(repair_job, _count=None):  # the job placing makes; the crop back unchanged (nothing kept)
        repairs.append(repair_job)
        return [[face.request.inpaint.image] * len(repair_job.seeds) for face in repair_job.faces]

    result = workflow.place_people(group, workflow.finish(group, {"umo": [scene6]}), repair=record)
    if len(repairs) != len(result.placement.planned):
        raise SystemExit(f"{len(repairs)} repair calls for {len(result.placement.planned)} people planned")

    def estimate(job):
        return workflow.estimated_gpu_seconds(job.customizer, job.request, len(job.model_references), job.compare,
                                              job.candidates)

    calls = [("baseline: generation of 4", f"{SIZE}x{SIZE}, 4 references", tokens(customizer, request, 4),
              request.denoising_steps, estimate(baseline), workflow.job_gpu_seconds(baseline)),
             ("group: compose", f"{SIZE}x{SIZE}, 4 of the 6 references", tokens(customizer, group.request, 4),
              group.request.denoising_steps, estimate(group), workflow.job_gpu_seconds(group))]
    for job in repairs:
        face = job.faces[0]
        calls.append((f"group: place {job.reference_names[face.reference]}",
                      f"face {face_side(face)} px, crop {face.crop_box[2] - face.crop_box[0]} px -> "
                      f"{face.request.width}x{face.request.height}, 1 reference, "
                      f"strength {face.request.inpaint.strength}",
                      tokens(customizer, face.request, 1), face.request.denoising_steps, job.estimated_gpu_seconds(),
                      workflow.repair_gpu_seconds(job)))
    title = ("FLUX.1-dev, UMO-UNO cost model (UNOCustomizer.estimate_seconds)" if kind == "uno" else
             "OmniGen2, UMO-OmniGen2 cost model (OmniGen2Customizer.estimate_seconds)")
    print(f"\n{title}, compare mode as the app loads it, one image per call, {request.steps} steps; GPU seconds; "
          f"each call's ZeroGPU reservation (1.25 x estimate + 5, at least 20) against the cap of {GPU_SECONDS_CAP} s")
    print("| call | request | tokens per step | steps run | estimate s | reserved s | fits the cap |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for call, what, sequence, steps, seconds, reserved in calls:
        fits = "yes" if 1.25 * seconds + 5 <= GPU_SECONDS_CAP else "no"
        print(f"| {call} | {what} | {sequence} | {steps} | {seconds:.2f} | {reserved} | {fits} |")
    base, compose, placements = calls[0][4], calls[1][4], [call[4] for call in calls[2:]]
    placed = len(placements)
    ratio = (compose + sum(placements)) / base
    fixed = customizer.estimate_seconds(replace(request, steps=0), 0)  # the per-call part that is not denoising
    steps_only = (compose - fixed + sum(p - fixed for p in placements)) / (base - fixed)
    reserved_group = sum(call[5] for call in calls[1:])
    shares = ", ".join(f"{p / base:.2f}" for p in placements)
    print(f"group / baseline: {ratio:.2f}; goal {goal(placed):.2f}: {verdict(ratio, placed)} "
          f"(compose {compose / base:.2f}, each placement {shares} of the baseline, against {PER_FACE} per face). "
          f"Of each call's estimate {fixed:.1f} s is the fixed per-call part (encoders, VAE; estimated, not "
          f"measured); the denoising steps alone give {steps_only:.2f}. Reserved on ZeroGPU: {reserved_group} s "
          f"in {1 + placed} calls against {calls[0][5]} s in 1 ({reserved_group / calls[0][5]:.2f}; at least "
          f"{reserved_seconds(0)} s per call)")
    name = "FLUX.1-dev (UMO-UNO) cost model" if kind == "uno" else "OmniGen2 (UMO-OmniGen2) cost model"
    return {"model": f"{name}, {request.steps} steps", "baseline": base, "group": compose + sum(placements),
            "ratio": ratio, "placed": placed, "compose": compose, "placements": placements,
            "analyses": "not in the model (CPU)"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["tiny", "tiny-omnigen2"],
                        help="tiny models to time (none: the cost models only)")
    parser.add_argument("--steps", type=int, help="steps of the tiny models (default: tiny 25, tiny-omnigen2 5)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="dlib")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)

    import torch

    from bench.local import photo_paths
    from tests.library.workflow.test_placement import PEOPLE
    from umo_pipeline.faces import get_face_backend
    from umo_pipeline.images import load_image

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    backend = get_face_backend(args.backend)
    photos = photo_paths()
    people = [load_image(photos[name]) for name in PEOPLE]
    scene4, scene6 = scenes(photos, backend, people)
    print(f"machine: {os.cpu_count()} CPU cores, load average {load()} at the start (the tiny figures scale with "
          "other load)")
    print(f"{time.strftime('%Y-%m-%d')}, torch threads {torch.get_num_threads()}, face backend {backend.name}; "
          f"people {', '.join(PEOPLE)} (References 1-6), the model conditioned on the first {CONDITIONED}; "
          f"repairs at strength {params.STRENGTH.default}, 1 candidate; {args.repeats} repeats")
    print("baseline = one 768x768 generation of 4 with its analysis; group (tiny models) = the tiny model's "
          "768x768 composition of 6 (4 conditioned) with its analysis + placing the 2 others on a 640x960 "
          "real-face scene of the 6 with the same tiny model's repair calls and the real analyses + judge")

    rows = [tiny_model(name, args, backend, people, scene4, scene6) for name in args.models]
    rows += [cost_model(kind, backend, people, scene6) for kind in ("uno", "omnigen2")]

    print(f"\nSummary: a group of 6 (4 conditioned, 2 placed) against one {SIZE}x{SIZE} generation of 4; goal "
          f"1 + {PER_FACE} x faces placed")
    print("| model | baseline s | group s | group / baseline | goal | verdict | compose s | each placement s | "
          "analyses |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        each = " + ".join(f"{seconds:.2f}" for seconds in row["placements"])
        print(f"| {row['model']} | {row['baseline']:.2f} | {row['group']:.2f} | {row['ratio']:.2f} | "
              f"{goal(row['placed']):.2f} | {verdict(row['ratio'], row['placed'])} | {row['compose']:.2f} | {each} | "
              f"{row['analyses']} |")
    print(f"(tiny rows: medians of wall seconds on the CPU, group / baseline the median of the per-repeat ratios, "
          f"compose and placements the GPU parts; cost-model rows: GPU seconds; "
          f"{time.perf_counter() - started:.0f} s in all; load average {load()} at the end)")


if __name__ == "__main__":
    main()
