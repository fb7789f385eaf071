"""Load test of ``gen-keras serve``: the server runs as its own process on loopback, many
concurrent clients (keep-alive connections, one asyncio task each) send ``:generate`` requests
for a bounded time and count, and the result is printed as JSON: requests per second, latency
p50/p95/p99, status counts, 5xx and dropped connections — for n = 1 and n = 64, onnxruntime and
SavedModel backends side by side. Then the generator alone (no HTTP) at batch 1, 16 and 64 in
onnxruntime and TensorFlow, interleaved, to check which backend should be the default.

    python bench/serve_load.py --models outputs/exports            # full run (~2-3 minutes)
    python bench/serve_load.py --models outputs/exports --smoke    # a quick check (~30 s)

Exits 1 when any request got a 5xx or any connection was dropped. Client and server share the
machine's cores, so the figures are a floor for a dedicated server; on a busy machine they are
noisy (the JSON records the load average before and after).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``gen-keras serve`` in its own process group."""

    def __init__(self, models: Path, backend: str, threads: int, log: Path, code: Path | None = None):
        """``code``: another checkout of the project whose server to run (before/after runs)."""
        self.port = free_port()
        exe = Path(sys.executable).with_name("gen-keras")
        cmd = [str(exe)] if exe.exists() and code is None else [sys.executable, "-m", "gen_keras.cli"]
        self.cmd = [*cmd, "serve", "--models", str(models), "--port", str(self.port),
                    "--backend", backend, "--threads", str(threads), "--log-level", "warning"]
        self.env = {**os.environ, "PYTHONPATH": str(code)} if code else None
        self.cwd = str(code) if code else None
        self.log, self.proc = log, None

    def __enter__(self) -> "Server":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=self.env, cwd=self.cwd)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"server not ready in 180 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            return json.loads(r.read())


class Tally:
    def __init__(self, budget: int):
        self.budget, self.latencies, self.status, self.dropped = budget, [], {}, 0

    def take(self) -> bool:
        self.budget -= 1
        return self.budget >= 0


async def _read_response(reader) -> tuple[int, bool]:
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before the status line")
    status, length, keep = int(line.split()[1]), 0, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        if key.lower() == "content-length":
            length = int(value)
        elif key.lower() == "connection" and value.strip().lower() == "close":
            keep = False
    await reader.readexactly(length)
    return status, keep


async def _client(port: int, model: str, n: int, fmt: str, deadline: float, tally: Tally, first_seed: int):
    reader = writer = None
    seed = first_seed
    while time.perf_counter() < deadline and tally.take():
        body = json.dumps({"n": n, "seed": seed, "format": fmt}).encode()
        seed += 1
        head = (f"POST /v1/models/{model}:generate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + body)
            await writer.drain()
            status, keep = await _read_response(reader)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            tally.dropped += 1
            writer = None
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.status[status] = tally.status.get(status, 0) + 1
        if not keep:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def run_load(port: int, model: str, n: int, fmt: str, clients: int, seconds: float, max_requests: int) -> dict:
    tally = Tally(max_requests)

    async def main():
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*[_client(port, model, n, fmt, deadline, tally, 1_000_000 * k)
                               for k in range(clients)])

    started = time.perf_counter()
    asyncio.run(main())
    return _summary(tally, n, fmt, clients, time.perf_counter() - started)


def _summary(tally: Tally, n: int, fmt: str, clients: int, elapsed: float) -> dict:
    ms = np.asarray(tally.latencies) * 1000
    done = len(ms)
    return {
        "n": n, "format": fmt, "clients": clients, "seconds": round(elapsed, 2), "requests": done,
        "rps": round(done / elapsed, 1), "images_per_s": round(done * n / elapsed, 1),
        "latency_ms": {q: round(float(np.percentile(ms, p)), 2) if done else None
                       for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "status": {str(k): v for k, v in sorted(tally.status.items())},
        "errors_5xx": sum(v for k, v in tally.status.items() if k >= 500),
        "errors_4xx": sum(v for k, v in tally.status.items() if 400 <= k < 500),
        "dropped_connections": tally.dropped,
    }


async def _slow_client(port: int, deadline: float, counts: dict) -> None:
    """Announces a body and trickles it a byte a second (the server cuts it off: 408)."""
    while time.perf_counter() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write("POST /v1/models/x:generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode())
            while time.perf_counter() < deadline:
                writer.write(b" ")
                await writer.drain()
                if reader.at_eof():
                    break
                await asyncio.sleep(1.0)
            writer.close()
            counts["slow"] = counts.get("slow", 0) + 1
        except (OSError, ConnectionError):
            counts["slow"] = counts.get("slow", 0) + 1
            await asyncio.sleep(0.5)


BAD_BODIES = [b"{not json", b'{"n": -1}', b'{"n": 100000}', b'{"bogus": 1}', b'{"z": [[1e999]]}',
              b'{"seed": "x"}', b"[]", b'{"n": 1, "format": "gif"}']


async def _bad_client(port: int, model: str, deadline: float, counts: dict) -> None:
    """A stream of malformed requests on one keep-alive connection (each answered 4xx)."""
    reader = writer = None
    i = 0
    while time.perf_counter() < deadline:
        body = BAD_BODIES[i % len(BAD_BODIES)]
        i += 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"POST /v1/models/{model}:generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body)
            await writer.drain()
            status, keep = await _read_response(reader)
            counts[status] = counts.get(status, 0) + 1
            if not keep:
                writer.close()
                writer = None
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            counts["dropped"] = counts.get("dropped", 0) + 1
            writer = None
        await asyncio.sleep(0.005)


def run_abuse(port: int, model: str, n: int, fmt: str, clients: int, seconds: float, max_requests: int,
              slow: int = 20, bad: int = 2) -> dict:
    """``run_load`` while ``slow`` slow clients and ``bad`` streams of malformed requests run
    alongside; only the good requests are in the figures."""
    tally, abuse = Tally(max_requests), {}

    async def main():
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*[_client(port, model, n, fmt, deadline, tally, 1_000_000 * k)
                               for k in range(clients)],
                             *[_slow_client(port, deadline, abuse) for _ in range(slow)],
                             *[_bad_client(port, model, deadline, abuse) for _ in range(bad)])

    started = time.perf_counter()
    asyncio.run(main())
    result = _summary(tally, n, fmt, clients, time.perf_counter() - started)
    result["abuse"] = {"slow_clients": slow, "bad_streams": bad,
                       "answers": {str(k): v for k, v in sorted(abuse.items(), key=lambda kv: str(kv[0]))}}
    return result


def generator_alone(export_dir: Path, batches, reps: int) -> list[dict]:
    """Median / p95 latency of the generate endpoint alone, onnxruntime vs TensorFlow, with
    the two runtimes interleaved so that a load change on the machine hits both alike."""
    from gen_keras.exported.reader import ExportReader

    engines = {name: ExportReader(export_dir, runtime=name).runtime for name in ("onnx", "tf")}
    reader = ExportReader(export_dir)
    spec, ep = reader.spec, reader.adapter.for_task("generate")
    rng = np.random.default_rng(0)
    out = []
    for batch in batches:
        feeds = {}
        for i in ep.inputs:
            shape = [batch, *i.shape[1:]]
            feeds[i.name] = (rng.integers(0, max(spec.num_classes, 1), shape) if i.dtype.startswith("int")
                             else rng.standard_normal(shape)).astype(i.dtype)
        times = {name: [] for name in engines}
        for _ in range(5):  # warm-up (TF traces on first call)
            for engine in engines.values():
                engine.run(ep.name, feeds)
        for _ in range(reps):
            for name, engine in engines.items():
                t = time.perf_counter()
                engine.run(ep.name, feeds)
                times[name].append((time.perf_counter() - t) * 1000)
        for name, ts in times.items():
            out.append({"backend": name, "batch": batch, "reps": reps,
                        "median_ms": round(statistics.median(ts), 3),
                        "p95_ms": round(float(np.percentile(ts, 95)), 3)})
    return out


def before_after_abuse(args, models: Path, model: str, sizes: list[int], log: Path) -> dict:
    """Interleaved before/after rounds (the other checkout's server and this one's, the order
    swapped every round so that a machine speeding up or slowing down favours neither; medians
    over rounds, and the median of the per-round after/before ratios, which a drift between
    rounds does not move), then this server quiet and under abuse, back to back."""
    out: dict = {}
    if args.compare_with:
        runs = []
        for r in range(args.rounds):
            order = (("before", Path(args.compare_with).resolve()), ("after", None))
            for label, code in order if r % 2 == 0 else order[::-1]:
                with Server(models, "onnx", args.threads, log, code=code) as server:
                    for n in sizes:
                        run_load(server.port, model, n, args.format, 2, 1.0, 20)  # warm-up
                        res = run_load(server.port, model, n, args.format, args.clients, args.seconds,
                                       args.max_requests)
                        runs.append({"code": label, "round": r, **res})
                        print(f"  round {r} {label:6s} n={n:<3d} {res['rps']:8.1f} req/s  p99 "
                              f"{res['latency_ms']['p99']} ms", file=sys.stderr)
        table = {}
        for n in sizes:
            row = {}
            for label in ("before", "after"):
                mine = [x for x in runs if x["code"] == label and x["n"] == n]
                row[label] = {"rps": round(statistics.median(x["rps"] for x in mine), 1),
                              "p99_ms": round(statistics.median(x["latency_ms"]["p99"] for x in mine), 2),
                              "errors_5xx": sum(x["errors_5xx"] for x in mine),
                              "dropped": sum(x["dropped_connections"] for x in mine)}
            row["after_vs_before_rps"] = round(row["after"]["rps"] / row["before"]["rps"], 3)
            rps = {(x["code"], x["round"]): x["rps"] for x in runs if x["n"] == n}
            row["after_vs_before_paired"] = round(statistics.median(
                rps["after", r] / rps["before", r] for r in range(args.rounds)), 3)
            table[f"n_{n}"] = row
        out["before_after"] = {"before": str(args.compare_with), "rounds": args.rounds, "table": table,
                               "runs": runs}
    if args.abuse:
        rows = {}
        with Server(models, "onnx", args.threads, log) as server:
            for n in sizes:
                run_load(server.port, model, n, args.format, 2, 1.0, 20)  # warm-up
                quiet = run_load(server.port, model, n, args.format, args.clients, args.seconds, args.max_requests)
                abused = run_abuse(server.port, model, n, args.format, args.clients, args.seconds,
                                   args.max_requests, slow=args.slow_clients)
                rows[f"n_{n}"] = {"quiet": quiet, "abuse": abused,
                                  "p99_abuse_over_quiet": round(abused["latency_ms"]["p99"]
                                                                / quiet["latency_ms"]["p99"], 2)}
                print(f"  abuse n={n:<3d} quiet p99 {quiet['latency_ms']['p99']} ms, abuse p99 "
                      f"{abused['latency_ms']['p99']} ms, good 5xx {abused['errors_5xx']}", file=sys.stderr)
        out["abuse"] = rows
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=str(ROOT / "outputs" / "exports"), help="folder of export folders")
    p.add_argument("--model", default=None, help="which model (default: the most recent export)")
    p.add_argument("--backends", default="onnx,tf")
    p.add_argument("--sizes", default="1,64", help="images per request")
    p.add_argument("--format", default="png", choices=["png", "json"])
    p.add_argument("--clients", type=int, default=32, help="concurrent connections")
    p.add_argument("--seconds", type=float, default=15.0, help="per backend and size")
    p.add_argument("--max-requests", type=int, default=20000, help="per backend and size")
    p.add_argument("--threads", type=int, default=2, help="the server's --threads")
    p.add_argument("--reps", type=int, default=200, help="generator-alone repetitions")
    p.add_argument("--smoke", action="store_true", help="a quick check: 8 clients, 3 s, 20 reps")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--compare-with", default=None, metavar="CHECKOUT",
                   help="before/after: also run the server of another checkout (e.g. `git worktree add "
                        "/tmp/old ffe5f26`), interleaved round by round with this one (onnx backend)")
    p.add_argument("--rounds", type=int, default=3, help="before/after rounds")
    p.add_argument("--abuse", action="store_true",
                   help="also run the load while --slow-clients slow clients and 2 streams of malformed "
                        "requests run alongside; compare the good requests' p99 with the quiet run's")
    p.add_argument("--slow-clients", type=int, default=20,
                   help="--abuse: clients that announce a body and trickle it a byte a second (64: issue 27)")
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.seconds, args.max_requests, args.reps = 8, 3.0, 400, 20
    models = Path(args.models)
    exports = sorted((d for d in models.iterdir() if (d / "manifest.json").is_file()),
                     key=lambda d: (d / "manifest.json").stat().st_mtime) if models.is_dir() else []
    if not exports:
        p.error(f"--models {models}: no export folders (train first: gen-keras train --config "
                "pipelines/configs/vae_mnist10k.yaml)")
    export = models / args.model if args.model else exports[-1]
    sizes = [int(s) for s in args.sizes.split(",")]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve_load_{os.getpid()}.log"
    report = {"model": export.name, "smoke": args.smoke,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_before": [round(x, 2) for x in os.getloadavg()]},
              "settings": {k: getattr(args, k) for k in ("clients", "seconds", "max_requests", "threads", "format")},
              "load": []}
    if args.compare_with or args.abuse:
        report.update(before_after_abuse(args, models, export.name, sizes, log))
        report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        text = json.dumps(report, indent=2)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return 0
    for backend in args.backends.split(","):
        with Server(models, backend, args.threads, log) as server:
            assert export.name in [m["name"] for m in server.get("/v1/models")["models"]]
            for n in sizes:
                run_load(server.port, export.name, n, args.format, 2, 1.0, 20)  # warm-up
                result = run_load(server.port, export.name, n, args.format, args.clients, args.seconds,
                                  args.max_requests)
                report["load"].append({"backend": backend, **result})
                print(f"  {backend:5s} n={n:<3d} {result['rps']:8.1f} req/s  p50 {result['latency_ms']['p50']} ms  "
                      f"p99 {result['latency_ms']['p99']} ms  5xx {result['errors_5xx']}  dropped "
                      f"{result['dropped_connections']}", file=sys.stderr)
    batches = sorted({*sizes, 16})  # 16: what the web page asks for
    report["generator_alone"] = generator_alone(export, batches, args.reps)
    faster = {}
    for n in batches:
        rows = {r["backend"]: r["median_ms"] for r in report["generator_alone"] if r["batch"] == n}
        faster[f"batch_{n}"] = min(rows, key=rows.get)
    report["faster_backend"] = faster
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["ok"] = all(r["errors_5xx"] == 0 and r["dropped_connections"] == 0 for r in report["load"])
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
