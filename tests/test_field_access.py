"""Every type and root field of the schema, for every role: allowed or refused on purpose.

The tables below are the intended policy, written out by hand. The schema walk fails when a
type or root field appears that the tables do not decide, and each decision of
``loyalty.graphql.access`` is compared with them for every role, for an object of the caller's
own and one of another member's.
"""

from types import SimpleNamespace
from typing import Any

import pytest
from graphql import GraphQLObjectType

from loyalty.auth.models import Role
from loyalty.auth.service import Principal
from loyalty.config import Settings
from loyalty.graphql.access import FIELDS, OBJECTS, is_carrier
from loyalty.graphql.schema import build_schema

ADMIN, POS, APP, MEMBER = Role.ADMIN, Role.POS, Role.APP, Role.MEMBER
EVERYONE = {ADMIN, POS, APP, MEMBER}

ROOT_FIELDS: dict[str, set[Role]] = {
    "Query.member": {ADMIN, POS, MEMBER},
    "Query.memberByExternalId": {ADMIN, POS, MEMBER},
    "Query.members": {ADMIN},
    "Query.me": {MEMBER},
    "Query.program": EVERYONE,
    "Query.rewards": EVERYONE,
    "Query.reward": EVERYONE,
    "Query.redemptionByCode": {ADMIN, POS},
    "Query.tiers": EVERYONE,
    "Query.previewTierChange": {ADMIN},
    "Query.pointsLiability": {ADMIN},
    "Query.earningRules": {ADMIN},
    "Query.earningRule": {ADMIN},
    "Query.previewPurchase": {ADMIN, POS, MEMBER},
    "Query.auditLog": {ADMIN},
    "Query.exportMemberData": {ADMIN, MEMBER},
    "Query.feedback": {ADMIN},
    "Query.programStats": {ADMIN},
    "Mutation.submitFeedback": {ADMIN, POS, MEMBER},
    "Query.webhooks": {ADMIN},
    "Query.webhook": {ADMIN},
    "Query.webhookDeliveries": {ADMIN},
    "Mutation.createWebhook": {ADMIN},
    "Mutation.updateWebhook": {ADMIN},
    "Mutation.deleteWebhook": {ADMIN},
    "Mutation.rotateWebhookSecret": {ADMIN},
    "Mutation.redeliverWebhookDelivery": {ADMIN},
    "Mutation.enrollMember": {ADMIN, POS, APP},
    "Mutation.updateMember": {ADMIN, MEMBER},
    "Mutation.recordPurchase": {ADMIN, POS},
    "Mutation.refundPurchase": {ADMIN, POS},
    "Mutation.adjustPoints": {ADMIN},
    "Mutation.updateProgram": {ADMIN},
    "Mutation.issueMemberToken": {ADMIN, APP},
    "Mutation.createReward": {ADMIN},
    "Mutation.updateReward": {ADMIN},
    "Mutation.addRewardCodes": {ADMIN},
    "Mutation.redeemReward": {ADMIN, POS, MEMBER},
    "Mutation.cancelRedemption": {ADMIN, POS},
    "Mutation.markRedemptionUsed": {ADMIN, POS},
    "Mutation.createTier": {ADMIN},
    "Mutation.updateTier": {ADMIN},
    "Mutation.deleteTier": {ADMIN},
    "Mutation.setMemberTier": {ADMIN},
    "Mutation.createEarningRule": {ADMIN},
    "Mutation.updateEarningRule": {ADMIN},
    "Mutation.archiveEarningRule": {ADMIN},
    "Mutation.recordEvent": {ADMIN, POS, APP},
    "Mutation.eraseMember": {ADMIN},
    "Subscription.memberUpdated": {MEMBER},
    "Subscription.events": {ADMIN},
    "Query.segments": {ADMIN},
    "Query.segment": {ADMIN},
    "Mutation.createSegment": {ADMIN},
    "Mutation.updateSegment": {ADMIN},
    "Mutation.deleteSegment": {ADMIN},
}

PUBLIC = "anyone who reaches it"
EVENT = "admin and pos; a member token its own; an app key under recordEvent only"
MEMBER_DATA = "admin and pos; a member token its own; an app key under enrollMember only"
OWNED = "admin and pos; a member token its own"
ADMIN_ONLY = "admin"
RULE = "id and name for anyone who reaches it; the rest admin"
CARRIER = "nothing of its own: a root, payload, connection, edge or value of a checked parent"

TYPES: dict[str, str] = {
    "Program": PUBLIC,
    "Tier": PUBLIC,
    "Reward": PUBLIC,
    "Member": MEMBER_DATA,
    "Purchase": OWNED,
    "LedgerEntry": OWNED,
    "Redemption": OWNED,
    "TierChange": OWNED,
    "MemberEvent": EVENT,
    "Feedback": OWNED,
    "Referral": ADMIN_ONLY,
    "AuditEntry": ADMIN_ONLY,
    "Webhook": ADMIN_ONLY,
    "WebhookDelivery": ADMIN_ONLY,
    "Event": ADMIN_ONLY,
    "EarningRule": RULE,
    "EarningRuleVersion": ADMIN_ONLY,
    "EarningRuleConditions": ADMIN_ONLY,
    "EarningRuleEffect": ADMIN_ONLY,
    "EarningRuleLimits": ADMIN_ONLY,
    "Segment": ADMIN_ONLY,
    "SegmentFilter": ADMIN_ONLY,
    **{
        name: CARRIER
        for name in [
            "Query",
            "Mutation",
            "Subscription",
            "PageInfo",
            "UserError",
            "Money",
            "Points",
            "PointBalances",
            "PendingRelease",
            "ExpiringPoints",
            "TierProgress",
            "ReferralCounts",
            "PurchaseLine",
            "PointsBreakdownItem",
            "PointsLiability",
            "LiabilityByTier",
            "TierPreview",
            "ProgramStats",
            "StatsPeriod",
            "MemberConsents",
            "RfmScores",
        ]
    },
}

OWN_MEMBER, OTHER_MEMBER = 7, 8


def _schema_types() -> dict[str, GraphQLObjectType]:
    schema = build_schema(Settings(debug=True))._schema
    return {
        name: type_
        for name, type_ in schema.type_map.items()
        if isinstance(type_, GraphQLObjectType) and not name.startswith("__")
    }


def _principal(role: Role) -> Principal:
    if role == MEMBER:
        return Principal(role=role, scope=f"member:{OWN_MEMBER}", member_id=OWN_MEMBER)
    return Principal(role=role, scope=f"test:{role}", api_key_id=1)


def _row(type_name: str, member_id: int) -> Any:
    return SimpleNamespace(id=member_id if type_name == "Member" else 99, member_id=member_id)


def test_every_object_type_is_decided() -> None:
    types = _schema_types()
    undecided = sorted(
        name
        for name in types
        if name not in TYPES and not name.endswith(("Payload", "Connection", "Edge"))
    )
    assert not undecided, f"decide who may read these types (tests and access.py): {undecided}"
    for name in types:
        code_decides = name in OBJECTS or name in FIELDS or is_carrier(name)
        assert code_decides, f"{name} is in no table of loyalty/graphql/access.py"


def test_every_root_field_has_the_intended_roles() -> None:
    schema = build_schema(Settings(debug=True))
    found: dict[str, set[Role]] = {}
    for root in ("Query", "Mutation", "Subscription"):
        definition = schema.get_type_by_name(root)
        for field in definition.fields:  # type: ignore[union-attr]
            name = f"{root}.{schema.config.name_converter.get_graphql_name(field)}"
            assert field.permission_classes, f"{name} has no permission class"
            found[name] = {role for p in field.permission_classes for role in p.roles}
    assert found == ROOT_FIELDS


def _expected(policy: str, role: Role, owned: bool, root: str) -> bool:
    if policy in (PUBLIC, CARRIER):
        return True
    if policy == ADMIN_ONLY:
        return role == ADMIN
    if role in (ADMIN, POS):
        return True
    if role == MEMBER:
        return owned
    return (policy, root) in ((MEMBER_DATA, "enrollMember"), (EVENT, "recordEvent"))


@pytest.mark.parametrize("role", [ADMIN, POS, APP, MEMBER])
@pytest.mark.parametrize("type_name", sorted(set(TYPES) - {"EarningRule"}))
def test_object_decisions_match_the_table(type_name: str, role: Role) -> None:
    access = OBJECTS.get(type_name)
    policy = TYPES[type_name]
    for owner in (OWN_MEMBER, OTHER_MEMBER):
        for root in ("enrollMember", "recordEvent", "member"):
            expected = _expected(policy, role, owner == OWN_MEMBER, root)
            if access is None:
                assert policy == CARRIER and is_carrier(type_name)
                continue
            decided = access.allows(_principal(role), _row(type_name, owner), lambda r=root: r)
            assert decided == expected, (type_name, role, owner, root)


@pytest.mark.parametrize("role", [ADMIN, POS, APP, MEMBER])
def test_earning_rule_fields(role: Role) -> None:
    rule = FIELDS["EarningRule"]
    fields = _schema_types()["EarningRule"].fields
    for field in fields:
        allowed = field in rule.open or role in rule.roles
        assert allowed == (field in ("id", "name") or role == ADMIN), (field, role)
