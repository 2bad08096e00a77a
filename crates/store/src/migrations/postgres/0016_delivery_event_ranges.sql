-- Schema version 16 for PostgreSQL: change-notification bodies rendered at send time (issue 16).
-- A change event is no longer deleted when the delivery worker expands it: it is marked
-- `expanded`, and each subscription's delivery is a compact outbox row naming the range of
-- events it covers (`first_event` .. `last_event` of its tenant, the subscription's matching
-- notifications from `first_item`, `items` of them) with no body; the worker renders the body
-- from the events when it sends (and again for every retry). An expanded event is deleted
-- once no pending delivery's range reaches it.

ALTER TABLE change_events ADD COLUMN expanded INTEGER NOT NULL DEFAULT 0;
CREATE INDEX change_events_unexpanded ON change_events (event_id) WHERE expanded = 0;

ALTER TABLE outbox ADD COLUMN first_event BIGINT;
ALTER TABLE outbox ADD COLUMN last_event BIGINT;
ALTER TABLE outbox ADD COLUMN first_item BIGINT;
CREATE INDEX outbox_pending_events ON outbox (first_event)
    WHERE status = 'pending' AND first_event IS NOT NULL;
