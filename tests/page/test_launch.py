"""What the server does at start-up (umo_app/launch.py) so that its first request is not slower than
the others: matplotlib preloaded, measured in a fresh interpreter."""

from tests.page.serving import run_probe

MATPLOTLIB_PROBE = """
import sys
from umo_app.launch import preload_matplotlib
if sys.argv[1] == "preloaded":
    assert preload_matplotlib()
import gradio as gr
from gradio_client import Client
from tests.page.serving import serving
from umo_app.queue_limits import QUEUE_LIMITS, setup_queue
with gr.Blocks() as demo:
    box = gr.Textbox()
    gr.Button().click(lambda text: text, box, box, api_name="echo")
setup_queue(demo, QUEUE_LIMITS)
with serving(demo) as url:
    client = Client(url, verbose=False)
    before = set(sys.modules)
    client.predict("first", api_name="/echo")
    imported = set(sys.modules) - before
import matplotlib
print(len(imported), matplotlib.get_backend())
"""


def _modules_imported_by_gradios_first_call(mode: str) -> tuple[int, str]:
    count, backend = run_probe(MATPLOTLIB_PROBE, mode, without_env=("MPLBACKEND",)).splitlines()[-1].split()
    return int(count), backend


def test_the_first_request_imports_nothing_once_matplotlib_is_preloaded():
    # a fresh interpreter serving a page: Gradio's first call imports matplotlib and pyplot (on the
    # event loop); after the start-up preload it imports nothing, and the backend stays "agg"
    imported, _ = _modules_imported_by_gradios_first_call("as-is")
    assert imported > 20
    assert _modules_imported_by_gradios_first_call("preloaded") == (0, "agg")
