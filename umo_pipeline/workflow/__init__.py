"""The path the app, the CLI and Python users share, in three phases:

    job = prepare(customizer, backend, request, references)   every check, before any GPU time
    images = generate_images(job)                             the only GPU part (what spaces.GPU wraps)
    result = finish(job, images)                              identity analysis, pictures, result

With `candidates=N` a request generates N images from the seeds seed, seed + 1, ... (every variant
from the same N seeds), analyses each and ranks them by UMO's matching reward (ties: mean ID-Sim,
then seed order); the result shows the best, and lists every candidate best first. With
`face_crops`, chosen references reach the customizer cropped around the face already found for them.

`generate_and_analyze` runs the three in a row; `analyze_image` gives any image (from any tool) the
same report and pictures; `compare_methods` scores several methods' images against the same
references, ranked by the matching score (`save_method_comparison` writes its sheet, JSON and CSV);
`save_outputs` writes the PNG (generation settings in its metadata), the comparison sheet and the
JSON report; `describe` is the result in words for every UI. Nothing here
imports gradio.

Where each question is answered:
    phases      prepare / generate_images / finish, analyze_image, generate_and_analyze, run_comparisons
    job         the Job and the table that lets it cross into a ZeroGPU worker
    checks      the per-request checks beside the settings (names, face-crop choices, compare mode)
    inputs      loading references and images, the face crop's geometry, reference previews
    budget      candidate seeds and GPU time (estimate, reservation, the cap)
    candidates  Panel, Candidate, WorkflowResult, ranking and the UMO - base deltas
    text        the result in words and the sheet's title
    files       save_png (the one PNG writer), png_text (the one PNG labelling), save_outputs, save_repair
    methods     compare_methods: several methods' images ranked against the same references
    face_repair a face repair, the same phases again: prepare_repair / generate_repairs /
                finish_repair (masked re-generation, paste, re-analysis, umo_pipeline.judge), `repair`
    geometry    a repair's crop, working size and mask, finding a face again, the RepaintCanvas
    placement   groups past the model's limit: after composing, every reference whose assigned face
                is not matched is repaired onto it, one GPU call each (placements / place_people)
"""

from umo_pipeline.render import PREVIEW_SIDE
from umo_pipeline.workflow.budget import (
    GPU_SECONDS_CAP, candidate_seeds, estimated_gpu_seconds, gpu_seconds, job_gpu_seconds, pick_seed,
)
from umo_pipeline.workflow.candidates import Candidate, Panel, WorkflowResult, rank_candidates
from umo_pipeline.workflow.checks import default_reference_names
from umo_pipeline.workflow.files import (
    METHODS_CSV_COLUMNS, PNG_COMPRESS_LEVEL, SavedOutputs, generation_settings, png_text, read_png_metadata,
    save_method_comparison, save_outputs, save_png, save_repair,
)
from umo_pipeline.workflow.inputs import (
    face_crop_box, load_output_image, load_reference, load_reference_image, reference_input, reference_preview,
)
from umo_pipeline.workflow.job import Job, WorkflowProgress
from umo_pipeline.workflow.phases import (
    OVERLAY_MAX_WIDTH, analyze_image, analyze_panels, finish, generate_and_analyze, generate_images, prepare,
    run_comparisons,
)
from umo_pipeline.workflow.face_repair import (
    RepairJob, RepairResult, finish_repair, generate_repairs, prepare_repair, repair, repair_gpu_seconds,
)
from umo_pipeline.workflow.methods import (
    MAX_METHODS, MIN_METHODS, MethodComparison, MethodResult, checked_method_names, compare_methods,
)
from umo_pipeline.workflow.placement import Placement, place_people, placements
from umo_pipeline.workflow.text import describe, describe_methods, describe_placement, describe_repair

__all__ = [
    "GPU_SECONDS_CAP", "OVERLAY_MAX_WIDTH", "PNG_COMPRESS_LEVEL", "PREVIEW_SIDE", "Candidate", "Job", "Panel",
    "SavedOutputs", "WorkflowProgress", "WorkflowResult", "analyze_image", "analyze_panels", "candidate_seeds",
    "default_reference_names", "describe", "estimated_gpu_seconds", "face_crop_box", "finish",
    "generate_and_analyze", "generate_images", "generation_settings", "gpu_seconds", "job_gpu_seconds",
    "load_output_image", "load_reference", "load_reference_image", "pick_seed", "prepare", "rank_candidates",
    "read_png_metadata", "reference_input", "reference_preview", "run_comparisons", "save_outputs", "save_png",
    "RepairJob", "RepairResult", "describe_repair", "finish_repair", "generate_repairs", "prepare_repair", "repair",
    "repair_gpu_seconds", "save_repair", "png_text", "MAX_METHODS", "METHODS_CSV_COLUMNS", "MIN_METHODS",
    "MethodComparison", "MethodResult", "checked_method_names", "compare_methods", "describe_methods",
    "save_method_comparison", "Placement", "place_people", "placements", "describe_placement",
]
