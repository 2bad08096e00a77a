//! Engine views to Graph's wire shapes, at the edge: users (with `assignedLicenses`,
//! `assignedPlans`, `licenseAssignmentStates`), groups, `subscribedSku`, `licenseDetails`, and the
//! filter subjects `$filter` evaluates against.

use std::collections::HashMap;

use licensd_api_types::graph as wire;
use licensd_api_types::time::format_date_time;
use licensd_engine::{
    AppliesTo, AssignedLicense, CapabilityStatus, Engine, LicenseAssignmentState, SkuUsage, Timestamp,
    UserAttribute, UserView, Uuid,
};
use serde_json::Value;

use crate::api::ApiError;
use crate::odata::query::MAX_EXPANDED_OBJECTS;
use crate::odata::{FilterSubject, PropertyValue, QueryOptions, Selection};

pub const USER_TYPE: &str = "#microsoft.graph.user";
pub const GROUP_TYPE: &str = "#microsoft.graph.group";

/// Products of the tenant by id, computed once per request where plans must be named.
pub struct ProductIndex {
    products: HashMap<Uuid, SkuUsage>,
    plan_names: HashMap<Uuid, String>,
}

impl ProductIndex {
    pub fn of(engine: &Engine) -> ProductIndex {
        let mut plan_names = HashMap::new();
        let mut products = HashMap::new();
        for usage in engine.sku_usages() {
            for (plan_id, plan_name, _) in &usage.service_plans {
                plan_names.insert(*plan_id, plan_name.clone());
            }
            products.insert(usage.sku_id, usage);
        }
        ProductIndex { products, plan_names }
    }

    pub fn product(&self, sku_id: Uuid) -> Option<&SkuUsage> {
        self.products.get(&sku_id)
    }
}

fn date_time(timestamp: Timestamp) -> Option<String> {
    (timestamp.0 > 0).then(|| format_date_time(timestamp.0))
}

/// Graph's `assignedPlan.service` for a service plan, from its technical name.
pub fn service_of(service_plan_name: &str) -> String {
    const SERVICES: &[(&str, &str)] = &[
        ("EXCHANGE", "exchange"),
        ("SHAREPOINT", "SharePoint"),
        ("MCO", "MicrosoftCommunicationsOnline"),
        ("TEAMS", "TeamspaceAPI"),
        ("OFFICESUBSCRIPTION", "MicrosoftOffice"),
        ("SHAREPOINTWAC", "SharePoint"),
        ("YAMMER", "YammerEnterprise"),
        ("AAD_PREMIUM", "AADPremiumService"),
        ("INTUNE", "SCO"),
        ("RMS_S", "RMSOnline"),
        ("FLOW", "ProcessSimple"),
        ("POWERAPPS", "PowerAppsService"),
        ("STREAM", "MicrosoftStream"),
        ("SWAY", "Sway"),
        ("FORMS", "MicrosoftForms"),
        ("PROJECT", "ProjectWorkManagement"),
        ("WORKPLACE_ANALYTICS", "WorkplaceAnalytics"),
    ];
    SERVICES
        .iter()
        .find(|(prefix, _)| service_plan_name.starts_with(prefix))
        .map(|(_, service)| service.to_string())
        .unwrap_or_else(|| service_plan_name.to_string())
}

fn wire_license(license: &AssignedLicense) -> wire::AssignedLicense {
    wire::AssignedLicense {
        disabled_plans: license.disabled_plans.clone(),
        sku_id: license.sku_id,
        odata_type: None,
    }
}

pub fn wire_state(state: &LicenseAssignmentState) -> wire::LicenseAssignmentState {
    wire::LicenseAssignmentState {
        assigned_by_group: state.assigned_by_group,
        disabled_plans: state.disabled_plans.clone(),
        error: state
            .error
            .map(|kind| kind.as_str().to_string())
            .unwrap_or_else(|| "None".to_string()),
        last_updated_date_time: date_time(state.last_updated),
        sku_id: state.sku_id,
        state: state.state.as_str().to_string(),
    }
}

fn assigned_plans(states: &[LicenseAssignmentState], products: &ProductIndex) -> Vec<wire::AssignedPlan> {
    // One entry per plan in effect: the earliest assignment granting it, and its product's status.
    let mut plans: Vec<(Uuid, Timestamp, CapabilityStatus)> = Vec::new();
    for state in states.iter().filter(|state| state.state.is_in_effect()) {
        let status = products
            .product(state.sku_id)
            .map(|product| product.capability_status)
            .unwrap_or_default();
        for plan_id in &state.granted_plans {
            match plans.iter_mut().find(|(known, _, _)| known == plan_id) {
                Some(entry) if state.last_updated < entry.1 => entry.1 = state.last_updated,
                Some(_) => {}
                None => plans.push((*plan_id, state.last_updated, status)),
            }
        }
    }
    plans
        .into_iter()
        .map(|(plan_id, since, status)| wire::AssignedPlan {
            assigned_date_time: date_time(since).unwrap_or_default(),
            capability_status: status.as_str().to_string(),
            service: products
                .plan_names
                .get(&plan_id)
                .map(|name| service_of(name))
                .unwrap_or_default(),
            service_plan_id: plan_id,
        })
        .collect()
}

/// The primary SMTP address of a user, Graph's `mail`.
/// `mail`: the attribute when it is set, else the primary SMTP address.
fn mail_of(view: &UserView) -> Option<String> {
    if let Some(mail) = view.attributes.get(&UserAttribute::MAIL) {
        return Some(mail.clone());
    }
    view.proxy_addresses
        .iter()
        .find(|address| address.is_primary_smtp())
        .map(|address| address.as_str()["SMTP:".len()..].to_string())
}

/// A top-level directory attribute of a user, by Graph name.
fn attribute_of(view: &UserView, name: &str) -> Option<String> {
    UserAttribute::from_name(name).and_then(|attribute| view.attributes.get(&attribute).cloned())
}

/// `onPremisesExtensionAttributes` of a user.
fn extension_attributes_of(view: &UserView) -> wire::OnPremisesExtensionAttributes {
    let values: Vec<(u8, String)> = view
        .attributes
        .iter()
        .filter_map(|(attribute, value)| Some((attribute.extension_number()?, value.clone())))
        .collect();
    wire::OnPremisesExtensionAttributes::from_values(&values)
}

/// A user as Graph shows it, reduced to the selected properties.
pub fn user_json(
    engine: &Engine,
    user_id: Uuid,
    selection: &Selection,
    as_directory_object: bool,
    products: &mut Option<ProductIndex>,
) -> Result<Value, ApiError> {
    let view = engine.user_view(user_id)?;
    let needs_states = selection.includes("licenseAssignmentStates") || selection.includes("assignedPlans");
    let states = if needs_states {
        engine.user_license_states(user_id)?
    } else {
        Vec::new()
    };
    let plans = if selection.includes("assignedPlans") {
        let products = products.get_or_insert_with(|| ProductIndex::of(engine));
        assigned_plans(&states, products)
    } else {
        Vec::new()
    };
    let assigned_licenses = if selection.includes("assignedLicenses") {
        engine
            .user_assigned_licenses(user_id)?
            .iter()
            .map(wire_license)
            .collect()
    } else {
        Vec::new()
    };
    // Only the selected properties are computed (the others are dropped by the selection).
    let wants = |name: &str| selection.includes(name);
    let attribute = |name: &str| {
        if wants(name) {
            attribute_of(&view, name)
        } else {
            None
        }
    };
    let user = wire::User {
        odata_type: as_directory_object.then(|| USER_TYPE.to_string()),
        id: view.id,
        display_name: if wants("displayName") {
            view.display_name.clone()
        } else {
            String::new()
        },
        user_principal_name: if wants("userPrincipalName") {
            view.user_principal_name.clone()
        } else {
            String::new()
        },
        mail: if wants("mail") { mail_of(&view) } else { None },
        account_enabled: view.account_enabled,
        usage_location: view.usage_location.map(|location| location.as_str().to_string()),
        proxy_addresses: if wants("proxyAddresses") {
            view.proxy_addresses
                .iter()
                .map(|a| a.as_str().to_string())
                .collect()
        } else {
            Vec::new()
        },
        assigned_licenses,
        department: attribute("department"),
        job_title: attribute("jobTitle"),
        company_name: attribute("companyName"),
        office_location: attribute("officeLocation"),
        city: attribute("city"),
        state: attribute("state"),
        country: attribute("country"),
        employee_id: attribute("employeeId"),
        employee_type: attribute("employeeType"),
        user_type: attribute("userType"),
        on_premises_extension_attributes: if wants("onPremisesExtensionAttributes") {
            extension_attributes_of(&view)
        } else {
            wire::OnPremisesExtensionAttributes::default()
        },
        assigned_plans: plans,
        license_assignment_states: states.iter().map(wire_state).collect(),
    };
    selection
        .select(&user)
        .map_err(|error| ApiError::internal(error.to_string()))
}

/// A group as Graph shows it, reduced to the selected properties.
pub fn group_json(
    engine: &Engine,
    group_id: Uuid,
    selection: &Selection,
    as_directory_object: bool,
) -> Result<Value, ApiError> {
    let view = engine.group_view(group_id)?;
    let dynamic = engine.dynamic_membership(group_id)?;
    let group = wire::Group {
        odata_type: as_directory_object.then(|| GROUP_TYPE.to_string()),
        id: view.id,
        display_name: view.display_name,
        mail_enabled: false,
        security_enabled: true,
        group_types: group_types(dynamic.is_some()),
        membership_rule: dynamic.map(|dynamic| dynamic.rule.text().to_string()),
        membership_rule_processing_state: dynamic
            .map(|dynamic| dynamic.processing_state.as_str().to_string()),
        assigned_licenses: view.assigned_licenses.iter().map(wire_license).collect(),
        license_processing_state: wire::LicenseProcessingState {
            state: view.license_processing_state.as_str().to_string(),
        },
    };
    selection
        .select(&group)
        .map_err(|error| ApiError::internal(error.to_string()))
}

/// Adds the navigation property `$expand` names (at most [`MAX_EXPANDED_OBJECTS`] objects, as
/// Graph) to a serialized entity.
fn insert_expanded(entity: &mut Value, navigation: &str, expanded: Vec<Value>) {
    if let Value::Object(object) = entity {
        object.insert(navigation.to_string(), Value::Array(expanded));
    }
}

/// A user with what the query selects and expands (`memberOf`).
pub fn user_json_expanded(
    engine: &Engine,
    user_id: Uuid,
    options: &QueryOptions,
    as_directory_object: bool,
    products: &mut Option<ProductIndex>,
) -> Result<Value, ApiError> {
    let mut user = user_json(engine, user_id, &options.selection, as_directory_object, products)?;
    if let Some(expand) = &options.expand {
        let groups = engine
            .user_view(user_id)?
            .member_of
            .into_iter()
            .take(MAX_EXPANDED_OBJECTS)
            .map(|group_id| group_json(engine, group_id, &expand.selection, true))
            .collect::<Result<Vec<Value>, ApiError>>()?;
        insert_expanded(&mut user, expand.navigation, groups);
    }
    Ok(user)
}

/// A group with what the query selects and expands (`members`).
pub fn group_json_expanded(
    engine: &Engine,
    group_id: Uuid,
    options: &QueryOptions,
    as_directory_object: bool,
    products: &mut Option<ProductIndex>,
) -> Result<Value, ApiError> {
    let mut group = group_json(engine, group_id, &options.selection, as_directory_object)?;
    if let Some(expand) = &options.expand {
        let members = engine
            .group_members(group_id)?
            .into_iter()
            .take(MAX_EXPANDED_OBJECTS)
            .map(|user_id| user_json(engine, user_id, &expand.selection, true, products))
            .collect::<Result<Vec<Value>, ApiError>>()?;
        insert_expanded(&mut group, expand.navigation, members);
    }
    Ok(group)
}

/// Graph `subscribedSku` of a product: purchased units are shown under the subscription's status.
pub fn subscribed_sku(
    engine: &Engine,
    tenant_id: Uuid,
    sku_id: Uuid,
) -> Result<wire::SubscribedSku, ApiError> {
    let usage = engine.sku_usage(sku_id)?;
    let definition = engine.sku_definition(sku_id)?;
    let units = i64::from(usage.prepaid_units);
    let mut prepaid_units = wire::LicenseUnitsDetail::default();
    match usage.capability_status {
        CapabilityStatus::Enabled => prepaid_units.enabled = units,
        CapabilityStatus::Warning => prepaid_units.warning = units,
        CapabilityStatus::Suspended => prepaid_units.suspended = units,
        CapabilityStatus::LockedOut => prepaid_units.locked_out = units,
        CapabilityStatus::Deleted => {}
    }
    let applies_to = match definition.applies_to {
        AppliesTo::User => "User",
        AppliesTo::Company => "Company",
    };
    Ok(wire::SubscribedSku {
        id: format!("{tenant_id}_{sku_id}"),
        account_id: tenant_id,
        account_name: engine.settings().display_name.clone(),
        applies_to: applies_to.to_string(),
        capability_status: usage.capability_status.as_str().to_string(),
        consumed_units: i64::from(usage.consumed_units),
        prepaid_units,
        service_plans: usage
            .service_plans
            .iter()
            .map(|(plan_id, plan_name, _)| wire::ServicePlanInfo {
                service_plan_id: *plan_id,
                service_plan_name: plan_name.clone(),
                provisioning_status: "Success".to_string(),
                applies_to: applies_to.to_string(),
            })
            .collect(),
        sku_id,
        sku_part_number: usage.sku_part_number,
        subscription_ids: Vec::new(),
    })
}

/// Graph `licenseDetails` of a user: one per product in effect, every plan with its status.
pub fn license_details(engine: &Engine, user_id: Uuid) -> Result<Vec<wire::LicenseDetails>, ApiError> {
    let mut details = Vec::new();
    for license in engine.user_assigned_licenses(user_id)? {
        let usage = engine.sku_usage(license.sku_id)?;
        details.push(wire::LicenseDetails {
            id: license.sku_id.to_string(),
            service_plans: usage
                .service_plans
                .iter()
                .map(|(plan_id, plan_name, _)| wire::ServicePlanInfo {
                    service_plan_id: *plan_id,
                    service_plan_name: plan_name.clone(),
                    provisioning_status: if license.disabled_plans.contains(plan_id) {
                        "Disabled"
                    } else {
                        "Success"
                    }
                    .to_string(),
                    applies_to: "User".to_string(),
                })
                .collect(),
            sku_id: license.sku_id,
            sku_part_number: usage.sku_part_number,
        });
    }
    Ok(details)
}

/// A user as `$filter` sees it; assigned licenses are computed only when the filter asks.
pub struct UserSubject<'a> {
    pub engine: &'a Engine,
    pub view: UserView,
}

impl FilterSubject for UserSubject<'_> {
    fn value(&self, property: &'static str) -> PropertyValue {
        match property {
            "id" => PropertyValue::Guid(self.view.id),
            "displayName" => PropertyValue::Text(Some(self.view.display_name.clone())),
            "userPrincipalName" => PropertyValue::Text(Some(self.view.user_principal_name.clone())),
            "mail" => PropertyValue::Text(mail_of(&self.view)),
            "accountEnabled" => PropertyValue::Boolean(self.view.account_enabled),
            "usageLocation" => PropertyValue::Text(
                self.view
                    .usage_location
                    .map(|location| location.as_str().to_string()),
            ),
            "proxyAddresses" => PropertyValue::Texts(
                self.view
                    .proxy_addresses
                    .iter()
                    .map(|address| address.as_str().to_string())
                    .collect(),
            ),
            "assignedLicenses" => PropertyValue::Licenses(
                self.engine
                    .user_assigned_licenses(self.view.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|license| license.sku_id)
                    .collect(),
            ),
            name if UserAttribute::from_name(name).is_some() => {
                PropertyValue::Text(attribute_of(&self.view, name))
            }
            _ => PropertyValue::Text(None),
        }
    }
}

/// Graph's `groupTypes` of a group.
fn group_types(dynamic: bool) -> Vec<String> {
    if dynamic {
        vec!["DynamicMembership".to_string()]
    } else {
        Vec::new()
    }
}

/// A group as `$filter` sees it.
pub struct GroupSubject {
    pub view: licensd_engine::GroupView,
    /// Its rule and processing state when it is a dynamic membership group.
    pub dynamic: Option<(String, &'static str)>,
}

impl FilterSubject for GroupSubject {
    fn value(&self, property: &'static str) -> PropertyValue {
        match property {
            "id" => PropertyValue::Guid(self.view.id),
            "displayName" => PropertyValue::Text(Some(self.view.display_name.clone())),
            "mailEnabled" => PropertyValue::Boolean(false),
            "securityEnabled" => PropertyValue::Boolean(true),
            "groupTypes" => PropertyValue::Texts(group_types(self.dynamic.is_some())),
            "membershipRule" => PropertyValue::Text(self.dynamic.as_ref().map(|(rule, _)| rule.clone())),
            "membershipRuleProcessingState" => {
                PropertyValue::Text(self.dynamic.as_ref().map(|(_, state)| state.to_string()))
            }
            "assignedLicenses" => PropertyValue::Licenses(
                self.view
                    .assigned_licenses
                    .iter()
                    .map(|license| license.sku_id)
                    .collect(),
            ),
            "hasMembersWithLicenseErrors" => {
                PropertyValue::Boolean(self.view.members_with_license_errors > 0)
            }
            _ => PropertyValue::Text(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn services_are_named_as_graph_names_them() {
        assert_eq!(super::service_of("EXCHANGE_S_ENTERPRISE"), "exchange");
        assert_eq!(super::service_of("MCOSTANDARD"), "MicrosoftCommunicationsOnline");
        assert_eq!(super::service_of("SOMETHING_NEW"), "SOMETHING_NEW");
    }
}
