"""The UMO demo page, beside the library (which never imports it): `app.py` at the repository root
is the Space's entry and runs `launch.main`.

- zerogpu: the one GPU entry point and everything that knows about ZeroGPU
- handlers: the functions the page's events call; outputs: what each endpoint returns, by name
- layout: the page and its event wiring; panels: its building blocks; style: CSS, theme, fonts
- launch: flags, loading the models, serving
- serving many visitors: queue_limits (a bounded line per kind of work), departures (leaving or Stop
  cancels a generation), downloads (the result files under a cap), memory (flat after bursts);
  gradio_internals: every private piece of Gradio those read or patch
"""
