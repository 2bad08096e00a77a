//! The OData subset licensd supports, done properly: `$select`, `$filter` ([`filter`]), `$top`,
//! `$count` (with `ConsistencyLevel: eventual`), `$orderby` and `$search` ([`query`]) on the
//! properties Graph allows, `$expand` of `members` / `memberOf`, server-side paging with an
//! absolute `@odata.nextLink` carrying `$skiptoken` (100 items per page by default). Query options are
//! bound to an entity's schema, so a query licensd cannot answer exactly is a Graph-style 400
//! rather than a silently wrong result. Percent-encoded and partially encoded queries are both
//! accepted (Microsoft's Python SDK encodes everything, its JavaScript client leaves `/():` as is).
//! The request itself is the caller's: it passes the raw query, whether `ConsistencyLevel:
//! eventual` was sent, and the origin and path of `@odata.nextLink`; a refusal is a [`QueryError`].

pub mod audit_filter;
pub mod csdl;
pub mod delta;
mod error;
pub mod filter;
pub mod patterns;
pub mod query;
pub mod reference;
mod selected;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use error::{QueryError, QueryErrorKind};
pub use filter::{Filter, FilterSubject, PropertyValue};
pub use query::{Expand, OrderBy, Search};

/// Items per page when the client gives no `$top`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest `$top` Graph accepts for directory objects.
pub const MAX_PAGE_SIZE: usize = 999;

/// The type of a property, for `$filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyKind {
    Text,
    Boolean,
    Guid,
    TextCollection,
    /// `assignedLicenses`: filtered on `skuId` through `any`.
    LicenseCollection,
    /// Objects and collections that can be selected but not filtered.
    Complex,
}

impl PropertyKind {
    /// The OData type name, for error messages.
    pub fn edm_name(&self) -> &'static str {
        match self {
            PropertyKind::Text => "Edm.String",
            PropertyKind::Boolean => "Edm.Boolean",
            PropertyKind::Guid => "Edm.Guid",
            PropertyKind::TextCollection => "Collection(Edm.String)",
            PropertyKind::LicenseCollection => "Collection(microsoft.graph.assignedLicense)",
            PropertyKind::Complex => "a complex value",
        }
    }
}

/// One property of an entity and what the query options may do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub kind: PropertyKind,
    pub filterable: bool,
    pub selectable: bool,
    /// Returned without `$select`.
    pub default: bool,
}

impl Property {
    /// Selectable, returned by default, filterable unless complex.
    pub const fn standard(name: &'static str, kind: PropertyKind) -> Property {
        Property {
            name,
            kind,
            filterable: !matches!(kind, PropertyKind::Complex),
            selectable: true,
            default: true,
        }
    }

    /// Returned only when named in `$select`; filterable (Graph's `department`, `city`, ...).
    pub const fn on_request(name: &'static str, kind: PropertyKind) -> Property {
        Property {
            name,
            kind,
            filterable: true,
            selectable: true,
            default: false,
        }
    }

    /// Returned only when named in `$select`; never filterable.
    pub const fn select_only(name: &'static str) -> Property {
        Property {
            name,
            kind: PropertyKind::Complex,
            filterable: false,
            selectable: true,
            default: false,
        }
    }

    /// Usable in `$filter` only (Graph's `hasMembersWithLicenseErrors`).
    pub const fn filter_only(name: &'static str, kind: PropertyKind) -> Property {
        Property {
            name,
            kind,
            filterable: true,
            selectable: false,
            default: false,
        }
    }
}

/// An entity type: its OData name, the entity set it lives in, and its properties.
#[derive(Debug)]
pub struct EntitySchema {
    pub type_name: &'static str,
    pub entity_set: &'static str,
    pub properties: &'static [Property],
}

impl EntitySchema {
    /// A property by name, ignoring case as Graph does.
    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties
            .iter()
            .find(|property| property.name.eq_ignore_ascii_case(name))
    }
}

/// Graph `user` as licensd serves it.
pub static USER_SCHEMA: EntitySchema = EntitySchema {
    type_name: "microsoft.graph.user",
    entity_set: "users",
    properties: &[
        Property::standard("id", PropertyKind::Guid),
        Property::standard("displayName", PropertyKind::Text),
        Property::standard("userPrincipalName", PropertyKind::Text),
        Property::standard("mail", PropertyKind::Text),
        Property::standard("accountEnabled", PropertyKind::Boolean),
        Property::standard("usageLocation", PropertyKind::Text),
        Property::standard("proxyAddresses", PropertyKind::TextCollection),
        Property::standard("assignedLicenses", PropertyKind::LicenseCollection),
        Property::standard("jobTitle", PropertyKind::Text),
        Property::standard("officeLocation", PropertyKind::Text),
        Property::on_request("department", PropertyKind::Text),
        Property::on_request("companyName", PropertyKind::Text),
        Property::on_request("city", PropertyKind::Text),
        Property::on_request("state", PropertyKind::Text),
        Property::on_request("country", PropertyKind::Text),
        Property::on_request("employeeId", PropertyKind::Text),
        Property::on_request("employeeType", PropertyKind::Text),
        Property::on_request("userType", PropertyKind::Text),
        Property::select_only("onPremisesExtensionAttributes"),
        Property::select_only("assignedPlans"),
        Property::select_only("licenseAssignmentStates"),
    ],
};

/// Graph `group` as licensd serves it.
pub static GROUP_SCHEMA: EntitySchema = EntitySchema {
    type_name: "microsoft.graph.group",
    entity_set: "groups",
    properties: &[
        Property::standard("id", PropertyKind::Guid),
        Property::standard("displayName", PropertyKind::Text),
        Property::standard("mailEnabled", PropertyKind::Boolean),
        Property::standard("securityEnabled", PropertyKind::Boolean),
        Property::standard("groupTypes", PropertyKind::TextCollection),
        Property::standard("assignedLicenses", PropertyKind::LicenseCollection),
        Property::standard("licenseProcessingState", PropertyKind::Complex),
        Property::standard("membershipRule", PropertyKind::Text),
        Property::standard("membershipRuleProcessingState", PropertyKind::Text),
        Property::filter_only("hasMembersWithLicenseErrors", PropertyKind::Boolean),
    ],
};

/// Graph `subscribedSku` (`$select` only, as in Graph).
pub static SUBSCRIBED_SKU_SCHEMA: EntitySchema = EntitySchema {
    type_name: "microsoft.graph.subscribedSku",
    entity_set: "subscribedSkus",
    properties: &[
        Property::standard("id", PropertyKind::Complex),
        Property::standard("accountId", PropertyKind::Complex),
        Property::standard("accountName", PropertyKind::Complex),
        Property::standard("appliesTo", PropertyKind::Complex),
        Property::standard("capabilityStatus", PropertyKind::Complex),
        Property::standard("consumedUnits", PropertyKind::Complex),
        Property::standard("prepaidUnits", PropertyKind::Complex),
        Property::standard("servicePlans", PropertyKind::Complex),
        Property::standard("skuId", PropertyKind::Complex),
        Property::standard("skuPartNumber", PropertyKind::Complex),
        Property::standard("subscriptionIds", PropertyKind::Complex),
    ],
};

/// Graph `licenseDetails` (`$select` only).
pub static LICENSE_DETAILS_SCHEMA: EntitySchema = EntitySchema {
    type_name: "microsoft.graph.licenseDetails",
    entity_set: "licenseDetails",
    properties: &[
        Property::standard("id", PropertyKind::Complex),
        Property::standard("servicePlans", PropertyKind::Complex),
        Property::standard("skuId", PropertyKind::Complex),
        Property::standard("skuPartNumber", PropertyKind::Complex),
    ],
};

/// Which query options an endpoint accepts; the others are answered 400.
#[derive(Clone, Copy, Debug)]
pub struct Supported {
    /// `$filter`, `$search` and `$orderby`.
    pub filter: bool,
    /// `$top`, `$skiptoken` and `$count`.
    pub paging: bool,
    /// `$expand` (of the navigation properties the schema allows).
    pub expand: bool,
}

impl Supported {
    /// Collections of users and groups: everything.
    pub const COLLECTION: Supported = Supported {
        filter: true,
        paging: true,
        expand: true,
    };
    /// A single user or group: `$select` and `$expand`.
    pub const ENTITY: Supported = Supported {
        filter: false,
        paging: false,
        expand: true,
    };
    /// Small fixed collections and other single entities: `$select` only.
    pub const SELECT_ONLY: Supported = Supported {
        filter: false,
        paging: false,
        expand: false,
    };
}

/// Which properties a response carries.
#[derive(Clone, Debug)]
pub struct Selection {
    pub schema: &'static EntitySchema,
    /// `None` without `$select`: the schema's default properties.
    pub explicit: Option<Vec<&'static str>>,
}

impl Selection {
    pub fn default_for(schema: &'static EntitySchema) -> Selection {
        Selection {
            schema,
            explicit: None,
        }
    }

    /// Whether the response carries a property (compute expensive ones only then).
    pub fn includes(&self, name: &str) -> bool {
        match &self.explicit {
            Some(names) => names.contains(&name),
            None => self
                .schema
                .property(name)
                .is_some_and(|property| property.default),
        }
    }

    /// Keeps the selected properties of a serialized entity (and its `@odata.type`).
    pub fn apply(&self, value: Value) -> Value {
        match value {
            Value::Object(mut object) => {
                // In place: the kept entries are not moved into a new map.
                object.retain(|key, _| key.starts_with("@odata.") || self.includes(key));
                Value::Object(object)
            }
            other => other,
        }
    }

    /// `(a,b)` after the entity set in `@odata.context` when `$select` was given.
    pub fn context_suffix(&self) -> String {
        match &self.explicit {
            Some(names) => format!("({})", names.join(",")),
            None => String::new(),
        }
    }
}

/// The query options of one request, bound to an entity's schema.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    pub selection: Selection,
    pub filter: Option<Filter>,
    pub search: Option<Search>,
    pub order_by: Option<OrderBy>,
    pub expand: Option<Expand>,
    pub top: Option<usize>,
    pub count: bool,
    skip_token: Option<SkipToken>,
    /// The options as given (canonical names, decoded values), to rebuild `@odata.nextLink`.
    given: Vec<(&'static str, String)>,
}

/// The `$skiptoken` of `@odata.nextLink` as [`SkipToken`] writes it, as a pattern (for the OpenAPI
/// document): every token it matches is read back.
pub const SKIP_TOKEN_PATTERN: &str = "^L1\\.[0-9]{1,9}\\.[0-9a-f]{32}$";

/// Where the next page starts: after `last_id` (or at `offset` if that item is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SkipToken {
    offset: usize,
    last_id: Uuid,
}

impl SkipToken {
    fn encode(&self) -> String {
        format!("L1.{}.{}", self.offset, self.last_id.simple())
    }

    fn decode(text: &str) -> Option<SkipToken> {
        let mut parts = text.split('.');
        let (Some("L1"), Some(offset), Some(last_id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(SkipToken {
            offset: offset.parse().ok()?,
            last_id: Uuid::try_parse(last_id).ok()?,
        })
    }
}

/// The query options Graph defines, by their canonical name.
const KNOWN_OPTIONS: &[&str] = &[
    "$select",
    "$filter",
    "$top",
    "$count",
    "$skiptoken",
    "$orderby",
    "$search",
    "$expand",
    "$skip",
    "$format",
    "$apply",
    "$compute",
    "$levels",
    "$deltatoken",
];

/// The canonical name of a query option (`$select` for `$select`, `$SELECT` or `select`), or
/// `None` for a parameter that is not an OData option.
fn canonical_option(key: &str) -> Result<Option<&'static str>, QueryError> {
    let bare = key.strip_prefix('$').unwrap_or(key);
    let known = KNOWN_OPTIONS
        .iter()
        .find(|option| option[1..].eq_ignore_ascii_case(bare))
        .copied();
    match known {
        Some(option) => Ok(Some(option)),
        None if key.starts_with('$') => Err(QueryError::invalid(format!(
            "The query parameter '{key}' is not supported."
        ))),
        None => Ok(None),
    }
}

impl QueryOptions {
    /// Parses the raw query string of a request for an endpoint serving `schema`;
    /// `consistency_eventual` says whether the request carries `ConsistencyLevel: eventual`
    /// (advanced queries need it).
    pub fn parse(
        raw_query: Option<&str>,
        consistency_eventual: bool,
        schema: &'static EntitySchema,
        supported: Supported,
    ) -> Result<QueryOptions, QueryError> {
        let mut options = QueryOptions {
            selection: Selection::default_for(schema),
            filter: None,
            search: None,
            order_by: None,
            expand: None,
            top: None,
            count: false,
            skip_token: None,
            given: Vec::new(),
        };
        // `+` means a space in query strings (form encoding); a literal plus arrives as %2B.
        for (key, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
            let Some(option) = canonical_option(&key)? else {
                continue;
            };
            if options.given.iter().any(|(given, _)| *given == option) {
                return Err(QueryError::invalid(format!(
                    "The query option '{option}' was specified more than once."
                )));
            }
            let value = value.into_owned();
            match option {
                "$select" => options.selection = parse_select(&value, schema)?,
                "$filter" if supported.filter => options.filter = Some(filter::parse(&value, schema)?),
                "$search" if supported.filter => options.search = Some(query::parse_search(&value, schema)?),
                "$orderby" if supported.filter => {
                    options.order_by = Some(query::parse_order_by(&value, schema)?)
                }
                "$expand" if supported.expand => options.expand = Some(query::parse_expand(&value, schema)?),
                "$top" if supported.paging => options.top = Some(parse_top(&value)?),
                "$count" if supported.paging => {
                    options.count = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(QueryError::invalid(format!(
                                "The value '{value}' of $count is not valid; use true or false."
                            )))
                        }
                    };
                }
                "$skiptoken" if supported.paging => {
                    options.skip_token = Some(SkipToken::decode(&value).ok_or_else(|| {
                        QueryError::invalid(
                            "The $skiptoken is not valid; follow the @odata.nextLink of the previous page.",
                        )
                    })?);
                }
                other => {
                    return Err(QueryError::unsupported(format!(
                        "The query option '{other}' is not supported on this resource."
                    )))
                }
            }
            options.given.push((option, value));
        }
        // A next page continues a query that was accepted with the header, so its link is enough
        // (Microsoft's PageIterator does not repeat request headers).
        let continued = options.skip_token.is_some();
        let eventual = continued || consistency_eventual;
        if options.count && !eventual {
            return Err(QueryError::unsupported(
                "$count requires the ConsistencyLevel header set to eventual (an advanced query).",
            ));
        }
        if options.search.is_some() && !eventual {
            return Err(QueryError::unsupported(
                "Request with $search query parameter only works with the request header 'ConsistencyLevel: eventual' (an advanced query).",
            ));
        }
        let advanced = eventual && (options.count || continued);
        if options.filter.as_ref().is_some_and(Filter::needs_advanced_query) && !advanced {
            return Err(QueryError::unsupported(
                "Counting a collection inside $filter (/$count) is an advanced query: it needs $count=true and the header 'ConsistencyLevel: eventual'.",
            ));
        }
        if let Some(order_by) = &options.order_by {
            query::check_order_by_is_allowed(
                order_by,
                options.filter.is_some(),
                options.search.is_some(),
                advanced,
            )?;
        }
        Ok(options)
    }

    /// Picks the page the request asks for out of all matching items (in a stable order).
    pub fn page<T>(&self, mut matching: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
        let total = matching.len();
        let start = match self.skip_token {
            None => 0,
            Some(token) => matching
                .iter()
                .position(|item| id_of(item) == token.last_id)
                .map(|position| position + 1)
                .unwrap_or(token.offset)
                .min(total),
        };
        let page_size = self.top.unwrap_or(DEFAULT_PAGE_SIZE);
        let end = start.saturating_add(page_size).min(total);
        let next = if end < total && end > start {
            Some(SkipToken {
                offset: end,
                last_id: id_of(&matching[end - 1]),
            })
        } else {
            None
        };
        matching.truncate(end);
        let items: Vec<T> = matching.drain(start..).collect();
        Page {
            items,
            total,
            next_skip_token: next.map(|token| token.encode()),
        }
    }

    /// The `(...)` after the entity set in `@odata.context`: the selected properties and the
    /// expanded navigation property (`users(displayName,memberOf())`).
    pub fn context_suffix(&self) -> String {
        let mut parts: Vec<String> = match &self.selection.explicit {
            Some(names) => names.iter().map(|name| name.to_string()).collect(),
            None => Vec::new(),
        };
        if let Some(expand) = &self.expand {
            parts.push(format!("{}()", expand.navigation));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("({})", parts.join(","))
        }
    }

    /// The items a collection query keeps, in the order it asks for: `$filter` and `$search`
    /// applied to each candidate, then `$orderby` (ties and unordered queries keep the
    /// candidates' order, which is stable, so `$skiptoken` positions hold).
    /// `subject_of` reads a candidate, failing with the caller's own error.
    pub fn arrange<S: FilterSubject, E>(
        &self,
        candidates: Vec<Uuid>,
        subject_of: impl Fn(Uuid) -> Result<S, E>,
    ) -> Result<Vec<Uuid>, E> {
        if self.filter.is_none() && self.search.is_none() && self.order_by.is_none() {
            return Ok(candidates);
        }
        let mut kept: Vec<(Uuid, Option<String>)> = Vec::new();
        for id in candidates {
            let subject = subject_of(id)?;
            if self
                .filter
                .as_ref()
                .is_some_and(|filter| !filter.matches(&subject))
            {
                continue;
            }
            if self
                .search
                .as_ref()
                .is_some_and(|search| !search.matches(&subject))
            {
                continue;
            }
            let key = self
                .order_by
                .as_ref()
                .and_then(|order_by| order_by.key_of(&subject));
            kept.push((id, key));
        }
        if let Some(order_by) = &self.order_by {
            kept.sort_by(|(_, left), (_, right)| order_by.compare(left.as_deref(), right.as_deref()));
        }
        Ok(kept.into_iter().map(|(id, _)| id).collect())
    }

    /// A collection response: `@odata.context`, `@odata.count` (with `$count=true`),
    /// `@odata.nextLink` (the request's `origin` and `path` with this query) when more pages
    /// follow, and `value`.
    pub fn collection_response(&self, context: String, origin: &str, path: &str, page: Page<Value>) -> Value {
        let mut response = Map::new();
        response.insert("@odata.context".to_string(), Value::String(context));
        if self.count {
            response.insert("@odata.count".to_string(), Value::from(page.total as u64));
        }
        if let Some(token) = &page.next_skip_token {
            response.insert(
                "@odata.nextLink".to_string(),
                Value::String(self.next_link(origin, path, token)),
            );
        }
        response.insert("value".to_string(), Value::Array(page.items));
        Value::Object(response)
    }

    /// The absolute address of the next page: this request's options plus `$skiptoken`.
    pub fn next_link(&self, origin: &str, path: &str, skip_token: &str) -> String {
        let mut query: Vec<String> = self
            .given
            .iter()
            .filter(|(option, _)| *option != "$skiptoken")
            .map(|(option, value)| format!("{option}={}", encode_value(value)))
            .collect();
        query.push(format!("$skiptoken={}", encode_value(skip_token)));
        format!("{origin}{path}?{}", query.join("&"))
    }
}

/// Characters left as they are in query values: RFC 3986's unreserved set.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

fn parse_top(value: &str) -> Result<usize, QueryError> {
    match value.trim().parse::<usize>() {
        Ok(top) if (1..=MAX_PAGE_SIZE).contains(&top) => Ok(top),
        _ => Err(QueryError::invalid(format!(
            "Invalid page size specified: '{value}'. Must be between 1 and {MAX_PAGE_SIZE} inclusive."
        ))),
    }
}

fn parse_select(value: &str, schema: &'static EntitySchema) -> Result<Selection, QueryError> {
    let mut names: Vec<&'static str> = Vec::new();
    for requested in value.split(',').map(str::trim) {
        if requested.is_empty() {
            return Err(QueryError::invalid(format!(
                "The $select value '{value}' has an empty property name."
            )));
        }
        if requested == "*" {
            for property in schema.properties.iter().filter(|property| property.selectable) {
                if !names.contains(&property.name) {
                    names.push(property.name);
                }
            }
            continue;
        }
        if requested.contains('/') {
            return Err(QueryError::unsupported(format!(
                "Selecting '{requested}' (a property path) is not supported."
            )));
        }
        let property = schema.property(requested).ok_or_else(|| {
            QueryError::invalid(format!(
                "Could not find a property named '{requested}' on type '{}'.",
                schema.type_name
            ))
        })?;
        if !property.selectable {
            return Err(QueryError::unsupported(format!(
                "The property '{}' can be used in $filter but not in $select.",
                property.name
            )));
        }
        if !names.contains(&property.name) {
            names.push(property.name);
        }
    }
    Ok(Selection {
        schema,
        explicit: Some(names),
    })
}

/// One page of a collection.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Matching items over all pages (for `@odata.count`).
    pub total: usize,
    pub next_skip_token: Option<String>,
}

impl<T> Page<T> {
    /// Converts the items of the page, keeping its position and total.
    pub fn try_map<U, E>(self, convert: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self
                .items
                .into_iter()
                .map(convert)
                .collect::<Result<Vec<U>, E>>()?,
            total: self.total,
            next_skip_token: self.next_skip_token,
        })
    }
}

/// Adds `@odata.context` to a single entity.
pub fn with_context(context: String, entity: Value) -> Value {
    match entity {
        Value::Object(mut object) => {
            object.insert("@odata.context".to_string(), Value::String(context));
            Value::Object(object)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<QueryOptions, QueryError> {
        QueryOptions::parse(Some(query), false, &USER_SCHEMA, Supported::COLLECTION)
    }

    #[test]
    fn fully_and_partially_encoded_filters_mean_the_same() {
        let encoded = parse(
            "%24filter=assignedLicenses%2Fany%28x%3Ax%2FskuId%20eq%206fd2c87f-b296-42f0-b197-1e91e994b900%29",
        )
        .expect("encoded");
        let partial =
            parse("$filter=assignedLicenses/any(x:x/skuId%20eq%206fd2c87f-b296-42f0-b197-1e91e994b900)")
                .expect("partial");
        assert_eq!(encoded.filter, partial.filter);
        assert!(encoded.filter.is_some());
    }

    #[test]
    fn select_is_validated_and_applied() {
        let options = parse("$select=displayName,licenseAssignmentStates").expect("valid");
        assert!(options.selection.includes("licenseAssignmentStates"));
        assert!(!options.selection.includes("id"));
        assert_eq!(
            options.selection.context_suffix(),
            "(displayName,licenseAssignmentStates)"
        );
        assert!(!Selection::default_for(&USER_SCHEMA).includes("licenseAssignmentStates"));
        assert_eq!(
            parse("$select=shoeSize").unwrap_err().kind,
            QueryErrorKind::Invalid
        );
        let group_error = QueryOptions::parse(
            Some("$select=hasMembersWithLicenseErrors"),
            false,
            &GROUP_SCHEMA,
            Supported::COLLECTION,
        )
        .unwrap_err();
        assert_eq!(group_error.kind, QueryErrorKind::Unsupported);
    }

    #[test]
    fn unsupported_options_are_refused() {
        assert_eq!(
            parse("$orderby=usageLocation").unwrap_err().kind,
            QueryErrorKind::Unsupported
        );
        assert_eq!(
            parse("$search=\"displayName:x\"").unwrap_err().kind,
            QueryErrorKind::Unsupported
        );
        assert_eq!(parse("$bogus=1").unwrap_err().kind, QueryErrorKind::Invalid);
        assert_eq!(parse("$top=0").unwrap_err().kind, QueryErrorKind::Invalid);
        assert_eq!(parse("$top=1000").unwrap_err().kind, QueryErrorKind::Invalid);
        assert_eq!(
            parse("$count=true").unwrap_err().kind,
            QueryErrorKind::Unsupported
        );
        assert_eq!(parse("$skiptoken=abc").unwrap_err().kind, QueryErrorKind::Invalid);
        assert_eq!(parse("$top=5&$top=6").unwrap_err().kind, QueryErrorKind::Invalid);
        let single = QueryOptions::parse(
            Some("$filter=displayName eq 'x'"),
            false,
            &USER_SCHEMA,
            Supported::SELECT_ONLY,
        )
        .unwrap_err();
        assert_eq!(single.kind, QueryErrorKind::Unsupported);
        assert!(parse("unrelated=1&select=id").is_ok());
    }

    #[test]
    fn the_skip_token_pattern_describes_the_tokens_written_and_read() {
        let written = SkipToken {
            offset: 123_456_789,
            last_id: Uuid::from_u128(u128::MAX),
        }
        .encode();
        let shape = |text: &str| {
            let mut parts = text.split('.');
            parts.next() == Some("L1")
                && parts.next().is_some_and(|offset| {
                    (1..=9).contains(&offset.len()) && offset.bytes().all(|byte| byte.is_ascii_digit())
                })
                && parts.next().is_some_and(|id| {
                    id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
                })
                && parts.next().is_none()
        };
        assert_eq!(SKIP_TOKEN_PATTERN, "^L1\\.[0-9]{1,9}\\.[0-9a-f]{32}$");
        assert!(shape(&written), "{written}");
        for matching in [
            written.as_str(),
            "L1.0.00000000000000000000000000000000",
            "L1.999999999.0123456789abcdef0123456789abcdef",
        ] {
            assert!(shape(matching));
            assert!(SkipToken::decode(matching).is_some(), "{matching}");
        }
    }

    #[test]
    fn count_needs_eventual_consistency() {
        let options = QueryOptions::parse(Some("$count=true"), true, &USER_SCHEMA, Supported::COLLECTION)
            .expect("valid");
        assert!(options.count);
    }

    #[test]
    fn pages_follow_each_other_and_survive_deletions() {
        let ids: Vec<Uuid> = (1..=250u128).map(Uuid::from_u128).collect();
        let first = parse("$top=100&$filter=startswith(displayName,'a')").expect("valid");
        let page = first.page(ids.clone(), |id| *id);
        assert_eq!(page.items.len(), 100);
        let token = page.next_skip_token.clone().expect("more pages");
        let link = first.next_link("http://127.0.0.1:1", "/v1.0/users", &token);
        assert!(link.starts_with("http://127.0.0.1:1/v1.0/users?$top=100&$filter=startswith%28displayName%2C%27a%27%29&$skiptoken=L1.100."), "{link}");
        let second = parse(&format!("$top=100&$skiptoken={token}")).expect("valid");
        // An item of the first page was deleted in between: nothing is skipped or repeated.
        let mut remaining = ids.clone();
        remaining.remove(3);
        let page = second.page(remaining, |id| *id);
        assert_eq!(page.items.first(), Some(&Uuid::from_u128(101)));
        let third = parse(&format!(
            "$top=100&$skiptoken={}",
            page.next_skip_token.expect("a third page")
        ))
        .expect("valid");
        let page = third.page(ids, |id| *id);
        assert_eq!(page.items.len(), 50);
        assert_eq!(page.next_skip_token, None);
    }
}
