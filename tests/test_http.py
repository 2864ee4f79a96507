"""The HTTP surface around GraphQL: health, readiness, metrics, debug-only GraphiQL."""

import httpx

from loyalty.app import create_app
from loyalty.config import Settings
from loyalty.db import Database
from tests.conftest import GraphQLClient
from tests.helpers import enroll, record


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_readiness_fails_before_migrations(tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    db = Database(settings.database_url)
    app = create_app(settings, db=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    await db.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "migrations pending"


async def test_metrics_are_exposed(admin, client):
    await admin.data('mutation { updateProgram(input: {name: "M"}) { errors { code } } }')
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "loyalty_http_request_duration_seconds" in metrics.text
    assert "loyalty_mutations_total" in metrics.text


async def test_graphiql_and_introspection_are_off_unless_debug(client, admin):
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code != 200 or "graphiql" not in page.text.lower()
    body = await admin("{ __schema { types { name } } }")
    assert body.get("errors"), body


async def test_graphiql_in_debug(database_url):
    settings = Settings(database_url=database_url, debug=True)
    db = Database(settings.database_url)
    app = create_app(settings, db=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get("/graphql", headers={"Accept": "text/html"})
    await db.dispose()
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


async def test_pgbouncer_mode_serves_purchases(settings, admin_key):
    """Without a statement cache and with unique statement names, everything still works."""
    app = create_app(settings.model_copy(update={"db_pgbouncer": True}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loyalty.test") as http:
        admin = GraphQLClient(http, admin_key)
        member_id = await enroll(admin)
        for _ in range(3):
            assert (await record(admin, member_id, "10.00"))["pointsAwarded"] == 10
    await app.state.db.dispose()
