//! The entity an OData reference names: the `@odata.id` of a `$ref` body (`POST
//! /groups/{id}/members/$ref`), in any of the forms Graph's clients write — `…/directoryObjects/{id}`,
//! `…/users/{id}/`, the key syntax `…/directoryObjects('{id}')`, or a bare id.

use uuid::Uuid;

/// The id at the end of an `@odata.id`; `None` when it ends in no GUID.
pub fn referenced_id(odata_id: &str) -> Option<Uuid> {
    let last = odata_id
        .trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let inner = match (last.find("('"), last.strip_suffix("')")) {
        (Some(open), Some(without_close)) => &without_close[open + 2..],
        _ => last,
    };
    Uuid::try_parse(inner).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_the_object_in_any_of_graphs_forms() {
        let id = Uuid::from_u128(7);
        for reference in [
            format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"),
            format!("http://127.0.0.1:8080/v1.0/users/{id}/"),
            format!("https://graph.microsoft.com/v1.0/directoryObjects('{id}')"),
            id.to_string(),
        ] {
            assert_eq!(referenced_id(&reference), Some(id), "{reference}");
        }
        assert_eq!(
            referenced_id("https://graph.microsoft.com/v1.0/directoryObjects/nope"),
            None
        );
    }
}
