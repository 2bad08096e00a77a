//! The query of a SCIM list or `/.search` (RFC 7644 §3.4.2, §3.4.3): `filter`,
//! `attributes` / `excludedAttributes` and `startIndex` / `count` read from a query string or a
//! `SearchRequest` body, the projection of a resource onto the attributes asked for, the page
//! of matching resources and the `ListResponse` around it.

use serde_json::{json, Map, Value};

use super::error::BadRequest;
use super::filter::{self, parse_filter, Filter, PatchPath};
use super::schema::{ResourceKind, Returned, LIST_RESPONSE};

/// The most resources one list answers (`filter.maxResults`).
pub const MAX_RESULTS: usize = 1000;

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

fn parse_paths(text: &str, kind: &ResourceKind) -> Result<Vec<PatchPath>, BadRequest> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| filter::parse_patch_path(part, kind))
        .collect()
}

fn parse_number(name: &str, text: &str) -> Result<i64, BadRequest> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| BadRequest::invalid_value(format!("'{name}' must be an integer, not '{text}'.")))
}

impl ListQuery {
    fn build(
        kind: &ResourceKind,
        filter: Option<&str>,
        attributes: Option<&str>,
        excluded: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
    ) -> Result<ListQuery, BadRequest> {
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
    pub fn from_query(query: Option<&str>, kind: &ResourceKind) -> Result<ListQuery, BadRequest> {
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
    pub fn from_search(body: &Value, kind: &ResourceKind) -> Result<ListQuery, BadRequest> {
        let object = body
            .as_object()
            .ok_or_else(|| BadRequest::invalid_syntax("A search body must be a JSON object."))?;
        let text = |name: &str| -> Result<Option<String>, BadRequest> {
            match filter::get_ignoring_case(object, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(Value::Array(items)) => Ok(Some(
                    items
                        .iter()
                        .map(|item| item.as_str().map(str::to_string))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| BadRequest::invalid_value(format!("'{name}' must list strings.")))?
                        .join(","),
                )),
                Some(_) => Err(BadRequest::invalid_value(format!(
                    "'{name}' must be a string or a list of strings."
                ))),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, BadRequest> {
            match filter::get_ignoring_case(object, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(number)) => number
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| BadRequest::invalid_value(format!("'{name}' must be an integer."))),
                Some(Value::String(text)) => parse_number(name, text).map(Some),
                Some(_) => Err(BadRequest::invalid_value(format!("'{name}' must be an integer."))),
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
) -> Result<(Vec<PatchPath>, Vec<PatchPath>), BadRequest> {
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
}
