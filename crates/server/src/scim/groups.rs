//! `/Groups`: SCIM groups mapped onto licensd's security groups. `displayName` ↔ the group's
//! name, `members` ↔ memberships: users (`"type": "User"`) and nested groups (`"type":
//! "Group"`, or a value that is a group's id), a nesting that would form a cycle refused as
//! Graph refuses it; a member added or removed here gains or loses the group's licenses in the
//! background, like a membership changed through Graph (members of a nested group too, when the
//! tenant licenses transitively; the group's licenses are assigned and read through Graph);
//! `externalId` and other attributes are kept as the group's directory attributes.
//! Member changes (PATCH `members` add/remove, including `members[value eq "…"]` as Entra ID and
//! Okta send them) never render the member list, so large groups stay cheap to change.

use std::collections::HashSet;

use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use licensd_engine::{Command, Engine, Uuid};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::ScimError;
use super::patch::{apply, canonicalize, parse_patch_request, Operation};
use super::schema::{GROUP_RESOURCE, GROUP_SCHEMA};
use super::{
    check_if_match, not_modified, not_modified_response, project, selection_of, version_of, ListQuery,
    ScimBase, ScimBody, ScimResponse, ScimTenant,
};
use crate::api::PathParameters;
use licensd_protocols::scim::members::{
    apply_to_members, declared_member_types, member_ids, targets_members,
};

/// What the directory attributes of a group hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

impl StoredGroup {
    pub fn load(engine: &Engine, group_id: Uuid) -> StoredGroup {
        engine
            .directory_attributes(group_id)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }

    fn to_text(&self) -> Result<Option<String>, ScimError> {
        if self.attributes.is_empty() {
            return Ok(None);
        }
        let text = serde_json::to_string(self).map_err(|error| {
            ScimError::internal(format!("directory attributes do not serialize: {error}"))
        })?;
        if text.len() > licensd_engine::MAX_DIRECTORY_ATTRIBUTES_BYTES {
            return Err(ScimError::invalid_value(format!(
                "The group's attributes take {} bytes, more than the {} licensd keeps per group.",
                text.len(),
                licensd_engine::MAX_DIRECTORY_ATTRIBUTES_BYTES
            )));
        }
        Ok(Some(text))
    }
}

fn not_found(group_id: impl std::fmt::Display) -> ScimError {
    ScimError::not_found(format!("No group {group_id}."))
}

/// The version of a group: its name, attributes, members and licenses (hashed without rendering).
fn version(engine: &Engine, group_id: Uuid) -> Result<String, ScimError> {
    let view = engine.group_view(group_id).map_err(|_| not_found(group_id))?;
    let members = engine.group_members(group_id).map_err(|_| not_found(group_id))?;
    let member_groups = engine.member_groups(group_id).map_err(|_| not_found(group_id))?;
    let licenses: Vec<(Uuid, Vec<Uuid>)> = view
        .assigned_licenses
        .iter()
        .map(|license| (license.sku_id, license.disabled_plans.clone()))
        .collect();
    Ok(version_of(&(
        &view.display_name,
        engine.directory_attributes(group_id),
        members,
        member_groups,
        licenses,
    )))
}

/// The SCIM representation of a group (members only when `with_members`) and its version.
pub fn render(
    engine: &Engine,
    group_id: Uuid,
    base: &str,
    with_members: bool,
) -> Result<(Value, String), ScimError> {
    let view = engine.group_view(group_id).map_err(|_| not_found(group_id))?;
    let stored = StoredGroup::load(engine, group_id);
    let mut group = Map::new();
    group.insert("id".into(), json!(group_id));
    for (key, value) in stored.attributes {
        group.insert(key, value);
    }
    group.insert("displayName".into(), json!(view.display_name));
    if with_members {
        let users = engine.group_members(group_id).map_err(|_| not_found(group_id))?;
        let groups = engine.member_groups(group_id).map_err(|_| not_found(group_id))?;
        let members: Vec<Value> = users
            .into_iter()
            .map(|user_id| json!({"value": user_id, "$ref": format!("{base}/Users/{user_id}"), "type": "User"}))
            .chain(groups.into_iter().map(|member_group_id| {
                json!({"value": member_group_id, "$ref": format!("{base}/Groups/{member_group_id}"), "type": "Group"})
            }))
            .collect();
        if !members.is_empty() {
            group.insert("members".into(), Value::Array(members));
        }
    }
    let schemas = vec![json!(GROUP_SCHEMA)];
    group.insert("schemas".into(), Value::Array(schemas));
    let version = version(engine, group_id)?;
    group.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "location": format!("{base}/Groups/{group_id}"),
            "version": version,
        }),
    );
    Ok((Value::Object(group), version))
}

/// A group as a client wants it: name, directory attributes and (when given) members, with the
/// `type` each member was declared with where the client gave one.
struct DesiredGroup {
    display_name: String,
    stored: StoredGroup,
    members: Option<Vec<Uuid>>,
    declared_types: Vec<(Uuid, String)>,
}

fn desired_group(document: &Map<String, Value>, members_given: bool) -> Result<DesiredGroup, ScimError> {
    let mut attributes = canonicalize(document, &GROUP_RESOURCE)?;
    let display_name = match attributes.remove("displayName") {
        Some(Value::String(name)) if !name.trim().is_empty() => name,
        _ => return Err(ScimError::invalid_value("displayName is required.")),
    };
    let mut declared_types = Vec::new();
    let members = match attributes.remove("members") {
        Some(members) => {
            declared_types = declared_member_types(&members);
            Some(member_ids(&members)?)
        }
        None if members_given => Some(Vec::new()),
        None => None,
    };
    Ok(DesiredGroup {
        display_name,
        stored: StoredGroup { attributes },
        members,
        declared_types,
    })
}

/// What a member is: a user or a group (`"type"` in SCIM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    fn of(engine: &Engine, id: Uuid) -> Option<MemberKind> {
        if engine.user_view(id).is_ok() {
            Some(MemberKind::User)
        } else if engine.group_view(id).is_ok() {
            Some(MemberKind::Group)
        } else {
            None
        }
    }

    fn scim_type(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }
}

/// Checks the `type` the client declared for members (where it declared one) against what each
/// is, and every id to add: a user or a group of the tenant, and for a group, not one that would close a cycle (the group itself or
/// a group it is nested in). Returns each id with what it is.
fn check_members(
    engine: &Engine,
    group_id: Uuid,
    ids: &[Uuid],
    declared_types: &[(Uuid, String)],
) -> Result<Vec<(Uuid, MemberKind)>, ScimError> {
    // Every declared type is checked, also of members already there (a member sent with the
    // wrong type is refused, not silently taken as what it is).
    for (id, declared) in declared_types {
        let declared_kind = if declared.eq_ignore_ascii_case("User") {
            MemberKind::User
        } else if declared.eq_ignore_ascii_case("Group") {
            MemberKind::Group
        } else {
            return Err(ScimError::invalid_value(format!(
                "The member {id} has type '{declared}': a member's type is 'User' or 'Group'."
            )));
        };
        if let Some(kind) = MemberKind::of(engine, *id) {
            if declared_kind != kind {
                return Err(ScimError::invalid_value(format!(
                    "The member {id} is declared a {} but is a {}.",
                    declared_kind.scim_type(),
                    kind.scim_type()
                )));
            }
        }
    }
    let mut checked = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(kind) = MemberKind::of(engine, *id) else {
            return Err(ScimError::invalid_value(format!(
                "No user or group {id} to make a member."
            )));
        };
        // Checked before any member changes, so that a refused request changes nothing (the
        // group's own removals cannot break such a cycle: it runs from the new member down to
        // the group).
        if kind == MemberKind::Group
            && (*id == group_id
                || engine
                    .transitive_member_groups(*id)
                    .is_ok_and(|below| below.contains(&group_id)))
        {
            return Err(ScimError::invalid_value(
                licensd_engine::CommandError::NestingCycle {
                    group_id,
                    member_group_id: *id,
                }
                .to_string(),
            ));
        }
        checked.push((*id, kind));
    }
    Ok(checked)
}

/// Adds and removes members, one membership or nesting command each (through the same path as
/// Graph): removals first.
async fn change_members(
    tenant: &ScimTenant,
    group_id: Uuid,
    add: Vec<(Uuid, MemberKind)>,
    remove: Vec<(Uuid, MemberKind)>,
) -> Result<(), ScimError> {
    for (member_id, kind) in remove {
        let command = match kind {
            MemberKind::User => Command::RemoveGroupMember {
                group_id,
                user_id: member_id,
            },
            MemberKind::Group => Command::RemoveGroupMemberGroup {
                group_id,
                member_group_id: member_id,
            },
        };
        tenant.execute(command).await?;
    }
    for (member_id, kind) in add {
        let command = match kind {
            MemberKind::User => Command::AddGroupMember {
                group_id,
                user_id: member_id,
            },
            MemberKind::Group => Command::AddGroupMemberGroup {
                group_id,
                member_group_id: member_id,
            },
        };
        tenant.execute(command).await?;
    }
    Ok(())
}

/// The groups matching a query, in creation order.
pub(super) fn matching_groups(
    engine: &Engine,
    query: &ListQuery,
    base: &str,
) -> Result<Vec<Uuid>, ScimError> {
    let Some(filter) = &query.filter else {
        return Ok(engine.group_ids());
    };
    if let Some(id) = filter.top_level_equality("id") {
        return Ok(Uuid::try_parse(id)
            .ok()
            .filter(|id| engine.group_view(*id).is_ok())
            .into_iter()
            .collect());
    }
    let with_members = filter.mentions("members");
    let by_name = filter.top_level_equality("displayName").map(str::to_lowercase);
    let mut kept = Vec::new();
    for group_id in engine.group_ids() {
        if let Some(name) = &by_name {
            let view = engine.group_view(group_id).map_err(|_| not_found(group_id))?;
            if view.display_name.to_lowercase() != *name {
                continue;
            }
        }
        let (group, _) = render(engine, group_id, base, with_members)?;
        if filter.matches(&group, &GROUP_RESOURCE) {
            kept.push(group_id);
        }
    }
    Ok(kept)
}

async fn list_groups(tenant: ScimTenant, base: String, query: ListQuery) -> Result<ScimResponse, ScimError> {
    let body = tenant
        .read(move |engine| {
            let matching = matching_groups(engine, &query, &base)?;
            let with_members = query.needs("members");
            let mut resources = Vec::new();
            for group_id in query.page(&matching) {
                let (group, _) = render(engine, group_id, &base, with_members)?;
                resources.push(project(
                    group,
                    &query.attributes,
                    &query.excluded_attributes,
                    &GROUP_RESOURCE,
                ));
            }
            Ok(query.list_response(matching.len(), resources))
        })
        .await?;
    Ok(ScimResponse::ok(body))
}

/// `GET /Groups` (Entra ID asks `excludedAttributes=members`: members are then not rendered).
pub async fn list(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    RawQuery(query): RawQuery,
) -> Result<ScimResponse, ScimError> {
    let query = ListQuery::from_query(query.as_deref(), &GROUP_RESOURCE)?;
    list_groups(tenant, base, query).await
}

/// `POST /Groups/.search`.
pub async fn search(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let query = ListQuery::from_search(&body, &GROUP_RESOURCE)?;
    list_groups(tenant, base, query).await
}

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::try_parse(id.trim()).map_err(|_| not_found(id))
}

async fn answer(
    tenant: &ScimTenant,
    group_id: Uuid,
    base: String,
    query: Option<String>,
    status: StatusCode,
) -> Result<ScimResponse, ScimError> {
    let (attributes, excluded) = selection_of(query.as_deref(), &GROUP_RESOURCE)?;
    let selection = ListQuery {
        attributes: attributes.clone(),
        excluded_attributes: excluded.clone(),
        ..ListQuery::default()
    };
    let with_members = selection.needs("members");
    let (group, version) = tenant
        .read(move |engine| render(engine, group_id, &base, with_members))
        .await?;
    let location = group["meta"]["location"].as_str().map(str::to_string);
    Ok(ScimResponse {
        status,
        body: project(group, &attributes, &excluded, &GROUP_RESOURCE),
        etag: Some(version),
        location: (status == StatusCode::CREATED).then_some(location).flatten(),
    })
}

/// `POST /Groups`: 201 with the group; its members are added one by one.
pub async fn create(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    RawQuery(query): RawQuery,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let Value::Object(document) = &body else {
        return Err(ScimError::invalid_syntax("A group must be a JSON object."));
    };
    let desired = desired_group(document, false)?;
    let attributes = desired.stored.to_text()?;
    let members = desired.members.unwrap_or_default();
    let declared_types = desired.declared_types;
    let group_id = Uuid::new_v4();
    let members = tenant
        .read(move |engine| check_members(engine, group_id, &members, &declared_types))
        .await?;
    tenant
        .execute(Command::CreateGroup {
            group_id,
            display_name: desired.display_name,
        })
        .await?;
    let rest = async {
        if attributes.is_some() {
            tenant
                .execute(Command::SetDirectoryAttributes {
                    object_id: group_id,
                    attributes,
                })
                .await?;
        }
        change_members(&tenant, group_id, members, Vec::new()).await
    };
    if let Err(error) = rest.await {
        // Keep create all-or-nothing: the half-made group is taken back.
        if let Err(undo) = tenant.execute(Command::DeleteGroup { group_id }).await {
            tracing::error!(%group_id, %undo, "could not undo a half-created SCIM group");
        }
        return Err(error);
    }
    answer(&tenant, group_id, base, query, StatusCode::CREATED).await
}

/// `GET /Groups/{id}`.
pub async fn get(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    PathParameters(id): PathParameters<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let group_id = parse_id(&id)?;
    let response = answer(&tenant, group_id, base, query, StatusCode::OK).await?;
    if let Some(version) = &response.etag {
        if not_modified(&headers, version) {
            return Ok(not_modified_response(version.clone()));
        }
    }
    Ok(response.into_response())
}

/// The group as it is now: name, stored attributes, members (users, then nested groups) and
/// version.
struct CurrentGroup {
    display_name: String,
    stored: StoredGroup,
    members: Vec<(Uuid, MemberKind)>,
    version: String,
}

impl CurrentGroup {
    fn member_ids(&self) -> Vec<Uuid> {
        self.members.iter().map(|(id, _)| *id).collect()
    }

    fn kind_of(&self, id: Uuid) -> Option<MemberKind> {
        self.members
            .iter()
            .find(|(member_id, _)| *member_id == id)
            .map(|(_, kind)| *kind)
    }
}

async fn current(tenant: &ScimTenant, group_id: Uuid) -> Result<CurrentGroup, ScimError> {
    tenant
        .read(move |engine| {
            let view = engine.group_view(group_id).map_err(|_| not_found(group_id))?;
            let users = engine.group_members(group_id).map_err(|_| not_found(group_id))?;
            let groups = engine.member_groups(group_id).map_err(|_| not_found(group_id))?;
            Ok(CurrentGroup {
                display_name: view.display_name,
                stored: StoredGroup::load(engine, group_id),
                members: users
                    .into_iter()
                    .map(|id| (id, MemberKind::User))
                    .chain(groups.into_iter().map(|id| (id, MemberKind::Group)))
                    .collect(),
                version: version(engine, group_id)?,
            })
        })
        .await
}

/// Moves a group to `desired`: rename, attributes, then members.
async fn update_to(
    tenant: &ScimTenant,
    group_id: Uuid,
    current: &CurrentGroup,
    desired: DesiredGroup,
) -> Result<(), ScimError> {
    let attributes = desired.stored.to_text()?;
    let (add, remove) = match &desired.members {
        Some(members) => {
            let now: HashSet<Uuid> = current.members.iter().map(|(id, _)| *id).collect();
            let wanted: HashSet<Uuid> = members.iter().copied().collect();
            (
                members
                    .iter()
                    .copied()
                    .filter(|id| !now.contains(id))
                    .collect::<Vec<_>>(),
                current
                    .members
                    .iter()
                    .copied()
                    .filter(|(id, _)| !wanted.contains(id))
                    .collect::<Vec<_>>(),
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    let declared_types = desired.declared_types.clone();
    let add = tenant
        .read(move |engine| check_members(engine, group_id, &add, &declared_types))
        .await?;
    if desired.display_name != current.display_name {
        tenant
            .execute(Command::UpdateGroup {
                group_id,
                display_name: desired.display_name,
            })
            .await?;
    }
    if desired.stored != current.stored {
        tenant
            .execute(Command::SetDirectoryAttributes {
                object_id: group_id,
                attributes,
            })
            .await?;
    }
    change_members(tenant, group_id, add, remove).await
}

/// `PUT /Groups/{id}`: replaces name, attributes and members (members left out are removed).
pub async fn replace(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    PathParameters(id): PathParameters<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let group_id = parse_id(&id)?;
    let current = current(&tenant, group_id).await?;
    check_if_match(&headers, &current.version)?;
    let Value::Object(document) = &body else {
        return Err(ScimError::invalid_syntax("A group must be a JSON object."));
    };
    let desired = desired_group(document, true)?;
    update_to(&tenant, group_id, &current, desired).await?;
    answer(&tenant, group_id, base, query, StatusCode::OK).await
}

/// `PATCH /Groups/{id}`: `members` operations change memberships; others the group's attributes.
pub async fn patch(
    tenant: ScimTenant,
    ScimBase(base): ScimBase,
    PathParameters(id): PathParameters<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimResponse, ScimError> {
    let group_id = parse_id(&id)?;
    let operations = parse_patch_request(&body, &GROUP_RESOURCE)?;
    let current = current(&tenant, group_id).await?;
    check_if_match(&headers, &current.version)?;
    let mut document = current.stored.attributes.clone();
    document.insert("displayName".into(), json!(current.display_name));
    let mut members = current.member_ids();
    let mut members_touched = false;
    let mut declared_types = Vec::new();
    // What a member is, for removal filters naming `type` (members being added are read as
    // users until they are checked).
    let type_of = |id: Uuid| current.kind_of(id).unwrap_or(MemberKind::User).scim_type();
    for operation in &operations {
        if targets_members(operation) {
            if let Some(value) = &operation.value {
                declared_types.extend(declared_member_types(value));
            }
            apply_to_members(&mut members, operation, &type_of)?;
            members_touched = true;
            continue;
        }
        if let Some(path) = &operation.path {
            if path.attr.urn.is_none()
                && ["id", "meta"]
                    .iter()
                    .any(|name| path.attr.name.eq_ignore_ascii_case(name))
            {
                return Err(ScimError::mutability(format!(
                    "'{}' is read-only.",
                    path.attr.name
                )));
            }
        }
        let mut operation = operation.clone();
        if operation.path.is_none() {
            // Okta renames with `{"op": "replace", "value": {"id": …, "displayName": …}}`; members
            // may come the same way.
            if let Some(Value::Object(fragment)) = &mut operation.value {
                if let Some(key) = fragment
                    .keys()
                    .find(|key| key.eq_ignore_ascii_case("members"))
                    .cloned()
                {
                    let value = fragment.remove(&key);
                    if let Some(value) = &value {
                        declared_types.extend(declared_member_types(value));
                    }
                    apply_to_members(
                        &mut members,
                        &Operation {
                            op: operation.op,
                            path: None,
                            value,
                        },
                        &type_of,
                    )?;
                    members_touched = true;
                }
                fragment
                    .retain(|key, _| !key.eq_ignore_ascii_case("id") && !key.eq_ignore_ascii_case("meta"));
            }
        }
        apply(&mut document, &operation, &GROUP_RESOURCE)?;
    }
    let mut desired = desired_group(&document, false)?;
    desired.members = members_touched.then_some(members);
    desired.declared_types = declared_types;
    update_to(&tenant, group_id, &current, desired).await?;
    answer(&tenant, group_id, base, query, StatusCode::OK).await
}

/// `DELETE /Groups/{id}`: refused (409) while the group assigns licenses.
pub async fn delete(
    tenant: ScimTenant,
    PathParameters(id): PathParameters<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ScimError> {
    let group_id = parse_id(&id)?;
    if headers.contains_key(axum::http::header::IF_MATCH) {
        let current = current(&tenant, group_id).await?;
        check_if_match(&headers, &current.version)?;
    }
    tenant
        .execute(Command::DeleteGroup { group_id })
        .await
        .map_err(|error| {
            if error.status == StatusCode::NOT_FOUND {
                not_found(group_id)
            } else if error.status == StatusCode::BAD_REQUEST {
                ScimError::new(StatusCode::CONFLICT, None, error.detail)
            } else {
                error
            }
        })?;
    Ok(StatusCode::NO_CONTENT)
}
