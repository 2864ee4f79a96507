"""Every column is either in docs/privacy.md's table of personal data or in this test's list of
columns that hold none: a new column cannot land without a decision."""

import re
from pathlib import Path

import loyalty.models  # noqa: F401  (registers every table)
from loyalty.db import Base

PRIVACY_DOC = Path(__file__).resolve().parent.parent / "docs" / "privacy.md"

NOT_PERSONAL = {
    "api_keys": "id role prefix secret_hash created_at last_used_at revoked_at rate_limit",
    "audit_log": "id occurred_at actor_kind actor_role actor_key_id member_id operation "
    "target_ids summary request_id",
    "earning_rules": "id version budget_used created_at archived_at",
    "earning_rule_versions": "id rule_id version valid_from valid_to name starts_at ends_at "
    "priority exclusive conditions effect_kind effect_value limits created_at",
    "events": "id event_id type occurred_at member_id created_at dispatched_at",
    "feedback": "id member_id kind score purchase_id local_day created_at",
    "idempotency_keys": "id scope key operation request_hash result created_at",
    "instance_secrets": "name value created_at",
    "ledger_entries": "id transaction_id account member_id points balance_after",
    "ledger_transactions": "id kind member_id occurred_at created_at purchase_id redemption_id "
    "qualifying_points qualifying_at prev_hash hash",
    "lot_consumptions": "id lot_id transaction_id amount",
    "member_events": "id member_id type occurred_at created_at points_awarded once_key",
    "members": "id status enrollment_channel enrolled_at updated_at tier_id tier_since "
    "tier_retained_until points_available points_pending lifetime_earned points_redeemed "
    "points_expired referral_pending closed_at marketing_email marketing_sms marketing_push "
    "consents_updated_at",
    "member_rfm": "member_id recency frequency monetary computed_at",
    "segments": "id name description filter created_at updated_at",
    "point_lots": "id member_id transaction_id purchase_id amount remaining expired state "
    "earned_at releases_at expires_at warned_at",
    "program": "id name currency points_per_unit pending_days points_expire_after_days "
    "tier_window_days time_zone max_backdate_days rules_token referrer_points referee_points "
    "referral_limit updated_at idempotency_retention_days expiry_warning_days "
    "closed_member_retention_days",
    "purchase_refunds": "id purchase_id amount created_at",
    "purchases": "id order_id member_id channel store_id total_amount currency occurred_at "
    "created_at points_awarded points_refunded points_unrecovered refunded_amount status "
    "points_breakdown",
    "redemptions": "id reward_id member_id points_spent code status channel created_at used_at "
    "cancelled_at",
    "referrals": "id referrer_id referee_id created_at rewarded_at purchase_id referrer_points "
    "referee_points",
    "reward_codes": "id reward_id code redemption_id created_at",
    "rewards": "id name description kind cost_points active stock per_member_limit min_tier_id "
    "channels starts_at ends_at created_at updated_at segment_ids",
    "rule_awards": "id rule_id version_id member_id purchase_id event_id entry_id awarded_for "
    "points budgeted created_at",
    "tier_changes": "id member_id from_tier_id to_tier_id from_name to_name reason "
    "qualifying_points at",
    "stats_days": "day purchases revenue issued redeemed expired booked",
    "stats_member_months": "member_id month purchases revenue",
    "stats_months": "month prev_month next_month members singles purchases revenue",
    "stats_rollup": "id time_zone cutoff refreshed_at",
    "tiers": "id name rank threshold multiplier benefits retention_days created_at",
    "webhooks": "id url events description secret active disabled_reason failing_since created_at",
    "webhook_deliveries": "id webhook_id event_id member_id status attempts next_attempt_at "
    "last_attempt_at response_status response_body last_error created_at",
}


def documented_personal_columns() -> set[tuple[str, str]]:
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|", PRIVACY_DOC.read_text(), re.MULTILINE)
    return set(rows)


def test_every_column_is_classified():
    columns = {
        (table.name, column.name)
        for table in Base.metadata.tables.values()
        for column in table.columns
    }
    not_personal = {
        (table, column) for table, names in NOT_PERSONAL.items() for column in names.split()
    }
    personal = documented_personal_columns()
    assert not personal & not_personal, "a column is both personal and not"
    undecided = sorted(columns - personal - not_personal)
    assert not undecided, (
        f"decide whether these hold personal data: {undecided} (the table in docs/privacy.md "
        "if they do, NOT_PERSONAL here if they do not)"
    )
    gone = sorted((personal | not_personal) - columns)
    assert not gone, f"these columns no longer exist: {gone}"
