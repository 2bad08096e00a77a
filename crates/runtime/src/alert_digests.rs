//! Digest windows of license alert rules at run time. An error rule with a digest window
//! (`digest_window_seconds` > 0) has its matches held in the store with the change that caused
//! them ([`held`], merged there into the rule's open window) instead of one message per write
//! or processing step; the processor calls [`deliver_due`] about every second, which renders
//! each digest whose window closed (the count, the first samples, the window's start and end)
//! and releases it: the message written to the outbox and the digest deleted in one
//! transaction. A digest held before a restart is delivered after it.

use licensd_engine::alerts::{AlertDigest, AlertSubject};
use licensd_store::{AlertRuleRecord, HeldDigest, PendingDigest};

use crate::alerts::{AlertContext, AlertDelivery};
use crate::tenants::{lock_store, ExecuteError, SharedStore, Tenants};

/// At most this many due digests are released per call.
const DIGESTS_PER_ROUND: usize = 100;

/// The digest to hold for `rule`'s window instead of sending it now; `None` when the rule has
/// no window or the digest is not about license errors (seat and periodic rules send at once).
pub(crate) fn held(rule: &AlertRuleRecord, digest: &AlertDigest, at: i64) -> Option<HeldDigest> {
    if rule.digest_window_seconds == 0 {
        return None;
    }
    let AlertSubject::LicenseErrors {
        entered,
        count,
        samples,
    } = &digest.subject
    else {
        return None;
    };
    Some(HeldDigest {
        rule_id: rule.rule_id,
        window: i64::from(rule.digest_window_seconds) * 1_000,
        at,
        entered: *entered,
        count: *count as u64,
        samples: samples.clone(),
    })
}

/// The identifier of a window's alert: the same on every attempt, unique per window.
pub fn window_alert_id(digest: &PendingDigest) -> String {
    format!(
        "{}/{}/window/{}",
        digest.tenant_id, digest.rule_id, digest.window_start
    )
}

/// Sends the held digests (of every tenant) whose window closed at or before `now`: each one
/// rendered for its rule and released (its message written to the outbox, the digest deleted,
/// in one transaction). A digest whose rule is gone is dropped. Returns how many messages were
/// written.
pub fn deliver_due(store: &SharedStore, tenants: &Tenants, now: i64) -> Result<usize, ExecuteError> {
    let book = tenants.alerts();
    let Some(renderer) = book.renderer() else {
        return Ok(0);
    };
    let due = lock_store(store)?.due_alert_digests(now, DIGESTS_PER_ROUND)?;
    let mut sent = 0;
    for digest in due {
        // (Not `get`: delivering a digest is no request, and does not keep the tenant resident.)
        let Some(runtime) = tenants.resident(digest.tenant_id) else {
            // A tenant this instance does not hold: left for later (or another instance).
            continue;
        };
        let mut rule = book
            .rules(digest.tenant_id)
            .iter()
            .find(|rule| rule.rule_id == digest.rule_id)
            .cloned();
        if rule.is_none() {
            // Not in this instance's book (yet): the store decides whether the rule is gone.
            rule = lock_store(store)?
                .alert_rules(digest.tenant_id)?
                .into_iter()
                .find(|rule| rule.rule_id == digest.rule_id);
        }
        let message = match &rule {
            Some(rule) => {
                // The engine first, then the store (the writers' order).
                let tenant_name = runtime.read(|engine| engine.settings().display_name.clone())?;
                let subject = AlertDigest {
                    rule_id: rule.rule_id,
                    subject: AlertSubject::LicenseErrors {
                        entered: digest.entered,
                        count: usize::try_from(digest.count).unwrap_or(usize::MAX),
                        samples: digest.samples.clone(),
                    },
                };
                let dedup_key = window_alert_id(&digest);
                let body = renderer.render(&AlertContext {
                    tenant_id: digest.tenant_id,
                    tenant_name: &tenant_name,
                    rule,
                    digest: &subject,
                    at: digest.window_end,
                    dedup_key: &dedup_key,
                    window: Some((digest.window_start, digest.window_end)),
                });
                Some(
                    AlertDelivery {
                        rule_id: rule.rule_id,
                        url: rule.url.clone(),
                        body,
                        dedup_key,
                        items: u32::try_from(digest.count).unwrap_or(u32::MAX),
                    }
                    .outbox_entry(),
                )
            }
            // The rule is gone: nothing to send.
            None => None,
        };
        let released = lock_store(store)?.release_alert_digest(&digest, message.as_ref())?;
        if released && message.is_some() {
            sent += 1;
        }
    }
    if sent > 0 {
        tenants.notifier().wake();
    }
    Ok(sent)
}
