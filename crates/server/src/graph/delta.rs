//! Graph delta queries, `GET /v1.0/users/delta` and `GET /v1.0/groups/delta`, backed by the
//! store's change log (`tenant_changes`), so tokens survive restarts and work on any instance.
//!
//! A round without a token lists every object, page by page (`@odata.nextLink` with
//! `$skiptoken`), and ends with an `@odata.deltaLink` whose `$deltatoken` is the store version
//! the round started at. A round from a token lists the objects the writes after that version
//! touched — users whose properties, licenses, memberships or license states changed; groups
//! whose properties or licenses changed, and with `members` those a changed user belongs to —
//! and `{"id", "@removed": {"reason": "deleted"}}` for deleted ones. Every page of a round is
//! computed against the same upper version, carried in the `$skiptoken`. The tokens' text is
//! `licensd_protocols::odata::delta`'s, what a round lists is `licensd_runtime::delta`'s; this
//! module checks the tokens against the tenant, pages the entries and renders them.

use axum::http::HeaderMap;
use axum::Json;
use licensd_api_types::graph_sync::DeltaResponse;
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::{Engine, Uuid};
use licensd_protocols::odata::delta::{delta_token, parse_delta_token, preferred_page_size, DeltaPosition};
use licensd_runtime::delta::{changed_since, round_entries, Changed, DeltaEntry, DeltaError, DeltaKind};
use serde_json::{json, Map, Value};

use super::convert::{self, USER_TYPE};
use crate::api::{ApiError, Tenant};
use crate::odata::{
    consistency_is_eventual, ODataRequest, QueryOptions, Selection, Supported, GROUP_SCHEMA, USER_SCHEMA,
};

fn sync_state_not_found(reason: &str) -> ApiError {
    ApiError::new(
        ErrorCode::SyncStateNotFound,
        format!("The delta token is not valid: {reason}. Start a new delta round without a token."),
    )
}

impl From<DeltaError> for ApiError {
    /// A token the change log can no longer answer is Graph's `syncStateNotFound` (the client
    /// starts a new round); a store failure is the storage being unavailable.
    fn from(error: DeltaError) -> ApiError {
        match &error {
            DeltaError::LogCompacted | DeltaError::TooManyObjects => sync_state_not_found(&error.to_string()),
            DeltaError::Store(store_error) => ApiError {
                log_detail: Some(store_error.to_string()),
                ..ApiError::of(ErrorCode::StorageUnavailable)
            },
        }
    }
}

/// The options of a delta request: `$select`, then `$deltatoken` or `$skiptoken` (the
/// `$skiptoken` when both are given).
struct DeltaOptions {
    selection: Selection,
    /// `$select` as given, repeated in the links.
    select_text: Option<String>,
    /// Groups: whether `members@delta` is returned.
    members: bool,
    delta_token: Option<String>,
    skip_token: Option<String>,
}

fn parse_options(request: &ODataRequest, kind: DeltaKind) -> Result<DeltaOptions, ApiError> {
    let mut select_text = None;
    let mut delta_token = None;
    let mut skip_token = None;
    let mut others = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(request.raw_query.as_deref().unwrap_or("").as_bytes()) {
        let bare = key.strip_prefix('$').unwrap_or(&key).to_ascii_lowercase();
        let slot = match bare.as_str() {
            "deltatoken" => &mut delta_token,
            "skiptoken" => &mut skip_token,
            "select" => &mut select_text,
            _ => {
                others.append_pair(&key, &value);
                continue;
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::invalid_query(format!(
                "The query option '${bare}' was specified more than once."
            )));
        }
    }
    // A `$skiptoken` is a position inside a round, which already carries the versions the round
    // reflects: with both tokens it is the one followed, and the `$deltatoken` is ignored.
    if skip_token.is_some() {
        delta_token = None;
    }
    let schema = match kind {
        DeltaKind::Users => &USER_SCHEMA,
        DeltaKind::Groups => &GROUP_SCHEMA,
    };
    let mut members = kind == DeltaKind::Groups && select_text.is_none();
    let mut passed = others;
    if let Some(text) = &select_text {
        let properties: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|property| {
                let is_members = kind == DeltaKind::Groups && property.eq_ignore_ascii_case("members");
                members |= is_members;
                !is_members
            })
            .collect();
        // `id` is always returned; a `$select` of only `members` keeps the default properties
        // out, as Graph does.
        let properties = if properties.is_empty() {
            vec!["id"]
        } else {
            properties
        };
        passed.append_pair("$select", &properties.join(","));
    }
    let passed = passed.finish();
    let options = QueryOptions::parse(
        (!passed.is_empty()).then_some(passed.as_str()),
        consistency_is_eventual(&request.headers),
        schema,
        Supported::SELECT_ONLY,
    )?;
    Ok(DeltaOptions {
        selection: options.selection,
        select_text,
        members,
        delta_token,
        skip_token,
    })
}

/// `Prefer: odata.maxpagesize=N`, as Graph's delta queries take their page size.
fn page_size(headers: &HeaderMap) -> usize {
    preferred_page_size(
        headers
            .get_all("prefer")
            .iter()
            .filter_map(|value| value.to_str().ok()),
    )
}

/// Users changed since a delta token.
///
/// Graph-compatible delta query: without a token, every user page by page, then an
/// `@odata.deltaLink`; with its `$deltatoken`, the users changed since (license changes
/// included) and `@removed` entries for deleted ones. `$select`; page size by
/// `Prefer: odata.maxpagesize=N` (default 100). Tokens survive restarts.
#[utoipa::path(get, path = "/v1.0/users/delta", tag = "Graph: delta",
    params(
        ("$select" = Option<String>, Query, description = "Properties to return, comma separated"),
        ("$deltatoken" = Option<String>, Query, description = "From a previous round's `@odata.deltaLink`; `latest` for a link from now. Opaque: a token the server cannot resume (another tenant's, newer than its data, or compacted away) is answered 410 `syncStateNotFound`, as in Graph"),
        ("$skiptoken" = Option<String>, Query, description = "From `@odata.nextLink`; opaque, answered 410 like `$deltatoken` when it cannot be resumed. With both tokens, `$skiptoken` is followed and `$deltatoken` ignored"),
        ("Prefer" = Option<String>, Header, description = "`odata.maxpagesize=N`, 1 to 999"),
    ),
    responses(
        (status = 200, description = "A page of changed users", body = DeltaResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 410, description = "The token is no longer valid (`syncStateNotFound`)", body = ErrorResponse),
    ))]
pub async fn users_delta(tenant: Tenant, request: ODataRequest) -> Result<Json<Value>, ApiError> {
    delta(tenant, request, DeltaKind::Users).await
}

/// Groups changed since a delta token.
///
/// Graph-compatible delta query of groups, as for users; `members@delta` lists a returned
/// group's members (by default, or with `members` in `$select`).
#[utoipa::path(get, path = "/v1.0/groups/delta", tag = "Graph: delta",
    params(
        ("$select" = Option<String>, Query, description = "Properties to return, comma separated; `members` for `members@delta`"),
        ("$deltatoken" = Option<String>, Query, description = "From a previous round's `@odata.deltaLink`; `latest` for a link from now. Opaque: a token the server cannot resume (another tenant's, newer than its data, or compacted away) is answered 410 `syncStateNotFound`, as in Graph"),
        ("$skiptoken" = Option<String>, Query, description = "From `@odata.nextLink`; opaque, answered 410 like `$deltatoken` when it cannot be resumed. With both tokens, `$skiptoken` is followed and `$deltatoken` ignored"),
        ("Prefer" = Option<String>, Header, description = "`odata.maxpagesize=N`, 1 to 999"),
    ),
    responses(
        (status = 200, description = "A page of changed groups", body = DeltaResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 410, description = "The token is no longer valid (`syncStateNotFound`)", body = ErrorResponse),
    ))]
pub async fn groups_delta(tenant: Tenant, request: ODataRequest) -> Result<Json<Value>, ApiError> {
    delta(tenant, request, DeltaKind::Groups).await
}

async fn delta(tenant: Tenant, request: ODataRequest, kind: DeltaKind) -> Result<Json<Value>, ApiError> {
    let options = parse_options(&request, kind)?;
    let tenant_id = tenant.id();
    let runtime = tenant.runtime.clone();
    // The version is read before the engine, so the engine reflects at least that version and a
    // change racing with this request is returned again next round rather than lost.
    let current_version = tokio::task::spawn_blocking(move || runtime.version())
        .await
        .map_err(|error| ApiError::internal(format!("a delta task failed: {error}")))??;
    let position = match (&options.delta_token, &options.skip_token) {
        (Some(token), _) if token.eq_ignore_ascii_case("latest") => {
            return Ok(Json(links_only(
                &request,
                &options,
                kind,
                tenant_id,
                current_version,
            )));
        }
        (Some(token), _) => {
            let (token_tenant, version) =
                parse_delta_token(token).ok_or_else(|| sync_state_not_found("it is not a delta token"))?;
            if token_tenant != tenant_id {
                return Err(sync_state_not_found("it belongs to another tenant"));
            }
            DeltaPosition {
                tenant_id,
                after_version: Some(version),
                up_to_version: current_version,
                last_id: None,
                page_size: page_size(&request.headers),
            }
        }
        (None, Some(token)) => {
            let position = DeltaPosition::parse_skip_token(token)
                .ok_or_else(|| sync_state_not_found("the $skiptoken is malformed"))?;
            if position.tenant_id != tenant_id {
                return Err(sync_state_not_found("it belongs to another tenant"));
            }
            position
        }
        (None, None) => DeltaPosition {
            tenant_id,
            after_version: None,
            up_to_version: current_version,
            last_id: None,
            page_size: page_size(&request.headers),
        },
    };
    if position.up_to_version > current_version
        || position
            .after_version
            .is_some_and(|after| after > position.up_to_version)
    {
        return Err(sync_state_not_found(
            "it is newer than the tenant's data (a different or restored database)",
        ));
    }
    let changed = match position.after_version {
        None => None,
        Some(after) if after == position.up_to_version => Some(Changed::default()),
        Some(after) => Some(changes(&tenant, kind, after, position.up_to_version).await?),
    };
    let members = options.members;
    let selection = options.selection.clone();
    let (items, next) = tenant
        .read(move |engine| {
            let entries = round_entries(engine, kind, changed, members);
            let mut remaining = entries
                .into_iter()
                .filter(|entry| position.last_id.map_or(true, |last| entry.id() > last));
            let page: Vec<DeltaEntry> = remaining.by_ref().take(position.page_size).collect();
            let more = remaining.next().is_some();
            let mut products = None;
            let mut items = Vec::with_capacity(page.len());
            for entry in &page {
                items.push(match entry {
                    DeltaEntry::Removed(id) => json!({"id": id, "@removed": {"reason": "deleted"}}),
                    DeltaEntry::Present(id) => match kind {
                        DeltaKind::Users => {
                            convert::user_json(engine, *id, &selection, false, &mut products)?
                        }
                        DeltaKind::Groups => group_with_members(engine, *id, &selection, members)?,
                    },
                });
            }
            let next = more.then(|| DeltaPosition {
                last_id: page.last().map(DeltaEntry::id),
                ..position
            });
            Ok((items, next))
        })
        .await?;
    let mut response = Map::new();
    response.insert(
        "@odata.context".into(),
        Value::String(context(&request, &options, kind)),
    );
    match next {
        Some(next) => {
            response.insert(
                "@odata.nextLink".into(),
                Value::String(link(&request, &options, "$skiptoken", &next.skip_token())),
            );
        }
        None => {
            response.insert(
                "@odata.deltaLink".into(),
                Value::String(link(
                    &request,
                    &options,
                    "$deltatoken",
                    &delta_token(tenant_id, position.up_to_version),
                )),
            );
        }
    }
    response.insert("value".into(), Value::Array(items));
    Ok(Json(Value::Object(response)))
}

/// The ids the writes in `(after, up_to]` touched, present and deleted, from the change log.
async fn changes(tenant: &Tenant, kind: DeltaKind, after: u64, up_to: u64) -> Result<Changed, ApiError> {
    tenant
        .with_store(move |store, tenant_id| Ok(changed_since(store, tenant_id, kind, after, up_to)?))
        .await
}

/// A group with `members@delta` (its current members) when asked for.
fn group_with_members(
    engine: &Engine,
    group_id: Uuid,
    selection: &Selection,
    members: bool,
) -> Result<Value, ApiError> {
    let mut group = convert::group_json(engine, group_id, selection, false)?;
    if members {
        let member_ids = engine.group_members(group_id)?;
        let listed: Vec<Value> = member_ids
            .into_iter()
            .map(|id| json!({"@odata.type": USER_TYPE, "id": id}))
            .collect();
        if let Value::Object(object) = &mut group {
            object.insert("members@delta".into(), Value::Array(listed));
        }
    }
    Ok(group)
}

fn context(request: &ODataRequest, options: &DeltaOptions, kind: DeltaKind) -> String {
    let entity_set = match kind {
        DeltaKind::Users => "users",
        DeltaKind::Groups => "groups",
    };
    let suffix = options
        .select_text
        .as_deref()
        .map(|text| {
            format!(
                "({})",
                text.split(',').map(str::trim).collect::<Vec<_>>().join(",")
            )
        })
        .unwrap_or_default();
    // Graph names the entity set of the objects, as for a plain list.
    request.context(&format!("{entity_set}{suffix}"))
}

/// `{origin}{path}?$select=...&{token_name}={token}`, with the `$` of the options kept as Graph
/// writes its links.
fn link(request: &ODataRequest, options: &DeltaOptions, token_name: &str, token: &str) -> String {
    let encode = |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    let mut query = String::new();
    if let Some(select) = &options.select_text {
        query.push_str(&format!("$select={}&", encode(select)));
    }
    query.push_str(&format!("{token_name}={}", encode(token)));
    format!("{}{}?{query}", request.origin, request.path)
}

/// The answer to `$deltatoken=latest`: no objects, a delta link from now.
fn links_only(
    request: &ODataRequest,
    options: &DeltaOptions,
    kind: DeltaKind,
    tenant_id: Uuid,
    version: u64,
) -> Value {
    json!({
        "@odata.context": context(request, options, kind),
        "@odata.deltaLink": link(request, options, "$deltatoken", &delta_token(tenant_id, version)),
        "value": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> ODataRequest {
        ODataRequest {
            raw_query: Some(query.to_string()),
            headers: HeaderMap::new(),
            origin: "http://127.0.0.1:1".to_string(),
            path: "/v1.0/users/delta".to_string(),
        }
    }

    #[test]
    fn with_both_tokens_the_skip_token_is_followed() {
        let options = parse_options(
            &request("$deltatoken=latest&$skiptoken=a.all.1.start.5"),
            DeltaKind::Users,
        )
        .unwrap_or_else(|error| panic!("refused: {}", error.message));
        assert_eq!(options.delta_token, None);
        assert_eq!(options.skip_token.as_deref(), Some("a.all.1.start.5"));
        let alone = parse_options(&request("$deltatoken=latest"), DeltaKind::Groups)
            .unwrap_or_else(|error| panic!("refused: {}", error.message));
        assert_eq!(alone.delta_token.as_deref(), Some("latest"));
        assert!(parse_options(&request("$skiptoken=a&$skiptoken=b"), DeltaKind::Users).is_err());
    }
}
