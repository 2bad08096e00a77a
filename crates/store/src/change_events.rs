//! Change events: fan-out of change notifications at delivery time. A write that changed users
//! or groups some subscription of its tenant may watch records what changed **once**
//! ([`ChangeEventEntry`] in [`crate::WriteBatch::change_events`], written in the write's
//! transaction), however many subscriptions match; the delivery worker then expands the events
//! step by step ([`crate::Store::expand_change_events_step`]), each step one short transaction:
//! first the waiting events are fixed as a range per tenant (a row of `change_expansions`, the
//! events marked expanded), then the range is expanded in chunks of subscriptions — per matching
//! subscription one compact outbox row naming the range of events it covers and which of the
//! subscription's notifications in them ([`EventDelivery`]: no body — the worker renders it from
//! the events when it sends, so a wide fan-out writes a few dozen bytes per subscription instead
//! of every notification's JSON) — each chunk committed with the range's cursor (the last
//! subscription done), so SQLite's one write lock is held for ~100 rows at a time, not 1,000.
//! Events are deleted once no pending range or delivery reaches them. A worker killed mid-way
//! leaves the events or the range (and its cursor) to the next step: nothing lost, no
//! subscription expanded twice; instances sharing a PostgreSQL database never fix one event
//! twice nor take the same chunk (`FOR UPDATE SKIP LOCKED`). Each delivery is then an ordinary
//! outbox row: at least once, with retries, backoff, throttling and lifecycle as before.
//!
//! What the changes are is opaque here: the runtime encodes and decodes them.

use licensd_engine::Uuid;

use crate::change_subscriptions::ChangeSubscription;
use crate::error::StoreError;
use crate::outbox::encode_headers;
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// One write's changes, to be fanned out to the subscriptions that want them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEventEntry {
    /// When the change was made (milliseconds since the Unix epoch).
    pub at: i64,
    /// The changed objects, encoded by whoever expands them.
    pub changes: Vec<u8>,
}

/// What turns one tenant's change events into deliveries: given the tenant, its change
/// subscriptions and its events, the deliveries to write.
pub type FanOut<'a> = dyn FnMut(Uuid, &[ChangeSubscription], &[ChangeEvent]) -> Vec<EventDelivery> + 'a;

/// One delivery of an expansion: to one subscription, `items` of its notifications in the
/// expanded events of its tenant, from its `first_item`-th (0-based). The outbox row stores no
/// body: the range of events it covers ([`DeliveryEvents`]) is what the worker renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDelivery {
    pub owner_kind: String,
    /// The subscription.
    pub owner_id: Uuid,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub first_item: u32,
    pub items: u32,
}

/// What a claimed delivery of change notifications covers: its tenant's change events
/// `first_event..=last_event` (read them with [`crate::Store::change_events_between`]), the
/// owner's matching notifications in them from the `first_item`-th, `items` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryEvents {
    pub first_event: i64,
    pub last_event: i64,
    pub first_item: u32,
}

/// A recorded change event, as the expansion reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEvent {
    pub event_id: i64,
    pub at: i64,
    pub changes: Vec<u8>,
}

pub(crate) fn insert_events(
    session: &mut impl Session,
    tenant_key: i64,
    events: &[ChangeEventEntry],
) -> Result<(), StoreError> {
    for event in events {
        session.execute(
            "recording a change event",
            "INSERT INTO change_events (tenant_key, created_at, changes) VALUES ($1, $2, $3)",
            &[
                Param::Integer(tenant_key),
                Param::Integer(event.at),
                Param::Bytes(&event.changes),
            ],
        )?;
    }
    Ok(())
}

const SUBSCRIPTION_COLUMNS: &str = "subscription_id, resource, change_types, notification_url,
    lifecycle_notification_url, client_state, expires_at, created_at, removed_at";

/// What one step of an expansion did ([`expand_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpansionStep {
    /// Nothing to expand: no range pending, no event waiting.
    Idle,
    /// One chunk of a range's subscriptions was expanded into `deliveries` outbox rows;
    /// `finished`: it was the range's last chunk (else more chunks of it wait).
    /// `fixed_events`: how many waiting events the step first fixed as new ranges (0 when it
    /// went on with a pending range).
    Chunk {
        fixed_events: usize,
        subscriptions: usize,
        deliveries: usize,
        finished: bool,
    },
}

impl ExpansionStep {
    /// Whether the step did anything.
    pub fn did_work(self) -> bool {
        self != ExpansionStep::Idle
    }

    /// Whether more expansion work surely waits (a range with chunks left).
    pub fn more_pending(self) -> bool {
        matches!(self, ExpansionStep::Chunk { finished: false, .. })
    }
}

/// How much one expansion step takes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpansionLimits {
    /// At most this many events are fixed as one range.
    pub events: usize,
    /// A range stops before the event that would take its events' encoded changes past this
    /// many bytes (a range holds at least one event).
    pub change_bytes: usize,
    /// At most this many subscriptions are expanded per chunk (transaction).
    pub subscriptions: usize,
}

/// The statements of a backend that an expansion step runs.
pub(crate) struct ExpansionStatements {
    /// The waiting events to fix as ranges.
    pub select_events: &'static str,
    /// The oldest pending range.
    pub pending_range: &'static str,
    /// Run before events are fixed as ranges, if any: makes instances fix ranges one at a
    /// time, so that the events of two ranges never interleave (a range is read back by its
    /// bounds).
    pub serialize_fixing: Option<&'static str>,
}

/// SQLite's: one writer at a time, no row locks needed.
pub(crate) const STATEMENTS_SQLITE: ExpansionStatements = ExpansionStatements {
    select_events: "SELECT event_id, tenant_key, CAST(length(changes) AS BIGINT) FROM change_events
         WHERE expanded = 0 ORDER BY event_id LIMIT $1",
    pending_range: "SELECT expansion_id, tenant_key, first_event, last_event,
             done_created_at, done_subscription
         FROM change_expansions ORDER BY expansion_id LIMIT 1",
    serialize_fixing: None,
};

/// PostgreSQL's: a range another instance is expanding a chunk of is skipped, not waited for
/// (its chunks are taken one at a time); ranges are fixed one at a time (a transaction-scoped
/// advisory lock held for a few rows, in licensd's lock class of the schema — as
/// `postgres.rs` computes it — with the second key -1: tenant locks are 1 and up, migrations 0).
pub(crate) const STATEMENTS_POSTGRES: ExpansionStatements = ExpansionStatements {
    select_events: "SELECT event_id, tenant_key, CAST(length(changes) AS BIGINT) FROM change_events
         WHERE expanded = 0 ORDER BY event_id LIMIT $1 FOR UPDATE",
    pending_range: "SELECT expansion_id, tenant_key, first_event, last_event,
             done_created_at, done_subscription
         FROM change_expansions ORDER BY expansion_id LIMIT 1 FOR UPDATE SKIP LOCKED",
    serialize_fixing: Some(
        "SELECT count(*) FROM (
             SELECT pg_advisory_xact_lock(1818846052 # hashtext(current_schema()), -1)) AS locked",
    ),
};

/// One step of the expansion of change events into deliveries, in one short transaction:
/// when no range is pending, waiting events are first fixed as ranges (below); then, for the
/// oldest pending range (maybe fixed by a worker that died since), the
/// deliveries of its next `limits.subscriptions` subscriptions (in the order created_at,
/// subscription_id, after the range's cursor) — `fan_out(tenant, those subscriptions, the
/// range's events)` — are inserted and the cursor moved past them, or the range deleted after
/// its last chunk (then the expanded events no pending range or delivery reaches any more are
/// deleted). Fixing: waiting events, oldest first (within `limits`), become one range per
/// tenant and are marked expanded. A chunk and its cursor commit together: a restart between two chunks
/// neither repeats nor skips a subscription.
pub(crate) fn expand_step(
    database: &mut impl Database,
    statements: &ExpansionStatements,
    limits: &ExpansionLimits,
    fan_out: &mut FanOut<'_>,
) -> Result<ExpansionStep, StoreError> {
    // A look without the write lock first: the worker asks on every turn.
    let any = database.query_optional(
        "looking for change events",
        "SELECT CAST(1 AS BIGINT) WHERE EXISTS (SELECT 1 FROM change_expansions)
             OR EXISTS (SELECT 1 FROM change_events WHERE expanded = 0)",
        &[],
        |row| row.integer(0),
    )?;
    if any.is_none() {
        return Ok(ExpansionStep::Idle);
    }
    let action = "expanding change events";
    let mut transaction = database.begin(action)?;
    let mut fixed_events = 0;
    let mut range = pending_range(&mut transaction, statements)?;
    if range.is_none() {
        // No range pending: fix one (per tenant) and expand its first chunk at once.
        if let Some(serialize) = statements.serialize_fixing {
            transaction.query_optional("waiting to fix a range of change events", serialize, &[], |row| {
                row.integer(0)
            })?;
        }
        fixed_events = fix_range(&mut transaction, statements.select_events, limits)?;
        if fixed_events > 0 {
            range = pending_range(&mut transaction, statements)?;
        }
    }
    let step = match range {
        Some(range) => {
            let (subscriptions, deliveries, finished) =
                expand_chunk(&mut transaction, &range, limits.subscriptions.max(1), fan_out)?;
            ExpansionStep::Chunk {
                fixed_events,
                subscriptions,
                deliveries,
                finished,
            }
        }
        None => ExpansionStep::Idle,
    };
    transaction.commit(action)?;
    Ok(step)
}

/// The oldest pending range (on PostgreSQL, of those no other instance is expanding).
fn pending_range(
    transaction: &mut impl Transaction,
    statements: &ExpansionStatements,
) -> Result<Option<PendingRange>, StoreError> {
    transaction.query_optional(
        "reading a pending expansion",
        statements.pending_range,
        &[],
        |row| {
            Ok(PendingRange {
                expansion_id: row.integer(0)?,
                tenant_key: row.integer(1)?,
                first_event: row.integer(2)?,
                last_event: row.integer(3)?,
                done: match (row.optional_integer(4)?, row.optional_id(5)?) {
                    (Some(created_at), Some(subscription_id)) => Some((created_at, subscription_id)),
                    _ => None,
                },
            })
        },
    )
}

/// Expands every waiting event (ranges within `limits`), chunk after chunk, each its own
/// transaction (as [`expand_step`] does, until nothing is left to do); returns how many events
/// were fixed into ranges by this call.
pub(crate) fn expand(
    database: &mut impl Database,
    statements: &ExpansionStatements,
    limits: &ExpansionLimits,
    fan_out: &mut FanOut<'_>,
) -> Result<usize, StoreError> {
    let mut fixed = 0;
    loop {
        match expand_step(database, statements, limits, fan_out)? {
            ExpansionStep::Idle => return Ok(fixed),
            ExpansionStep::Chunk { fixed_events, .. } => fixed += fixed_events,
        }
    }
}

/// A range of one tenant's change events whose expansion is under way.
struct PendingRange {
    expansion_id: i64,
    tenant_key: i64,
    first_event: i64,
    last_event: i64,
    /// The last subscription expanded (created_at, subscription_id), if any.
    done: Option<(i64, Uuid)>,
}

/// Fixes waiting events, oldest first (at most `limits.events`, and no more of their encoded
/// changes than `limits.change_bytes` once there is one), as one pending range per tenant, and
/// marks them expanded; returns how many.
fn fix_range(
    transaction: &mut impl Transaction,
    select_events: &str,
    limits: &ExpansionLimits,
) -> Result<usize, StoreError> {
    let waiting: Vec<(i64, i64, i64)> = transaction.query_all(
        "reading change events",
        select_events,
        &[Param::Integer(limits.events as i64)],
        |row| Ok((row.integer(1)?, row.integer(0)?, row.integer(2)?)),
    )?;
    let mut rows: Vec<(i64, i64)> = Vec::with_capacity(waiting.len());
    let most_bytes = i64::try_from(limits.change_bytes).unwrap_or(i64::MAX);
    let mut bytes: i64 = 0;
    for (tenant_key, event_id, length) in waiting {
        bytes = bytes.saturating_add(length);
        if !rows.is_empty() && bytes > most_bytes {
            break;
        }
        rows.push((tenant_key, event_id));
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tenant_keys: Vec<i64> = rows.iter().map(|(tenant_key, _)| *tenant_key).collect();
    tenant_keys.sort_unstable();
    tenant_keys.dedup();
    for tenant_key in tenant_keys {
        let events = rows
            .iter()
            .filter(|(key, _)| *key == tenant_key)
            .map(|(_, event_id)| *event_id);
        let first_event = events.clone().min().unwrap_or(0);
        let last_event = events.max().unwrap_or(0);
        transaction.execute(
            "fixing a range of change events",
            "INSERT INTO change_expansions (tenant_key, first_event, last_event) VALUES ($1, $2, $3)",
            &[
                Param::Integer(tenant_key),
                Param::Integer(first_event),
                Param::Integer(last_event),
            ],
        )?;
    }
    for (_, event_id) in &rows {
        transaction.execute(
            "marking a change event expanded",
            "UPDATE change_events SET expanded = 1 WHERE event_id = $1",
            &[Param::Integer(*event_id)],
        )?;
    }
    Ok(rows.len())
}

/// Expands the next `chunk` subscriptions of `range`: how many subscriptions, how many
/// deliveries, and whether that was the range's last chunk.
fn expand_chunk(
    transaction: &mut impl Transaction,
    range: &PendingRange,
    chunk: usize,
    fan_out: &mut FanOut<'_>,
) -> Result<(usize, usize, bool), StoreError> {
    let tenant_id = transaction.query_optional(
        "reading a tenant's id",
        "SELECT tenant_id FROM tenants WHERE tenant_key = $1",
        &[Param::Integer(range.tenant_key)],
        |row| row.id(0),
    )?;
    let Some(tenant_id) = tenant_id else {
        finish_range(transaction, range.expansion_id)?;
        return Ok((0, 0, true));
    };
    let subscriptions = match range.done {
        Some((created_at, subscription_id)) => transaction.query_all(
            "reading change subscriptions",
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM change_subscriptions
                 WHERE tenant_key = $1
                     AND (created_at > $2 OR (created_at = $2 AND subscription_id > $3))
                 ORDER BY created_at, subscription_id LIMIT $4"
            ),
            &[
                Param::Integer(range.tenant_key),
                Param::Integer(created_at),
                Param::Id(subscription_id),
                Param::Integer(chunk as i64),
            ],
            |row| crate::change_subscriptions::subscription_of(row),
        )?,
        None => transaction.query_all(
            "reading change subscriptions",
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM change_subscriptions WHERE tenant_key = $1
                 ORDER BY created_at, subscription_id LIMIT $2"
            ),
            &[Param::Integer(range.tenant_key), Param::Integer(chunk as i64)],
            |row| crate::change_subscriptions::subscription_of(row),
        )?,
    };
    let events = between_keyed(transaction, range.tenant_key, range.first_event, range.last_event)?;
    let deliveries = fan_out(tenant_id, &subscriptions, &events);
    for delivery in &deliveries {
        let headers = encode_headers(&delivery.headers)?;
        transaction.execute(
            "writing an outbox row",
            "INSERT INTO outbox (tenant_key, owner_kind, owner_id, url, headers, body, items,
                 created_at, status, attempts, next_attempt_at, first_event, last_event, first_item)
             VALUES ($1, $2, $3, $4, $5, $6, $7, {now}, 'pending', 0, {now}, $8, $9, $10)",
            &[
                Param::Integer(range.tenant_key),
                Param::Text(&delivery.owner_kind),
                Param::Id(delivery.owner_id),
                Param::Text(&delivery.url),
                Param::Text(&headers),
                Param::Bytes(&[]),
                Param::Integer(i64::from(delivery.items)),
                Param::Integer(range.first_event),
                Param::Integer(range.last_event),
                Param::Integer(i64::from(delivery.first_item)),
            ],
        )?;
    }
    let finished = subscriptions.len() < chunk;
    match subscriptions.last() {
        Some(last) if !finished => {
            transaction.execute(
                "moving an expansion's cursor",
                "UPDATE change_expansions SET done_created_at = $2, done_subscription = $3
                 WHERE expansion_id = $1",
                &[
                    Param::Integer(range.expansion_id),
                    Param::Integer(last.created_at),
                    Param::Id(last.subscription_id),
                ],
            )?;
        }
        _ => finish_range(transaction, range.expansion_id)?,
    }
    Ok((subscriptions.len(), deliveries.len(), finished))
}

/// Deletes a range whose every subscription is expanded, then the events nothing reaches.
fn finish_range(transaction: &mut impl Transaction, expansion_id: i64) -> Result<(), StoreError> {
    transaction.execute(
        "finishing an expansion",
        "DELETE FROM change_expansions WHERE expansion_id = $1",
        &[Param::Integer(expansion_id)],
    )?;
    prune(transaction)?;
    Ok(())
}

/// Deletes the expanded events no pending delivery's range and no pending expansion reaches
/// (every event before the oldest of those); returns how many.
pub(crate) fn prune(session: &mut impl Session) -> Result<u64, StoreError> {
    session.execute(
        "deleting delivered change events",
        "DELETE FROM change_events WHERE expanded = 1 AND event_id < (
             SELECT coalesce(min(first_event), 9223372036854775807) FROM (
                 SELECT min(first_event) AS first_event FROM outbox
                 WHERE status = 'pending' AND first_event IS NOT NULL
                 UNION ALL
                 SELECT min(first_event) AS first_event FROM change_expansions) AS reached)",
        &[],
    )
}

/// A tenant's change events `first_event..=last_event` (those still stored), oldest first.
pub(crate) fn between(
    session: &mut impl Session,
    tenant_id: Uuid,
    first_event: i64,
    last_event: i64,
) -> Result<Vec<ChangeEvent>, StoreError> {
    let tenant_key = crate::reads::tenant_key(session, tenant_id)?;
    between_keyed(session, tenant_key, first_event, last_event)
}

/// The events `first_event..=last_event` of the tenant of `tenant_key`, oldest first.
fn between_keyed(
    session: &mut impl Session,
    tenant_key: i64,
    first_event: i64,
    last_event: i64,
) -> Result<Vec<ChangeEvent>, StoreError> {
    session.query_all(
        "reading change events",
        "SELECT event_id, created_at, changes FROM change_events
         WHERE tenant_key = $1 AND event_id >= $2 AND event_id <= $3 ORDER BY event_id",
        &[
            Param::Integer(tenant_key),
            Param::Integer(first_event),
            Param::Integer(last_event),
        ],
        |row| {
            Ok(ChangeEvent {
                event_id: row.integer(0)?,
                at: row.integer(1)?,
                changes: row.bytes(2)?.to_vec(),
            })
        },
    )
}

/// How many change events wait for their expansion (not fixed in a range yet, or in a range
/// not every chunk of which is written), of every tenant.
pub(crate) fn pending_count(session: &mut impl Session) -> Result<u64, StoreError> {
    let count = session.query_optional(
        "counting change events",
        "SELECT count(*) FROM change_events AS waiting WHERE expanded = 0 OR EXISTS (
             SELECT 1 FROM change_expansions AS fixed WHERE fixed.tenant_key = waiting.tenant_key
                 AND waiting.event_id BETWEEN fixed.first_event AND fixed.last_event)",
        &[],
        |row| row.integer(0),
    )?;
    Ok(u64::try_from(count.unwrap_or(0)).unwrap_or(0))
}

/// How many change events are stored, expanded or not, of every tenant.
pub(crate) fn stored_count(session: &mut impl Session) -> Result<u64, StoreError> {
    let count = session.query_optional(
        "counting change events",
        "SELECT count(*) FROM change_events",
        &[],
        |row| row.integer(0),
    )?;
    Ok(u64::try_from(count.unwrap_or(0)).unwrap_or(0))
}

/// How many ranges of change events are being expanded, of every tenant.
pub(crate) fn pending_expansions(session: &mut impl Session) -> Result<u64, StoreError> {
    let count = session.query_optional(
        "counting pending expansions",
        "SELECT count(*) FROM change_expansions",
        &[],
        |row| row.integer(0),
    )?;
    Ok(u64::try_from(count.unwrap_or(0)).unwrap_or(0))
}
