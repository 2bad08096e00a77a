//! The outbox: deliveries of webhooks ("POST this body to this URL with these headers, for this
//! owner"), written in the same transaction as the change that caused them ([`OutboxEntry`] in
//! [`crate::WriteBatch::outbox`], step 11 of `write.rs`) or on their own
//! ([`crate::Store::enqueue_deliveries`]), then claimed, sent and settled by the delivery worker
//! (`licensd-delivery`). At least once: a row is claimed with a lease (PostgreSQL's
//! `FOR UPDATE SKIP LOCKED`, so instances sharing a database never claim the same row), and a
//! row whose worker died (`kill -9`) is claimed again when its lease ends. Settled rows stay,
//! for the status pages, until pruned. A delivery of change notifications has no body: it names
//! the change events it covers ([`ClaimedDelivery::events`], written by
//! [`crate::Store::expand_change_events`]) and the worker renders it when it sends.

use licensd_engine::Uuid;

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::sql::{Param, ReadRow, Session};

/// The owner kind of Graph change notifications (`owner_id`: the subscription).
pub const OWNER_GRAPH_SUBSCRIPTION: &str = "graph-subscription";
/// The owner kind of Graph lifecycle notifications (`owner_id`: the subscription).
pub const OWNER_GRAPH_LIFECYCLE: &str = "graph-lifecycle";

/// One delivery to make: POST `body` to `url` with `headers`. `owner_kind` and `owner_id` say
/// who asked for it (a Graph subscription, an alert rule, ...): the worker reports outcomes per
/// owner and throttles an owner whose endpoint keeps failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub owner_kind: String,
    pub owner_id: Uuid,
    /// An `http` or `https` URL (the worker checks it again before sending).
    pub url: String,
    /// Header names and values; no line breaks in either, no `:` in a name.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How many notifications the body carries (for the status pages and metrics).
    pub items: u32,
}

/// A delivery the worker claimed: it holds the lease until it settles the row
/// ([`crate::Store::complete_delivery`], [`crate::Store::retry_delivery`],
/// [`crate::Store::abandon_delivery`]) or the lease ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub delivery_id: i64,
    pub tenant_id: Uuid,
    pub owner_kind: String,
    pub owner_id: Uuid,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub items: u32,
    /// Attempts including this one.
    pub attempts: u32,
    /// When the row was written (milliseconds since the Unix epoch).
    pub created_at: i64,
    /// For a delivery of change notifications: the change events it covers, from which its body
    /// is rendered when it is sent (`body` is empty then).
    pub events: Option<crate::change_events::DeliveryEvents>,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet: waiting for its (next) attempt, or being sent.
    Pending,
    /// The endpoint acknowledged it (2xx).
    Delivered,
    /// Given up after the last attempt (or the endpoint is refused, e.g. an SSRF guard).
    Abandoned,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Abandoned => "abandoned",
        }
    }

    fn parse(text: &str) -> Result<DeliveryStatus, StoreError> {
        match text {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "abandoned" => Ok(DeliveryStatus::Abandoned),
            other => Err(StoreError::Corrupt {
                what: format!("delivery status {other:?}"),
            }),
        }
    }
}

/// A delivery as the status pages show it (without its body). Times in milliseconds since the
/// Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub delivery_id: i64,
    pub owner_kind: String,
    pub owner_id: Uuid,
    pub url: String,
    pub items: u32,
    pub created_at: i64,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    /// The HTTP status of the last answer, if any.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// When it was delivered or abandoned.
    pub finished_at: Option<i64>,
}

/// How an attempt ended, as the worker records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResult<'a> {
    /// The HTTP status of the answer, if one came.
    pub status_code: Option<u16>,
    /// What went wrong (`None` when delivered).
    pub error: Option<&'a str>,
}

pub(crate) fn encode_headers(headers: &[(String, String)]) -> Result<String, StoreError> {
    let mut text = String::new();
    for (name, value) in headers {
        let bad = |part: &str| part.contains(['\n', '\r']);
        if bad(name) || bad(value) || name.contains(':') || name.is_empty() {
            return Err(StoreError::Corrupt {
                what: format!("an outbox header {name:?} (no line breaks, no ':' in a name)"),
            });
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
    }
    Ok(text)
}

fn decode_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Inserts `entries` for the tenant of `tenant_key`, due now (inside the caller's transaction).
pub(crate) fn insert_entries(
    session: &mut impl Session,
    tenant_key: i64,
    entries: &[OutboxEntry],
) -> Result<(), StoreError> {
    for entry in entries {
        let headers = encode_headers(&entry.headers)?;
        session.execute(
            "writing an outbox row",
            "INSERT INTO outbox (tenant_key, owner_kind, owner_id, url, headers, body, items, created_at,
                 status, attempts, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, {now}, 'pending', 0, {now})",
            &[
                Param::Integer(tenant_key),
                Param::Text(&entry.owner_kind),
                Param::Id(entry.owner_id),
                Param::Text(&entry.url),
                Param::Text(&headers),
                Param::Bytes(&entry.body),
                Param::Integer(i64::from(entry.items)),
            ],
        )?;
    }
    Ok(())
}

pub(crate) fn enqueue(
    session: &mut impl Session,
    tenant_id: Uuid,
    entries: &[OutboxEntry],
) -> Result<(), StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    insert_entries(session, tenant_key, entries)
}

/// The claim statement of SQLite (one writer at a time: no row locks needed).
pub(crate) const CLAIM_SQLITE: &str = "UPDATE outbox SET lease_owner = $1, lease_until = {now} + $2,
         attempts = attempts + 1, last_attempt_at = {now}
     WHERE delivery_id IN (
         SELECT delivery_id FROM outbox
         WHERE status = 'pending' AND next_attempt_at <= {now}
             AND (lease_until IS NULL OR lease_until < {now})
         ORDER BY next_attempt_at, delivery_id LIMIT $3)
     RETURNING delivery_id, tenant_key, owner_kind, owner_id, url, headers, body, items, attempts,
         created_at, first_event, last_event, first_item";

/// The claim statement of PostgreSQL: rows another instance is claiming are skipped, not waited
/// for, and never claimed twice.
pub(crate) const CLAIM_POSTGRES: &str = "UPDATE outbox SET lease_owner = $1, lease_until = {now} + $2,
         attempts = attempts + 1, last_attempt_at = {now}
     WHERE delivery_id IN (
         SELECT delivery_id FROM outbox
         WHERE status = 'pending' AND next_attempt_at <= {now}
             AND (lease_until IS NULL OR lease_until < {now})
         ORDER BY next_attempt_at, delivery_id LIMIT $3
         FOR UPDATE SKIP LOCKED)
     RETURNING delivery_id, tenant_key, owner_kind, owner_id, url, headers, body, items, attempts,
         created_at, first_event, last_event, first_item";

pub(crate) fn claim(
    session: &mut impl Session,
    statement: &str,
    worker_id: &str,
    limit: usize,
    lease_milliseconds: i64,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let mut claimed: Vec<(i64, ClaimedDelivery)> = session.query_all(
        "claiming deliveries",
        statement,
        &[
            Param::Text(worker_id),
            Param::Integer(lease_milliseconds),
            Param::Integer(limit as i64),
        ],
        |row| {
            Ok((
                row.integer(1)?,
                ClaimedDelivery {
                    delivery_id: row.integer(0)?,
                    tenant_id: Uuid::nil(),
                    owner_kind: row.text(2)?.to_string(),
                    owner_id: row.id(3)?,
                    url: row.text(4)?.to_string(),
                    headers: decode_headers(row.text(5)?),
                    body: row.bytes(6)?.to_vec(),
                    items: u32::try_from(row.integer(7)?).unwrap_or(u32::MAX),
                    attempts: u32::try_from(row.integer(8)?).unwrap_or(u32::MAX),
                    created_at: row.integer(9)?,
                    events: match (
                        row.optional_integer(10)?,
                        row.optional_integer(11)?,
                        row.optional_integer(12)?,
                    ) {
                        (Some(first_event), Some(last_event), Some(first_item)) => {
                            Some(crate::change_events::DeliveryEvents {
                                first_event,
                                last_event,
                                first_item: u32::try_from(first_item).unwrap_or(u32::MAX),
                            })
                        }
                        _ => None,
                    },
                },
            ))
        },
    )?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<(i64, Uuid)> = session.query_all(
        "reading tenant ids",
        "SELECT tenant_key, tenant_id FROM tenants",
        &[],
        |row| Ok((row.integer(0)?, row.id(1)?)),
    )?;
    for (tenant_key, delivery) in &mut claimed {
        if let Some((_, tenant_id)) = tenants.iter().find(|(key, _)| key == tenant_key) {
            delivery.tenant_id = *tenant_id;
        }
    }
    claimed.sort_by_key(|(_, delivery)| delivery.delivery_id);
    Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
}

fn status_param(result: &AttemptResult<'_>) -> Param<'static> {
    Param::OptionalInteger(result.status_code.map(i64::from))
}

pub(crate) fn complete(
    session: &mut impl Session,
    delivery_id: i64,
    worker_id: &str,
    result: &AttemptResult<'_>,
) -> Result<bool, StoreError> {
    let changed = session.execute(
        "recording a delivery",
        "UPDATE outbox SET status = 'delivered', finished_at = {now}, last_status = $3,
             last_error = NULL, lease_owner = NULL, lease_until = NULL
         WHERE delivery_id = $1 AND lease_owner = $2 AND status = 'pending'",
        &[
            Param::Integer(delivery_id),
            Param::Text(worker_id),
            status_param(result),
        ],
    )?;
    Ok(changed > 0)
}

/// Records several claimed deliveries as delivered (`(delivery, HTTP status)`) in one
/// transaction: whether each was still held by `worker_id`, in order. One write-lock hold for a
/// whole claim instead of one per delivery.
pub(crate) fn complete_all(
    database: &mut impl crate::sql::Database,
    worker_id: &str,
    delivered: &[(i64, u16)],
) -> Result<Vec<bool>, StoreError> {
    use crate::sql::Transaction;
    let action = "recording deliveries";
    let mut transaction = database.begin(action)?;
    let mut settled = Vec::with_capacity(delivered.len());
    for (delivery_id, status) in delivered {
        let result = AttemptResult {
            status_code: Some(*status),
            error: None,
        };
        settled.push(complete(&mut transaction, *delivery_id, worker_id, &result)?);
    }
    transaction.commit(action)?;
    Ok(settled)
}

pub(crate) fn retry(
    session: &mut impl Session,
    delivery: &ClaimedDelivery,
    worker_id: &str,
    retry_in_milliseconds: i64,
    result: &AttemptResult<'_>,
) -> Result<bool, StoreError> {
    let changed = session.execute(
        "scheduling a delivery's retry",
        "UPDATE outbox SET next_attempt_at = {now} + $3, last_status = $4, last_error = $5,
             lease_owner = NULL, lease_until = NULL
         WHERE delivery_id = $1 AND lease_owner = $2 AND status = 'pending'",
        &[
            Param::Integer(delivery.delivery_id),
            Param::Text(worker_id),
            Param::Integer(retry_in_milliseconds),
            status_param(result),
            Param::OptionalText(result.error),
        ],
    )?;
    if changed > 0 {
        // Throttle the owner: its other deliveries wait as long (the endpoint is failing).
        session.execute(
            "throttling a failing endpoint",
            "UPDATE outbox SET next_attempt_at = {now} + $3
             WHERE owner_id = $1 AND owner_kind = $2 AND status = 'pending' AND lease_owner IS NULL
                 AND next_attempt_at < {now} + $3",
            &[
                Param::Id(delivery.owner_id),
                Param::Text(&delivery.owner_kind),
                Param::Integer(retry_in_milliseconds),
            ],
        )?;
    }
    Ok(changed > 0)
}

pub(crate) fn abandon(
    session: &mut impl Session,
    delivery_id: i64,
    worker_id: &str,
    result: &AttemptResult<'_>,
) -> Result<bool, StoreError> {
    let changed = session.execute(
        "abandoning a delivery",
        "UPDATE outbox SET status = 'abandoned', finished_at = {now}, last_status = $3, last_error = $4,
             lease_owner = NULL, lease_until = NULL
         WHERE delivery_id = $1 AND lease_owner = $2 AND status = 'pending'",
        &[
            Param::Integer(delivery_id),
            Param::Text(worker_id),
            status_param(result),
            Param::OptionalText(result.error),
        ],
    )?;
    Ok(changed > 0)
}

/// Ends the leases `worker_id` holds (a worker starting again after its process died).
pub(crate) fn release_leases(session: &mut impl Session, worker_id: &str) -> Result<u64, StoreError> {
    session.execute(
        "releasing delivery leases",
        "UPDATE outbox SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner = $1 AND status = 'pending'",
        &[Param::Text(worker_id)],
    )
}

/// Milliseconds until the next pending delivery is due (0 or less: now); `None` when none is
/// pending.
pub(crate) fn next_due_in(session: &mut impl Session) -> Result<Option<i64>, StoreError> {
    let due = session.query_optional(
        "reading the next due delivery",
        "SELECT min(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at
                     THEN lease_until ELSE next_attempt_at END) - {now}
         FROM outbox WHERE status = 'pending'",
        &[],
        |row| row.optional_integer(0),
    )?;
    Ok(due.flatten())
}

const RECORD_COLUMNS: &str = "delivery_id, owner_kind, owner_id, url, items, created_at, status, attempts,
     next_attempt_at, last_attempt_at, last_status, last_error, finished_at";

fn record_of(row: &impl ReadRow) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        delivery_id: row.integer(0)?,
        owner_kind: row.text(1)?.to_string(),
        owner_id: row.id(2)?,
        url: row.text(3)?.to_string(),
        items: u32::try_from(row.integer(4)?).unwrap_or(u32::MAX),
        created_at: row.integer(5)?,
        status: DeliveryStatus::parse(row.text(6)?)?,
        attempts: u32::try_from(row.integer(7)?).unwrap_or(u32::MAX),
        next_attempt_at: row.integer(8)?,
        last_attempt_at: row.optional_integer(9)?,
        last_status: row.optional_integer(10)?,
        last_error: row.optional_text(11)?.map(str::to_string),
        finished_at: row.optional_integer(12)?,
    })
}

/// A tenant's deliveries, newest first, of one owner or all.
pub(crate) fn deliveries(
    session: &mut impl Session,
    tenant_id: Uuid,
    owner_id: Option<Uuid>,
    limit: usize,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    match owner_id {
        Some(owner_id) => session.query_all(
            "listing deliveries",
            &format!(
                "SELECT {RECORD_COLUMNS} FROM outbox WHERE tenant_key = $1 AND owner_id = $2
                 ORDER BY delivery_id DESC LIMIT $3"
            ),
            &[
                Param::Integer(tenant_key),
                Param::Id(owner_id),
                Param::Integer(limit as i64),
            ],
            |row| record_of(row),
        ),
        None => session.query_all(
            "listing deliveries",
            &format!(
                "SELECT {RECORD_COLUMNS} FROM outbox WHERE tenant_key = $1
                 ORDER BY delivery_id DESC LIMIT $2"
            ),
            &[Param::Integer(tenant_key), Param::Integer(limit as i64)],
            |row| record_of(row),
        ),
    }
}

/// Deletes settled deliveries finished before `older_than`; returns how many.
pub(crate) fn prune(session: &mut impl Session, older_than: i64) -> Result<u64, StoreError> {
    session.execute(
        "pruning settled deliveries",
        "DELETE FROM outbox WHERE status <> 'pending' AND finished_at < $1",
        &[Param::Integer(older_than)],
    )
}

/// How many deliveries are pending, of every tenant (a gauge for `/metrics`).
pub(crate) fn pending_count(session: &mut impl Session) -> Result<u64, StoreError> {
    let count = session.query_optional(
        "counting pending deliveries",
        "SELECT count(*) FROM outbox WHERE status = 'pending'",
        &[],
        |row| row.integer(0),
    )?;
    Ok(u64::try_from(count.unwrap_or(0)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_line_breaks_are_refused() {
        let headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Signature".to_string(), "a: b".to_string()),
        ];
        let text = encode_headers(&headers).expect("encodes");
        assert_eq!(decode_headers(&text), headers);
        assert!(encode_headers(&[("X".to_string(), "a\nb".to_string())]).is_err());
        assert!(encode_headers(&[("X:Y".to_string(), "a".to_string())]).is_err());
    }
}
