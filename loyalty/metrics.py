"""Prometheus metrics: request latency and mutation outcomes."""

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Histogram(
    "loyalty_http_request_duration_seconds",
    "HTTP request latency.",
    ["path", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MUTATIONS = Counter(
    "loyalty_mutations_total",
    "GraphQL mutations by name and outcome (ok, or the UserError code).",
    ["mutation", "outcome"],
)
