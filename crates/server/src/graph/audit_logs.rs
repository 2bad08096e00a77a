//! Graph `/v1.0/auditLogs/directoryAudits`: the tenant's audit log, newest first, in Graph's
//! `directoryAudit` shape. `$filter` takes a conjunction (`and`) of at most
//! [`MAX_FILTER_CLAUSES`] clauses: `activityDisplayName eq '…'`, `category eq '…'`,
//! `result eq 'success'|'failure'`, `activityDateTime ge|gt|le|lt 2024-05-01T00:00:00Z`,
//! `targetResources/any(t:t/id eq '{guid}')`; `$top` (1–[`MAX_TOP`], default 100) and
//! `@odata.nextLink` page through it. Anything else is a 400 naming what was not understood.

use axum::Json;
use licensd_api_types::audit::{
    AppIdentity, AuditActivityInitiator, DirectoryAudit, DirectoryAuditCollectionResponse, KeyValue,
    ModifiedProperty, TargetResource,
};
use licensd_api_types::time::{format_date_time, parse_date_time};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::Uuid;
use licensd_store::{AuditQuery, StoredAuditRecord};

use crate::api::{ApiError, RequestOrigin, Tenant};

/// The most records one page holds.
pub const MAX_TOP: usize = 999;
/// The most clauses a `$filter` may combine.
pub const MAX_FILTER_CLAUSES: usize = 8;
/// The longest `$filter` accepted.
pub const MAX_FILTER_LENGTH: usize = 1_024;

/// The query options of the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// e.g. `activityDisplayName eq 'Change user license' and activityDateTime ge 2024-05-01T00:00:00Z`
    #[serde(rename = "$filter")]
    #[param(rename = "$filter")]
    pub filter: Option<String>,
    /// Records per page (1–999, default 100).
    #[serde(rename = "$top")]
    #[param(rename = "$top")]
    pub top: Option<String>,
    /// The paging cursor of `@odata.nextLink`.
    #[serde(rename = "$skiptoken")]
    #[param(rename = "$skiptoken")]
    pub skip_token: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, message)
}

/// A quoted OData string literal (`'it''s'` is `it's`), and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut rest = text.strip_prefix('\'')?;
    let mut value = String::new();
    loop {
        let end = rest.find('\'')?;
        value.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('\'') {
            Some(after) => {
                value.push('\'');
                rest = after;
            }
            None => return Some((value, rest)),
        }
    }
}

/// Splits on ` and ` outside quotes.
fn clauses(filter: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut inside = false;
    let bytes = filter.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\'' {
            inside = !inside;
        } else if !inside
            && bytes.len() - index >= 5
            && bytes[index..index + 5].eq_ignore_ascii_case(b" and ")
        {
            parts.push(filter[start..index].trim());
            start = index + 5;
            index += 5;
            continue;
        }
        index += 1;
    }
    parts.push(filter[start..].trim());
    parts
}

/// Parses `$filter` into the store's query (only conditions the store can answer exactly).
pub fn parse_filter(filter: &str, query: &mut AuditQuery) -> Result<(), ApiError> {
    if filter.len() > MAX_FILTER_LENGTH {
        return Err(invalid(format!(
            "The $filter is longer than {MAX_FILTER_LENGTH} characters."
        )));
    }
    let parts = clauses(filter);
    if parts.len() > MAX_FILTER_CLAUSES {
        return Err(invalid(format!(
            "The $filter combines {} clauses; at most {MAX_FILTER_CLAUSES} are allowed.",
            parts.len()
        )));
    }
    for clause in parts {
        parse_clause(clause, query)?;
    }
    Ok(())
}

fn parse_clause(clause: &str, query: &mut AuditQuery) -> Result<(), ApiError> {
    let unsupported = || {
        invalid(format!(
            "The $filter clause '{clause}' is not supported: use activityDisplayName, category or result \
             with eq and a quoted value, activityDateTime with ge, gt, le or lt and a UTC date-time, or \
             targetResources/any(t:t/id eq '<guid>'), joined by 'and'."
        ))
    };
    if let Some(inner) = clause
        .strip_prefix("targetResources/any(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (variable, predicate) = inner.split_once(':').ok_or_else(unsupported)?;
        let variable = variable.trim();
        let predicate = predicate.trim();
        let rest = predicate
            .strip_prefix(variable)
            .and_then(|rest| rest.strip_prefix("/id eq "))
            .ok_or_else(unsupported)?;
        let text = rest.trim();
        let text = quoted(text)
            .filter(|(_, after)| after.trim().is_empty())
            .map(|(value, _)| value)
            .unwrap_or_else(|| text.to_string());
        let id =
            Uuid::try_parse(&text).map_err(|_| invalid(format!("'{text}' in the $filter is not a GUID.")))?;
        set_once(&mut query.target_id, id, "targetResources/any")?;
        return Ok(());
    }
    let mut words = clause.splitn(3, ' ');
    let (Some(property), Some(operator), Some(value)) = (words.next(), words.next(), words.next()) else {
        return Err(unsupported());
    };
    let operator = operator.to_ascii_lowercase();
    match property {
        "activityDisplayName" | "category" | "result" if operator == "eq" => {
            let (text, rest) = quoted(value.trim()).ok_or_else(|| {
                invalid(format!(
                    "The value of {property} in the $filter must be a quoted string."
                ))
            })?;
            if !rest.trim().is_empty() {
                return Err(unsupported());
            }
            let slot = match property {
                "activityDisplayName" => &mut query.activity,
                "category" => &mut query.category,
                _ => &mut query.result,
            };
            set_once(slot, text, property)
        }
        "activityDateTime" => {
            let at = parse_date_time(value.trim()).ok_or_else(|| {
                invalid(format!(
                    "'{}' is not a UTC date-time such as 2024-05-01T09:30:00Z.",
                    value.trim()
                ))
            })?;
            match operator.as_str() {
                "ge" => tighten_lower(query, at),
                "gt" => tighten_lower(query, at.saturating_add(1)),
                "le" => tighten_upper(query, at),
                "lt" => tighten_upper(query, at.saturating_sub(1)),
                _ => return Err(unsupported()),
            }
            Ok(())
        }
        _ => Err(unsupported()),
    }
}

fn set_once<T: PartialEq>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), ApiError> {
    match slot {
        Some(existing) if *existing != value => Err(invalid(format!(
            "The $filter compares {name} with two different values; nothing can match."
        ))),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn tighten_lower(query: &mut AuditQuery, at: i64) {
    query.since = Some(query.since.map_or(at, |since| since.max(at)));
}

fn tighten_upper(query: &mut AuditQuery, at: i64) {
    query.until = Some(query.until.map_or(at, |until| until.min(at)));
}

/// Turns the query string into the store's query.
pub fn audit_query(options: &AuditLogQuery) -> Result<AuditQuery, ApiError> {
    let mut query = AuditQuery {
        limit: 100,
        ..Default::default()
    };
    if let Some(top) = &options.top {
        let top: usize = top
            .trim()
            .parse()
            .ok()
            .filter(|top| (1..=MAX_TOP).contains(top))
            .ok_or_else(|| {
                invalid(format!(
                    "$top must be a whole number from 1 to {MAX_TOP}, not '{top}'."
                ))
            })?;
        query.limit = top;
    }
    if let Some(filter) = &options.filter {
        parse_filter(filter, &mut query)?;
    }
    if let Some(token) = &options.skip_token {
        let sequence: u64 = token
            .trim()
            .parse()
            .map_err(|_| invalid(format!("'{token}' is not a $skiptoken of this list.")))?;
        query.before_sequence = Some(sequence);
    }
    Ok(query)
}

/// The Graph shape of a stored record.
pub fn directory_audit(stored: &StoredAuditRecord) -> DirectoryAudit {
    let record = &stored.record;
    let initiated_by = AuditActivityInitiator {
        app: Some(AppIdentity {
            app_id: record.actor_id.map(|id| id.to_string()),
            display_name: record.actor_name.clone(),
            service_principal_id: record.actor_id.map(|id| id.to_string()),
            service_principal_name: Some(record.actor_name.clone()),
        }),
        user: None,
    };
    let target = TargetResource {
        id: record.target_id,
        display_name: record.target_name.clone(),
        resource_type: record.target_type.clone(),
        user_principal_name: (record.target_type == "User").then(|| record.target_name.clone()),
        modified_properties: record
            .modified_properties
            .iter()
            .map(|property| ModifiedProperty {
                display_name: property.display_name.clone(),
                old_value: property.old_value.clone(),
                new_value: property.new_value.clone(),
            })
            .collect(),
    };
    let mut additional_details = Vec::new();
    if !record.actor_role.is_empty() {
        additional_details.push(KeyValue {
            key: "InitiatorRole".to_string(),
            value: record.actor_role.clone(),
        });
    }
    DirectoryAudit {
        id: record.audit_id,
        category: record.category.clone(),
        correlation_id: record.request_id.clone(),
        result: record.result.clone(),
        result_reason: record.result_reason.clone(),
        activity_display_name: record.activity.clone(),
        activity_date_time: format_date_time(record.activity_date_time),
        logged_by_service: "Core Directory".to_string(),
        operation_type: record.operation_type.clone(),
        initiated_by,
        target_resources: vec![target],
        additional_details,
    }
}

/// List the audit log.
///
/// Graph-compatible: newest first; `$filter` by activity, category, result, date and target;
/// `$top` and `@odata.nextLink` paging. Needs a role that may read the audit log (Global
/// Administrator, Global Reader, Reports Reader, License and User Administrators).
#[utoipa::path(get, path = "/v1.0/auditLogs/directoryAudits", tag = "Graph: auditLogs", params(AuditLogQuery),
    responses(
        (status = 200, description = "A page of audit records, newest first", body = DirectoryAuditCollectionResponse),
        (status = 400, description = "An unsupported or invalid query", body = ErrorResponse),
    ))]
pub async fn list_directory_audits(
    tenant: Tenant,
    RequestOrigin(origin): RequestOrigin,
    axum::extract::Query(options): axum::extract::Query<AuditLogQuery>,
) -> Result<Json<DirectoryAuditCollectionResponse>, ApiError> {
    let query = audit_query(&options)?;
    let limit = query.limit;
    let records = tenant
        .with_store(move |store, tenant_id| {
            store
                .audit_records(tenant_id, &query)
                .map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
    let next_link = (records.len() == limit)
        .then(|| records.last().map(|last| last.sequence))
        .flatten()
        .map(|sequence| {
            let mut serializer = form_urlencoded::Serializer::new(String::new());
            if let Some(filter) = &options.filter {
                serializer.append_pair("$filter", filter);
            }
            serializer.append_pair("$top", &limit.to_string());
            serializer.append_pair("$skiptoken", &sequence.to_string());
            format!("{origin}/v1.0/auditLogs/directoryAudits?{}", serializer.finish())
        });
    Ok(Json(DirectoryAuditCollectionResponse {
        context: format!("{origin}/v1.0/$metadata#auditLogs/directoryAudits"),
        next_link,
        value: records.iter().map(directory_audit).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(filter: &str) -> Result<AuditQuery, ApiError> {
        audit_query(&AuditLogQuery {
            filter: Some(filter.to_string()),
            ..Default::default()
        })
    }

    #[test]
    fn the_supported_clauses_become_store_conditions() {
        let query = parsed(
            "activityDisplayName eq 'Change user license' and activityDateTime ge 2024-05-01T00:00:00Z \
             and activityDateTime lt 2024-05-02 and targetResources/any(t:t/id eq '6fd2c87f-b296-42f0-b197-1e91e994b900') \
             and result eq 'success'",
        )
        .expect("valid");
        assert_eq!(query.activity.as_deref(), Some("Change user license"));
        assert_eq!(query.result.as_deref(), Some("success"));
        assert_eq!(query.since, Some(1_714_521_600_000));
        assert_eq!(query.until, Some(1_714_607_999_999));
        assert_eq!(
            query.target_id,
            Some(Uuid::parse_str("6fd2c87f-b296-42f0-b197-1e91e994b900").expect("guid"))
        );
        assert_eq!(
            parsed("category eq 'it''s'").expect("valid").category.as_deref(),
            Some("it's")
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in [
            "activityDisplayName ne 'x'",
            "activityDisplayName eq x",
            "activityDisplayName eq 'x' or result eq 'y'",
            "activityDateTime ge yesterday",
            "targetResources/any(t:t/id eq 'not-a-guid')",
            "result eq 'a' and result eq 'b'",
            "initiatedBy/user/id eq 'x'",
            "",
        ] {
            assert!(parsed(bad).is_err(), "{bad}");
        }
        let many = ["result eq 'success'"; MAX_FILTER_CLAUSES + 1].join(" and ");
        assert!(parsed(&many).is_err());
        assert!(parsed(&"x".repeat(MAX_FILTER_LENGTH + 1)).is_err());
        for top in ["0", "1000", "-1", "ten"] {
            let options = AuditLogQuery {
                top: Some(top.to_string()),
                ..Default::default()
            };
            assert!(audit_query(&options).is_err(), "{top}");
        }
    }

    proptest::proptest! {
        /// Whatever the text, the parser answers (never panics), and what it accepts it accepted
        /// for a reason: every accepted clause set a condition.
        #[test]
        fn the_filter_parser_never_panics(filter in ".{0,200}") {
            let mut query = AuditQuery::default();
            if parse_filter(&filter, &mut query).is_ok() {
                let set = query.activity.is_some() || query.category.is_some() || query.result.is_some()
                    || query.target_id.is_some() || query.since.is_some() || query.until.is_some();
                proptest::prop_assert!(set, "accepted without a condition: {filter:?}");
            }
        }

        #[test]
        fn date_times_round_trip(milliseconds in -62_000_000_000_000i64..250_000_000_000_000i64) {
            let text = format_date_time(milliseconds);
            proptest::prop_assert_eq!(parse_date_time(&text), Some(milliseconds - milliseconds.rem_euclid(1_000)));
        }
    }
}
