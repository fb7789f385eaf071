"""Request counters and latency histograms, rendered in the Prometheus text exposition format
(version 0.0.4: ``# HELP`` / ``# TYPE`` lines, then ``name{labels} value``; a histogram is
cumulative ``_bucket{le=...}`` series plus ``_sum`` and ``_count``)."""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict

# Seconds. Generation here spans ~1 ms (n=1) to ~100 ms (n=64, busy CPU) — see docs/serving.md.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PREFIX = "gen_keras_serving"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(v: float) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


class Metrics:
    """Per (model, endpoint): requests by status code, errors (4xx/5xx) by code, latency."""

    def __init__(self, buckets=BUCKETS):
        self.buckets = tuple(buckets)
        self._lock = threading.Lock()
        self.requests = defaultdict(int)  # (model, endpoint, code) -> count
        self.errors = defaultdict(int)  # (model, endpoint, code) -> count
        self.bucket_counts = defaultdict(lambda: [0] * (len(self.buckets) + 1))  # last = +Inf
        self.sums = defaultdict(float)

    def observe(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(model, endpoint, str(status))] += 1
            if status >= 400:
                self.errors[(model, endpoint, str(status))] += 1
            # Per-bucket counts are stored non-cumulatively and summed when rendered.
            self.bucket_counts[(model, endpoint)][bisect.bisect_left(self.buckets, seconds)] += 1
            self.sums[(model, endpoint)] += seconds

    def render(self, gauges: dict[str, tuple[str, float]] | None = None) -> str:
        """The exposition text; ``gauges`` adds ``{name: (help, value)}``."""
        lines = []

        def header(name, kind, help_text):
            lines.append(f"# HELP {PREFIX}_{name} {help_text}")
            lines.append(f"# TYPE {PREFIX}_{name} {kind}")

        with self._lock:
            header("requests_total", "counter", "HTTP requests by model, endpoint and status code.")
            for (m, e, c), v in sorted(self.requests.items()):
                lines.append(f"{PREFIX}_requests_total{_labels(model=m, endpoint=e, code=c)} {v}")
            header("request_errors_total", "counter", "Requests answered 4xx or 5xx.")
            for (m, e, c), v in sorted(self.errors.items()):
                lines.append(f"{PREFIX}_request_errors_total{_labels(model=m, endpoint=e, code=c)} {v}")
            header("request_duration_seconds", "histogram", "Time from request to response.")
            for (m, e), counts in sorted(self.bucket_counts.items()):
                running = 0
                for le, count in zip((*map(_number, self.buckets), "+Inf"), counts):
                    running += count
                    lines.append(f"{PREFIX}_request_duration_seconds_bucket"
                                 f"{_labels(model=m, endpoint=e, le=le)} {running}")
                lines.append(f"{PREFIX}_request_duration_seconds_sum{_labels(model=m, endpoint=e)} "
                             f"{_number(self.sums[(m, e)])}")
                lines.append(f"{PREFIX}_request_duration_seconds_count{_labels(model=m, endpoint=e)} "
                             f"{running}")
        for name, (help_text, value) in (gauges or {}).items():
            header(name, "gauge", help_text)
            lines.append(f"{PREFIX}_{name} {_number(value)}")
        return "\n".join(lines) + "\n"
