//! The OpenAPI 3 document at `/openapi.json`, generated from the handlers' `#[utoipa::path]`
//! annotations and the wire types' schemas, so it covers exactly the routes that are served:
//! the router and the document are built together from the same list.

use axum::Router;
use licensd_api_types::ErrorResponse;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "licensd",
        description = "Group-based licensing with the Microsoft Graph v1.0 licensing surface under /v1.0 \
                       and licensd's own administration API under /licensd/v1. Errors use Graph's envelope.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "Graph: subscribedSkus", description = "Graph-compatible: the tenant's products and seats"),
        (name = "Graph: users", description = "Graph-compatible: users and their licenses"),
        (name = "Graph: groups", description = "Graph-compatible: groups, members and group licenses"),
        (name = "Graph: metadata", description = "Graph-compatible: the CSDL document every @odata.context points to"),
        (name = "Graph: directoryObjects", description = "Graph-compatible: users and groups by id"),
        (name = "Graph: auditLogs", description = "Graph-compatible: the audit log of every change and background run"),
        (name = "Graph: batch", description = "Graph-compatible: JSON batching, up to 20 requests in one call"),
        (name = "Graph: delta", description = "Graph-compatible: changes of users and groups since a delta token"),
        (name = "Graph: directory", description = "Graph-compatible: the tenant's subscriptions (companySubscription)"),
        (name = "licensd: tokens", description = "licensd extension: access tokens (Global Administrator only)"),
        (name = "licensd extensions to Graph", description = "Under /v1.0 but not in Graph"),
        (name = "licensd: catalog", description = "licensd extension: Microsoft's bundled product catalog"),
        (name = "licensd: products", description = "licensd extension: products, seats and subscription status"),
        (name = "licensd: service plans", description = "licensd extension: service plan rules"),
        (name = "licensd: tenant", description = "licensd extension: settings, overview, explanations"),
        (name = "licensd: spend", description = "licensd extension: prices, cost, idle seats, activity, seat history, reclamation and migration"),
    ),
    components(schemas(ErrorResponse)),
    modifiers(&SecurityAndStatuses),
    security(("bearer" = []))
)]
struct ApiDocument;

/// Statuses any authenticated operation can answer, whatever its handler does: the token
/// checks (401, 403) and the rate limit (429).
const EVERY_OPERATION: &[(&str, &str)] = &[
    ("401", "No token, or a malformed, unknown, expired or revoked one"),
    ("403", "The token's role may not make this request"),
    (
        "429",
        "Over the token's rate limit; `Retry-After` says when to retry",
    ),
];

/// Documented paths anyone may request (registered without a guard), documented without security.
const PUBLIC_PATHS: &[&str] = &["/v1.0/$metadata"];

/// Adds the bearer security scheme, and documents on every operation the statuses the layers
/// around the handlers answer (authentication, rate limit, body and address checks), so the
/// document lists every status the server can send.
struct SecurityAndStatuses;

impl utoipa::Modify for SecurityAndStatuses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A licensd access token (`licensd token create`)"))
                    .build(),
            ),
        );
    }
}

/// The error response every added status carries.
fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorResponse")))
                .build(),
        )
        .into()
}

/// Documents the statuses of the layers around the handlers on every operation of a document
/// (run after the routes are merged in).
fn document_layer_statuses(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str());
        let has_parameters = path.contains('{');
        let operations = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            let has_query = operation.parameters.as_ref().is_some_and(|parameters| {
                parameters
                    .iter()
                    .any(|parameter| parameter.parameter_in == utoipa::openapi::path::ParameterIn::Query)
            });
            let has_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(description));
            };
            if public {
                operation.security = Some(Vec::new());
                continue;
            }
            for (status, description) in EVERY_OPERATION {
                add(status, description);
            }
            if has_parameters || has_query || has_body {
                add("400", "An invalid request: query, address or body");
            }
            if has_parameters {
                add("404", "No such object");
            }
            if has_body {
                add("413", "A body over 1 MiB");
                add("415", "A body that is not application/json");
            }
        }
    }
}

/// The API routes (Graph and admin) and their OpenAPI document.
pub fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDocument::openapi())
        .merge(crate::graph::router())
        .merge(crate::admin::router())
        .split_for_parts();
    document.info.version = env!("CARGO_PKG_VERSION").to_string();
    document_layer_statuses(&mut document);
    (router, document)
}

/// The document as served: utoipa's document with the checks every request body passes written
/// into its request schemas (see [`crate::openapi_body_checks`]) and the values each query
/// option accepts (see [`crate::openapi_query_options`]), pretty-printed.
pub fn served_json(document: &utoipa::openapi::OpenApi) -> Result<String, serde_json::Error> {
    let mut json = serde_json::to_value(document)?;
    crate::openapi_body_checks::document_body_checks(&mut json);
    crate::openapi_query_options::document_query_options(&mut json);
    serde_json::to_string_pretty(&json)
}

/// The document as JSON.
pub fn document_json() -> Result<String, serde_json::Error> {
    served_json(&api_router().1)
}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is the committed copy of the document; it must match the code.
    /// `LICENSD_UPDATE_OPENAPI=1 cargo test -p licensd-server openapi` rewrites it.
    #[test]
    fn the_committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = format!("{}\n", super::document_json().expect("the document serializes"));
        if std::env::var_os("LICENSD_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date: run LICENSD_UPDATE_OPENAPI=1 cargo test -p licensd-server openapi"
        );
    }

    /// Replaces every `{parameter}` by `{}` so `{sku_id}` and `{skuId}` compare equal.
    fn without_parameter_names(path: &str) -> String {
        let mut result = String::new();
        let mut inside = false;
        for character in path.chars() {
            match character {
                '{' => {
                    inside = true;
                    result.push('{');
                }
                '}' => {
                    inside = false;
                    result.push('}');
                }
                _ if inside => {}
                other => result.push(other),
            }
        }
        result
    }

    /// `docs/api.md` has a section for every method and path of the document.
    #[test]
    fn docs_api_md_describes_every_route() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
        let documentation = std::fs::read_to_string(path).expect("docs/api.md");
        let headings: Vec<String> = documentation
            .lines()
            .filter_map(|line| line.strip_prefix("### `"))
            .map(|heading| {
                let heading = heading.trim_end_matches('`');
                let heading = heading.split('?').next().unwrap_or(heading);
                without_parameter_names(heading)
            })
            .collect();
        let document = super::api_router().1;
        for (route, item) in &document.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    let expected = format!("{method} {}", without_parameter_names(route));
                    assert!(
                        headings.contains(&expected),
                        "docs/api.md has no section for {expected}"
                    );
                }
            }
        }
    }
}
