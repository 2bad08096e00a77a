//! Digest windows of license alert rules (issue 16): the matches of an error rule that has a
//! window are not sent per write or processing step but **held** in `alert_digests`, in the
//! transaction of the change that matched ([`HeldDigest`] in [`crate::WriteBatch::alert_digests`]):
//! the first match of a rule opens a window (`window_start`, `window_end` = start + the rule's
//! window), later matches before `window_end` are merged into it (the count added, samples kept
//! up to [`DIGEST_SAMPLES`]). When the window has closed, the runtime reads the digest
//! ([`due_digests`]), renders it and releases it ([`release_digest`]): the digest row deleted
//! and its message written to the outbox in one transaction, so it is sent once (at least once,
//! as every delivery), after a restart too. Instances sharing a database may release together:
//! the deletion decides which one writes the message.

use licensd_engine::alerts::{ErrorSample, DIGEST_SAMPLES};
use licensd_engine::{LicenseErrorKind, Uuid};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::outbox::{insert_entries, OutboxEntry};
use crate::reads::tenant_key;
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// One rule's matches of one write or processing step, to hold in the rule's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldDigest {
    pub rule_id: Uuid,
    /// The rule's window, in milliseconds (> 0).
    pub window: i64,
    /// When the change was made (milliseconds since the Unix epoch).
    pub at: i64,
    /// Users entered (`true`) or left an error.
    pub entered: bool,
    /// How many states matched.
    pub count: u64,
    /// The first of them (at most [`DIGEST_SAMPLES`]).
    pub samples: Vec<ErrorSample>,
}

/// A held digest as stored: a rule's matches during one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingDigest {
    pub tenant_id: Uuid,
    pub rule_id: Uuid,
    /// When the window opened (its first match) and when it closes, in milliseconds since the
    /// Unix epoch.
    pub window_start: i64,
    pub window_end: i64,
    pub entered: bool,
    pub count: u64,
    pub samples: Vec<ErrorSample>,
}

/// A sample as the `samples` column holds it (a JSON array of these).
#[derive(Serialize, Deserialize)]
struct StoredSample {
    user: Uuid,
    name: String,
    sku: Uuid,
    part: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<Uuid>,
    error: String,
}

fn encode_samples(samples: &[ErrorSample]) -> Result<String, StoreError> {
    let stored: Vec<StoredSample> = samples
        .iter()
        .map(|sample| StoredSample {
            user: sample.user_id,
            name: sample.user_principal_name.clone(),
            sku: sample.sku_id,
            part: sample.sku_part_number.clone(),
            group: sample.group_id,
            error: sample.error.as_str().to_string(),
        })
        .collect();
    serde_json::to_string(&stored)
        .map_err(|error| StoreError::corrupt(format!("alert digest samples: {error}")))
}

fn decode_samples(text: &str) -> Result<Vec<ErrorSample>, StoreError> {
    let stored: Vec<StoredSample> = serde_json::from_str(text)
        .map_err(|error| StoreError::corrupt(format!("alert digest samples: {error}")))?;
    stored
        .into_iter()
        .map(|sample| {
            let error = LicenseErrorKind::ALL
                .into_iter()
                .find(|kind| kind.as_str() == sample.error)
                .ok_or_else(|| StoreError::corrupt(format!("alert digest error kind {:?}", sample.error)))?;
            Ok(ErrorSample {
                user_id: sample.user,
                user_principal_name: sample.name,
                sku_id: sample.sku,
                sku_part_number: sample.part,
                group_id: sample.group,
                error,
            })
        })
        .collect()
}

/// Holds `digests` in their rules' open windows (opening one when the rule has none open at the
/// digest's time), inside the caller's transaction. A digest of a rule removed meanwhile is
/// dropped.
pub(crate) fn hold(
    session: &mut impl Session,
    tenant_key: i64,
    digests: &[HeldDigest],
) -> Result<(), StoreError> {
    for digest in digests {
        let count = i64::try_from(digest.count).unwrap_or(i64::MAX);
        let open = session.query_optional(
            "reading an open alert digest",
            "SELECT window_start, samples FROM alert_digests
             WHERE tenant_key = $1 AND rule_id = $2 AND window_start <= $3 AND window_end > $3
             ORDER BY window_start DESC LIMIT 1",
            &[
                Param::Integer(tenant_key),
                Param::Id(digest.rule_id),
                Param::Integer(digest.at),
            ],
            |row| Ok((row.integer(0)?, row.text(1)?.to_string())),
        )?;
        match open {
            Some((window_start, samples)) => {
                let mut samples = decode_samples(&samples)?;
                let room = DIGEST_SAMPLES.saturating_sub(samples.len());
                samples.extend(digest.samples.iter().take(room).cloned());
                session.execute(
                    "merging into an alert digest",
                    "UPDATE alert_digests SET count = count + $4, samples = $5
                     WHERE tenant_key = $1 AND rule_id = $2 AND window_start = $3",
                    &[
                        Param::Integer(tenant_key),
                        Param::Id(digest.rule_id),
                        Param::Integer(window_start),
                        Param::Integer(count),
                        Param::Text(&encode_samples(&samples)?),
                    ],
                )?;
            }
            None => {
                let samples: Vec<ErrorSample> = digest.samples.iter().take(DIGEST_SAMPLES).cloned().collect();
                session.execute(
                    "opening an alert digest",
                    "INSERT INTO alert_digests
                         (tenant_key, rule_id, window_start, window_end, entered, count, samples)
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS
                         (SELECT 1 FROM alert_rules WHERE tenant_key = $1 AND rule_id = $2)
                     ON CONFLICT (tenant_key, rule_id, window_start)
                         DO UPDATE SET count = alert_digests.count + excluded.count",
                    &[
                        Param::Integer(tenant_key),
                        Param::Id(digest.rule_id),
                        Param::Integer(digest.at),
                        Param::Integer(digest.at.saturating_add(digest.window.max(1))),
                        Param::Flag(digest.entered),
                        Param::Integer(count),
                        Param::Text(&encode_samples(&samples)?),
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// The held digests of every tenant whose window closed at or before `now`, oldest first (at
/// most `limit`).
pub(crate) fn due_digests(
    session: &mut impl Session,
    now: i64,
    limit: usize,
) -> Result<Vec<PendingDigest>, StoreError> {
    session.query_all(
        "reading due alert digests",
        "SELECT t.tenant_id, d.rule_id, d.window_start, d.window_end, d.entered, d.count, d.samples
         FROM alert_digests d JOIN tenants t ON t.tenant_key = d.tenant_key
         WHERE d.window_end <= $1 ORDER BY d.window_end LIMIT $2",
        &[Param::Integer(now), Param::Integer(limit as i64)],
        |row| {
            Ok(PendingDigest {
                tenant_id: row.id(0)?,
                rule_id: row.id(1)?,
                window_start: row.integer(2)?,
                window_end: row.integer(3)?,
                entered: row.flag(4)?,
                count: u64::try_from(row.integer(5)?).unwrap_or(0),
                samples: decode_samples(row.text(6)?)?,
            })
        },
    )
}

/// Releases a held digest: deletes it and writes its message (`None`: its rule is gone, nothing
/// to send) in one transaction. `Ok(false)` when it was no longer there as read (another
/// instance released it, or a match was merged into it since: it is read again).
pub(crate) fn release_digest(
    database: &mut impl Database,
    digest: &PendingDigest,
    message: Option<&OutboxEntry>,
) -> Result<bool, StoreError> {
    let action = "releasing an alert digest";
    let mut transaction = database.begin(action)?;
    let tenant_key = tenant_key(&mut transaction, digest.tenant_id)?;
    let deleted = transaction.execute(
        "deleting a released alert digest",
        "DELETE FROM alert_digests
         WHERE tenant_key = $1 AND rule_id = $2 AND window_start = $3 AND count = $4",
        &[
            Param::Integer(tenant_key),
            Param::Id(digest.rule_id),
            Param::Integer(digest.window_start),
            Param::Integer(i64::try_from(digest.count).unwrap_or(i64::MAX)),
        ],
    )?;
    if deleted == 0 {
        transaction.commit(action)?;
        return Ok(false);
    }
    if let Some(message) = message {
        insert_entries(&mut transaction, tenant_key, std::slice::from_ref(message))?;
    }
    transaction.commit(action)?;
    Ok(true)
}
