"""The rewards catalog and redemption: where points turn into money the retailer spends.

A redemption is one transaction: the member row is locked first, then the reward's stock row
(always in that order, so two redemptions cannot deadlock); every rule is checked by
``ineligibility``; stock is taken with a conditional ``UPDATE ... WHERE stock > 0``; the
points leave through a balanced REDEEM ledger transaction whose balance update refuses to go
below zero. Item 51 of a 50-item reward is never sold and no point is spent twice.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import lock_by_id, utcnow
from loyalty.errors import DomainError, DomainErrors, ErrorCode, invalid, not_found
from loyalty.idempotency import service as idempotency
from loyalty.inputs import between, check_with, checked, field_path, invalid_at, refused
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account, EntryKind, LedgerTransaction
from loyalty.members import service as members
from loyalty.members.models import Channel, Member, MemberStatus
from loyalty.outbox import service as outbox
from loyalty.pagination import Page, PageRequest, make_page, newest_first_by_owner
from loyalty.rewards.models import Redemption, RedemptionStatus, Reward, RewardCode, RewardKind
from loyalty.segments import service as segmentation
from loyalty.tiers.models import Tier
from loyalty.validation import (
    instant,
    lookup_key,
    optional_text,
    required_text,
)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_GROUPS = 4
CODE_GROUP_LENGTH = 4
MAX_CODES_PER_UPLOAD = 10_000
MAX_COST = 100_000_000


def _active(value: Any) -> Any:
    if value is None:
        raise refused("Must not be null.")
    return value


def _channels(value: Any) -> list[str]:
    return sorted({Channel(channel).value for channel in value or []})


def _instant(value: Any) -> Any:
    return None if value is None else checked(instant, value)


Instant = Annotated[datetime | None, BeforeValidator(_instant)]


class RewardDraft(BaseModel):
    """A reward as an admin sends it, each field checked on its own, every error at once.
    Only the fields sent are set (``model_fields_set``): a new reward needs a name and a
    cost; on an update the fields not sent stay as they are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str | None, check_with(required_text, 200)] = None
    description: Annotated[str | None, check_with(optional_text, 2000)] = None
    cost_points: Annotated[int | None, between(1, MAX_COST)] = None
    active: Annotated[bool, BeforeValidator(_active)] = True
    stock: Annotated[int | None, between(0, MAX_COST, nullable=True)] = None
    per_member_limit: Annotated[int | None, between(1, 1_000_000, nullable=True)] = None
    channels: Annotated[list[str], BeforeValidator(_channels)] = Field(default_factory=list)
    kind: RewardKind = RewardKind.GENERATED_CODE
    """Set when the reward is created only."""
    min_tier_id: int | None = None
    starts_at: Instant = None
    ends_at: Instant = None
    segment_ids: list[int] | None = None

    def sent(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


@dataclass(frozen=True)
class RedemptionIn:
    member_id: int
    reward_id: int
    channel: Channel


@dataclass(frozen=True)
class RedemptionResult:
    redemption: Redemption
    member: Member


@dataclass(frozen=True)
class RewardView:
    """A catalog entry and, for a member, why they cannot redeem it now (None: they can)."""

    reward: Reward
    ineligible: DomainError | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reward, name)


def generate_code() -> str:
    """80 bits from the OS CSPRNG in an alphabet without look-alikes: XXXX-XXXX-XXXX-XXXX."""
    symbols = [secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LENGTH)]
    return "-".join(
        "".join(symbols[i : i + CODE_GROUP_LENGTH])
        for i in range(0, len(symbols), CODE_GROUP_LENGTH)
    )


# --- catalog ------------------------------------------------------------------------------


_REQUIRED = ("name", "cost_points")
_STOCK_OF_POOL = "A code-pool reward's stock is its unused codes: add codes."


async def create_reward(session: AsyncSession, *, reward: RewardDraft) -> Reward:
    missing = [name for name in _REQUIRED if name not in reward.model_fields_set]
    if missing:
        raise DomainErrors([invalid_at("Must be given.", name) for name in missing])
    values = {name: getattr(reward, name) for name in RewardDraft.model_fields}
    errors: list[DomainError] = []
    if reward.kind == RewardKind.CODE_POOL:
        if reward.stock is not None:
            errors.append(invalid_at(_STOCK_OF_POOL, "stock"))
        values["stock"] = 0
    errors.extend(await _tier_errors(session, reward.min_tier_id))
    errors.extend(_window_errors(reward.starts_at, reward.ends_at))
    values["segment_ids"] = await _segments(session, reward.segment_ids, errors)
    if errors:
        raise DomainErrors(errors)
    now = utcnow()
    row = Reward(**values, created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    return row


async def update_reward(session: AsyncSession, *, reward_id: int, changes: RewardDraft) -> Reward:
    reward = await lock_by_id(session, Reward, reward_id, field="rewardId")
    sent = changes.sent()
    errors: list[DomainError] = []
    if "stock" in sent and reward.kind == RewardKind.CODE_POOL:
        errors.append(invalid_at(_STOCK_OF_POOL, "stock"))
    if "min_tier_id" in sent:
        errors.extend(await _tier_errors(session, sent["min_tier_id"]))
    if "segment_ids" in sent:
        sent["segment_ids"] = await _segments(session, sent["segment_ids"], errors)
    errors.extend(
        _window_errors(sent.get("starts_at", reward.starts_at), sent.get("ends_at", reward.ends_at))
    )
    if errors:
        raise DomainErrors(errors)
    for name, value in sent.items():
        setattr(reward, name, value)
    reward.updated_at = utcnow()
    await session.flush()
    return reward


async def add_reward_codes(
    session: AsyncSession,
    *,
    scope: str,
    idempotency_key: str,
    reward_id: int,
    codes: Sequence[str],
) -> tuple[Reward, int]:
    """Add partner codes to a pool (its stock); each code can ever be issued once."""
    return await _ADD_REWARD_CODES.run(
        session,
        scope=scope,
        key=idempotency_key,
        request={"reward_id": reward_id, "codes": list(codes)},
        work=lambda: _add_codes(session, reward_id=reward_id, codes=codes),
    )


async def _add_codes(
    session: AsyncSession, *, reward_id: int, codes: Sequence[str]
) -> tuple[Reward, int]:
    reward = await lock_by_id(session, Reward, reward_id, field="rewardId")
    if reward.kind != RewardKind.CODE_POOL:
        raise invalid("Only a CODE_POOL reward takes uploaded codes.", "rewardId")
    if not 1 <= len(codes) <= MAX_CODES_PER_UPLOAD:
        raise invalid(f"Send between 1 and {MAX_CODES_PER_UPLOAD} codes.", "codes")
    cleaned = [required_text(code, 128, "codes", str(i)) for i, code in enumerate(codes)]
    if len(set(cleaned)) != len(cleaned):
        raise invalid("The upload repeats a code.", "codes")
    known = set(
        (await session.scalars(select(RewardCode.code).where(RewardCode.code.in_(cleaned)))).all()
    ) | set(
        (await session.scalars(select(Redemption.code).where(Redemption.code.in_(cleaned)))).all()
    )
    if known:
        raise DomainError(
            ErrorCode.ALREADY_EXISTS,
            f"{len(known)} code(s) exist already, e.g. {sorted(known)[0]!r}.",
            ["codes"],
        )
    now = utcnow()
    await session.execute(
        insert(RewardCode),
        [{"reward_id": reward.id, "code": c, "created_at": now} for c in cleaned],
    )
    reward.stock = (reward.stock or 0) + len(cleaned)
    reward.updated_at = now
    await session.flush()
    return reward, len(cleaned)


_REPORTED_REWARD = idempotency.Reported(Reward, "reward", figures=("stock",))
"""The stock an upload reports: later redemptions lower it, a replay does not."""


def _codes_report(result: tuple[Reward, int]) -> dict[str, Any]:
    reward, added = result
    return {**_REPORTED_REWARD.store(reward), "added": added}


async def _codes_replayed(session: AsyncSession, result: dict[str, Any]) -> tuple[Reward, int]:
    return await _REPORTED_REWARD.load(session, result), result["added"]


_ADD_REWARD_CODES = idempotency.Idempotent(
    "addRewardCodes", report=_codes_report, replay=_codes_replayed
)


async def get_reward(session: AsyncSession, *, reward_id: int) -> Reward | None:
    return await session.get(Reward, reward_id)


async def list_rewards(
    session: AsyncSession,
    *,
    page: PageRequest,
    available_only: bool,
    member: Member | None = None,
    channel: Channel = Channel.MOBILE_APP,
    now: datetime | None = None,
) -> Page[RewardView]:
    """The catalog by id. With a member, each reward says whether that member can redeem it
    now in ``channel``; ``available_only`` then keeps only those. Catalogs are small (tens to
    hundreds of rewards), so per-member rules are applied in Python over the SQL-filtered set."""
    now = now or utcnow()
    statement = select(Reward).order_by(Reward.id)
    if page.after is not None:
        statement = statement.where(Reward.id > page.after)
    if available_only:
        statement = statement.where(
            Reward.active.is_(True),
            (Reward.starts_at.is_(None)) | (Reward.starts_at <= now),
            (Reward.ends_at.is_(None)) | (Reward.ends_at > now),
            (Reward.stock.is_(None)) | (Reward.stock > 0),
        )
    if member is None:
        rewards = list((await session.scalars(statement.limit(page.first + 1))).all())
        views = [RewardView(reward=r) for r in rewards]
        return make_page(views, [r.id for r in rewards], page)

    rewards = list((await session.scalars(statement)).all())
    ranks = await _tier_ranks(session, [member.tier_id, *(r.min_tier_id for r in rewards)])
    counts = await _redemption_counts(session, member_id=member.id)
    inside = await _member_segments(session, member_id=member.id, rewards=rewards, now=now)
    views = [
        RewardView(
            reward=reward,
            ineligible=ineligibility(
                reward=reward,
                member=member,
                ranks=ranks,
                redeemed=counts.get(reward.id, 0),
                channel=channel,
                now=now,
                segments=inside,
            ),
        )
        for reward in rewards
    ]
    if available_only:
        views = [v for v in views if v.ineligible is None]
    views = views[: page.first + 1]
    return make_page(views, [v.reward.id for v in views], page)


# --- eligibility --------------------------------------------------------------------------


def ineligibility(
    *,
    reward: Reward,
    member: Member,
    ranks: dict[int, int],
    redeemed: int,
    channel: Channel,
    now: datetime,
    segments: frozenset[int] = frozenset(),
) -> DomainError | None:
    """Why ``member`` cannot redeem ``reward`` now in ``channel``; None when they can.

    The one place these rules live: redemption and the catalog view both ask it.
    """
    if member.status != MemberStatus.ACTIVE:
        return DomainError(
            ErrorCode.MEMBER_INACTIVE, f"The member is {member.status.lower()}.", ["memberId"]
        )
    if not reward.active:
        return _not_eligible("The reward is not active.")
    if reward.starts_at is not None and now < reward.starts_at:
        return _not_eligible(f"The reward is available from {reward.starts_at.isoformat()}.")
    if reward.ends_at is not None and now >= reward.ends_at:
        return _not_eligible(f"The reward ended at {reward.ends_at.isoformat()}.")
    if reward.channels and channel not in reward.channels:
        return _not_eligible(
            f"The reward cannot be redeemed in {channel}; only in {', '.join(reward.channels)}.",
            "channel",
        )
    if reward.min_tier_id is not None:
        required = ranks.get(reward.min_tier_id, 0)
        held = -1 if member.tier_id is None else ranks.get(member.tier_id, -1)
        if held < required:
            return _not_eligible("The member's tier is below the reward's minimum tier.")
    if reward.segment_ids and segments.isdisjoint(reward.segment_ids):
        return DomainError(
            ErrorCode.NOT_IN_SEGMENT,
            "The reward is for members of some segments; the member is in none of them.",
            ["rewardId"],
        )
    if reward.stock is not None and reward.stock <= 0:
        return DomainError(ErrorCode.OUT_OF_STOCK, "The reward is out of stock.", ["rewardId"])
    if reward.per_member_limit is not None and redeemed >= reward.per_member_limit:
        return DomainError(
            ErrorCode.LIMIT_REACHED,
            f"The member has redeemed this reward {redeemed} time(s), the limit.",
            ["rewardId"],
        )
    if member.points_available < reward.cost_points:
        return DomainError(
            ErrorCode.INSUFFICIENT_POINTS,
            f"The reward costs {reward.cost_points} points; "
            f"the member has {member.points_available} available.",
            ["rewardId"],
        )
    return None


def _not_eligible(message: str, field_name: str = "rewardId") -> DomainError:
    return DomainError(ErrorCode.NOT_ELIGIBLE, message, [field_name])


# --- redemption ---------------------------------------------------------------------------


async def redeem_reward(
    session: AsyncSession, *, scope: str, idempotency_key: str, redemption: RedemptionIn
) -> RedemptionResult:
    return await _REDEEM_REWARD.run(
        session,
        scope=scope,
        key=idempotency_key,
        request=idempotency.request_of(redemption),
        work=lambda: _redeem(session, redemption=redemption),
    )


async def _redeem(session: AsyncSession, *, redemption: RedemptionIn) -> RedemptionResult:
    member = await members.lock_member(session, member_id=redemption.member_id)
    reward = await _reward_for_redemption(session, redemption.reward_id)
    await _require_eligible(session, member=member, reward=reward, channel=redemption.channel)
    if reward.stock is not None:
        await _take_one(session, reward)
    issued = await _issue(session, member=member, reward=reward, channel=redemption.channel)
    posted = await ledger.post(
        session,
        ledger.Movement(
            kind=EntryKind.REDEEM,
            member_id=member.id,
            counter_account=Account.PROGRAM_REDEMPTION,
            occurred_at=issued.created_at,
            available=-reward.cost_points,
            redeemed=reward.cost_points,
            reason=reward.name,
            redemption_id=issued.id,
        ),
        member_locked=True,
    )
    await outbox.emit(
        session,
        outbox.REDEMPTION_ISSUED,
        member_id=member.id,
        occurred_at=issued.created_at,
        data={"redemption": outbox.redemption_data(issued)},
    )
    return RedemptionResult(redemption=issued, member=posted.member)


async def _require_eligible(
    session: AsyncSession, *, member: Member, reward: Reward, channel: Channel
) -> None:
    """``ineligibility`` with only the tier ranks and redemption count this reward needs."""
    ranks = (
        {}
        if reward.min_tier_id is None
        else await _tier_ranks(session, [member.tier_id, reward.min_tier_id])
    )
    redeemed = 0
    if reward.per_member_limit is not None:
        redeemed = (await _redemption_counts(session, member_id=member.id)).get(reward.id, 0)
    now = utcnow()
    problem = ineligibility(
        reward=reward,
        member=member,
        ranks=ranks,
        redeemed=redeemed,
        channel=channel,
        now=now,
        segments=await _member_segments(session, member_id=member.id, rewards=[reward], now=now),
    )
    if problem is not None:
        raise problem


async def _lock_cancellable(session: AsyncSession, *, redemption_id: int) -> Redemption:
    """The redemption, locked after its member (the order every redemption locks in), if it
    can still be cancelled: neither cancelled already nor used."""
    found = await session.get(Redemption, redemption_id)
    if found is None:
        raise not_found("Redemption", "redemptionId")
    await members.lock_member(session, member_id=found.member_id)
    redemption = await lock_by_id(session, Redemption, redemption_id, field="redemptionId")
    if redemption.status == RedemptionStatus.CANCELLED:
        raise DomainError(
            ErrorCode.ALREADY_CANCELLED, "The redemption is already cancelled.", ["redemptionId"]
        )
    if redemption.status == RedemptionStatus.USED:
        raise invalid("A used redemption cannot be cancelled.", "redemptionId")
    return redemption


async def _put_back(session: AsyncSession, redemption: Redemption) -> None:
    """The item back in stock, for rewards whose stock is counted and whose codes are
    generated (a code from an uploaded pool is not reissued)."""
    await session.execute(
        update(Reward)
        .where(
            Reward.id == redemption.reward_id,
            Reward.stock.isnot(None),
            Reward.kind == RewardKind.GENERATED_CODE,
        )
        .values(stock=Reward.stock + 1)
    )


async def _take_one(session: AsyncSession, reward: Reward) -> None:
    """One item of stock, at the price and status as checked, or nothing: an admin change
    committed meanwhile makes the update match no row instead of selling at the old price."""
    taken = await session.scalar(
        update(Reward)
        .where(
            Reward.id == reward.id,
            Reward.stock > 0,
            Reward.active.is_(True),
            Reward.cost_points == reward.cost_points,
        )
        .values(stock=Reward.stock - 1)
        .returning(Reward.stock)
    )
    if taken is None:
        left = await session.scalar(select(Reward.stock).where(Reward.id == reward.id))
        if left == 0:
            raise DomainError(ErrorCode.OUT_OF_STOCK, "The reward is out of stock.", ["rewardId"])
        raise _not_eligible("The reward changed while it was being redeemed; try again.")


async def _issue(
    session: AsyncSession, *, member: Member, reward: Reward, channel: Channel
) -> Redemption:
    """The redemption row with its code: drawn from the pool, or generated."""
    pool_code = None
    if reward.kind == RewardKind.CODE_POOL:
        pool_code = await _draw_pool_code(session, reward.id)
    issued: Redemption | None = await session.scalar(
        insert(Redemption)
        .values(
            reward_id=reward.id,
            member_id=member.id,
            points_spent=reward.cost_points,
            code=pool_code[1] if pool_code else generate_code(),
            status=RedemptionStatus.ISSUED,
            channel=channel,
            created_at=utcnow(),
        )
        .returning(Redemption)
    )
    assert issued is not None
    if pool_code:
        await session.execute(
            update(RewardCode).where(RewardCode.id == pool_code[0]).values(redemption_id=issued.id)
        )
    return issued


async def cancel_redemption(
    session: AsyncSession, *, scope: str, idempotency_key: str, redemption_id: int
) -> RedemptionResult:
    """Give the points back and release the stock and the member's limit.

    A pool code is retired rather than returned to the pool: the member may have seen it,
    and a pool code is issued once.
    """
    return await _CANCEL_REDEMPTION.run(
        session,
        scope=scope,
        key=idempotency_key,
        request={"redemption_id": redemption_id},
        work=lambda: _cancel(session, redemption_id=redemption_id),
    )


async def _cancel(session: AsyncSession, *, redemption_id: int) -> RedemptionResult:
    redemption = await _lock_cancellable(session, redemption_id=redemption_id)
    now = utcnow()
    redemption.status = RedemptionStatus.CANCELLED
    redemption.cancelled_at = now
    await _put_back(session, redemption)
    posted = await ledger.post(
        session,
        ledger.Movement(
            kind=EntryKind.REDEMPTION_CANCEL,
            member_id=redemption.member_id,
            counter_account=Account.PROGRAM_REDEMPTION,
            occurred_at=now,
            available=redemption.points_spent,
            redeemed=-redemption.points_spent,
            reason="Redemption cancelled",
            redemption_id=redemption.id,
            restores=await session.scalar(
                select(LedgerTransaction.id).where(
                    LedgerTransaction.redemption_id == redemption.id,
                    LedgerTransaction.kind == EntryKind.REDEEM,
                )
            ),
        ),
        member_locked=True,
    )
    await session.flush()
    await outbox.emit(
        session,
        outbox.REDEMPTION_CANCELLED,
        member_id=redemption.member_id,
        occurred_at=now,
        data={"redemption": outbox.redemption_data(redemption)},
    )
    return RedemptionResult(redemption=redemption, member=posted.member)


async def mark_redemption_used(
    session: AsyncSession, *, redemption_id: int | None = None, code: str | None = None
) -> Redemption:
    """The POS or web shop consumed the code. Marking a used code again is refused."""
    if (redemption_id is None) == (code is None):
        raise invalid("Give exactly one of redemptionId and code.", "redemptionId")
    if redemption_id is None:
        key = lookup_key(code or "")
        redemption_id = (
            None
            if key is None
            else await session.scalar(select(Redemption.id).where(Redemption.code == key))
        )
        if redemption_id is None:
            raise not_found("Redemption", "code")
    redemption = await lock_by_id(session, Redemption, redemption_id, field="redemptionId")
    if redemption.status == RedemptionStatus.CANCELLED:
        raise DomainError(
            ErrorCode.ALREADY_CANCELLED, "The redemption was cancelled.", ["redemptionId"]
        )
    if redemption.status == RedemptionStatus.USED:
        raise invalid(
            f"The code was already used at {redemption.used_at:%Y-%m-%d %H:%M} UTC.",
            "redemptionId",
        )
    redemption.status = RedemptionStatus.USED
    redemption.used_at = utcnow()
    await session.flush()
    await outbox.emit(
        session,
        outbox.REDEMPTION_USED,
        member_id=redemption.member_id,
        occurred_at=redemption.used_at,
        data={"redemption": outbox.redemption_data(redemption)},
    )
    return redemption


async def find_by_code(session: AsyncSession, *, code: str) -> Redemption | None:
    key = lookup_key(code)
    if key is None:
        return None
    return await session.scalar(select(Redemption).where(Redemption.code == key))


async def member_redemptions(
    session: AsyncSession, *, member_ids: Sequence[int], page: PageRequest
) -> dict[int, Page[Redemption]]:
    """Each member's redemptions, newest first."""
    return await newest_first_by_owner(
        session, Redemption, owner=Redemption.member_id, owner_ids=member_ids, page=page
    )


# --- helpers ------------------------------------------------------------------------------


_REPORTED_REDEMPTION = idempotency.Reported(
    Redemption, "redemption", figures=("status", "used_at", "cancelled_at")
)
"""A redemption as its payload reports it: using or cancelling it later changes these."""


_REDEEM_REWARD = idempotency.returning(
    "redeemReward", RedemptionResult, redemption=_REPORTED_REDEMPTION, member=members.REPORTED
)
_CANCEL_REDEMPTION = idempotency.returning(
    "cancelRedemption", RedemptionResult, redemption=_REPORTED_REDEMPTION, member=members.REPORTED
)


async def _reward_for_redemption(session: AsyncSession, reward_id: int) -> Reward:
    """The reward as a redemption may rely on it.

    Unlimited rewards are read with a shared lock (``FOR SHARE`` on PostgreSQL): concurrent
    redemptions share it, and an admin's change waits until they commit. Limited rewards are
    read plainly; their conditional stock update re-checks price and status under its own
    exclusive lock (taking a shared lock first would let two redeemers deadlock upgrading).
    """
    reward = await session.get(Reward, reward_id)
    if reward is None:
        raise not_found("Reward", "rewardId")
    if reward.stock is None:
        reward = await session.scalar(
            select(Reward)
            .where(Reward.id == reward_id)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        )
        if reward is None:
            raise not_found("Reward", "rewardId")
        if reward.stock is not None:
            raise _not_eligible("The reward changed while it was being redeemed; try again.")
    return reward


async def _draw_pool_code(session: AsyncSession, reward_id: int) -> tuple[int, str]:
    """An unissued code of the pool; ``SKIP LOCKED`` lets concurrent redemptions draw others."""
    row = (
        await session.execute(
            select(RewardCode.id, RewardCode.code)
            .where(RewardCode.reward_id == reward_id, RewardCode.redemption_id.is_(None))
            .order_by(RewardCode.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).one_or_none()
    if row is None:
        raise DomainError(ErrorCode.OUT_OF_STOCK, "The reward's code pool is empty.", ["rewardId"])
    return row.id, row.code


async def _segments(
    session: AsyncSession, segment_ids: list[int] | None, errors: list[DomainError]
) -> list[int] | None:
    """Empty or None: every member may redeem; else each must name a segment (when one does
    not, the error joins ``errors``)."""
    if not segment_ids:
        return None
    try:
        return await segmentation.require_segments(
            session, segment_ids, *field_path(("segment_ids",))
        )
    except DomainError as error:
        errors.append(error)
        return None


async def _member_segments(
    session: AsyncSession, *, member_id: int, rewards: Sequence[Reward], now: datetime
) -> frozenset[int]:
    """Which of the segments these rewards name the member is in now: two statements at
    most (the filters, then the member tested against all of them), whatever their number."""
    named = {i for reward in rewards for i in reward.segment_ids or ()}
    if not named:
        return frozenset()
    filters = await segmentation.filters_of(session, named)
    return await segmentation.segments_of_member(
        session, member_id=member_id, filters=filters, now=now
    )


async def _tier_errors(session: AsyncSession, tier_id: int | None) -> list[DomainError]:
    if tier_id is not None and await session.get(Tier, tier_id) is None:
        return [not_found("Tier", *field_path(("min_tier_id",)))]
    return []


def _window_errors(starts_at: datetime | None, ends_at: datetime | None) -> list[DomainError]:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        return [invalid_at("Must be after startsAt.", "ends_at")]
    return []


async def _tier_ranks(session: AsyncSession, tier_ids: Sequence[int | None]) -> dict[int, int]:
    wanted = {t for t in tier_ids if t is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(Tier.id, Tier.rank).where(Tier.id.in_(wanted)))
    return {row.id: row.rank for row in rows}


async def _redemption_counts(session: AsyncSession, *, member_id: int) -> dict[int, int]:
    """Redemptions per reward that count against a per-member limit (cancelled ones do not)."""
    rows = await session.execute(
        select(Redemption.reward_id, func.count())
        .where(
            Redemption.member_id == member_id,
            Redemption.status != RedemptionStatus.CANCELLED,
        )
        .group_by(Redemption.reward_id)
    )
    return {reward_id: count for reward_id, count in rows}
