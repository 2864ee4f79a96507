"""``loyalty report``: the figures of programStats in a CSV file or one self-contained page."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from loyalty.analytics.report import to_html
from loyalty.analytics.stats import PeriodStats, ProgramStats
from tests.browser import artifact, chromium
from tests.cli import arun_cli
from tests.test_program_stats import FROM, TO, seed_history


async def test_the_csv_has_a_row_per_period_and_the_totals(admin, pos, db, database_url, tmp_path):
    await seed_history(admin, pos, db)
    out = tmp_path / "report.csv"
    done = await arun_cli(
        database_url, "report", "--from", FROM, "--to", TO, "--group-by", "day", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "Wrote 4 period(s)" in done.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [row["row"] for row in rows] == ["period"] * 4 + ["total"]
    assert [row["start"] for row in rows] == [
        "2026-03-06T00:00:00-05:00",
        "2026-03-07T00:00:00-05:00",
        "2026-03-08T00:00:00-05:00",
        "2026-03-09T00:00:00-04:00",  # after the DST change
        "2026-03-06T00:00:00-05:00",
    ]
    assert [row["revenue (USD)"] for row in rows] == ["30.00", "0.00", "70.00", "50.00", "150.00"]
    assert [row["averageOrderValue (USD)"] for row in rows][1] == ""  # null: no purchase
    assert rows[0]["nps"] == "100" and rows[2]["nps"] == "0"
    assert rows[-1]["repeatPurchaseRate"] == "0.333333"
    assert rows[-1]["salesGrowth"] == "0.515152"


async def test_the_html_page_is_self_contained(admin, pos, db, database_url, tmp_path):
    await seed_history(admin, pos, db)
    out = tmp_path / "report.html"
    done = await arun_cli(
        database_url, "report", "--from", FROM, "--to", TO, "--group-by", "week", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 6 and "<table>" in page
    for external in ("<script", "<link", "src=", "href=", "url(", "@import"):
        assert external not in page, external


def test_every_value_in_the_page_is_escaped():
    period = PeriodStats(
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 2, tzinfo=UTC),
        new_members=0,
        active_members=0,
        purchases=0,
        revenue=Decimal(0),
        refunded=Decimal(0),
        average_order_value=None,
        repeat_purchase_rate=None,
        purchase_frequency=None,
        points_issued=0,
        points_redeemed=0,
        points_expired=0,
        redemption_rate=None,
        liability_at_end=0,
        referral_rate=None,
        csat_average=None,
        csat_satisfied=None,
        nps=None,
        feedback_count=0,
    )
    stats = ProgramStats(currency="<b>", time_zone="UTC", totals=period, periods=[period])
    page = to_html(stats, title="<script>alert(1)</script>")
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;" in page


async def test_bad_ranges_and_options_exit_2_with_a_message(database_url, db, tmp_path: Path):
    out = tmp_path / "r.csv"
    cases = [
        (["--from", TO, "--to", FROM], "to must be after from"),
        (["--from", "2020-01-01T00:00:00Z", "--to", TO, "--group-by", "day"], "1000 periods"),
        (["--from", "2026-03-06T00:00:00", "--to", TO], "timezone"),
        (["--from", "yesterday", "--to", TO], "ISO-8601"),
    ]
    for args, message in cases:
        done = await arun_cli(database_url, "report", *args, "--out", str(out))
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert not out.exists()


async def test_the_page_opens_in_a_browser_with_its_charts_and_no_request(
    admin, pos, db, database_url, tmp_path
):
    await seed_history(admin, pos, db)
    out = tmp_path / "report.html"
    done = await arun_cli(
        database_url, "report", "--from", FROM, "--to", TO, "--group-by", "day", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1000, "height": 1600})
        problems: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(out.as_uri())
        captions = await page.locator("figure figcaption").all_text_contents()
        bars = await page.locator("figure svg rect").count()
        shot = artifact(f"report-{db.read_engine.dialect.name}.png")
        await page.screenshot(path=shot, full_page=True)
    assert problems == []
    assert requests == [out.as_uri()], "the page asks for nothing but itself"
    assert captions[:5] == [
        "Points issued, redeemed and expired",
        "Revenue (USD)",
        "Active members",
        "Repeat purchase rate (%)",
        "NPS (-100 to 100) and CSAT satisfied (%)",
    ]
    assert captions[5:] == ["Members by tier (now)"]
    assert bars > 10
