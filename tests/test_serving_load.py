"""A real ``gen-keras serve`` process under hostile load, loopback only, bounded in time:

- 64 concurrent keep-alive clients for 20 s mixing good and bad requests: every bad one gets a
  4xx with a JSON error, no 5xx at all, no dropped connection for the good ones, and the
  server's RSS is back within 10% of its warmed-up size afterwards;
- 20 slow clients trickling their bodies: they are cut off at the body timeout with 408, and the
  server keeps answering the others meanwhile;
- 200 distinct malformed requests generated from the API's own schema (types, shapes, ranges,
  encodings, headers, methods, paths): each a 4xx with a JSON error, and the server stays up.
"""
from __future__ import annotations

import json
import random
import socket
import statistics
import threading
import time
from http.client import HTTPConnection

import psutil
import pytest

from serving_fixtures import ServeProcess, request, serving_exports  # noqa: F401

CLIENTS, SECONDS = 64, 20.0
BODY_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(serving_exports, tmp_path_factory):
    s = ServeProcess(["--models", str(serving_exports.models_dir), "--body-timeout", str(BODY_TIMEOUT),
                      "--max-in-flight", "96"], tmp_path_factory.mktemp("load") / "serve.log").start()
    yield s
    s.stop()


def _good(rng: random.Random, cond: str):
    pick = rng.randrange(5)
    if pick == 0:
        return "/v1/models/vae:generate", {"n": rng.randint(1, 4), "seed": rng.randrange(10**6)}, {"Accept": "image/png"}
    if pick == 1:
        return "/v1/models/vae:generate", {"n": 2, "seed": rng.randrange(10**6), "format": "json"}, {}
    if pick == 2:
        return f"/v1/models/{cond}:generate", {"n": 3, "label": rng.randrange(10)}, {"Accept": "image/png"}
    if pick == 3:
        return "/v1/models/vae:interpolate", {"seeds": [1, rng.randrange(100)], "steps": 4}, {}
    return "/v1/models/vae:encode", {"images": [[[0.5] * 28] * 28]}, {}


BAD = [("/v1/models/vae:generate", {"n": "many"}), ("/v1/models/vae:generate", {"n": 10**6}),
       ("/v1/models/vae:generate", {"bogus": 1}), ("/v1/models/nope:generate", {"n": 1}),
       ("/v1/models/vae:explode", {"n": 1}), ("/v1/models/vae:encode", {"images": [[1, 2]]}),
       ("/v1/models/vae:generate", {"z": [[1e39] * 16]}), ("/v1/models/vae:interpolate", {"seeds": [1]})]


def _client(url: str, cond: str, seed: int, deadline: float, tally: dict, lock: threading.Lock):
    rng = random.Random(seed)
    host, port = url.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=60)
    while time.time() < deadline:
        good = rng.random() < 0.6
        path, body, headers = _good(rng, cond) if good else (*rng.choice(BAD), {})
        try:
            conn.request("POST", path, body=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json", **headers})
            r = conn.getresponse()
            data = r.read()
            status = r.status
        except (OSError, ConnectionError) as exc:  # a dropped connection
            with lock:
                tally["dropped_good" if good else "dropped_bad"] += 1
                tally["errors"].append(repr(exc))
            conn.close()
            conn = HTTPConnection(host, int(port), timeout=60)
            continue
        with lock:
            if status >= 500:
                tally["5xx"].append((status, path, data[:200]))
            elif good and status != 200:
                tally["good_not_200"].append((status, path, data[:200]))
            elif not good:
                is_json = r.getheader("content-type", "").startswith("application/json")
                if not (400 <= status < 500 and is_json and "error" in json.loads(data)):
                    tally["bad_not_4xx_json"].append((status, path, data[:200]))
            tally["good" if good else "bad"] += 1
    conn.close()


def test_64_clients_mixing_good_and_bad_requests(server, serving_exports):
    proc = psutil.Process(server.proc.pid)
    warm = {"good": 0, "bad": 0, "dropped_good": 0, "dropped_bad": 0, "errors": [], "5xx": [],
            "good_not_200": [], "bad_not_4xx_json": []}
    _client(server.url, serving_exports.cond_kind, 0, time.time() + 3, warm, threading.Lock())
    rss_start = proc.memory_info().rss
    tally = {k: (0 if isinstance(v, int) else []) for k, v in warm.items()}
    lock, deadline = threading.Lock(), time.time() + SECONDS
    threads = [threading.Thread(target=_client, args=(server.url, serving_exports.cond_kind, i, deadline,
                                                      tally, lock)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    time.sleep(1.0)
    rss_end = proc.memory_info().rss
    print(f"\n{CLIENTS} clients x {SECONDS:.0f} s: {tally['good']} good, {tally['bad']} bad requests; "
          f"RSS {rss_start / 2**20:.0f} -> {rss_end / 2**20:.0f} MiB")
    assert tally["good"] > CLIENTS and tally["bad"] > CLIENTS
    assert tally["5xx"] == [] and tally["good_not_200"] == [] and tally["bad_not_4xx_json"] == []
    assert tally["dropped_good"] == 0, tally["errors"][:5]
    assert rss_end <= 1.10 * rss_start, (rss_start, rss_end)
    assert request(server.url, "GET", "/healthz")[0] == 200


def _trickle(url: str, results: list, index: int):
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    started = time.time()
    try:
        s.sendall(b"POST /v1/models/vae:generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
        s.settimeout(0.4)
        answer = b""
        while time.time() - started < 20 and not answer:
            try:
                s.sendall(b" ")
            except OSError:
                break  # cut off
            try:
                answer = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
        results[index] = (time.time() - started, answer)
    finally:
        s.close()


def test_slow_clients_are_cut_at_the_body_timeout_and_others_are_served(server):
    results = [None] * 20
    slow = [threading.Thread(target=_trickle, args=(server.url, results, i)) for i in range(20)]
    for t in slow:
        t.start()
    time.sleep(0.3)
    latencies = []
    while any(t.is_alive() for t in slow):
        t0 = time.time()
        status, _, _ = request(server.url, "POST", "/v1/models/vae:generate", {"n": 1, "seed": 3},
                               headers={"Accept": "image/png"})
        latencies.append(time.time() - t0)
        assert status == 200
        time.sleep(0.05)
    for t in slow:
        t.join()
    cut = [seconds for seconds, answer in results if b" 408 " in answer.split(b"\r\n", 1)[0]]
    print(f"\nslow clients cut after {min(cut):.1f}-{max(cut):.1f} s; others served, median "
          f"{statistics.median(latencies) * 1000:.0f} ms over {len(latencies)} requests")
    assert len(cut) == 20 and all(BODY_TIMEOUT - 0.5 <= c <= BODY_TIMEOUT + 5 for c in cut)
    assert len(latencies) >= 5 and statistics.median(latencies) < 1.0


# -- 200 malformed requests from the API's schema ---------------------------------------------------
SCHEMA = {  # operation -> field -> a valid value
    "generate": {"n": 2, "seed": 1, "z": [[0.0] * 16], "format": "json"},
    "interpolate": {"seeds": [1, 2], "steps": 3, "method": "linear", "format": "json"},
    "encode": {"images": [[[0.5] * 28] * 28]},
    "reconstruct": {"images": [[[0.5] * 28] * 28], "format": "json"},
    "predict": {"instances": [[0.0] * 16], "signature_name": "serving_default"},
}
WRONG_VALUES = ["text", True, None, {"a": 1}, -5, 10**30, 1.5, [], [[["deep"]]], [1e39]]


def malformed_requests(cond: str) -> list[tuple]:
    """(method, path, headers, raw body) — each distinct, each wrong in one way."""
    out = []
    js = {"Content-Type": "application/json"}
    for op, fields in SCHEMA.items():
        path = f"/v1/models/vae:{op}"
        for field in fields:
            for wrong in WRONG_VALUES:
                body = {field: wrong} if op not in ("generate",) or field != "z" else {"z": wrong}
                if op == "predict" and field == "signature_name":
                    body = {"instances": [[0.0] * 16], "signature_name": wrong}
                out.append(("POST", path, js, json.dumps(body).encode()))
        out.append(("POST", path, js, json.dumps({**fields, "unknown_field": 1}).encode()))
        out.append(("POST", path, js, b'{"n": NaN}'))
        out.append(("POST", path, js, b'{"n": 1'))  # truncated
        out.append(("POST", path, js, b"\xff\xfe{}"))  # not UTF-8
        out.append(("POST", path, js, b"[1, 2]"))
        out.append(("POST", path, js, b""))
        out.append(("POST", path, js, b"[" * 5000 + b"]" * 5000))
        out.append(("POST", path, js, b'{"n": 1' + b"0" * 5000 + b"}"))
        out.append(("POST", path, {"Content-Type": "text/plain"}, b'{"n": 1}'))
        out.append(("POST", path, {}, b'{"n": 1}'))
        out.append(("POST", path, {"Content-Type": "application/json", "Accept": "image/gif"}, b'{"n": 1}'))
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            out.append((method, path, js, b'{"n": 1}'))
    out.append(("POST", "/v1/models/vae:generate", js, json.dumps({"n": 1, "label": 3}).encode()))
    out.append(("POST", f"/v1/models/{cond}:generate", js, json.dumps({"n": 2, "label": 99}).encode()))
    out.append(("POST", f"/v1/models/{cond}:generate", js, json.dumps({"n": 2, "labels": [1]}).encode()))
    out.append(("POST", f"/v1/models/{cond}:encode", js, json.dumps(SCHEMA["encode"]).encode()))
    out.append(("POST", "/v1/models/vae:encode", js, json.dumps({"images": [[[2.0] * 28] * 28]}).encode()))
    out.append(("POST", "/v1/models/vae:predict", js,
                json.dumps({"signature_name": "encode", "instances": [[[[-1.0]] * 28] * 28]}).encode()))
    for path in ("/v1/models/nope:generate", "/v1/models/vae:", "/v1/models/vae:generate:x",
                 "/v1/models/..%2f..%2fetc:generate", "/v1/models/" + "a" * 3000 + ":generate",
                 "/v1/models/v%C3%A4:generate", "/v2/models/vae:generate", "/v1/models", "/static/../app.py",
                 "/v1/models/vae%00:generate"):
        out.append(("POST", path, js, b'{"n": 1}'))
    assert len({(m, p, tuple(sorted(h.items())), b) for m, p, h, b in out}) == len(out)
    return out


def test_200_malformed_requests_each_get_a_4xx_json_error(server, serving_exports):
    cases = malformed_requests(serving_exports.cond_kind)
    assert len(cases) >= 200
    wrong = []
    for method, path, headers, body in cases:
        status, got_headers, data = request(server.url, method, path, body, headers)
        ok = 400 <= status < 500 and got_headers.get("content-type", "").startswith("application/json")
        if not ok or "error" not in json.loads(data):
            wrong.append((status, method, path[:60], body[:60], data[:120]))
    assert wrong == []
    assert request(server.url, "GET", "/readyz")[0] == 200
