//! Change events: fan-out of change notifications at delivery time. A write that changed users
//! or groups some subscription of its tenant may watch records what changed **once**
//! ([`ChangeEventEntry`] in [`crate::WriteBatch::change_events`], written in the write's
//! transaction), however many subscriptions match; the delivery worker then expands the events
//! ([`crate::Store::expand_change_events`]): per matching subscription one compact outbox row
//! naming the range of events it covers and which of the subscription's notifications in them
//! ([`EventDelivery`]: no body — the worker renders it from the events when it sends, so a wide
//! fan-out writes a few dozen bytes per subscription instead of every notification's JSON). The
//! events are marked expanded in the same transaction and deleted once no pending delivery's
//! range reaches them. A worker killed mid-way leaves the events for the next expansion;
//! instances sharing a PostgreSQL database never expand one event twice (`FOR UPDATE SKIP
//! LOCKED`). Each delivery is then an ordinary outbox row: at least once, with retries,
//! backoff, throttling and lifecycle as before.
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

/// The selection of SQLite (one writer at a time: no row locks needed).
pub(crate) const SELECT_SQLITE: &str = "SELECT event_id, tenant_key, created_at, changes FROM change_events
     WHERE expanded = 0 ORDER BY event_id LIMIT $1";

/// The selection of PostgreSQL: events another instance is expanding are skipped, not waited
/// for.
pub(crate) const SELECT_POSTGRES: &str = "SELECT event_id, tenant_key, created_at, changes FROM change_events
     WHERE expanded = 0 ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED";

const SUBSCRIPTION_COLUMNS: &str = "subscription_id, resource, change_types, notification_url,
    lifecycle_notification_url, client_state, expires_at, created_at, removed_at";

/// Expands up to `limit` events, oldest first, in one transaction: for each tenant with events,
/// `fan_out(tenant, its subscriptions, its events)` gives the deliveries to insert (compact rows
/// naming the tenant's expanded events); the events are marked expanded, and the expanded
/// events no pending delivery reaches any more are deleted. Returns how many events were
/// expanded.
pub(crate) fn expand(
    database: &mut impl Database,
    select: &str,
    limit: usize,
    fan_out: &mut FanOut<'_>,
) -> Result<usize, StoreError> {
    let action = "expanding change events";
    // A look without the write lock first: the worker asks on every turn.
    let any = database.query_optional(
        "looking for change events",
        "SELECT event_id FROM change_events WHERE expanded = 0 LIMIT 1",
        &[],
        |row| row.integer(0),
    )?;
    if any.is_none() {
        return Ok(0);
    }
    let mut transaction = database.begin(action)?;
    let rows: Vec<(i64, ChangeEvent)> = transaction.query_all(
        "reading change events",
        select,
        &[Param::Integer(limit as i64)],
        |row| {
            Ok((
                row.integer(1)?,
                ChangeEvent {
                    event_id: row.integer(0)?,
                    at: row.integer(2)?,
                    changes: row.bytes(3)?.to_vec(),
                },
            ))
        },
    )?;
    if rows.is_empty() {
        transaction.commit(action)?;
        return Ok(0);
    }
    let mut tenant_keys: Vec<i64> = rows.iter().map(|(tenant_key, _)| *tenant_key).collect();
    tenant_keys.sort_unstable();
    tenant_keys.dedup();
    for tenant_key in tenant_keys {
        let events: Vec<ChangeEvent> = rows
            .iter()
            .filter(|(key, _)| *key == tenant_key)
            .map(|(_, event)| event.clone())
            .collect();
        let tenant_id = transaction.query_optional(
            "reading a tenant's id",
            "SELECT tenant_id FROM tenants WHERE tenant_key = $1",
            &[Param::Integer(tenant_key)],
            |row| row.id(0),
        )?;
        let Some(tenant_id) = tenant_id else {
            continue;
        };
        let subscriptions = transaction.query_all(
            "reading change subscriptions",
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM change_subscriptions WHERE tenant_key = $1
                 ORDER BY created_at, subscription_id"
            ),
            &[Param::Integer(tenant_key)],
            |row| crate::change_subscriptions::subscription_of(row),
        )?;
        let deliveries = fan_out(tenant_id, &subscriptions, &events);
        let first_event = events.iter().map(|event| event.event_id).min().unwrap_or(0);
        let last_event = events.iter().map(|event| event.event_id).max().unwrap_or(0);
        for delivery in &deliveries {
            let headers = encode_headers(&delivery.headers)?;
            transaction.execute(
                "writing an outbox row",
                "INSERT INTO outbox (tenant_key, owner_kind, owner_id, url, headers, body, items,
                     created_at, status, attempts, next_attempt_at, first_event, last_event, first_item)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, {now}, 'pending', 0, {now}, $8, $9, $10)",
                &[
                    Param::Integer(tenant_key),
                    Param::Text(&delivery.owner_kind),
                    Param::Id(delivery.owner_id),
                    Param::Text(&delivery.url),
                    Param::Text(&headers),
                    Param::Bytes(&[]),
                    Param::Integer(i64::from(delivery.items)),
                    Param::Integer(first_event),
                    Param::Integer(last_event),
                    Param::Integer(i64::from(delivery.first_item)),
                ],
            )?;
        }
    }
    for (_, event) in &rows {
        transaction.execute(
            "marking a change event expanded",
            "UPDATE change_events SET expanded = 1 WHERE event_id = $1",
            &[Param::Integer(event.event_id)],
        )?;
    }
    prune(&mut transaction)?;
    transaction.commit(action)?;
    Ok(rows.len())
}

/// Deletes the expanded events no pending delivery's range reaches (every event before the
/// oldest range still pending); returns how many.
pub(crate) fn prune(session: &mut impl Session) -> Result<u64, StoreError> {
    session.execute(
        "deleting delivered change events",
        "DELETE FROM change_events WHERE expanded = 1 AND event_id < (
             SELECT coalesce(min(first_event), 9223372036854775807) FROM outbox
             WHERE status = 'pending' AND first_event IS NOT NULL)",
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

/// How many change events wait for their expansion, of every tenant.
pub(crate) fn pending_count(session: &mut impl Session) -> Result<u64, StoreError> {
    let count = session.query_optional(
        "counting change events",
        "SELECT count(*) FROM change_events WHERE expanded = 0",
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
