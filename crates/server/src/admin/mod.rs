//! licensd's own administration API under `/licensd/v1`, for what Graph has no endpoint for:
//! the bundled Microsoft catalog, products and their seats, service plan rules, tenant settings,
//! the tenant overview, explained license states and license alert rules. It uses Graph's error envelope but does not
//! pretend to be Graph.

pub mod advisor;
pub mod alert_rules;
pub mod catalog;
pub mod diagnosis;
pub mod migration;
pub mod notifications;
pub mod products;
pub mod reclamation;
pub mod service_plans;
pub mod spend;
pub mod tenant;
pub mod tokens;
pub mod whatif;

use licensd_api_types::admin as wire;
use licensd_engine::{CapabilityStatus, SkuUsage};
use licensd_runtime::access::{CommandKind, ReadScope, RouteAccess, ANY_CHANGE};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::guard::guarded;
use crate::api::ApiError;
use crate::AppState;

/// Products, their seats, service plans and the catalog: read with licensing, changed as
/// subscriptions.
const SUBSCRIPTIONS: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: &[CommandKind::Subscriptions],
};

/// The tenant's settings.
const SETTINGS: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: &[CommandKind::TenantSettings],
};

/// A list of changes of any kind, each checked as its command.
const ANY_CHANGES: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: ANY_CHANGE,
};

/// Users' activity as the identity provider reports it: a directory change.
const USER_ACTIVITY: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Directory,
    kinds: &[CommandKind::Directory],
};

/// License assignments (a migration removes direct licenses).
const LICENSE_CHANGES: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: &[CommandKind::Licenses],
};

/// Reclamation policies: the roles that change licenses (a route admits a role that may run any
/// of its kinds, so listing `Directory` here would admit the provisioning agent). A run's removal
/// of a group membership is still checked as the directory change it is, command by command.
const RECLAMATION: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: &[CommandKind::Licenses],
};

const READS_LICENSING: RouteAccess = RouteAccess::Reads(ReadScope::Licensing);

/// Every `/licensd/v1` route with its OpenAPI description, each with what it requires of the
/// caller's role.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(guarded(routes!(catalog::list_catalog_products), SUBSCRIPTIONS))
        .routes(guarded(routes!(catalog::import_catalog_products), SUBSCRIPTIONS))
        .routes(guarded(
            routes!(products::list_products, products::create_product),
            SUBSCRIPTIONS,
        ))
        .routes(guarded(
            routes!(products::get_product, products::update_product),
            SUBSCRIPTIONS,
        ))
        .routes(guarded(routes!(products::add_service_plan), SUBSCRIPTIONS))
        .routes(guarded(routes!(service_plans::list_service_plans), SUBSCRIPTIONS))
        .routes(guarded(routes!(service_plans::get_service_plan), SUBSCRIPTIONS))
        .routes(guarded(
            routes!(service_plans::set_service_plan_rules),
            SUBSCRIPTIONS,
        ))
        .routes(guarded(
            routes!(service_plans::apply_default_rules),
            SUBSCRIPTIONS,
        ))
        .routes(guarded(
            routes!(tenant::get_settings, tenant::update_settings),
            SETTINGS,
        ))
        .routes(guarded(
            routes!(notifications::list_subscription_statuses),
            RouteAccess::Reads(ReadScope::Directory),
        ))
        .routes(guarded(
            routes!(notifications::list_subscription_deliveries),
            RouteAccess::Reads(ReadScope::Directory),
        ))
        .routes(guarded(
            routes!(notifications::list_deliveries),
            RouteAccess::Reads(ReadScope::Directory),
        ))
        .routes(guarded(
            routes!(tenant::get_overview),
            RouteAccess::Reads(ReadScope::Overview),
        ))
        .routes(guarded(
            routes!(tokens::list_tokens, tokens::create_token),
            RouteAccess::Tokens,
        ))
        .routes(guarded(routes!(tokens::revoke_token), RouteAccess::Tokens))
        .routes(guarded(
            routes!(tenant::explain_user_license_states),
            READS_LICENSING,
        ))
        .routes(guarded(routes!(diagnosis::diagnose_user), READS_LICENSING))
        .routes(guarded(routes!(diagnosis::diagnose_group), READS_LICENSING))
        // A simulation changes nothing although it is a POST.
        .routes(guarded(routes!(whatif::what_if), READS_LICENSING))
        .routes(guarded(routes!(whatif::apply_changes), ANY_CHANGES))
        .routes(guarded(routes!(advisor::get_advisor), READS_LICENSING))
        .routes(guarded(
            routes!(alert_rules::list_alert_rules, alert_rules::create_alert_rule),
            SETTINGS,
        ))
        .routes(guarded(
            routes!(alert_rules::get_alert_rule, alert_rules::delete_alert_rule),
            SETTINGS,
        ))
        .routes(guarded(routes!(spend::list_prices), READS_LICENSING))
        .routes(guarded(
            routes!(spend::set_price, spend::remove_price),
            SUBSCRIPTIONS,
        ))
        .routes(guarded(routes!(spend::get_cost), READS_LICENSING))
        .routes(guarded(routes!(spend::get_idle), READS_LICENSING))
        .routes(guarded(routes!(spend::get_history), READS_LICENSING))
        .routes(guarded(
            routes!(spend::get_activity),
            RouteAccess::Reads(ReadScope::Directory),
        ))
        .routes(guarded(routes!(spend::update_activity), USER_ACTIVITY))
        .routes(guarded(routes!(spend::update_activities), USER_ACTIVITY))
        .routes(guarded(routes!(migration::direct_to_group), LICENSE_CHANGES))
        .routes(guarded(
            routes!(reclamation::list_policies, reclamation::create_policy),
            RECLAMATION,
        ))
        .routes(guarded(
            routes!(
                reclamation::get_policy,
                reclamation::delete_policy,
                reclamation::update_policy
            ),
            RECLAMATION,
        ))
        .routes(guarded(
            routes!(reclamation::exempt_user, reclamation::unexempt_user),
            RECLAMATION,
        ))
        .routes(guarded(routes!(reclamation::run_policy), RECLAMATION))
        .routes(guarded(routes!(reclamation::list_notices), READS_LICENSING))
        .routes(guarded(routes!(reclamation::revert_reclamation), RECLAMATION))
}

/// A product's seats in licensd's admin shape.
pub fn wire_product(usage: SkuUsage) -> wire::Product {
    wire::Product {
        sku_id: usage.sku_id,
        sku_part_number: usage.sku_part_number,
        display_name: usage.display_name,
        capability_status: usage.capability_status.as_str().to_string(),
        prepaid_units: usage.prepaid_units,
        consumed_units: usage.consumed_units,
        available_units: usage.available_units,
        over_allocated_units: usage.over_allocated_units,
        waiting_users: usage.waiting_users as u64,
        service_plans: usage
            .service_plans
            .into_iter()
            .map(
                |(service_plan_id, service_plan_name, display_name)| wire::ServicePlan {
                    service_plan_id,
                    service_plan_name,
                    display_name,
                },
            )
            .collect(),
    }
}

/// Parses Graph's `capabilityStatus` text.
pub fn parse_capability_status(text: &str) -> Result<CapabilityStatus, ApiError> {
    [
        CapabilityStatus::Enabled,
        CapabilityStatus::Warning,
        CapabilityStatus::Suspended,
        CapabilityStatus::LockedOut,
        CapabilityStatus::Deleted,
    ]
    .into_iter()
    .find(|status| status.as_str().eq_ignore_ascii_case(text))
    .ok_or_else(|| {
        ApiError::new(
            licensd_api_types::ErrorCode::InvalidValue,
            format!(
                "Invalid capabilityStatus '{text}': use Enabled, Warning, Suspended, LockedOut or Deleted."
            ),
        )
    })
}
