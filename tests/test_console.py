"""The admin console: its files and headers over HTTP on both backends, and end to end in
headless Chromium against a real ``loyalty serve`` on PostgreSQL.

The browser test drives Debian's ``chromium`` through Playwright's ``executable_path`` (never a
downloaded browser). Without Chromium it skips with the reason, unless
LOYALTY_REQUIRE_POSTGRES=1 (as in CI), which turns the skip into a failure. Screenshots of each
page go to ``test-artifacts/console/`` (or LOYALTY_TEST_ARTIFACTS).
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from graphql import FieldNode, IntValueNode, VariableNode, parse

from loyalty.admin_console import STATIC
from tests.browser import ARTIFACTS as BROWSER_ARTIFACTS
from tests.browser import require_chromium
from tests.cli import free_port, wait_ready
from tests.conftest import postgres_database

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = BROWSER_ARTIFACTS / "console"
XSS_NAME = "<img src=x onerror=alert(1)>"
CODES_CSV = b'code\nCINE-0001\nCINE-0002\n"CINE-0003",partner\n'


async def test_the_console_is_served_with_a_strict_policy(client: httpx.AsyncClient):
    # when the browser asks for the console and its script
    page = await client.get("/admin/")
    script = await client.get("/admin/app.js")
    bare = await client.get("/admin", follow_redirects=False)

    # then both come with the policy: scripts and styles from this origin only, no framing
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["content-security-policy"] == policy
    assert bare.status_code in {301, 302, 307, 308}
    assert bare.headers["location"].endswith("/admin/")


async def test_a_missing_console_file_is_404_not_500(client: httpx.AsyncClient):
    answer = await client.get("/admin/pages/nothing.js")
    assert answer.status_code == 404


def test_the_console_never_parses_markup_and_has_no_inline_script():
    # Database text reaches the page as text nodes only; the policy forbids inline scripts anyway.
    sources = sorted(STATIC.rglob("*.js"))
    assert len(sources) >= 10
    for source in sources:
        code = source.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{source.name} uses {sink}"
    index = (STATIC / "index.html").read_text()
    assert "<script>" not in index and "style=" not in index


# ---- the browser test


def _loyalty(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "loyalty", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"loyalty {args}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


@pytest.fixture
def fresh_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped after the test."""
    request.getfixturevalue("postgres_template")  # skips or fails when PostgreSQL is absent
    with postgres_database("loyalty_console") as url:
        yield url


@pytest.fixture
def server(fresh_postgres: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``loyalty serve`` on a free port, migrated by the CLI, with an admin key it made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env["LOYALTY_DATABASE_URL"] = fresh_postgres
    env["LOYALTY_WEBHOOK_ALLOW_HTTP"] = "1"  # the test's endpoint is on loopback
    _loyalty("db", "upgrade", env=env)
    key = _loyalty("apikey", "create", "--role", "admin", "--name", "console test", env=env)
    key = key.strip().splitlines()[-1]
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "loyalty", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready(base, time.monotonic() + 60, process):
            pytest.fail(f"serve did not get ready: {(tmp_path / 'serve.log').read_text()}")
        yield base, key
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _seed(base: str, key: str) -> None:
    """A member with a purchase, so the dashboard has something to draw."""
    headers = {"Authorization": f"Bearer {key}"}

    def call(query: str, variables: dict) -> dict:
        answer = httpx.post(
            f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body = answer.json()
        assert "errors" not in body, body
        return body["data"]

    enrolled = call(
        "mutation($i: EnrollMemberInput!) {"
        " enrollMember(input: $i) { member { id } errors { code } } }",
        {"i": {"externalId": "alice", "firstName": "Alice"}},
    )
    member_id = enrolled["enrollMember"]["member"]["id"]
    call(
        "mutation($i: RecordPurchaseInput!) { recordPurchase(input: $i) { errors { code } } }",
        {
            "i": {
                "idempotencyKey": "seed-1",
                "memberId": member_id,
                "orderId": "seed-1",
                "channel": "IN_STORE",
                "total": {"amount": "120.00", "currency": "USD"},
            }
        },
    )


def _form(page, title: str):  # type: ignore[no-untyped-def]
    """The form headed ``title``."""
    return page.locator("form", has=page.get_by_role("heading", name=title))


def test_an_admin_runs_the_program_from_the_console(chromium: Path, server: tuple[str, str]):
    from playwright.sync_api import expect, sync_playwright

    base, key = server
    _seed(base, key)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    dialogs: list[str] = []
    sent: list[dict] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda r: _record(r, sent))

        def shot(name: str) -> None:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

        # sign in with the key the CLI made
        page.goto(f"{base}/admin/")
        shot("sign-in")
        # keyboard only: the key field has the focus, Enter submits
        expect(page.get_by_label("Admin API key")).to_be_focused()
        page.keyboard.type(key)
        page.keyboard.press("Enter")

        # the dashboard draws its charts
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        expect(page.locator("svg.chart")).to_have_count(5)
        expect(page.locator("svg.chart rect.bar").first).to_be_attached()
        expect(page.locator(".kpi", has_text="Revenue")).to_contain_text("120")
        assert page.evaluate("window.sessionStorage.length") == 1
        assert key not in page.url
        shot("dashboard")

        # a field error shows next to its field; then tiers are created
        page.get_by_role("link", name="Program & tiers").click()
        create = _form(page, "Create a tier")
        create.get_by_label("Name").fill("Gold")
        create.get_by_label("Rank").fill("1")
        create.get_by_label("Threshold (qualifying points)").fill("-5")
        create.get_by_role("button", name="Create tier").click()
        threshold = create.locator(".field", has=page.get_by_label("Threshold (qualifying points)"))
        expect(threshold.locator(".field-error")).to_contain_text("INVALID")
        expect(create.get_by_label("Threshold (qualifying points)")).to_have_attribute(
            "aria-invalid", "true"
        )
        shot("field-error")
        create.get_by_label("Threshold (qualifying points)").fill("500")
        create.get_by_role("button", name="Create tier").click()
        expect(page.get_by_text("1. Gold — from 500 points")).to_be_visible()

        # a threshold change is previewed before it is saved
        page.get_by_text("1. Gold — from 500 points").click()
        change = _form(page, "Change Gold's threshold")
        save = change.get_by_role("button", name="Save threshold")
        expect(save).to_be_disabled()
        change.get_by_label("New threshold").fill("100")
        change.get_by_role("button", name="Preview").click()
        preview = change.locator("table")
        expect(preview).to_contain_text("Moved up")
        expect(preview.locator("tbody tr").first).to_contain_text("Gold")
        shot("tiers-preview")
        save.click()
        expect(page.get_by_text("1. Gold — from 100 points")).to_be_visible()
        shot("program")

        # a reward
        page.get_by_role("link", name="Rewards", exact=True).click()
        reward = _form(page, "Create a reward")
        reward.get_by_label("Name").fill("Free coffee")
        reward.get_by_label("Cost in points").fill("30")
        reward.get_by_role("button", name="Create reward").click()
        expect(page.get_by_role("link", name="Free coffee")).to_be_visible()
        reward.get_by_label("Name").fill("Cinema ticket")
        reward.get_by_label("Cost in points").fill("200")
        reward.get_by_label("Kind").select_option("CODE_POOL")
        reward.get_by_role("button", name="Create reward").click()
        page.get_by_role("link", name="Cinema ticket").click()
        expect(page.get_by_text("Code pool; stock: 0.")).to_be_visible()
        upload = _form(page, "Upload codes (CSV)")
        upload.get_by_label("CSV file: one code per line, first column").set_input_files(
            files=[{"name": "codes.csv", "mimeType": "text/csv", "buffer": CODES_CSV}]
        )
        upload.get_by_role("button", name="Upload").click()
        expect(page.get_by_text("Code pool; stock: 3.")).to_be_visible()
        expect(page.locator("#status")).to_have_text("3 codes added.")
        shot("reward-code-pool")
        page.get_by_role("link", name="Rewards", exact=True).click()
        shot("rewards")

        # a member whose name is markup is shown as text; points adjusted; the reward redeemed
        page.get_by_role("link", name="Members", exact=True).click()
        page.get_by_text("New member", exact=True).click()
        enroll = _form(page, "Enroll a member")
        enroll.get_by_label("External id").fill("xss-1")
        enroll.get_by_label("First name").fill(XSS_NAME)
        enroll.get_by_role("button", name="Enroll").click()
        expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
        assert page.locator("main img").count() == 0
        shot("members")
        page.get_by_role("link", name=XSS_NAME).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(XSS_NAME)
        adjust = _form(page, "Adjust points")
        adjust.get_by_label("Points (negative to deduct)").fill("50")
        adjust.get_by_label("Reason").fill("Welcome gift")
        adjust.get_by_role("button", name="Adjust").click()
        expect(page.locator("#status")).to_have_text("Points adjusted.")
        redeem = _form(page, "Redeem a reward")
        redeem.get_by_label("Reward").select_option(label="Free coffee (30 points)")
        redeem.get_by_role("button", name="Redeem").click()
        expect(page.locator("#status")).to_contain_text("Redeemed: code")
        expect(page.locator("table", has_text="Redemptions")).to_contain_text("Free coffee")
        expect(page.locator(".card", has_text="Points").locator("dd").first).to_have_text("20")
        expect(page.locator(".card", has_text="Marketing consents")).to_contain_text("no")
        expect(page.locator(".card", has_text="RFM scores")).to_contain_text("Not scored")
        assert page.locator("main img").count() == 0
        shot("member")
        with page.expect_download() as download:
            page.get_by_role("button", name="Export member data (JSON)").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert exported["member"]["firstName"] == XSS_NAME

        # an earning rule, and a sample basket previewed through it
        page.get_by_role("link", name="Earning rules", exact=True).click()
        page.get_by_text("New earning rule", exact=True).click()
        rule = _form(page, "Create an earning rule")
        rule.get_by_label("Name").fill("Double points")
        rule.get_by_label("Kind").select_option("MULTIPLY")
        rule.get_by_label("Value").fill("2")
        rule.get_by_role("button", name="Create rule").click()
        expect(page.get_by_role("link", name="Double points")).to_be_visible()
        basket = _form(page, "Preview a sample basket")
        basket.get_by_label("Member external id").fill("alice")
        basket.get_by_label("Total (USD)").fill("10.00")
        basket.get_by_role("button", name="Preview").click()
        expect(basket.locator(".big")).to_have_text("20 points")
        expect(basket.locator("table")).to_contain_text("Double points")
        shot("rules")

        # editing the rule: an error on a nested field shows under that field
        page.get_by_role("link", name="Double points").click()
        edit = _form(page, "Edit (saves version 2, in force from now)")
        edit.get_by_label("Value").fill("0")
        edit.get_by_role("button", name="Save").click()
        expect(edit.locator('.field-error[data-field="effect.value"]')).to_contain_text("INVALID")
        edit.get_by_label("Value").fill("3")
        edit.get_by_role("button", name="Save").click()
        expect(page.get_by_text("ACTIVE, version 2")).to_be_visible()
        shot("rule")

        # a segment: a bad filter's error shows by its field; then its member count
        page.get_by_role("link", name="Segments", exact=True).click()
        segment = _form(page, "Create a segment")
        segment.get_by_label("Name").fill("Point holders")
        segment.get_by_label("Available points at least").fill("10")
        segment.get_by_label("Available points at most").fill("5")
        segment.get_by_role("button", name="Create segment").click()
        highest = segment.locator(".field", has=page.get_by_label("Available points at most"))
        expect(highest.locator(".field-error")).to_contain_text("INVALID")
        shot("segment-field-error")
        segment.get_by_label("Available points at least").fill("1")
        segment.get_by_label("Available points at most").fill("")
        segment.get_by_role("button", name="Create segment").click()
        expect(page.get_by_role("link", name="Point holders")).to_be_visible()
        segment.get_by_label("Name").fill(XSS_NAME)
        segment.get_by_label("Marketing consent").select_option("EMAIL")
        segment.get_by_role("button", name="Create segment").click()
        expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
        assert page.locator("main img").count() == 0
        shot("segments")
        page.get_by_role("link", name="Point holders").click()
        expect(page.get_by_text("2 members now")).to_be_visible()
        members_in = page.get_by_role("table", name="Members in this segment")
        expect(members_in).to_contain_text("Alice")
        expect(members_in).to_contain_text(XSS_NAME)
        assert page.locator("main img").count() == 0
        shot("segment")

        # the segment named as markup is deleted after a ticked confirmation
        page.get_by_role("link", name="← Segments").click()
        page.get_by_role("link", name=XSS_NAME).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(XSS_NAME)
        expect(page.get_by_text("0 members now")).to_be_visible()
        page.get_by_text("Delete this segment", exact=True).first.click()
        remove = _form(page, "Delete this segment")
        remove.get_by_role("button", name="Delete segment").click()
        expect(remove.locator('.field-error[data-field="confirm"]')).to_contain_text("Tick")
        remove.get_by_label(f"Yes, delete “{XSS_NAME}”").check()
        remove.get_by_role("button", name="Delete segment").click()
        expect(page.locator("#status")).to_have_text("Segment deleted.")
        expect(page.get_by_role("link", name="Point holders")).to_be_visible()
        expect(page.get_by_role("link", name=XSS_NAME)).to_have_count(0)

        # an earning rule limited to the segment
        page.get_by_role("link", name="Earning rules", exact=True).click()
        page.get_by_text("New earning rule", exact=True).click()
        limited = _form(page, "Create an earning rule")
        limited.get_by_label("Name").fill("Holders bonus")
        limited.get_by_label("Kind").select_option("FIXED_BONUS")
        limited.get_by_label("Value").fill("5")
        limited.get_by_label("Point holders").check()
        limited.get_by_role("button", name="Create rule").click()
        page.get_by_role("link", name="Holders bonus").click()
        expect(page.get_by_label("Point holders")).to_be_checked()
        shot("rule-segment")

        # a webhook endpoint: the secret is shown once, then its delivery log
        page.get_by_role("link", name="Webhooks", exact=True).click()
        hook = _form(page, "Add an endpoint")
        hook.get_by_label("URL").fill("http://127.0.0.1:9/hook")
        hook.get_by_label("tier.changed").check()
        hook.get_by_role("button", name="Add endpoint").click()
        expect(page.locator(".secret")).to_contain_text("whsec_")
        page.get_by_role("link", name="http://127.0.0.1:9/hook").click()
        expect(page.get_by_role("table", name="Deliveries")).to_be_visible()
        shot("webhook")

        for name in ("Webhooks", "Segments", "API keys"):
            page.get_by_role("link", name=name, exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(name)
            shot(name.lower().replace(" ", "-"))

        # erasure asks for a typed confirmation first
        page.get_by_role("link", name="Members", exact=True).click()
        page.get_by_role("link", name=XSS_NAME).click()
        page.get_by_text("Erase this member").click()
        erase = _form(page, "Erase personal data")
        erase.get_by_label("Reason (kept in the audit log)").fill("Request 42")
        erase.get_by_label("Type ERASE to confirm").fill("erase")
        erase.get_by_role("button", name="Erase member").click()
        expect(erase.locator('.field-error[data-field="confirm"]')).to_contain_text("Type ERASE")
        erase.get_by_label("Type ERASE to confirm").fill("ERASE")
        erase.get_by_role("button", name="Erase member").click()
        expect(page.locator("#status")).to_contain_text("Member erased")
        expect(page.get_by_role("link", name=XSS_NAME)).to_have_count(0)

        # usable at 375 px: nothing wider than the screen
        page.set_viewport_size({"width": 375, "height": 800})
        page.get_by_role("link", name="Members", exact=True).click()
        expect(page.get_by_role("link", name="Alice")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        shot("members-375px")
        page.get_by_role("link", name="Dashboard").click()
        expect(page.locator("svg.chart")).to_have_count(5)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        shot("dashboard-375px")
        browser.close()

    assert not dialogs, f"a dialog opened: {dialogs}"
    assert not problems, f"browser console errors: {problems}"
    _assert_lists_are_paged(sent)


def _record(request, sent: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """Keep each GraphQL request the console sends, to check its lists afterwards."""
    if request.url.endswith("/graphql") and request.method == "POST":
        sent.append(request.post_data_json)


def _paged(field: FieldNode, variables: dict) -> bool:
    """Whether the connection ``field`` asks for at most 100 items."""
    for argument in field.arguments:
        if argument.name.value != "first":
            continue
        if isinstance(argument.value, IntValueNode):
            return int(argument.value.value) <= 100
        if isinstance(argument.value, VariableNode):
            value = variables.get(argument.value.name.value)
            return isinstance(value, int) and value <= 100
    return False


def _connections(node: object) -> Iterator[FieldNode]:
    """Every field in ``node`` whose selection has ``edges``: the lists."""
    selection = getattr(node, "selection_set", None)
    for child in selection.selections if selection else ():
        if isinstance(child, FieldNode) and child.selection_set:
            selected = child.selection_set.selections
            names = {s.name.value for s in selected if isinstance(s, FieldNode)}
            if "edges" in names:
                yield child
        yield from _connections(child)


def _assert_lists_are_paged(sent: list[dict]) -> None:
    """Never "load everything": each list the console asked for names ``first`` ≤ 100."""
    lists = 0
    for body in sent:
        document = parse(body["query"])
        for definition in document.definitions:
            for connection in _connections(definition):
                lists += 1
                assert _paged(connection, body.get("variables") or {}), (
                    f"{connection.name.value} without first <= 100: {body}"
                )
    assert lists >= 15, f"only {lists} lists were asked for"
