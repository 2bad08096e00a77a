//! Discovery (RFC 7644 §4): `ServiceProviderConfig`, `ResourceTypes` and `Schemas`, generated from
//! the same definitions that check incoming resources; `/.search` across users and groups; and
//! `/Bulk`, which licensd does not support (501).

use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::error::ScimError;
use super::schema::{self, GROUP_RESOURCE, LIST_RESPONSE, SERVICE_PROVIDER_CONFIG_SCHEMA, USER_RESOURCE};
use super::{groups, project, users, ListQuery, ScimBase, ScimBody, ScimResponse, ScimTenant, MAX_RESULTS};
use crate::api::MAX_BODY_BYTES;

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `GET /ServiceProviderConfig`.
pub async fn service_provider_config(ScimBase(base): ScimBase) -> ScimResponse {
    ScimResponse::ok(json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "documentationUri": "https://github.com/licensd/licensd/blob/main/docs/scim.md",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": MAX_BODY_BYTES},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A licensd access token (for instance of the ProvisioningAgent role) in Authorization: Bearer <token>.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    }))
}

/// `GET /ResourceTypes`.
pub async fn resource_types(ScimBase(base): ScimBase) -> ScimResponse {
    ScimResponse::ok(list(vec![
        USER_RESOURCE.to_json(&base),
        GROUP_RESOURCE.to_json(&base),
    ]))
}

/// `GET /ResourceTypes/{id}`.
pub async fn resource_type(
    ScimBase(base): ScimBase,
    Path(id): Path<String>,
) -> Result<ScimResponse, ScimError> {
    [&USER_RESOURCE, &GROUP_RESOURCE]
        .into_iter()
        .find(|kind| kind.name.eq_ignore_ascii_case(&id))
        .map(|kind| ScimResponse::ok(kind.to_json(&base)))
        .ok_or_else(|| ScimError::not_found(format!("No resource type '{id}'.")))
}

/// Every ISO 3166-1 alpha-2 code the engine accepts: the `canonicalValues` of `usageLocation`
/// (the schemas take them from the caller, as they know nothing of the engine).
pub fn country_codes() -> Vec<String> {
    let mut codes = Vec::new();
    for first in b'A'..=b'Z' {
        for second in b'A'..=b'Z' {
            let code = String::from_utf8(vec![first, second]).unwrap_or_default();
            if licensd_engine::CountryCode::parse(&code).is_ok() {
                codes.push(code);
            }
        }
    }
    codes
}

/// `GET /Schemas`.
pub async fn schemas(ScimBase(base): ScimBase) -> ScimResponse {
    let countries = country_codes();
    ScimResponse::ok(list(
        schema::ALL
            .iter()
            .map(|schema| schema.to_json(&base, &countries))
            .collect(),
    ))
}

/// `GET /Schemas/{id}`.
pub async fn schema(ScimBase(base): ScimBase, Path(id): Path<String>) -> Result<ScimResponse, ScimError> {
    schema::by_id(&id)
        .map(|schema| ScimResponse::ok(schema.to_json(&base, &country_codes())))
        .ok_or_else(|| ScimError::not_found(format!("No schema '{id}'.")))
}

/// `POST /.search`: users and groups at once (users first). A filter or attribute that only one
/// resource type has leaves the other out; one that neither has is refused.
pub async fn search_everything(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let user_query = ListQuery::from_search(&body, &USER_RESOURCE);
    let group_query = ListQuery::from_search(&body, &GROUP_RESOURCE);
    let (user_query, group_query) = match (user_query, group_query) {
        (Err(error), Err(_)) => return Err(error.into()),
        (users, groups) => (users.ok(), groups.ok()),
    };
    // Which resources match and are on the page; then the activity of the page's users (read
    // from the store between the two reads of the engine); then the page rendered.
    let every_activity = match &user_query {
        Some(query) => users::activity_for_filter(&tenant, query).await?,
        None => None,
    };
    let render_base = base.clone();
    let (user_query, group_query, total, page, every_activity) = tenant
        .read(move |engine| {
            let parts = users::part_numbers(engine);
            let mut matching: Vec<(bool, licensd_engine::Uuid)> = Vec::new();
            if let Some(query) = &user_query {
                matching.extend(
                    users::matching_users(engine, query, &base, &parts, every_activity.as_ref())?
                        .into_iter()
                        .map(|id| (true, id)),
                );
            }
            if let Some(query) = &group_query {
                matching.extend(
                    groups::matching_groups(engine, query, &base)?
                        .into_iter()
                        .map(|id| (false, id)),
                );
            }
            let paging = user_query
                .as_ref()
                .or(group_query.as_ref())
                .ok_or_else(|| ScimError::internal("no query"))?;
            let page: Vec<(bool, licensd_engine::Uuid)> = paging.page(&matching).into_iter().collect();
            Ok((user_query, group_query, matching.len(), page, every_activity))
        })
        .await?;
    let activity = match every_activity {
        Some(activity) => activity,
        None => {
            let page_users = page
                .iter()
                .filter(|(is_user, _)| *is_user)
                .map(|(_, id)| *id)
                .collect();
            users::activities(&tenant, page_users).await?
        }
    };
    let base = render_base;
    let answer = tenant
        .read(move |engine| {
            let parts = users::part_numbers(engine);
            let paging = user_query
                .as_ref()
                .or(group_query.as_ref())
                .ok_or_else(|| ScimError::internal("no query"))?;
            let mut resources = Vec::new();
            for (is_user, id) in page {
                // A resource deleted between the two reads is left out.
                if is_user {
                    let query = user_query
                        .as_ref()
                        .ok_or_else(|| ScimError::internal("no user query"))?;
                    let Ok((user, _)) = users::render(engine, id, &base, &parts, activity.get(&id)) else {
                        continue;
                    };
                    resources.push(project(
                        user,
                        &query.attributes,
                        &query.excluded_attributes,
                        &USER_RESOURCE,
                    ));
                } else {
                    let query = group_query
                        .as_ref()
                        .ok_or_else(|| ScimError::internal("no group query"))?;
                    let Ok((group, _)) = groups::render(engine, id, &base, query.needs("members")) else {
                        continue;
                    };
                    resources.push(project(
                        group,
                        &query.attributes,
                        &query.excluded_attributes,
                        &GROUP_RESOURCE,
                    ));
                }
            }
            Ok(paging.list_response(total, resources))
        })
        .await?;
    Ok(ScimResponse::ok(answer))
}

/// `POST /Bulk`: not supported (`bulk.supported` is false).
pub async fn bulk() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "Bulk operations are not supported; send each change on its own.",
    )
}
