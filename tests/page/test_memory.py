"""The server's memory after bursts (umo_app/memory.py): two malloc arenas, and the heap handed back
to the system once the server is idle, never while a request runs; measured in fresh interpreters and
through the running page."""

import time

from gradio_client import Client, handle_file

from tests.app_server import wait_until
from tests.page.serving import run_probe, serving
from umo_app import memory
from umo_app.layout import build_demo
from umo_app.queue_limits import QUEUE_LIMITS, setup_queue

ARENA_PROBE = """
import ctypes, sys, tempfile, threading
from umo_app import memory
if sys.argv[1] == "limit":
    assert memory.limit_malloc_arenas(2)
start = threading.Barrier(8)
def request():  # a burst: eight threads at once, each holding a few image-sized blocks
    start.wait()
    for _ in range(50):
        blocks = [ctypes.create_string_buffer(200_000) for _ in range(5)]
        del blocks
threads = [threading.Thread(target=request) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
report = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
libc.malloc_info(0, report)
libc.fclose(report)
print(open(path).read().count("<heap nr="))
"""


def _arenas_after_a_burst(mode: str) -> int:
    return int(run_probe(ARENA_PROBE, mode, without_env=("MALLOC_ARENA_MAX",), timeout=60).split()[-1])


def test_a_burst_of_threads_uses_two_malloc_arenas_once_limited():
    # glibc's malloc_info lists one <heap> per arena: unlimited, a burst of eight threads spreads over
    # several (each keeping the pages it held); limited, they share two
    assert _arenas_after_a_burst("free") > 2
    assert _arenas_after_a_burst("limit") == 2


class CountingTrim:
    """Stands in for malloc_trim where only *when* it runs is tested: counts the calls and keeps their
    times (time.monotonic, the idle trimmer's clock)."""

    def __init__(self):
        self.times: list[float] = []

    @property
    def calls(self) -> int:
        return len(self.times)

    def __call__(self):
        self.times.append(time.monotonic())


def test_the_heap_is_trimmed_once_the_server_has_been_idle_and_never_while_a_request_runs():
    trim = CountingTrim()
    idle = memory.IdleTrim(idle_s=0.5, trim=trim)
    with idle:  # a long request; a short one starts and ends meanwhile
        with idle:
            pass
        # the long request runs on past idle_s after the short one ended: no trim may come meanwhile
        time.sleep(0.8)
        assert trim.calls == 0
        last_request_ending = time.monotonic()
    wait_until(lambda: trim.calls == 1, timeout=5)
    assert trim.times[0] - last_request_ending >= idle.idle_s  # not before the server was idle that long
    # nothing ran since: nothing more to hand back, however long the server stays idle
    time.sleep(0.8)
    assert trim.calls == 1

    counted = idle.around(lambda x, *, y: x + y)
    for _ in range(8):  # requests a short gap apart: no trim between them, one after the last
        last_request_start = time.monotonic()
        assert counted(1, y=2) == 3
        time.sleep(0.1)  # the gap between two requests, shorter than idle_s: what is tested
        assert trim.calls == 1
    wait_until(lambda: trim.calls == 2, timeout=5)
    assert trim.times[1] - last_request_start >= idle.idle_s
    assert idle.trims == 2


TRIM_PROBE = """
import sys, time
from umo_app import memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

start = rss_mb()
freed = b"x" * 4_000_000  # a large block (mmapped, the first time) whose release raises glibc's
del freed                 # mmap threshold: from now on blocks up to its size come from the heap
images, kept = [], []
for _ in range(60):  # image-sized blocks in the heap, smaller ones between them that stay
    images.append(b"x" * 3_000_000)
    kept.append(b"y" * 100_000)
del images
held = rss_mb()
idle = memory.IdleTrim(idle_s=0.2)
with idle:
    pass
while idle.trims == 0:
    time.sleep(0.05)
print(start, held, rss_mb())
"""


def test_idle_trim_hands_freed_image_sized_blocks_back_to_the_system():
    # the real malloc_trim in a fresh interpreter: 180 MB of freed 3 MB blocks stay with the process
    # (between small blocks still in use) until the idle trim hands them back
    start, held, trimmed = map(float, run_probe(TRIM_PROBE, timeout=60).split())
    assert held - start > 120, (start, held, trimmed)
    assert held - trimmed > 120, (start, held, trimmed)


def test_the_apps_requests_hold_the_trim_off_until_the_last_one_ends(monkeypatch, photos, dlib_backend):
    # through the running page: analyses ending while a generation runs do not trim; the end of the
    # generation, once idle, does
    from tests.composing_customizer import PacedCustomizer

    trim = CountingTrim()
    monkeypatch.setattr(memory, "IDLE_TRIM", memory.IdleTrim(idle_s=0.5, trim=trim))
    customizer = PacedCustomizer(step_seconds=0.1)
    demo = build_demo(customizer, dlib_backend, device="cpu")
    setup_queue(demo, QUEUE_LIMITS)
    with serving(demo) as url:
        client = Client(url, verbose=False)
        reference = handle_file(str(photos["obama1"]))
        generation = client.submit("a portrait", reference, steps=100, randomize_seed=False,
                                   api_name="/generate")
        wait_until(lambda: customizer.steps_run and customizer.steps_run[-1] > 0)
        for _ in range(2):
            client.predict(reference, image=handle_file(str(photos["obama2"])), api_name="/analyze")
        # longer than idle_s after the analyses ended, the generation still running: no trim may come
        time.sleep(1.0)
        assert trim.calls == 0 and not generation.done()
        generation.result(timeout=60)
        wait_until(lambda: trim.calls == 1, timeout=10)
