"""PostgreSQL: the events table notifies live-update listeners itself

A statement-level trigger sends ``pg_notify('loyalty_events', ...)`` with the range of event
ids the statement inserted and the members they concern (null past 500 members), delivered on
commit only. The server no longer sends a notify statement of its own before each commit.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 08:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTIFY_FUNCTION = """
CREATE FUNCTION loyalty_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload text;
BEGIN
  SELECT json_build_object(
           'e', json_build_array(json_build_array(min(id), max(id))),
           'm', CASE WHEN count(DISTINCT member_id) <= 500 THEN
                  (SELECT coalesce(json_agg(DISTINCT n.member_id), '[]')
                     FROM inserted_events n WHERE n.member_id IS NOT NULL)
                END)::text
    INTO payload
    FROM inserted_events;
  PERFORM pg_notify('loyalty_events', payload);
  RETURN NULL;
END
$$
"""

NOTIFY_TRIGGER = """
CREATE TRIGGER events_notify AFTER INSERT ON events
REFERENCING NEW TABLE AS inserted_events
FOR EACH STATEMENT EXECUTE FUNCTION loyalty_notify_events()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER events_notify ON events")
    op.execute("DROP FUNCTION loyalty_notify_events()")
