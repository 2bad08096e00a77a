//! The OData surface's HTTP side: [`ODataRequest`] takes from a request what the query options
//! need (the raw query, `ConsistencyLevel`, the absolute origin and path for
//! `@odata.nextLink`), and a refused query becomes Graph's error envelope through one `From`
//! impl. The grammar itself — schemas, `$filter`, `$select`, `$orderby`, `$search`, `$expand`,
//! paging — is `licensd_protocols::odata`, re-exported here so the Graph handlers name it as
//! part of this surface.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use licensd_api_types::ErrorCode;
pub use licensd_protocols::odata::{
    filter, query, with_context, EntitySchema, FilterSubject, Page, PropertyValue, QueryError,
    QueryErrorKind, QueryOptions, Selection, Supported, GROUP_SCHEMA, LICENSE_DETAILS_SCHEMA,
    SUBSCRIBED_SKU_SCHEMA, USER_SCHEMA,
};
use serde_json::Value;

use crate::api::{ApiError, RequestOrigin};

impl From<QueryError> for ApiError {
    /// Graph answers both refusals 400: `Request_BadRequest` for a malformed query,
    /// `Request_UnsupportedQuery` for one licensd cannot answer exactly.
    fn from(error: QueryError) -> ApiError {
        let code = match error.kind {
            QueryErrorKind::Invalid => ErrorCode::InvalidQuery,
            QueryErrorKind::Unsupported => ErrorCode::UnsupportedQuery,
        };
        ApiError::new(code, error.message)
    }
}

/// Whether the request carries `ConsistencyLevel: eventual` (advanced queries need it).
pub fn consistency_is_eventual(headers: &HeaderMap) -> bool {
    headers
        .get("consistencylevel")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("eventual"))
}

/// What a collection endpoint needs from its request: the raw query, the headers (for
/// `ConsistencyLevel`) and the absolute origin and path (for `@odata.nextLink`).
#[derive(Clone, Debug)]
pub struct ODataRequest {
    pub raw_query: Option<String>,
    pub headers: HeaderMap,
    pub origin: String,
    pub path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ODataRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RequestOrigin(origin) = RequestOrigin::from_request_parts(parts, state).await?;
        Ok(ODataRequest {
            raw_query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
            origin,
            path: parts.uri.path().to_string(),
        })
    }
}

impl ODataRequest {
    pub fn options(
        &self,
        schema: &'static EntitySchema,
        supported: Supported,
    ) -> Result<QueryOptions, ApiError> {
        Ok(QueryOptions::parse(
            self.raw_query.as_deref(),
            consistency_is_eventual(&self.headers),
            schema,
            supported,
        )?)
    }

    /// `{origin}/v1.0/$metadata#{fragment}`.
    pub fn context(&self, fragment: &str) -> String {
        format!("{}/v1.0/$metadata#{fragment}", self.origin)
    }

    /// A collection response: `@odata.context`, `@odata.count` (with `$count=true`),
    /// `@odata.nextLink` when more pages follow, and `value`.
    pub fn collection(&self, options: &QueryOptions, fragment: &str, page: Page<Value>) -> Value {
        options.collection_response(self.context(fragment), &self.origin, &self.path, page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_needs_eventual_consistency() {
        let mut headers = HeaderMap::new();
        assert!(!consistency_is_eventual(&headers));
        headers.insert("ConsistencyLevel", "eventual".parse().expect("header"));
        assert!(consistency_is_eventual(&headers));
        let options = QueryOptions::parse(
            Some("$count=true"),
            consistency_is_eventual(&headers),
            &USER_SCHEMA,
            Supported::COLLECTION,
        )
        .expect("valid");
        assert!(options.count);
    }

    #[test]
    fn refused_queries_keep_graphs_codes_and_messages() {
        let invalid = ApiError::from(
            QueryOptions::parse(Some("$top=0"), false, &USER_SCHEMA, Supported::COLLECTION).unwrap_err(),
        );
        assert_eq!(invalid.code, ErrorCode::InvalidQuery);
        assert_eq!(
            invalid.message,
            "Invalid page size specified: '0'. Must be between 1 and 999 inclusive."
        );
        let unsupported = ApiError::from(
            QueryOptions::parse(Some("$count=true"), false, &USER_SCHEMA, Supported::COLLECTION).unwrap_err(),
        );
        assert_eq!(unsupported.code, ErrorCode::UnsupportedQuery);
    }
}
