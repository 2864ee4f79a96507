"""Demo data for ``loyalty serve --demo``: a program, tiers and members with purchase history."""

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import Database, utcnow
from loyalty.members import service as members
from loyalty.members.models import Channel, Member
from loyalty.program import service as program
from loyalty.purchases import service as purchases
from loyalty.rewards import service as rewards
from loyalty.rules import service as rules
from loyalty.rules.definition import Conditions, Effect, Limits, RuleDraft
from loyalty.rules.models import EffectKind
from loyalty.tiers.models import Tier

DEMO_SCOPE = "demo"
TIERS = (
    ("Bronze", 1, 0, Decimal("1"), ["Member prices"]),
    ("Silver", 2, 500, Decimal("1.25"), ["Member prices", "Free shipping"]),
    ("Gold", 3, 2000, Decimal("1.5"), ["Member prices", "Free shipping", "Birthday gift"]),
)
REWARDS = (
    rewards.RewardDraft(name="Free espresso", cost_points=50, description="Any size."),
    rewards.RewardDraft(
        name="Coffee mug",
        cost_points=200,
        stock=25,
        per_member_limit=1,
        channels=[Channel.IN_STORE],
    ),
    rewards.RewardDraft(name="$5 off online", cost_points=120, channels=[Channel.ONLINE]),
)
RULES = (
    RuleDraft(
        name="Double points weekend",
        effect=Effect(kind=EffectKind.MULTIPLY, value=Decimal(2)),
        conditions=Conditions(days_of_week=frozenset({5, 6})),
        limits=Limits(per_member_per_day=500),
    ),
    RuleDraft(
        name="Welcome: 50 points on the first purchase",
        effect=Effect(kind=EffectKind.FIXED_BONUS, value=Decimal(50)),
        conditions=Conditions(first_purchase=True),
    ),
    RuleDraft(
        name="10 points per bag of beans",
        effect=Effect(kind=EffectKind.POINTS_PER_UNIT, value=Decimal(10)),
        conditions=Conditions(categories=frozenset({"beans"})),
    ),
    RuleDraft(
        name="Happy birthday",
        effect=Effect(kind=EffectKind.FIXED_BONUS, value=Decimal(100)),
        conditions=Conditions(event_type="birthday"),
    ),
)
MEMBERS = (
    ("demo-ada", "ada@example.com", "+14155550101", "Ada", "Lovelace"),
    ("demo-grace", "grace@example.com", "+14155550102", "Grace", "Hopper"),
    ("demo-alan", "alan@example.com", None, "Alan", "Turing"),
    ("demo-katherine", None, "+14155550104", "Katherine", "Johnson"),
    ("demo-edsger", "edsger@example.com", None, "Edsger", "Dijkstra"),
)


async def seed_if_empty(db: Database) -> bool:
    """Seed once: returns False when the database already has members."""
    async with db.transaction() as session:
        if await session.scalar(select(func.count()).select_from(Member)):
            return False
        await _seed(session)
    return True


async def _seed(session: AsyncSession) -> None:
    await program.update_program(
        session,
        changes=program.ProgramChanges(
            name="Demo Coffee Co.",
            currency="USD",
            points_per_unit=Decimal(1),
            referrer_points=100,
            referee_points=50,
        ),
    )
    session.add_all(
        Tier(name=name, rank=rank, threshold=threshold, multiplier=multiplier, benefits=benefits)
        for name, rank, threshold, multiplier, benefits in TIERS
    )
    await session.flush()
    for reward in REWARDS:
        await rewards.create_reward(session, reward=reward)
    now = utcnow()
    for rule in RULES:
        await rules.create_rule(
            session, rule=rule.model_copy(update={"starts_at": now - timedelta(days=60)})
        )
    channels = list(Channel)
    for index, (external_id, email, phone, first, last) in enumerate(MEMBERS):
        member = await members.enroll_member(
            session,
            enrollment=members.Enrollment(
                external_id=external_id,
                email=email,
                phone=phone,
                first_name=first,
                last_name=last,
                channel=channels[index % len(channels)],
            ),
        )
        for visit in range(3 + index):
            order_id = f"demo-{external_id}-{visit + 1}"
            await purchases.record_purchase(
                session,
                scope=DEMO_SCOPE,
                idempotency_key=order_id,
                purchase=purchases.PurchaseIn(
                    order_id=order_id,
                    channel=channels[(index + visit) % len(channels)],
                    store_id=f"store-{visit % 3 + 1}",
                    total=purchases.MoneyIn(
                        amount=f"{12 + 7 * visit + 3 * index}.{(visit * 25) % 100:02d}",
                        currency="USD",
                    ),
                    member_id=member.id,
                    occurred_at=now - timedelta(days=28 - 4 * visit, hours=index),
                ),
            )
