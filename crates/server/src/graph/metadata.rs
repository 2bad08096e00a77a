//! `GET /v1.0/$metadata`: the CSDL (OData's XML schema) of what licensd serves under `/v1.0`, the
//! document every `@odata.context` points to. It is generated from the same wire schemas as
//! `/openapi.json` (the utoipa components of `licensd-api-types`), so the two cannot drift: a
//! property added to `User` appears in both. What OpenAPI cannot say (keys, base types,
//! navigation properties, entity sets, bound actions) is the fixed table of the generator,
//! `licensd_protocols::odata::csdl`; this module serves what it writes.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use licensd_protocols::odata::csdl::csdl;

use crate::api::ApiError;

/// The document, built once from the OpenAPI document of this build.
fn document() -> &'static Result<String, String> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let openapi =
            serde_json::to_value(crate::openapi::api_router().1).map_err(|error| error.to_string())?;
        csdl(&openapi).map_err(|error| error.to_string())
    })
}

/// The service's metadata.
///
/// Graph-compatible: the CSDL (XML) of the entity types, entity sets and actions licensd serves
/// under `/v1.0`, generated from the same schemas as this OpenAPI document.
#[utoipa::path(get, path = "/v1.0/$metadata", tag = "Graph: metadata",
    responses(
        (status = 200, description = "The CSDL document", body = String, content_type = "application/xml"),
    ))]
pub async fn metadata_document() -> Response {
    match document() {
        Ok(xml) => ([(header::CONTENT_TYPE, "application/xml")], xml.clone()).into_response(),
        Err(error) => {
            ApiError::internal(format!("the $metadata document could not be built: {error}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_protocols::odata::csdl::ENTITY_TYPES;
    use serde_json::Value;

    #[test]
    fn every_property_of_the_wire_schemas_is_in_the_document() {
        let openapi = serde_json::to_value(crate::openapi::api_router().1).expect("serializes");
        let xml = csdl(&openapi).expect("a document");
        for entity in ENTITY_TYPES {
            let start = xml
                .find(&format!("<EntityType Name=\"{}\"", entity.name))
                .expect("the entity type");
            let end = start + xml[start..].find("</EntityType>").expect("closed");
            let section = &xml[start..end];
            let properties = openapi
                .pointer(&format!("/components/schemas/{}/properties", entity.schema))
                .and_then(Value::as_object)
                .expect("properties");
            for name in properties.keys().filter(|name| !name.starts_with('@')) {
                if entity.base.is_some() && name == "id" {
                    continue;
                }
                assert!(
                    section.contains(&format!("<Property Name=\"{name}\"")),
                    "{}.{name} is missing",
                    entity.name
                );
            }
        }
        assert!(xml.contains("<ComplexType Name=\"assignedLicense\">"));
        assert!(xml.contains("<Property Name=\"skuId\" Type=\"Edm.Guid\" Nullable=\"false\"/>"));
        assert!(xml.contains("<Property Name=\"disabledPlans\" Type=\"Collection(Edm.Guid)\"/>"));
    }
}
