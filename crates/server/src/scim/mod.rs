//! SCIM 2.0 provisioning (RFC 7643/7644) under `/scim/v2`, for identity providers such as
//! Microsoft Entra ID and Okta: discovery (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`),
//! `Users` and `Groups` with create, read, replace, PATCH, delete, filtered and paged lists and
//! `/.search`. Each route states what it reads or changes ([`guard`]). Every change is an engine command run through [`Tenant::execute`], the same path
//! (queue, audit, roles) as the Graph surface; attributes licensing does not model (`externalId`,
//! `name`, the enterprise extension…) are kept with the user or group as opaque directory
//! attributes ([`licensd_engine::Command::SetDirectoryAttributes`]). See `docs/scim.md`.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod groups;
mod guard;
pub mod patch;
pub mod schema;
pub mod users;

use std::hash::{Hash, Hasher};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use licensd_engine::{Command, CommandOutcome, Engine};
use serde_json::{json, Map, Value};

use self::error::ScimError;
use self::filter::{parse_filter, Filter, PatchPath};
use self::schema::{ResourceKind, Returned, LIST_RESPONSE};
use crate::api::{RequestOrigin, Tenant, MAX_BODY_BYTES};
use crate::AppState;

/// The media type of SCIM bodies.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// Where the SCIM endpoints live.
pub const BASE_PATH: &str = "/scim/v2";
/// The most resources one list answers (`filter.maxResults`).
pub const MAX_RESULTS: usize = 1000;

/// The `/scim/v2` routes, with SCIM errors for unknown addresses and methods.
pub fn router() -> Router<AppState> {
    let directory = || middleware::from_fn_with_state(guard::DIRECTORY, guard::guard);
    let reads = || middleware::from_fn_with_state(guard::READS_DIRECTORY, guard::guard);
    let changes = Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/Bulk", post(discovery::bulk))
        .route_layer(directory());
    let reads_only = Router::new()
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        // Searches change nothing although they are POSTs.
        .route("/Users/.search", post(users::search))
        .route("/Groups/.search", post(groups::search))
        .route("/.search", post(discovery::search_everything))
        .route_layer(reads());
    // Unknown addresses and methods under `/scim/v2` need a credential too: they say nothing
    // to anyone who has none.
    let scim = changes
        .merge(reads_only)
        .fallback(not_found.layer(directory()))
        .method_not_allowed_fallback(method_not_allowed.layer(directory()));
    Router::new().nest(BASE_PATH, scim)
}

async fn not_found() -> ScimError {
    ScimError::not_found("No SCIM endpoint at this address.")
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "This SCIM endpoint does not support this HTTP method.",
    )
}

/// A SCIM JSON answer with its status and optional `ETag` / `Location`.
pub struct ScimResponse {
    pub status: StatusCode,
    pub body: Value,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl ScimResponse {
    pub fn ok(body: Value) -> ScimResponse {
        ScimResponse {
            status: StatusCode::OK,
            body,
            etag: None,
            location: None,
        }
    }
}

impl IntoResponse for ScimResponse {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if let Some(etag) = self
            .etag
            .and_then(|etag| header::HeaderValue::from_str(&etag).ok())
        {
            headers.insert(header::ETAG, etag);
        }
        if let Some(location) = self
            .location
            .and_then(|location| header::HeaderValue::from_str(&location).ok())
        {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

/// The tenant of a SCIM request (the API's [`Tenant`], with SCIM errors).
pub struct ScimTenant(pub Tenant);

impl FromRequestParts<AppState> for ScimTenant {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Tenant::from_request_parts(parts, state)
            .await
            .map(ScimTenant)
            .map_err(ScimError::from)
    }
}

impl ScimTenant {
    /// Runs a query against the engine.
    pub async fn read<T, F>(&self, query: F) -> Result<T, ScimError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ScimError> + Send + 'static,
    {
        self.0
            .read(move |engine| Ok(query(engine)))
            .await
            .map_err(ScimError::from)?
    }

    /// Applies a command through the same path as the Graph surface.
    pub async fn execute(&self, command: Command) -> Result<CommandOutcome, ScimError> {
        self.0.execute(command).await.map_err(ScimError::from)
    }
}

/// The base URL of the SCIM service as the client addressed it (`…/scim/v2`).
pub struct ScimBase(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ScimBase {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RequestOrigin(origin) = RequestOrigin::from_request_parts(parts, state)
            .await
            .map_err(ScimError::from)?;
        Ok(ScimBase(format!("{origin}{BASE_PATH}")))
    }
}

/// A JSON request body: `application/scim+json` or `application/json` (or no content type).
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = content_type.split(';').next().unwrap_or("").trim().to_string();
            if !(essence == "application/json" || essence.ends_with("+json")) {
                return Err(ScimError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    None,
                    format!("The body must be application/scim+json or application/json, not '{essence}'."),
                ));
            }
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    format!("The body is larger than {MAX_BODY_BYTES} bytes."),
                )
            } else {
                ScimError::invalid_syntax(format!("The body could not be read: {}", rejection.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax(
                "The body is empty; a JSON object is expected.",
            ));
        }
        crate::api::extract::check_json_depth(&bytes).map_err(ScimError::invalid_syntax)?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|error| ScimError::invalid_syntax(format!("The body is not valid JSON: {error}.")))?;
        if let Some(overlong) = licensd_api_types::limits::find_overlong(&value) {
            return Err(ScimError::invalid_value(overlong.to_string()));
        }
        if !value.is_object() {
            return Err(ScimError::invalid_syntax("The body must be a JSON object."));
        }
        Ok(ScimBody(value))
    }
}

/// The query of a list or `/.search`: filter, attribute selection and paging.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub attributes: Vec<PatchPath>,
    pub excluded_attributes: Vec<PatchPath>,
    /// 1-based.
    pub start_index: usize,
    pub count: usize,
}

fn parse_paths(text: &str, kind: &ResourceKind) -> Result<Vec<PatchPath>, ScimError> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| filter::parse_patch_path(part, kind))
        .collect()
}

fn parse_number(name: &str, text: &str) -> Result<i64, ScimError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| ScimError::invalid_value(format!("'{name}' must be an integer, not '{text}'.")))
}

impl ListQuery {
    fn build(
        kind: &ResourceKind,
        filter: Option<&str>,
        attributes: Option<&str>,
        excluded: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
    ) -> Result<ListQuery, ScimError> {
        let attributes = attributes
            .map(|text| parse_paths(text, kind))
            .transpose()?
            .unwrap_or_default();
        let excluded_attributes = excluded
            .map(|text| parse_paths(text, kind))
            .transpose()?
            .unwrap_or_default();
        Ok(ListQuery {
            filter: filter
                .filter(|text| !text.trim().is_empty())
                .map(|text| parse_filter(text, kind))
                .transpose()?,
            attributes,
            excluded_attributes,
            start_index: start_index.unwrap_or(1).max(1) as usize,
            count: count.unwrap_or(100).clamp(0, MAX_RESULTS as i64) as usize,
        })
    }

    /// From the query string of a GET.
    pub fn from_query(query: Option<&str>, kind: &ResourceKind) -> Result<ListQuery, ScimError> {
        let mut filter = None;
        let mut attributes = None;
        let mut excluded = None;
        let mut start_index = None;
        let mut count = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.to_ascii_lowercase().as_str() {
                "filter" => filter = Some(value.into_owned()),
                "attributes" => attributes = Some(value.into_owned()),
                "excludedattributes" => excluded = Some(value.into_owned()),
                "startindex" => start_index = Some(parse_number("startIndex", &value)?),
                "count" => count = Some(parse_number("count", &value)?),
                _ => {}
            }
        }
        ListQuery::build(
            kind,
            filter.as_deref(),
            attributes.as_deref(),
            excluded.as_deref(),
            start_index,
            count,
        )
    }

    /// From a `SearchRequest` body.
    pub fn from_search(body: &Value, kind: &ResourceKind) -> Result<ListQuery, ScimError> {
        let object = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("A search body must be a JSON object."))?;
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match filter::get_ignoring_case(object, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(Value::Array(items)) => Ok(Some(
                    items
                        .iter()
                        .map(|item| item.as_str().map(str::to_string))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must list strings.")))?
                        .join(","),
                )),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "'{name}' must be a string or a list of strings."
                ))),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            match filter::get_ignoring_case(object, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(number)) => number
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be an integer."))),
                Some(Value::String(text)) => parse_number(name, text).map(Some),
                Some(_) => Err(ScimError::invalid_value(format!("'{name}' must be an integer."))),
            }
        };
        ListQuery::build(
            kind,
            text("filter")?.as_deref(),
            text("attributes")?.as_deref(),
            text("excludedAttributes")?.as_deref(),
            number("startIndex")?,
            number("count")?,
        )
    }

    /// Whether the answer needs `name` (so a costly attribute such as `members` is rendered only then).
    pub fn needs(&self, name: &str) -> bool {
        let named = |path: &PatchPath| {
            path.attr.urn.is_none() && !path.whole_extension && path.attr.name.eq_ignore_ascii_case(name)
        };
        if self.filter.as_ref().is_some_and(|filter| filter.mentions(name)) {
            return true;
        }
        if !self.attributes.is_empty() {
            return self.attributes.iter().any(named);
        }
        !self
            .excluded_attributes
            .iter()
            .any(|path| named(path) && path.attr.sub.is_none())
    }

    /// A `ListResponse` of the page of `total` matching resources.
    pub fn list_response(&self, total: usize, resources: Vec<Value>) -> Value {
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "startIndex": self.start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        })
    }

    /// The slice of `matching` this page shows.
    pub fn page<T: Clone>(&self, matching: &[T]) -> Vec<T> {
        matching
            .iter()
            .skip(self.start_index - 1)
            .take(self.count)
            .cloned()
            .collect()
    }
}

/// The `attributes` / `excludedAttributes` of a single-resource request.
pub fn selection_of(
    headers_query: Option<&str>,
    kind: &ResourceKind,
) -> Result<(Vec<PatchPath>, Vec<PatchPath>), ScimError> {
    let query = ListQuery::from_query(headers_query, kind)?;
    Ok((query.attributes, query.excluded_attributes))
}

fn returned_always(kind: &ResourceKind, name: &str) -> bool {
    name.eq_ignore_ascii_case("schemas")
        || kind
            .core_attribute(name)
            .is_some_and(|attribute| attribute.returned == Returned::Always)
}

/// Keeps what `attributes` asks for (plus what is always returned) or drops `excluded`.
pub fn project(
    resource: Value,
    attributes: &[PatchPath],
    excluded: &[PatchPath],
    kind: &ResourceKind,
) -> Value {
    let Value::Object(mut object) = resource else {
        return resource;
    };
    if !attributes.is_empty() {
        let mut kept = Map::new();
        for (key, value) in &object {
            if returned_always(kind, key) {
                kept.insert(key.clone(), value.clone());
            }
        }
        for path in attributes {
            copy_path(&object, &mut kept, path);
        }
        return Value::Object(kept);
    }
    for path in excluded {
        if path.whole_extension {
            object.retain(|key, _| !key.eq_ignore_ascii_case(&path.attr.name));
            continue;
        }
        if path.attr.urn.is_none() && returned_always(kind, &path.attr.name) {
            continue;
        }
        let container = match &path.attr.urn {
            Some(urn) => object
                .iter_mut()
                .find(|(key, _)| key.eq_ignore_ascii_case(urn))
                .and_then(|(_, value)| value.as_object_mut()),
            None => Some(&mut object),
        };
        let Some(container) = container else { continue };
        match &path.attr.sub {
            None => container.retain(|key, _| !key.eq_ignore_ascii_case(&path.attr.name)),
            Some(sub) => {
                if let Some((_, value)) = container
                    .iter_mut()
                    .find(|(key, _)| key.eq_ignore_ascii_case(&path.attr.name))
                {
                    let strip = |item: &mut Value| {
                        if let Value::Object(item) = item {
                            item.retain(|key, _| !key.eq_ignore_ascii_case(sub));
                        }
                    };
                    match value {
                        Value::Array(items) => items.iter_mut().for_each(strip),
                        other => strip(other),
                    }
                }
            }
        }
    }
    Value::Object(object)
}

fn copy_path(source: &Map<String, Value>, target: &mut Map<String, Value>, path: &PatchPath) {
    if path.whole_extension {
        if let Some((key, value)) = source
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(&path.attr.name))
        {
            target.insert(key.clone(), value.clone());
        }
        return;
    }
    let (source, target) = match &path.attr.urn {
        Some(urn) => {
            let Some((key, Value::Object(extension))) =
                source.iter().find(|(key, _)| key.eq_ignore_ascii_case(urn))
            else {
                return;
            };
            let entry = target
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(target) = entry else { return };
            (extension, target)
        }
        None => (source, target),
    };
    let Some((key, value)) = source
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(&path.attr.name))
    else {
        return;
    };
    match &path.attr.sub {
        None => {
            target.insert(key.clone(), value.clone());
        }
        Some(sub) => {
            let pick = |item: &Value| -> Option<Value> {
                let item = item.as_object()?;
                let (sub_key, sub_value) = item.iter().find(|(name, _)| name.eq_ignore_ascii_case(sub))?;
                let mut picked = Map::new();
                picked.insert(sub_key.clone(), sub_value.clone());
                Some(Value::Object(picked))
            };
            let picked = match value {
                Value::Array(items) => {
                    let items: Vec<Value> = items.iter().filter_map(pick).collect();
                    (!items.is_empty()).then_some(Value::Array(items))
                }
                other => pick(other),
            };
            if let Some(picked) = picked {
                match (target.get_mut(key), picked) {
                    (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
                    (_, picked) => {
                        target.insert(key.clone(), picked);
                    }
                }
            }
        }
    }
}

/// A weak ETag of a resource's content.
pub fn version_of(content: &impl Hash) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    format!("W/\"{:016x}\"", hasher.finish())
}

/// Refuses a change when `If-Match` names another version (412), as RFC 7644 §3.14 describes.
pub fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), ScimError> {
    let Some(expected) = headers
        .get(header::IF_MATCH)
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(());
    };
    let matches = expected.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag == current || tag.trim_start_matches("W/") == current.trim_start_matches("W/")
    });
    if matches {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("The resource's version is {current}, not {expected}: it changed since it was read."),
        ))
    }
}

/// Whether `If-None-Match` names the current version (a GET is then answered 304).
pub fn not_modified(headers: &HeaderMap, current: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(str::trim)
                .any(|tag| tag == current || tag == "*")
        })
}

/// The 304 answer.
pub fn not_modified_response(etag: String) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = header::HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER_RESOURCE;

    #[test]
    fn projection_keeps_what_is_asked_and_what_is_always_returned() {
        let user = json!({
            "schemas": ["s"], "id": "1", "userName": "a", "displayName": "A",
            "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D", "division": "V"}
        });
        let asked = parse_paths("userName,name.givenName,emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", &USER_RESOURCE).expect("paths");
        assert_eq!(
            project(user.clone(), &asked, &[], &USER_RESOURCE),
            json!({
                "schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "G"},
                "emails": [{"value": "a@x"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}
            })
        );
        let excluded = parse_paths("displayName,id,name.familyName", &USER_RESOURCE).expect("paths");
        let projected = project(user, &[], &excluded, &USER_RESOURCE);
        assert!(projected.get("displayName").is_none());
        assert_eq!(projected["id"], json!("1"), "id is always returned");
        assert_eq!(projected["name"], json!({"givenName": "G"}));
    }

    #[test]
    fn paging_and_counts_are_bounded() {
        let query = ListQuery::from_query(Some("startIndex=0&count=5000"), &USER_RESOURCE).expect("query");
        assert_eq!((query.start_index, query.count), (1, MAX_RESULTS));
        let query = ListQuery::from_query(Some("startIndex=3&count=2"), &USER_RESOURCE).expect("query");
        assert_eq!(query.page(&[1, 2, 3, 4, 5]), vec![3, 4]);
        assert!(ListQuery::from_query(Some("count=many"), &USER_RESOURCE).is_err());
        assert!(ListQuery::from_query(Some("filter=userName%20eq"), &USER_RESOURCE).is_err());
    }

    #[test]
    fn if_match_compares_versions() {
        let mut headers = HeaderMap::new();
        assert!(check_if_match(&headers, "W/\"1\"").is_ok());
        headers.insert(header::IF_MATCH, "W/\"2\"".parse().expect("header"));
        assert_eq!(
            check_if_match(&headers, "W/\"1\"").expect_err("stale").status,
            StatusCode::PRECONDITION_FAILED
        );
        assert!(check_if_match(&headers, "W/\"2\"").is_ok());
    }
}
