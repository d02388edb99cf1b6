"""UMO demo: the Space's entry (`python app.py [flags]`, see --help). The page lives in umo_app/,
the library in umo_pipeline/."""

import spaces  # noqa: F401, I001 - on ZeroGPU, spaces must be imported before anything touches CUDA

import os

from umo_app import launch, memory

# before the server and the models start threads: memory stays flat after bursts of visitors
memory.limit_malloc_arenas()

# On a Space the models load at import time, before the first request (ZeroGPU moves them to the GPU);
# on ZeroGPU the transformer's blocks are then compiled ahead of time (UMO_AOTI=0 skips it).
SPACE_MODELS = launch.load_space_models() if os.environ.get("SPACE_ID") else None

if __name__ == "__main__":
    launch.main(models=SPACE_MODELS)
