//! Graph `/v1.0/auditLogs/directoryAudits`: the tenant's audit log, newest first, in Graph's
//! `directoryAudit` shape. `$filter` (a conjunction of activity, category, result, date and target
//! conditions), `$top` and `$skiptoken` are parsed by `licensd_protocols::odata::audit_filter`
//! and become the store's audit query here; `@odata.nextLink` pages through it.

use axum::Json;
use licensd_api_types::audit::{
    AppIdentity, AuditActivityInitiator, DirectoryAudit, DirectoryAuditCollectionResponse, KeyValue,
    ModifiedProperty, TargetResource,
};
use licensd_api_types::time::format_date_time;
use licensd_api_types::ErrorResponse;
use licensd_protocols::odata::audit_filter::AuditLogOptions;
use licensd_store::{AuditQuery, StoredAuditRecord};

use crate::api::{ApiError, RequestOrigin, Tenant};

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

/// Reads the options of a raw query string (other parameters are ignored); an option given twice
/// is Graph's 400, as for the other collections.
pub fn parse_query(raw_query: Option<&str>) -> Result<AuditLogQuery, ApiError> {
    let mut options = AuditLogQuery::default();
    for (key, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        let slot = match key.as_ref() {
            "$filter" => &mut options.filter,
            "$top" => &mut options.top,
            "$skiptoken" => &mut options.skip_token,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::invalid_query(format!(
                "The query option '{key}' was specified more than once."
            )));
        }
    }
    Ok(options)
}

/// Turns the query string into the store's query.
pub fn audit_query(options: &AuditLogQuery) -> Result<AuditQuery, ApiError> {
    let parsed = AuditLogOptions::parse(
        options.filter.as_deref(),
        options.top.as_deref(),
        options.skip_token.as_deref(),
    )?;
    let filter = parsed.filter;
    Ok(AuditQuery {
        activity: filter.activity,
        category: filter.category,
        result: filter.result,
        target_id: filter.target_id,
        since: filter.since,
        until: filter.until,
        before_sequence: parsed.before_sequence,
        limit: parsed.top,
    })
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
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
) -> Result<Json<DirectoryAuditCollectionResponse>, ApiError> {
    let options = parse_query(raw_query.as_deref())?;
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

    #[test]
    fn the_options_are_read_once_each_and_others_ignored() {
        let options = parse_query(Some("%24filter=result+eq+%27success%27&$top=5&other=1"))
            .unwrap_or_else(|error| panic!("refused: {}", error.message));
        assert_eq!(options.filter.as_deref(), Some("result eq 'success'"));
        assert_eq!(options.top.as_deref(), Some("5"));
        assert_eq!(options.skip_token, None);
        assert_eq!(parse_query(None).ok(), Some(AuditLogQuery::default()));
        let twice = parse_query(Some("$top=null&$top=null"))
            .err()
            .map(|error| error.code.http_status());
        assert_eq!(twice, Some(400), "Graph's error shape, not the extractor's text");
    }
}
