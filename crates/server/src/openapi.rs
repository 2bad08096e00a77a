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
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDocument;

/// The API routes (Graph and admin) and their OpenAPI document.
pub fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDocument::openapi())
        .merge(crate::graph::router())
        .merge(crate::admin::router())
        .split_for_parts();
    document.info.version = env!("CARGO_PKG_VERSION").to_string();
    (router, document)
}

/// The document as JSON.
pub fn document_json() -> Result<String, serde_json::Error> {
    api_router().1.to_pretty_json()
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
