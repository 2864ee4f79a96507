"""``loyalty report``: programStats' figures as a CSV file or one self-contained HTML page.

The HTML page holds its styles and charts (inline SVG) itself: opening it makes no network
request, and every value in it is escaped.
"""

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html import escape
from zoneinfo import ZoneInfo

from loyalty.analytics.stats import PeriodStats, ProgramStats, TierCount
from loyalty.money import format_amount


@dataclass(frozen=True)
class Column:
    name: str
    value: Callable[[PeriodStats], object]
    money: bool = False


COLUMNS = (
    Column("newMembers", lambda p: p.new_members),
    Column("activeMembers", lambda p: p.active_members),
    Column("purchases", lambda p: p.purchases),
    Column("revenue", lambda p: p.revenue, money=True),
    Column("refunded", lambda p: p.refunded, money=True),
    Column("averageOrderValue", lambda p: p.average_order_value, money=True),
    Column("repeatPurchaseRate", lambda p: p.repeat_purchase_rate),
    Column("purchaseFrequency", lambda p: p.purchase_frequency),
    Column("pointsIssued", lambda p: p.points_issued),
    Column("pointsRedeemed", lambda p: p.points_redeemed),
    Column("pointsExpired", lambda p: p.points_expired),
    Column("redemptionRate", lambda p: p.redemption_rate),
    Column("liabilityAtEnd", lambda p: p.liability_at_end),
    Column("referralRate", lambda p: p.referral_rate),
    Column("csatAverage", lambda p: p.csat_average),
    Column("csatSatisfied", lambda p: p.csat_satisfied),
    Column("nps", lambda p: p.nps),
    Column("feedbackCount", lambda p: p.feedback_count),
    Column("salesGrowth", lambda p: p.sales_growth),
)


def _cell(value: object) -> str:
    """Empty for null (a rate whose denominator was 0); rates to 6 decimal places."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat()


def _rows(stats: ProgramStats) -> list[tuple[str, PeriodStats]]:
    return [*(("period", period) for period in stats.periods), ("total", stats.totals)]


def _header(stats: ProgramStats) -> list[str]:
    return [
        "row",
        "start",
        "end",
        *(f"{c.name} ({stats.currency})" if c.money else c.name for c in COLUMNS),
    ]


def to_csv(stats: ProgramStats) -> str:
    """One row per period, then the totals; instants in the program's time zone."""
    zone = ZoneInfo(stats.time_zone)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_header(stats))
    for label, period in _rows(stats):
        writer.writerow(
            [
                label,
                _local(period.start, zone),
                _local(period.end, zone),
                *(_cell(c.value(period)) for c in COLUMNS),
            ]
        )
    return out.getvalue()


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; }
tr.total td { font-weight: bold; }
figure { margin: 1.5em 0; }
svg text { font-size: 11px; fill: #444; }
.axis { stroke: #999; }
.issued { fill: #3b7dd8; } .redeemed { fill: #43a047; } .expired { fill: #e53935; }
.revenue { fill: #8e24aa; } .active { fill: #fb8c00; } .repeat { fill: #00897b; }
.nps { fill: #5e35b1; } .satisfied { fill: #c0ca33; } .members { fill: #546e7a; }
"""

Series = tuple[str, list[float | None]]
"""A CSS class (also the legend's word) and one value per group; None draws nothing."""


def _bars(title: str, labels: list[str], series: list[Series]) -> str:
    """A grouped bar chart in inline SVG, one group per label. Negative values (an NPS below
    zero) hang below the zero line."""
    width, height, pad, foot = 720, 220, 20, 18
    values = [v for _, column in series for v in column if v is not None]
    high, low = max([0.0, *values]), min([0.0, *values])
    scale = (height - 2 * pad - foot) / ((high - low) or 1)
    zero = pad + high * scale
    slot = (width - 2 * pad) / max(len(labels), 1)
    bar = max(slot / (len(series) + 1), 1)
    shapes = [f'<line class="axis" x1="{pad}" x2="{width - pad}" y1="{zero:.1f}" y2="{zero:.1f}"/>']
    for index, label in enumerate(labels):
        left = pad + index * slot
        for offset, (css, column) in enumerate(series):
            value = column[index]
            if value is None:
                continue
            top = zero - max(value, 0) * scale
            shapes.append(
                f'<rect class="{css}" x="{left + offset * bar:.1f}" y="{top:.1f}" '
                f'width="{bar:.1f}" height="{abs(value) * scale:.1f}"><title>{escape(label)} '
                f"{escape(css)}: {escape(_cell(value))}</title></rect>"
            )
        shapes.append(f'<text x="{left:.1f}" y="{height - 4}">{escape(label)}</text>')
    legend = ", ".join(f'<tspan class="{css}">■</tspan> {escape(css)}' for css, _ in series)
    return (
        f"<figure><figcaption>{escape(title)}</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">{"".join(shapes)}'
        f'<text x="{pad}" y="12">{legend}</text></svg></figure>'
    )


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _charts(stats: ProgramStats, tiers: Sequence[TierCount]) -> list[str]:
    zone = ZoneInfo(stats.time_zone)
    periods = stats.periods
    labels = [p.start.astimezone(zone).date().isoformat() for p in periods]

    def column(get: Callable[[PeriodStats], float | Decimal | int | None]) -> list[float | None]:
        return [None if (value := get(p)) is None else float(value) for p in periods]

    charts = [
        _bars(
            "Points issued, redeemed and expired",
            labels,
            [
                ("issued", column(lambda p: p.points_issued)),
                ("redeemed", column(lambda p: p.points_redeemed)),
                ("expired", column(lambda p: p.points_expired)),
            ],
        ),
        _bars(f"Revenue ({stats.currency})", labels, [("revenue", column(lambda p: p.revenue))]),
        _bars("Active members", labels, [("active", column(lambda p: p.active_members))]),
        _bars(
            "Repeat purchase rate (%)",
            labels,
            [("repeat", column(lambda p: _percent(p.repeat_purchase_rate)))],
        ),
        _bars(
            "NPS (-100 to 100) and CSAT satisfied (%)",
            labels,
            [
                ("nps", column(lambda p: p.nps)),
                ("satisfied", column(lambda p: _percent(p.csat_satisfied))),
            ],
        ),
    ]
    if tiers:
        charts.append(
            _bars(
                "Members by tier (now)",
                [t.tier or "no tier" for t in tiers],
                [("members", [float(t.members) for t in tiers])],
            )
        )
    return charts


def to_html(stats: ProgramStats, *, title: str, tiers: Sequence[TierCount] = ()) -> str:
    """The figures as a table, with charts of points, revenue, active members, repeat rate,
    NPS and CSAT by period, and of the members in each tier when the report is made."""
    zone = ZoneInfo(stats.time_zone)
    head = "".join(f"<th>{escape(name)}</th>" for name in _header(stats))
    body = []
    for label, period in _rows(stats):
        cells = [label, _local(period.start, zone), _local(period.end, zone)]
        cells += [_cell(c.value(period)) for c in COLUMNS]
        row = "".join(f"<td>{escape(cell)}</td>" for cell in cells)
        body.append(f'<tr class="{label}">{row}</tr>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<p>Periods in {escape(stats.time_zone)}, each [start, end), labelled by their first "
        "day. Empty cells and missing bars: a rate whose denominator was 0.</p>"
        f"{''.join(_charts(stats, tiers))}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</body></html>\n"
    )
