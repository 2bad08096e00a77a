//! `/Users`: SCIM users mapped onto licensd's users. `userName` ↔ user principal name (a name
//! without `@` becomes `name@scim.invalid` and reads back as given), `displayName`, `active` ↔
//! account enabled, `emails` ↔ SMTP proxy addresses (primary `SMTP:`, others `smtp:`; other proxy
//! addresses are kept), usage location from the licensing extension's `usageLocation` or else the
//! work address's `country`; licenses read-only in the licensing extension; `title` ↔ jobTitle,
//! `userType`, and the enterprise extension's `department`, `employeeNumber` ↔ employeeId and
//! `organization` ↔ companyName are the user's directory attributes (what Graph shows and
//! dynamic membership rules read). Every other attribute (`externalId`, `name`, …) is kept as
//! given.

use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use licensd_engine::{
    Command, CountryCode, Engine, NewUser, ProxyAddress, UserAttribute, UserAttributeValues, UserChanges,
    UserView, Uuid,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::error::ScimError;
use super::patch::{apply, canonicalize, parse_patch_request};
use super::schema::{
    ACTIVITY_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, LICENSING_USER_SCHEMA, USER_RESOURCE, USER_SCHEMA,
};
use super::{
    check_if_match, not_modified, not_modified_response, project, selection_of, version_of, ListQuery,
    ScimBase, ScimBody, ScimResponse, ScimTenant,
};
use crate::activity::{store_activity, ActivityChange};
use crate::api::PathParameters;
use licensd_api_types::time::{format_date_time, parse_date_time};
use licensd_store::UserActivityRecord;

/// The domain given to `userName`s that are not user principal names (reserved: never real).
pub const NON_UPN_DOMAIN: &str = "scim.invalid";

/// The user principal name of a SCIM `userName`.
pub fn upn_of_user_name(user_name: &str) -> Result<String, ScimError> {
    if user_name.trim().is_empty() {
        return Err(ScimError::invalid_value("userName must not be empty."));
    }
    if user_name.contains('@') {
        let reserved = user_name
            .to_ascii_lowercase()
            .ends_with(&format!("@{NON_UPN_DOMAIN}"));
        if reserved {
            return Err(ScimError::invalid_value(format!(
                "userName must not end with @{NON_UPN_DOMAIN}: licensd keeps that domain for user names without '@'."
            )));
        }
        return Ok(user_name.to_string());
    }
    Ok(format!("{user_name}@{NON_UPN_DOMAIN}"))
}

/// The SCIM `userName` of a user principal name.
pub fn user_name_of_upn(upn: &str) -> &str {
    let suffix_start = upn.len().saturating_sub(NON_UPN_DOMAIN.len() + 1);
    match upn.get(suffix_start..) {
        Some(suffix) if suffix.eq_ignore_ascii_case(&format!("@{NON_UPN_DOMAIN}")) => &upn[..suffix_start],
        _ => upn,
    }
}

/// What the directory attributes of a user hold (a JSON text the engine never reads).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredUser {
    /// SCIM attributes licensing does not model, canonicalized (emails too, for their type and display).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    /// Modelled attributes the client did not set (`displayName`, `active`), so they read back unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
}

impl StoredUser {
    pub fn load(engine: &Engine, user_id: Uuid) -> StoredUser {
        engine
            .directory_attributes(user_id)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }

    fn to_text(&self) -> Result<Option<String>, ScimError> {
        if self == &StoredUser::default() {
            return Ok(None);
        }
        serde_json::to_string(self)
            .map(Some)
            .map_err(|error| ScimError::internal(format!("directory attributes do not serialize: {error}")))
    }

    fn is_unset(&self, name: &str) -> bool {
        self.unset.iter().any(|unset| unset == name)
    }
}

/// Product part numbers by id, for the licensing extension.
pub fn part_numbers(engine: &Engine) -> HashMap<Uuid, String> {
    engine
        .sku_usages()
        .into_iter()
        .map(|usage| (usage.sku_id, usage.sku_part_number))
        .collect()
}

/// The emails of a user: its SMTP proxy addresses, with the type and display the client gave.
fn emails_of(view: &UserView, stored: &StoredUser) -> Vec<Value> {
    let given = stored.attributes.get("emails").and_then(Value::as_array);
    view.proxy_addresses
        .iter()
        .filter_map(|address| {
            let (prefix, value) = address.as_str().split_once(':')?;
            if !prefix.eq_ignore_ascii_case("smtp") {
                return None;
            }
            let primary = address.is_primary_smtp();
            let entry = given.and_then(|given| {
                given.iter().find(|email| {
                    email
                        .get("value")
                        .and_then(Value::as_str)
                        .is_some_and(|given| given.eq_ignore_ascii_case(value))
                })
            });
            let mut email = match entry {
                Some(Value::Object(entry)) => entry.clone(),
                _ => Map::new(),
            };
            email.insert("value".into(), json!(value));
            if primary || email.contains_key("primary") {
                email.insert("primary".into(), json!(primary));
            }
            Some(Value::Object(email))
        })
        .collect()
}

/// Core SCIM attributes that are licensd directory attributes.
const CORE_ATTRIBUTES: [(&str, UserAttribute); 2] = [
    ("title", UserAttribute::JOB_TITLE),
    ("userType", UserAttribute::USER_TYPE),
];

/// Enterprise extension attributes that are licensd directory attributes.
const ENTERPRISE_ATTRIBUTES: [(&str, UserAttribute); 3] = [
    ("department", UserAttribute::DEPARTMENT),
    ("employeeNumber", UserAttribute::EMPLOYEE_ID),
    ("organization", UserAttribute::COMPANY_NAME),
];

/// The directory attributes a SCIM document gives (an empty string is no value).
fn mapped_attributes(document: &Map<String, Value>) -> UserAttributeValues {
    let mut values = UserAttributeValues::new();
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    for (name, attribute) in CORE_ATTRIBUTES {
        if let Some(value) = text(document.get(name)) {
            values.insert(attribute, value);
        }
    }
    if let Some(Value::Object(enterprise)) = document.get(ENTERPRISE_USER_SCHEMA) {
        for (name, attribute) in ENTERPRISE_ATTRIBUTES {
            // A value Graph's attribute cannot hold (an `employeeNumber` longer than
            // `employeeId`'s 16 characters) stays a SCIM attribute only, as before the mapping.
            if let Some(value) =
                text(enterprise.get(name)).filter(|value| attribute.check_value(value).is_ok())
            {
                values.insert(attribute, value);
            }
        }
    }
    values
}

/// Shows the user's directory attributes (the truth, whoever set them) in the SCIM document.
fn show_mapped_attributes(user: &mut Map<String, Value>, view: &UserView) {
    for (name, attribute) in CORE_ATTRIBUTES {
        match view.attributes.get(&attribute) {
            Some(value) => {
                user.insert(name.into(), json!(value));
            }
            None => {
                user.remove(name);
            }
        }
    }
    let mut enterprise = match user.remove(ENTERPRISE_USER_SCHEMA) {
        Some(Value::Object(enterprise)) => enterprise,
        _ => Map::new(),
    };
    for (name, attribute) in ENTERPRISE_ATTRIBUTES {
        match view.attributes.get(&attribute) {
            Some(value) => {
                enterprise.insert(name.into(), json!(value));
            }
            None => {
                // A stored value the attribute could hold was mapped, so it was cleared since;
                // one it could not hold never was (see `mapped_attributes`): it stays.
                let mappable = enterprise
                    .get(name)
                    .and_then(Value::as_str)
                    .map_or(true, |value| attribute.check_value(value.trim()).is_ok());
                if mappable {
                    enterprise.remove(name);
                }
            }
        }
    }
    if !enterprise.is_empty() {
        user.insert(ENTERPRISE_USER_SCHEMA.into(), Value::Object(enterprise));
    }
}

/// The full SCIM representation of a user and its version; `activity` is the user's stored
/// activity (the activity extension), when the caller read it.
pub fn render(
    engine: &Engine,
    user_id: Uuid,
    base: &str,
    parts: &HashMap<Uuid, String>,
    activity: Option<&UserActivityRecord>,
) -> Result<(Value, String), ScimError> {
    let view = engine.user_view(user_id).map_err(|_| not_found(user_id))?;
    let stored = StoredUser::load(engine, user_id);
    let mut user = Map::new();
    user.insert("id".into(), json!(user_id));
    for (key, value) in &stored.attributes {
        if key != "emails" {
            user.insert(key.clone(), value.clone());
        }
    }
    show_mapped_attributes(&mut user, &view);
    user.insert(
        "userName".into(),
        json!(user_name_of_upn(&view.user_principal_name)),
    );
    if !stored.is_unset("displayName") {
        user.insert("displayName".into(), json!(view.display_name));
    }
    if !stored.is_unset("active") {
        user.insert("active".into(), json!(view.account_enabled));
    }
    let emails = emails_of(&view, &stored);
    if !emails.is_empty() {
        user.insert("emails".into(), Value::Array(emails));
    }
    let mut groups = Vec::new();
    for group_id in &view.member_of {
        let group = engine
            .group_view(*group_id)
            .map_err(|error| ScimError::internal(error.to_string()))?;
        groups.push(json!({
            "value": group_id,
            "$ref": format!("{base}/Groups/{group_id}"),
            "display": group.display_name,
            "type": "direct",
        }));
    }
    if !groups.is_empty() {
        user.insert("groups".into(), Value::Array(groups));
    }
    let mut licensing = Map::new();
    if let Some(location) = view.usage_location {
        licensing.insert("usageLocation".into(), json!(location.as_str()));
    }
    let part = |sku_id: &Uuid| parts.get(sku_id).cloned().unwrap_or_default();
    let assigned: Vec<Value> = engine
        .user_assigned_licenses(user_id)
        .map_err(|error| ScimError::internal(error.to_string()))?
        .into_iter()
        .map(|license| json!({"skuId": license.sku_id, "skuPartNumber": part(&license.sku_id), "disabledPlans": license.disabled_plans}))
        .collect();
    if !assigned.is_empty() {
        licensing.insert("assignedLicenses".into(), Value::Array(assigned));
    }
    let states: Vec<Value> = engine
        .user_license_states(user_id)
        .map_err(|error| ScimError::internal(error.to_string()))?
        .into_iter()
        .map(|state| {
            let mut entry = json!({
                "skuId": state.sku_id,
                "skuPartNumber": part(&state.sku_id),
                "state": state.state.as_str(),
                "error": state.error.map_or("None", |kind| kind.as_str()),
            });
            if let Some(group) = state.assigned_by_group {
                entry["assignedByGroup"] = json!(group);
            }
            entry
        })
        .collect();
    if !states.is_empty() {
        licensing.insert("licenseAssignmentStates".into(), Value::Array(states));
    }
    let mut schemas = vec![json!(USER_SCHEMA)];
    if user.contains_key(ENTERPRISE_USER_SCHEMA) {
        schemas.push(json!(ENTERPRISE_USER_SCHEMA));
    }
    if !licensing.is_empty() {
        schemas.push(json!(LICENSING_USER_SCHEMA));
        user.insert(LICENSING_USER_SCHEMA.into(), Value::Object(licensing));
    }
    let mut activity_extension = Map::new();
    if let Some(activity) = activity {
        if let Some(at) = activity.last_sign_in {
            activity_extension.insert("lastSignInDateTime".into(), json!(format_date_time(at)));
        }
        if let Some(at) = activity.leave_date {
            activity_extension.insert("employeeLeaveDateTime".into(), json!(format_date_time(at)));
        }
    }
    if !activity_extension.is_empty() {
        schemas.push(json!(ACTIVITY_USER_SCHEMA));
        user.insert(ACTIVITY_USER_SCHEMA.into(), Value::Object(activity_extension));
    }
    user.insert("schemas".into(), Value::Array(schemas));
    let version = version_of(&Value::Object(user.clone()).to_string());
    user.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "location": format!("{base}/Users/{user_id}"),
            "version": version,
        }),
    );
    Ok((Value::Object(user), version))
}

fn not_found(user_id: impl std::fmt::Display) -> ScimError {
    ScimError::not_found(format!("No user {user_id}."))
}

/// A user as a client wants it, in licensd's terms.
#[derive(Debug)]
pub struct DesiredUser {
    pub user_principal_name: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub proxy_addresses: Vec<ProxyAddress>,
    pub usage_location: Option<CountryCode>,
    /// Directory attributes the document gives (title, department, ...).
    pub attributes: UserAttributeValues,
    pub stored: StoredUser,
    /// The activity extension's dates when the document has the extension (`None`: it has not;
    /// a date absent or null in it is cleared).
    pub activity: Option<ActivityDates>,
}

/// The activity extension's dates: (last sign-in, leave date), milliseconds since the epoch.
pub type ActivityDates = (Option<i64>, Option<i64>);

/// The dates of the activity extension, if the document has it.
fn activity_of(extension: Option<Value>) -> Result<Option<ActivityDates>, ScimError> {
    let Some(extension) = extension else {
        return Ok(None);
    };
    let Value::Object(extension) = extension else {
        return Err(ScimError::invalid_value(format!(
            "{ACTIVITY_USER_SCHEMA} must be an object."
        )));
    };
    let date = |name: &str| -> Result<Option<i64>, ScimError> {
        match extension.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => parse_date_time(text.trim()).map(Some).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "{name} '{text}' is not a date-time such as 2026-11-30T09:00:00Z."
                ))
            }),
            Some(other) => Err(ScimError::invalid_value(format!(
                "{name} must be a date-time string, not {other}."
            ))),
        }
    };
    Ok(Some((
        date("lastSignInDateTime")?,
        date("employeeLeaveDateTime")?,
    )))
}

fn work_country(addresses: Option<&Value>) -> Option<CountryCode> {
    let addresses = addresses?.as_array()?;
    let work = addresses
        .iter()
        .find(|address| {
            address
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| kind.eq_ignore_ascii_case("work"))
        })
        .or_else(|| {
            (addresses.len() == 1)
                .then(|| &addresses[0])
                .filter(|address| address.get("type").is_none())
        })?;
    CountryCode::parse(work.get("country")?.as_str()?.trim()).ok()
}

/// Reads a client's user (a POST or PUT body, or the result of a PATCH). `kept_addresses` are
/// the user's proxy addresses that are not email (SIP:, X500:…), which SCIM leaves alone.
pub fn desired_user(document: &Value, kept_addresses: &[ProxyAddress]) -> Result<DesiredUser, ScimError> {
    let Value::Object(document) = document else {
        return Err(ScimError::invalid_syntax("A user must be a JSON object."));
    };
    let mut attributes = canonicalize(document, &USER_RESOURCE)?;
    let user_name = match attributes.remove("userName") {
        Some(Value::String(user_name)) => user_name,
        _ => return Err(ScimError::invalid_value("userName is required.")),
    };
    let user_principal_name = upn_of_user_name(&user_name)?;
    let mut unset = Vec::new();
    let display_name = match attributes.remove("displayName") {
        Some(Value::String(display_name)) if !display_name.trim().is_empty() => display_name,
        _ => {
            unset.push("displayName".to_string());
            user_name.split('@').next().unwrap_or(&user_name).to_string()
        }
    };
    let account_enabled = match attributes.remove("active") {
        Some(Value::Bool(active)) => active,
        _ => {
            unset.push("active".to_string());
            true
        }
    };
    attributes.remove("password");
    let mut proxy_addresses = Vec::new();
    if let Some(emails) = attributes.get("emails").and_then(Value::as_array) {
        for email in emails {
            let Some(value) = email.get("value").and_then(Value::as_str) else {
                return Err(ScimError::invalid_value("Each email needs a 'value'."));
            };
            let primary = email.get("primary") == Some(&Value::Bool(true));
            let text = format!("{}:{}", if primary { "SMTP" } else { "smtp" }, value.trim());
            let address = ProxyAddress::parse(&text).map_err(|error| {
                ScimError::invalid_value(format!("The email '{value}' is not usable: {error}."))
            })?;
            if proxy_addresses
                .iter()
                .any(|existing: &ProxyAddress| existing.normalized() == address.normalized())
            {
                return Err(ScimError::invalid_value(format!(
                    "The email '{value}' is listed twice."
                )));
            }
            proxy_addresses.push(address);
        }
    }
    for address in kept_addresses {
        if !proxy_addresses
            .iter()
            .any(|existing| existing.normalized() == address.normalized())
        {
            proxy_addresses.push(address.clone());
        }
    }
    let licensing = attributes.remove(LICENSING_USER_SCHEMA);
    let activity = activity_of(attributes.remove(ACTIVITY_USER_SCHEMA))?;
    let usage_location = match licensing
        .as_ref()
        .and_then(|licensing| licensing.get("usageLocation"))
        .and_then(Value::as_str)
    {
        Some(text) => Some(CountryCode::parse(text.trim()).map_err(|_| {
            ScimError::invalid_value(format!(
                "usageLocation '{text}' is not an ISO 3166-1 alpha-2 country code (such as US or NL)."
            ))
        })?),
        None => work_country(attributes.get("addresses")),
    };
    let directory_attributes = mapped_attributes(&attributes);
    Ok(DesiredUser {
        attributes: directory_attributes,
        user_principal_name,
        display_name,
        account_enabled,
        proxy_addresses,
        usage_location,
        stored: StoredUser { attributes, unset },
        activity,
    })
}

/// The proxy addresses SCIM does not manage (not SMTP).
fn non_email_addresses(view: &UserView) -> Vec<ProxyAddress> {
    view.proxy_addresses
        .iter()
        .filter(|address| {
            !address
                .as_str()
                .split_once(':')
                .is_some_and(|(prefix, _)| prefix.eq_ignore_ascii_case("smtp"))
        })
        .cloned()
        .collect()
}

/// The users matching a query, in creation order. `activity` is every user's stored activity
/// when the filter reads the activity extension ([`activity_for_filter`]).
pub(super) fn matching_users(
    engine: &Engine,
    query: &ListQuery,
    base: &str,
    parts: &HashMap<Uuid, String>,
    activity: Option<&HashMap<Uuid, UserActivityRecord>>,
) -> Result<Vec<Uuid>, ScimError> {
    let Some(filter) = &query.filter else {
        return Ok(engine.user_ids());
    };
    if let Some(user_name) = filter.top_level_equality("userName") {
        let Ok(upn) = upn_of_user_name(user_name) else {
            return Ok(Vec::new());
        };
        return Ok(engine.user_by_principal_name(&upn).into_iter().collect());
    }
    if let Some(id) = filter.top_level_equality("id") {
        return Ok(Uuid::try_parse(id)
            .ok()
            .filter(|id| engine.user_view(*id).is_ok())
            .into_iter()
            .collect());
    }
    let external_id = filter.top_level_equality("externalId");
    let mut kept = Vec::new();
    for user_id in engine.user_ids() {
        if let Some(external_id) = external_id {
            // Cheap pre-check: the value must appear in the stored attributes.
            if !engine
                .directory_attributes(user_id)
                .is_some_and(|text| text.contains(&external_id.replace('\\', "\\\\").replace('"', "\\\"")))
            {
                continue;
            }
        }
        let user_activity = activity.and_then(|activity| activity.get(&user_id));
        let (user, _) = render(engine, user_id, base, parts, user_activity)?;
        if filter.matches(&user, &USER_RESOURCE) {
            kept.push(user_id);
        }
    }
    Ok(kept)
}

async fn list_users(tenant: ScimTenant, base: String, query: ListQuery) -> Result<ScimResponse, ScimError> {
    let page_base = base.clone();
    let every_activity = activity_for_filter(&tenant, &query).await?;
    let (query, total, page, every_activity) = tenant
        .read(move |engine| {
            let parts = part_numbers(engine);
            let matching = matching_users(engine, &query, &page_base, &parts, every_activity.as_ref())?;
            let page: Vec<Uuid> = query.page(&matching).into_iter().collect();
            Ok((query, matching.len(), page, every_activity))
        })
        .await?;
    let activity = match every_activity {
        Some(activity) => activity,
        None => activities(&tenant, page.clone()).await?,
    };
    let body = tenant
        .read(move |engine| {
            let parts = part_numbers(engine);
            let mut resources = Vec::new();
            for user_id in page {
                // A user deleted between the two reads is left out.
                let Ok((user, _)) = render(engine, user_id, &base, &parts, activity.get(&user_id)) else {
                    continue;
                };
                resources.push(project(
                    user,
                    &query.attributes,
                    &query.excluded_attributes,
                    &USER_RESOURCE,
                ));
            }
            Ok(query.list_response(total, resources))
        })
        .await?;
    Ok(ScimResponse::ok(body))
}

/// Every user's stored activity when the query's filter reads the activity extension (so that
/// the users are matched as they render), else `None`.
pub(super) async fn activity_for_filter(
    tenant: &ScimTenant,
    query: &ListQuery,
) -> Result<Option<HashMap<Uuid, UserActivityRecord>>, ScimError> {
    if !query
        .filter
        .as_ref()
        .is_some_and(|filter| filter.mentions_extension(ACTIVITY_USER_SCHEMA))
    {
        return Ok(None);
    }
    tenant
        .0
        .with_store(move |store, tenant_id| {
            Ok(store
                .all_user_activity(tenant_id)
                .map_err(storage)?
                .into_iter()
                .map(|record| (record.user_id, record))
                .collect())
        })
        .await
        .map(Some)
        .map_err(ScimError::from)
}

/// The stored activity of these users (those with none are absent).
pub(super) async fn activities(
    tenant: &ScimTenant,
    user_ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, UserActivityRecord>, ScimError> {
    if user_ids.is_empty() {
        return Ok(HashMap::new());
    }
    tenant
        .0
        .with_store(move |store, tenant_id| {
            let mut found = HashMap::new();
            for user_id in user_ids {
                if let Some(record) = store.user_activity(tenant_id, user_id).map_err(storage)? {
                    found.insert(user_id, record);
                }
            }
            Ok(found)
        })
        .await
        .map_err(ScimError::from)
}

fn storage(error: licensd_store::StoreError) -> crate::api::ApiError {
    crate::api::ApiError {
        log_detail: Some(error.to_string()),
        ..crate::api::ApiError::of(licensd_api_types::ErrorCode::StorageUnavailable)
    }
}

/// Stores the activity a document gave (as the admin API's activity routes do, audited).
async fn save_activity(
    tenant: &ScimTenant,
    user_id: Uuid,
    user_principal_name: String,
    activity: ActivityDates,
) -> Result<(), ScimError> {
    let caller = tenant.0.caller.clone();
    let change = ActivityChange {
        user_id,
        user_principal_name,
        last_sign_in: Some(activity.0),
        leave_date: Some(activity.1),
    };
    tenant
        .0
        .with_store(move |store, tenant_id| {
            store_activity(store, tenant_id, &caller, &[change]).map_err(storage)
        })
        .await
        .map_err(ScimError::from)?;
    Ok(())
}

/// `GET /Users`: `filter`, `attributes`/`excludedAttributes`, `startIndex`/`count`.
pub async fn list(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    RawQuery(query): RawQuery,
) -> Result<ScimResponse, ScimError> {
    let query = ListQuery::from_query(query.as_deref(), &USER_RESOURCE)?;
    list_users(tenant, base, query).await
}

/// `POST /Users/.search`.
pub async fn search(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let query = ListQuery::from_search(&body, &USER_RESOURCE)?;
    list_users(tenant, base, query).await
}

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::try_parse(id.trim()).map_err(|_| not_found(id))
}

/// Renders a user for an answer, honouring `attributes`/`excludedAttributes`.
async fn answer(
    tenant: &ScimTenant,
    user_id: Uuid,
    base: String,
    query: Option<String>,
    status: StatusCode,
) -> Result<ScimResponse, ScimError> {
    let (attributes, excluded) = selection_of(query.as_deref(), &USER_RESOURCE)?;
    let activity = activities(tenant, vec![user_id]).await?.remove(&user_id);
    let (user, version) = tenant
        .read(move |engine| render(engine, user_id, &base, &part_numbers(engine), activity.as_ref()))
        .await?;
    let location = user["meta"]["location"].as_str().map(str::to_string);
    Ok(ScimResponse {
        status,
        body: project(user, &attributes, &excluded, &USER_RESOURCE),
        etag: Some(version),
        location: (status == StatusCode::CREATED).then_some(location).flatten(),
    })
}

/// `POST /Users`: 201 with the user; a taken `userName` is 409 `uniqueness`.
pub async fn create(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    RawQuery(query): RawQuery,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let desired = desired_user(&body, &[])?;
    let attributes = desired.stored.to_text()?;
    check_attribute_size(attributes.as_deref())?;
    let user_id = Uuid::new_v4();
    let activity = desired.activity;
    let user_principal_name = desired.user_principal_name.clone();
    tenant
        .execute(Command::CreateUser(NewUser {
            id: user_id,
            user_principal_name: desired.user_principal_name,
            display_name: desired.display_name,
            usage_location: desired.usage_location,
            proxy_addresses: desired.proxy_addresses,
            account_enabled: desired.account_enabled,
            attributes: desired.attributes,
        }))
        .await?;
    if attributes.is_some() {
        if let Err(error) = tenant
            .execute(Command::SetDirectoryAttributes {
                object_id: user_id,
                attributes,
            })
            .await
        {
            // Keep create all-or-nothing: the user without its attributes is taken back.
            if let Err(undo) = tenant.execute(Command::DeleteUser { user_id }).await {
                tracing::error!(%user_id, %undo, "could not undo a half-created SCIM user");
            }
            return Err(error);
        }
    }
    if let Some(activity) = activity {
        save_activity(&tenant, user_id, user_principal_name, activity).await?;
    }
    answer(&tenant, user_id, base, query, StatusCode::CREATED).await
}

fn check_attribute_size(text: Option<&str>) -> Result<(), ScimError> {
    match text {
        Some(text) if text.len() > licensd_engine::MAX_DIRECTORY_ATTRIBUTES_BYTES => {
            Err(ScimError::invalid_value(format!(
                "The user's attributes take {} bytes, more than the {} licensd keeps per user.",
                text.len(),
                licensd_engine::MAX_DIRECTORY_ATTRIBUTES_BYTES
            )))
        }
        _ => Ok(()),
    }
}

/// `GET /Users/{id}` (304 when `If-None-Match` names the current version).
pub async fn get(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    PathParameters(id): PathParameters<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let user_id = parse_id(&id)?;
    let response = answer(&tenant, user_id, base, query, StatusCode::OK).await?;
    if let Some(version) = &response.etag {
        if not_modified(&headers, version) {
            return Ok(not_modified_response(version.clone()));
        }
    }
    Ok(response.into_response())
}

/// Moves a user to `desired`: one `UpdateUser` with what changed and, when they changed, its
/// directory attributes. Nothing is sent when nothing changed.
async fn update_to(
    tenant: &ScimTenant,
    user_id: Uuid,
    view: &UserView,
    stored: &StoredUser,
    desired: DesiredUser,
) -> Result<(), ScimError> {
    let attributes = desired.stored.to_text()?;
    check_attribute_size(attributes.as_deref())?;
    let activity = desired.activity;
    let user_principal_name = desired.user_principal_name.clone();
    let changes = UserChanges {
        user_principal_name: (desired.user_principal_name != view.user_principal_name)
            .then_some(desired.user_principal_name),
        display_name: (desired.display_name != view.display_name).then_some(desired.display_name),
        usage_location: (desired.usage_location != view.usage_location).then_some(desired.usage_location),
        proxy_addresses: (desired.proxy_addresses != view.proxy_addresses).then_some(desired.proxy_addresses),
        account_enabled: (desired.account_enabled != view.account_enabled).then_some(desired.account_enabled),
        attributes: CORE_ATTRIBUTES
            .iter()
            .chain(ENTERPRISE_ATTRIBUTES.iter())
            .filter(|(_, attribute)| desired.attributes.get(attribute) != view.attributes.get(attribute))
            .map(|(_, attribute)| (*attribute, desired.attributes.get(attribute).cloned()))
            .collect(),
    };
    if changes != UserChanges::default() {
        tenant.execute(Command::UpdateUser { user_id, changes }).await?;
    }
    if &desired.stored != stored {
        tenant
            .execute(Command::SetDirectoryAttributes {
                object_id: user_id,
                attributes,
            })
            .await?;
    }
    if let Some(activity) = activity {
        save_activity(tenant, user_id, user_principal_name, activity).await?;
    }
    Ok(())
}

/// The user as it is now: its view, stored attributes, full representation and version.
async fn current(
    tenant: &ScimTenant,
    user_id: Uuid,
    base: String,
) -> Result<(UserView, StoredUser, Value, String), ScimError> {
    let activity = activities(tenant, vec![user_id]).await?.remove(&user_id);
    tenant
        .read(move |engine| {
            let (user, version) = render(engine, user_id, &base, &part_numbers(engine), activity.as_ref())?;
            let view = engine.user_view(user_id).map_err(|_| not_found(user_id))?;
            Ok((view, StoredUser::load(engine, user_id), user, version))
        })
        .await
}

/// `PUT /Users/{id}`: replaces what the client manages (attributes it leaves out are cleared).
pub async fn replace(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    PathParameters(id): PathParameters<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let user_id = parse_id(&id)?;
    let (view, stored, _, version) = current(&tenant, user_id, base.clone()).await?;
    check_if_match(&headers, &version)?;
    let desired = desired_user(&body, &non_email_addresses(&view))?;
    update_to(&tenant, user_id, &view, &stored, desired).await?;
    answer(&tenant, user_id, base, query, StatusCode::OK).await
}

/// `PATCH /Users/{id}`: the operations apply to the user's representation, all or nothing.
pub async fn patch(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    PathParameters(id): PathParameters<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let user_id = parse_id(&id)?;
    let operations = parse_patch_request(&body, &USER_RESOURCE)?;
    let (view, stored, user, version) = current(&tenant, user_id, base.clone()).await?;
    check_if_match(&headers, &version)?;
    let Value::Object(mut document) = user else {
        return Err(ScimError::internal("a user did not render as an object"));
    };
    let original = document.clone();
    for operation in &operations {
        if let Some(path) = &operation.path {
            if path.attr.urn.is_none() && !path.whole_extension {
                let name = path.attr.name.as_str();
                if ["id", "meta", "groups"]
                    .iter()
                    .any(|read_only| name.eq_ignore_ascii_case(read_only))
                {
                    return Err(ScimError::mutability(format!("'{name}' is read-only.")));
                }
            }
        }
        apply(&mut document, operation, &USER_RESOURCE)?;
    }
    let had_activity = user_has_activity(&original);
    let mut desired = desired_user(&Value::Object(document), &non_email_addresses(&view))?;
    if desired.activity.is_none() && had_activity {
        // The patch removed the whole activity extension: both dates are cleared.
        desired.activity = Some((None, None));
    }
    if desired.activity.is_some()
        && desired.activity == activity_of(original.get(ACTIVITY_USER_SCHEMA).cloned())?
    {
        desired.activity = None;
    }
    update_to(&tenant, user_id, &view, &stored, desired).await?;
    answer(&tenant, user_id, base, query, StatusCode::OK).await
}

fn user_has_activity(user: &Map<String, Value>) -> bool {
    user.contains_key(ACTIVITY_USER_SCHEMA)
}

/// `DELETE /Users/{id}`: deletes the user; its licenses are freed.
pub async fn delete(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    PathParameters(id): PathParameters<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ScimError> {
    let user_id = parse_id(&id)?;
    if headers.contains_key(axum::http::header::IF_MATCH) {
        let (_, _, _, version) = current(&tenant, user_id, base).await?;
        check_if_match(&headers, &version)?;
    }
    tenant
        .execute(Command::DeleteUser { user_id })
        .await
        .map_err(|error| {
            if error.status == StatusCode::NOT_FOUND {
                not_found(user_id)
            } else {
                error
            }
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_without_a_domain_round_trip() {
        assert_eq!(
            upn_of_user_name("alice@contoso.com").expect("upn"),
            "alice@contoso.com"
        );
        assert_eq!(upn_of_user_name("alice").expect("upn"), "alice@scim.invalid");
        assert_eq!(user_name_of_upn("alice@scim.invalid"), "alice");
        assert_eq!(user_name_of_upn("alice@contoso.com"), "alice@contoso.com");
        assert!(upn_of_user_name("bob@SCIM.invalid").is_err());
        assert!(upn_of_user_name(" ").is_err());
    }

    #[test]
    fn a_client_user_maps_onto_licensd() {
        let desired = desired_user(
            &json!({
                "schemas": [USER_SCHEMA],
                "userName": "alice@contoso.com",
                "active": "False",
                "externalId": "a-1",
                "emails": [{"value": "alice@contoso.com", "type": "work", "primary": true}, {"value": "al@contoso.com"}],
                "addresses": [{"type": "work", "country": "NL"}],
                "password": "secret",
                "groups": [{"value": "ignored"}]
            }),
            &[ProxyAddress::parse("SIP:alice@contoso.com").expect("address")],
        )
        .expect("user");
        assert_eq!(desired.user_principal_name, "alice@contoso.com");
        assert_eq!(desired.display_name, "alice");
        assert!(!desired.account_enabled);
        assert_eq!(
            desired.usage_location.map(|code| code.to_string()),
            Some("NL".to_string())
        );
        let addresses: Vec<&str> = desired.proxy_addresses.iter().map(ProxyAddress::as_str).collect();
        assert_eq!(
            addresses,
            [
                "SMTP:alice@contoso.com",
                "smtp:al@contoso.com",
                "SIP:alice@contoso.com"
            ]
        );
        assert_eq!(desired.stored.unset, ["displayName"]);
        assert_eq!(desired.stored.attributes["externalId"], json!("a-1"));
        assert!(!desired.stored.attributes.contains_key("password"));
        assert!(!desired.stored.attributes.contains_key("groups"));
        let explicit = desired_user(
            &json!({"userName": "a@b.com", "addresses": [{"type": "work", "country": "NL"}],
                    LICENSING_USER_SCHEMA: {"usageLocation": "US"}}),
            &[],
        )
        .expect("user");
        assert_eq!(
            explicit.usage_location.map(|code| code.to_string()),
            Some("US".to_string())
        );
        for bad in [
            json!({"displayName": "no user name"}),
            json!({"userName": "a@b.com", LICENSING_USER_SCHEMA: {"usageLocation": "Netherlands"}}),
            json!({"userName": "a@b.com", "emails": [{"value": "not an address"}]}),
            json!({"userName": "a@b.com", "active": "perhaps"}),
        ] {
            assert!(desired_user(&bad, &[]).is_err(), "{bad}");
        }
    }
}
