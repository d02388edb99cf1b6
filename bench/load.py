"""Many visitors at once against `python app.py --model tiny` on loopback (run: python bench/load.py).

Starts the app on 127.0.0.1 with its own Gradio folder, then:
  1. one client, sequential /analyze calls (a 1024x1024 image with four people against four
     references), each right after the library does the same work in this process (load the images,
     analyse, write the result files): the medians side by side and the spread of the per-pair ratio
     (pairs, so that whatever else loads the machine weighs on both), where the app's extra time
     goes (uploads, queue and processing, downloads), and the server's memory after them. Clients
     reuse one TLS context (see `client`); a few calls through gradio_client as it comes show what
     that saves;
  2. USERS concurrent gradio_client users x CALLS /analyze each, then COMPARES /compare_methods
     each (six 1024x1024 methods' images against the same four references, bench/compare_methods.py),
     with a few /generate calls alongside (each sent once the one before it is in the queue):
     failures, p50/p95 per endpoint, and whether the generations finished in the order they were queued;
  3. more sequential calls up to TOTAL /analyze calls: memory after TOTAL against after the first 50.
Memory is read right after each phase and once the server has been idle long enough to hand its
free heap back (umo_app.memory.IdleTrim); the goal compares the settled figures.
Prints the bytes in the app's folders before and after, and the largest the downloads folder got
(sampled twice a second) against its cap (a target: results younger than its minimum age stay, and
the server warns when that holds it over); how old each result was when its client fetched it (the
age the downloads folder measures, from the result folder's time to the fetch's end: what its
minimum age must exceed), and any fetch that found its file gone; and, before any call, the CPU the
idle server uses beside
a plain Gradio app's (one button, Gradio's own queue settings). Bounded: a fixed number of calls and
a time limit per phase.
The figures depend on what else runs on the machine: the load average is printed with them.
Needs the test photos (python -m tests.assets).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analysis import PEOPLE, four_people_output  # noqa: E402
from bench.compare_methods import method_images  # noqa: E402
from bench.load_requests import FetchAges, RequestLog, pct as _pct, print_fetch_ages  # noqa: E402
from bench.local import free_port, photo_paths, wait_until_serving  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10, help="/analyze calls per concurrent user")
    parser.add_argument("--generations", type=int, default=3, help="/generate calls beside the analyses")
    parser.add_argument("--compares", type=int, default=1, help="/compare_methods calls per concurrent user")
    parser.add_argument("--first", type=int, default=50, help="sequential calls in phase 1")
    parser.add_argument("--total", type=int, default=500, help="/analyze calls in all (phase 3 tops up)")
    parser.add_argument("--cap-mb", type=float, default=64, help="the downloads folder's cap for this run")
    parser.add_argument("--phase-timeout", type=float, default=900, help="seconds per phase at most")
    args = parser.parse_args()

    from umo_pipeline.faces import get_face_backend

    photos = photo_paths()
    work = Path(tempfile.mkdtemp(prefix="umo-load-"))
    image = work / "four_people.png"
    four_people_output(photos).save(image)
    references = [photos[name] for name in PEOPLE]
    methods = []
    for number, picture in enumerate(method_images(photos, get_face_backend("dlib")), start=1):
        methods.append(work / f"method_{number}.png")
        picture.save(methods[-1])
    print(f"machine: {os.cpu_count()} CPU cores, load average {_load()} before (shared with other jobs)")

    library = Library(references, image, work / "library")
    gradio_dir = work / "gradio"
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(gradio_dir),
               UMO_DOWNLOADS_MAX_MB=str(args.cap_mb))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(work / "server.log", "w") as log:
        server = subprocess.Popen([sys.executable, "app.py", "--model", "tiny", "--face-backend", "dlib",
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(server, url, log.name)
            run(args, url, server.pid, gradio_dir, references, image, methods, library, Path(log.name))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"server log: {work / 'server.log'}")


def client(url, **options):
    """A gradio_client Client that builds its TLS context once.

    gradio_client makes a new httpx client for every upload, download and queue request, and each
    one loads the CA bundle into a fresh SSL context: about 60 ms of CPU per request on this machine,
    even for a plain http:// loopback URL (an /analyze with five pictures makes a dozen requests).
    `ssl_verify` is handed to httpx as its `verify`, which accepts a ready SSLContext: the same
    certificates (certifi's, httpx's default), checked the same way, loaded once.
    """
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=_tls_context(), **options)


@functools.cache
def _tls_context():
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class Library:
    """What one /analyze asks of the library, called directly: read the five images, analyse, write."""

    def __init__(self, references, image, folder: Path):
        from umo_pipeline.faces import get_face_backend

        self.references, self.image, self.folder = references, image, folder
        self.backend = get_face_backend("dlib")
        self.calls = 0
        self()  # warm-up: models loaded, caches filled

    def __call__(self) -> float:
        from umo_pipeline import workflow

        start = time.perf_counter()
        refs = [workflow.load_reference_image(path, f"Reference {i + 1}") for i, path in enumerate(self.references)]
        result = workflow.analyze_image(self.backend, refs, workflow.load_output_image(self.image))
        workflow.save_outputs(result, self.folder / str(self.calls))
        self.calls += 1
        return time.perf_counter() - start


def run(args, url, pid, gradio_dir, references, image, methods, library, log_path: Path) -> None:
    from gradio_client import Client, handle_file

    downloads = gradio_dir / "umo_downloads"
    cap = int(args.cap_mb * 2**20)
    largest = [0]
    stop_sampling = threading.Event()

    def sample_downloads():
        while not stop_sampling.wait(0.5):
            largest[0] = max(largest[0], _bytes(downloads))

    threading.Thread(target=sample_downloads, daemon=True).start()
    calls = [0]
    lock = threading.Lock()

    def analyse(client):
        slots = {f"reference_{n}": handle_file(str(path)) for n, path in enumerate(references, start=1)}
        start = time.perf_counter()
        client.predict(**slots, image=handle_file(str(image)), api_name="/analyze")
        with lock:
            calls[0] += 1
        return time.perf_counter() - start

    def compare(client):
        slots = {f"reference_{n}": handle_file(str(path)) for n, path in enumerate(references, start=1)}
        slots |= {f"image_{n}": handle_file(str(path)) for n, path in enumerate(methods, start=1)}
        start = time.perf_counter()
        report = client.predict(**slots, api_name="/compare_methods")[-1]
        if [method["matched"] for method in report["methods"]] != [len(references)] * len(methods):
            raise RuntimeError(f"/compare_methods did not match every reference: {report['methods']}")
        return time.perf_counter() - start

    fetches = FetchAges()  # installed first, closed last: RequestLog wraps it in phase 1
    print(f"app folders before: {_mb(_bytes(gradio_dir))} MB; server RSS at start {_rss_mb(pid)} MB")
    print(f"idle server: {_idle_cpu(pid):.1f} % of a core; a plain Gradio app: {_plain_gradio_idle_cpu(gradio_dir.parent / 'plain_gradio.log'):.1f} %")

    # 1. one client, one call at a time, each right after the library's own run
    one = client(url)
    analyse(one)  # warm-up (first call imports and caches)
    requests = RequestLog()
    pairs, phases = [], []
    deadline = time.monotonic() + args.phase_timeout
    while len(pairs) < args.first - 6 and time.monotonic() < deadline:
        alone = library()
        start = time.perf_counter()
        through = analyse(one)
        pairs.append((through, alone))
        phases.append(requests.phases(start, time.perf_counter()))
    requests.close()
    as_is = Client(url, verbose=False)
    plain = [t for t in _bounded([lambda: analyse(as_is) for _ in range(5)], 1, args.phase_timeout)
             if isinstance(t, float)]
    app_s = statistics.median(t for t, _ in pairs)
    library_s = statistics.median(t for _, t in pairs)
    ratios = sorted(t / alone for t, alone in pairs)
    print(f"\n1. one client, {len(pairs) + len(plain) + 1} sequential /analyze (4 references, 1024x1024, 4 faces):")
    print(f"   through the app: median {app_s:.2f} s; library alone, run before each: {library_s:.2f} s "
          f"(ratio {app_s / library_s:.2f}x; per pair: quartiles {_pct(ratios, 25):.2f} / "
          f"{_pct(ratios, 50):.2f} / {_pct(ratios, 75):.2f}x)")
    print("   one app call, medians: " + ", ".join(
        f"{name} {statistics.median(p[name] for p in phases):.3f} s" for name in phases[0]))
    print(f"   gradio_client as it comes (a new TLS context per request): median {statistics.median(plain):.2f} s "
          f"(ratio {statistics.median(plain) / library_s:.2f}x)")
    print_fetch_ages(fetches)
    rss_first = _settled_rss(pid, calls[0])

    # 2. many users at once, generations alongside
    generation_order, generation_times, analyse_times, compare_times, failures = [], [], [], [], []
    users = [client(url) for _ in range(args.users)]

    def user(each):
        out = []
        for _ in range(args.calls):
            try:
                out.append(analyse(each))
            except Exception as error:  # noqa: BLE001 - counted and shown
                failures.append(f"/analyze: {type(error).__name__}: {error}")
        for _ in range(args.compares):
            try:
                compare_times.append(compare(each))
            except Exception as error:  # noqa: BLE001 - counted and shown
                failures.append(f"/compare_methods: {type(error).__name__}: {error}")
        return out

    generators = [client(url) for _ in range(args.generations)]
    queued = [threading.Event() for _ in range(args.generations)]

    def generate(number):
        from gradio_client.utils import Status

        if number:  # the queue's order is the order of joining it: each joins once the one before has
            queued[number - 1].wait(args.phase_timeout)
        start = time.perf_counter()
        try:
            job = generators[number].submit(f"generation {number}", width=256, height=256, steps=8,
                                            randomize_seed=False, seed=number, api_name="/generate")
            while not job.done() and job.status().code in (Status.STARTING, Status.JOINING_QUEUE):
                time.sleep(0.02)
            queued[number].set()
            job.result(timeout=args.phase_timeout)
            with lock:
                generation_order.append(number)
            generation_times.append(time.perf_counter() - start)
        except Exception as error:  # noqa: BLE001 - counted and shown
            failures.append(f"/generate: {type(error).__name__}: {error}")
        finally:
            queued[number].set()

    start = time.perf_counter()
    with ThreadPoolExecutor(args.users + args.generations) as pool:
        futures = [pool.submit(user, each) for each in users]
        futures += [pool.submit(generate, number) for number in range(args.generations)]
        for future in as_completed(futures, timeout=args.phase_timeout):
            result = future.result()
            if result:
                analyse_times += result
    wall = time.perf_counter() - start
    print(f"\n2. {args.users} users x ({args.calls} /analyze + {args.compares} /compare_methods of {len(methods)} images)"
          f" + {args.generations} /generate (256 px, 8 steps), "
          f"{wall:.0f} s, load average {_load()}:")
    print(f"   failures: {len(failures)}" + "".join(f"\n     {f}" for f in sorted(set(failures))[:5]))
    print(f"   /analyze  n={len(analyse_times)}  p50 {_pct(analyse_times, 50):.2f} s  p95 {_pct(analyse_times, 95):.2f} s")
    print(f"   /compare_methods  n={len(compare_times)}  p50 {_pct(compare_times, 50):.2f} s  "
          f"p95 {_pct(compare_times, 95):.2f} s")
    print(f"   /generate n={len(generation_times)}  p50 {_pct(generation_times, 50):.2f} s  "
          f"p95 {_pct(generation_times, 95):.2f} s; finished in the order queued: "
          f"{generation_order == sorted(generation_order)} {generation_order}")
    print_fetch_ages(fetches)
    _settled_rss(pid, calls[0])

    # 3. top up to the total, a few clients at a time, then compare memory
    remaining = max(0, args.total - calls[0])
    few = users[:4]
    _bounded([lambda k=k: analyse(few[k % len(few)]) for k in range(remaining)], len(few), args.phase_timeout)
    stop_sampling.set()
    fetches.close()
    print(f"\n3. after {calls[0]} /analyze calls:")
    print_fetch_ages(fetches)
    rss_last = _settled_rss(pid, calls[0])
    print(f"   settled RSS after {calls[0]} calls against after {args.first}: "
          f"{100 * (rss_last - rss_first) / rss_first:+.1f}%")
    print(f"\napp folders after: {_mb(_bytes(gradio_dir))} MB (downloads {_mb(_bytes(downloads))} MB, "
          f"largest seen {_mb(largest[0])} MB, cap {_mb(cap)} MB); load average {_load()}")
    print(f"server warnings that the downloads folder was over its cap: {_over_cap_warnings(log_path)}")


def _over_cap_warnings(log_path: Path) -> int:
    return sum("over its" in line and "cap" in line for line in log_path.read_text(errors="replace").splitlines())


def _bounded(actions, workers, timeout):
    """Run the actions on `workers` threads; whatever is left when `timeout` runs out is skipped."""
    deadline = time.monotonic() + timeout
    results = []

    def guarded(action):
        if time.monotonic() > deadline:
            return None
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - shown with the figures
            return f"{type(error).__name__}: {error}"

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(guarded, actions))
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        print(f"   failures: {len(errors)} ({errors[0]})")
    return results


def _bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f}"


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def _settled_rss(pid: int, calls: int) -> int:
    """Print the server's RSS now and once it has been idle past its trim delay; return the latter."""
    from umo_app import memory

    now = _rss_mb(pid)
    time.sleep(memory.IDLE_TRIM.idle_s + 1.0)
    settled = _rss_mb(pid)
    print(f"   server RSS after {calls} calls: {now} MB right after, {settled} MB after "
          f"{memory.IDLE_TRIM.idle_s + 1.0:.0f} s idle")
    return settled


PLAIN_GRADIO = """
import sys
import gradio as gr
with gr.Blocks() as demo:
    gr.Button().click(lambda: None)
demo.queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""


def _idle_cpu(pid: int, seconds: float = 5.0) -> float:
    """The process's CPU time over `seconds` of no requests, in % of one core (from /proc)."""

    def ticks():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    time.sleep(1.0)  # whatever the last request left running
    before = ticks()
    time.sleep(seconds)
    return 100 * (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds


def _plain_gradio_idle_cpu(log_path: Path) -> float:
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    with open(log_path, "w") as log:  # kept beside the server's log: where to look if it fails to start
        plain = subprocess.Popen([sys.executable, "-c", PLAIN_GRADIO, str(port)], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        try:
            wait_until_serving(plain, f"http://127.0.0.1:{port}", str(log_path))
            return _idle_cpu(plain.pid)
        finally:
            plain.terminate()
            plain.wait(timeout=30)


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
