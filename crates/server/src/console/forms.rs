//! Reading console requests: form bodies (`application/x-www-form-urlencoded`, repeated fields
//! for checkboxes), query strings, ids in the address — each failure a [`ConsoleError`] page —
//! and the rule that changes are POSTs from the console's own pages (a same-origin check against
//! cross-site request forgery), answered with a redirect (POST, redirect, GET).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use licensd_engine::Uuid;
use serde::de::DeserializeOwned;

use super::error::ConsoleError;

/// The fields of a form body, in order; a field may repeat (checkboxes).
#[derive(Clone, Debug, Default)]
pub struct FormFields {
    fields: Vec<(String, String)>,
}

impl FormFields {
    fn parse(bytes: &[u8]) -> FormFields {
        FormFields {
            fields: form_urlencoded::parse(bytes).into_owned().collect(),
        }
    }

    /// The first value of a field.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a field.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A field that must be present, trimmed.
    pub fn required(&self, name: &str, label: &str) -> Result<&str, ConsoleError> {
        self.first(name)
            .map(str::trim)
            .ok_or_else(|| ConsoleError::bad_request(format!("The form lacks the field {label}.")))
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = content_type.split(';').next().unwrap_or("").trim().to_string();
            if essence != "application/x-www-form-urlencoded" {
                return Err(ConsoleError::bad_request(format!(
                    "Console forms are sent as application/x-www-form-urlencoded, not '{essence}'."
                )));
            }
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            ConsoleError::bad_request(format!("The form could not be read: {}", rejection.body_text()))
        })?;
        let fields = FormFields::parse(&bytes);
        fields.check_lengths()?;
        Ok(fields)
    }
}

/// The longest value of the console's proxy-address field: one address a line, each within the
/// limit of any other field.
const MAX_PROXY_ADDRESSES_FIELD_LENGTH: usize = 64 * licensd_api_types::limits::DEFAULT_MAX_LENGTH;

impl FormFields {
    /// Every field within its length limit (the API's limits: no console field is a free text of
    /// its own), so a form cannot store or echo megabytes.
    fn check_lengths(&self) -> Result<(), ConsoleError> {
        for (name, value) in &self.fields {
            let limit = match name.as_str() {
                "proxy_addresses" => MAX_PROXY_ADDRESSES_FIELD_LENGTH,
                other => licensd_api_types::limits::max_length(other),
            };
            let length = value.chars().count();
            if length > limit || name.chars().count() > licensd_api_types::limits::MAX_PROPERTY_NAME_LENGTH {
                return Err(ConsoleError::bad_request(format!(
                    "The field {} is {length} characters long; at most {limit} are accepted.",
                    name.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(())
    }
}

/// The query string's fields.
#[derive(Clone, Debug, Default)]
pub struct QueryFields(pub FormFields);

impl QueryFields {
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0.first(name)
    }

    /// A field's trimmed value, `None` when absent or empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.first(name).map(str::trim).filter(|value| !value.is_empty())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryFields {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryFields(FormFields::parse(
            parts.uri.query().unwrap_or("").as_bytes(),
        )))
    }
}

/// Parameters of the address, with an error page when they cannot be decoded.
pub struct PathParameters<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParameters<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(parameters)| PathParameters(parameters))
            .map_err(|rejection| {
                ConsoleError::bad_request(format!("The address cannot be read: {}.", rejection.body_text()))
            })
    }
}

/// What an id in an address or a form names, for messages.
#[derive(Clone, Copy, Debug)]
pub enum IdKind {
    User,
    Group,
    Product,
    ServicePlan,
}

impl IdKind {
    pub fn noun(self) -> &'static str {
        match self {
            IdKind::User => "user",
            IdKind::Group => "group",
            IdKind::Product => "product",
            IdKind::ServicePlan => "service plan",
        }
    }
}

/// Parses a GUID, with a message naming what it should identify.
pub fn parse_id(text: &str, kind: IdKind) -> Result<Uuid, ConsoleError> {
    Uuid::try_parse(text.trim())
        .map_err(|_| ConsoleError::bad_request(format!("'{text}' is not a valid {} id.", kind.noun())))
}

/// A path on this site to return to after a change (`/...`, never another site).
pub fn local_path(value: &str) -> Option<String> {
    let value = value.trim();
    let is_local = value.starts_with('/')
        && !value.starts_with("//")
        && !value.starts_with("/\\")
        && value.len() <= 2048
        && !value.chars().any(|c| c.is_control() || c == '\\');
    is_local.then(|| value.to_string())
}

/// `303 See Other` to a page of the console (POST, redirect, GET).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// After a change: a redirect to `location`, or for htmx a full navigation there (`HX-Redirect`),
/// so the address never becomes the POST endpoint.
pub fn after_change(context: &super::context::ConsoleContext, location: &str) -> Response {
    if !context.is_htmx {
        return see_other(location);
    }
    let mut response = StatusCode::OK.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert("hx-redirect", value);
    }
    response
}

/// Refuses changes (anything but GET and HEAD) sent from another site: browsers say where a
/// request comes from in `Sec-Fetch-Site` and `Origin`, which pages of other sites cannot forge.
pub async fn same_origin_changes(request: Request, next: Next) -> Response {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD && !is_same_origin(request.headers()) {
        return ConsoleError::CrossSite.into_response();
    }
    next.run(request).await
}

fn is_same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let Some(origin) = text("origin") else {
        // Not a browser, or an old one: nothing says the request is cross-site.
        return true;
    };
    let Some(origin_host) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let hosts = [text("x-forwarded-host"), text("host")];
    hosts
        .into_iter()
        .flatten()
        .filter_map(|host| host.split(',').next())
        .any(|host| host.trim().eq_ignore_ascii_case(origin_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(local_path("/users/1?x=y"), Some("/users/1?x=y".to_string()));
        assert_eq!(local_path("//evil.example"), None);
        assert_eq!(local_path("/\\evil.example"), None);
        assert_eq!(local_path("https://evil.example"), None);
        assert_eq!(local_path("/a\nb"), None);
    }

    #[test]
    fn cross_site_changes_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(is_same_origin(&headers), "no browser headers: not cross-site");
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(is_same_origin(&headers));
        headers.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(!is_same_origin(&headers));
        headers.insert("origin", HeaderValue::from_static("null"));
        assert!(!is_same_origin(&headers));
        headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!is_same_origin(&headers));
    }

    #[test]
    fn overlong_fields_are_refused() {
        let long = "x".repeat(licensd_api_types::limits::DEFAULT_MAX_LENGTH + 1);
        let fields = FormFields::parse(format!("usage_location={long}").as_bytes());
        assert!(fields.check_lengths().is_err());
        let fields = FormFields::parse(format!("proxy_addresses={long}").as_bytes());
        assert!(fields.check_lengths().is_ok());
        let fields = FormFields::parse(b"usage_location=US");
        assert!(fields.check_lengths().is_ok());
    }

    #[test]
    fn repeated_fields_are_kept() {
        let fields = FormFields::parse(b"plan=a&plan=b&name=x%20y");
        assert_eq!(fields.all("plan").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(fields.first("name"), Some("x y"));
        assert!(fields.first("other").is_none());
    }
}
