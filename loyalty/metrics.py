"""Prometheus metrics: requests, mutations, subscriptions, the outbox and webhook deliveries."""

from prometheus_client import Counter, Gauge, Histogram

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
SUBSCRIPTIONS = Gauge(
    "loyalty_subscriptions_open",
    "GraphQL subscriptions open in this process, by root field.",
    ["field"],
)
OUTBOX_LAG = Gauge(
    "loyalty_outbox_lag_seconds",
    "Age of the oldest event not yet delivered: not fanned out, or with a PENDING delivery "
    "to an active webhook (0: none waiting).",
)
WEBHOOK_DELIVERIES = Gauge(
    "loyalty_webhook_deliveries",
    "Webhook deliveries by status (PENDING, DELIVERED, FAILED).",
    ["status"],
)
WEBHOOK_ATTEMPTS = Gauge(
    "loyalty_webhook_delivery_attempts",
    "Requests made for the webhook deliveries now in each status (since each one's last "
    "redelivery).",
    ["status"],
)
