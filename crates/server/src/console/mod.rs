//! The admin web console at `/`: server-rendered pages (maud) with htmx for partial updates,
//! mirroring the portal walk of the seed document — the overview with the groups that need
//! attention, a group's Licenses pane with its users in error, each user's assignments with the
//! reason and the fixes of every error, all products with who consumes them,
//! the tenant advisor, and activity.
//!
//! One module per page. Every list is paged on the server by a stable key ([`paging`]). Changes
//! are POSTs from the console's own pages that run the same engine commands, queue and store as
//! the API, then redirect (or, for htmx, answer a fragment); refusals are shown inline. Every
//! handler takes a [`ConsoleContext`] (tenant and role) so sign-in can later hide or refuse what a
//! role may not do. Assets (htmx, the style sheet) are embedded in the binary.

mod activity;
mod add_products;
mod advisor;
mod alerts;
mod assets;
mod bulk;
mod context;
mod diagnosis;
mod error;
mod first_run;
mod format;
mod forms;
mod group;
mod group_errors;
mod group_members;
mod group_nesting;
mod groups;
mod guard;
mod layout;
mod names;
mod notifications;
mod overview;
mod paging;
mod preview;
mod processing;
mod product;
mod products;
mod reclamation;
mod rule_editor;
mod sign_in;
mod spend;
mod user;
mod users;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub use context::{ConsoleAction, ConsoleContext};
pub use error::ConsoleError;

use licensd_runtime::access::RouteAccess;

use crate::AppState;

/// Every console route, with what it requires of the signed-in role, the console's headers, its
/// cross-site refusal for changes, and its error fragments for htmx. The sign-in page and the
/// assets are open to anyone.
pub fn router() -> Router<AppState> {
    let public = Router::new()
        .route("/login", get(sign_in::show).post(sign_in::submit))
        .route("/assets/{name}", get(assets::serve));
    let overview = Router::new()
        .route("/", get(overview::show))
        .route("/processing", get(processing::tenant_fragment));
    let activity = Router::new()
        .route("/activity", get(activity::show))
        .route("/notifications", get(notifications::show));
    let sign_out = Router::new().route("/logout", post(sign_in::sign_out));
    let pages = Router::new()
        .route("/setup", get(first_run::show))
        .route("/setup/products", post(first_run::add_products))
        .route("/setup/groups", post(first_run::create_group))
        .route("/advisor", get(advisor::show))
        .route("/alerts", get(alerts::show))
        .route("/advisor/apply", post(advisor::apply))
        .route("/spend", get(spend::show))
        .route("/spend/products/{sku_id}", get(spend::product))
        .route("/spend/reclamation", get(reclamation::show))
        .route("/spend/reclamation/policies", post(reclamation::create))
        .route(
            "/spend/reclamation/policies/{id}/delete",
            post(reclamation::delete),
        )
        .route(
            "/spend/reclamation/policies/{id}/dry-run",
            get(reclamation::dry_run),
        )
        .route("/spend/reclamation/policies/{id}/run", post(reclamation::run))
        .route("/spend/reclamation/reverts", post(reclamation::revert))
        .route(
            "/spend/reclamation/policies/{id}/enabled",
            post(reclamation::set_enabled),
        )
        .route(
            "/spend/reclamation/policies/{id}/exemptions",
            post(reclamation::exempt),
        )
        .route(
            "/spend/reclamation/policies/{id}/exemptions/{user_id}/delete",
            post(reclamation::unexempt),
        )
        .route("/groups", get(groups::list))
        .route("/groups/new", get(groups::new_group).post(groups::create))
        .route("/groups/rule-check", get(rule_editor::check))
        .route(
            "/groups/{group_id}/rule",
            get(rule_editor::show).post(rule_editor::save),
        )
        .route(
            "/groups/{group_id}/nesting",
            get(group_nesting::show).post(group_nesting::add),
        )
        .route(
            "/groups/{group_id}/nesting/transitive-licensing",
            post(group_nesting::transitive_licensing),
        )
        .route(
            "/groups/{group_id}/nesting/{member_group_id}/remove",
            post(group_nesting::remove),
        )
        .route("/groups/{group_id}", get(group::show))
        .route("/groups/{group_id}/licenses", post(group::save_license))
        .route("/groups/{group_id}/licenses/edit", get(group::edit_license))
        .route(
            "/groups/{group_id}/licenses/add",
            post(add_products::add_to_group),
        )
        .route(
            "/groups/{group_id}/licenses/{sku_id}/remove",
            post(group::remove_license),
        )
        .route("/groups/{group_id}/reprocess", post(group::reprocess))
        .route("/groups/{group_id}/processing", get(group::processing_fragment))
        .route(
            "/groups/{group_id}/members",
            get(group_members::show).post(group_members::add),
        )
        .route(
            "/groups/{group_id}/members/{user_id}/remove",
            post(group_members::remove),
        )
        .route("/groups/{group_id}/errors", get(group_errors::show))
        .route("/groups/{group_id}/errors/fix", post(group_errors::fix_selected))
        .route("/users", get(users::list))
        .route("/users/errors/fix", post(users::fix_selected))
        .route("/users/{user_id}", get(user::show))
        .route("/users/{user_id}/licenses", post(user::save_license))
        .route("/users/{user_id}/licenses/edit", get(user::edit_license))
        .route("/users/{user_id}/licenses/add", post(add_products::add_to_user))
        .route(
            "/users/{user_id}/licenses/{sku_id}/remove",
            post(user::remove_license),
        )
        .route("/users/{user_id}/usage-location", post(user::save_usage_location))
        .route("/users/{user_id}/attributes", post(user::save_attributes))
        .route(
            "/users/{user_id}/proxy-addresses",
            post(user::save_proxy_addresses),
        )
        .route("/users/{user_id}/reprocess", post(user::reprocess))
        .route("/users/{user_id}/diagnosis", get(diagnosis::show))
        .route("/users/{user_id}/diagnosis/apply", post(diagnosis::apply))
        .route("/products", get(products::list))
        .route("/products/{sku_id}", get(product::show))
        .route("/products/{sku_id}/seats", post(product::save_seats));
    // The guard wraps the console's own layers: a request without a session is sent to sign
    // in before anything else looks at it.
    let guarded = |routes: Router<AppState>, access: RouteAccess| {
        console_layers(routes).route_layer(middleware::from_fn_with_state(access, guard::guard))
    };
    console_layers(public)
        .merge(guarded(overview, guard::OVERVIEW))
        .merge(guarded(activity, guard::ACTIVITY))
        .merge(guarded(sign_out, guard::SIGN_OUT))
        .merge(guarded(pages, guard::PAGES))
}

/// The console's headers, its cross-site refusal for changes, and its error fragments for htmx.
fn console_layers(routes: Router<AppState>) -> Router<AppState> {
    routes
        .layer(middleware::from_fn(forms::same_origin_changes))
        .layer(middleware::from_fn(error::htmx_errors))
        .layer(middleware::map_response(layout::security_headers))
}
