"""Entry point for `python -m umo_pipeline` (see cli.py)."""

from umo_pipeline.cli import main

raise SystemExit(main())
