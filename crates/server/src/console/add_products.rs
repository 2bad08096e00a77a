//! Several products in one step: a group's Licenses pane and a user's page offer the products
//! not yet assigned as checkboxes, assigned together with every plan enabled (plans can be
//! edited afterwards, one product at a time). For a group, which affects every member, the
//! engine's prediction is shown first and the products are added only from its confirmation.

use axum::response::Response;
use licensd_engine::{AssignedLicense, Command, SkuUsage, Uuid};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::format::count;
use super::forms::{parse_id, see_other, FormFields, IdKind, PathParameters};
use super::layout::{self, Done, Section};
use super::names::ProductNames;

/// The form: a checkbox per product, posting to `action`. `id_prefix` keeps ids unique.
pub fn form(action: &str, id_prefix: &str, products: &[&SkuUsage], button: &str) -> Markup {
    html! {
        details.several-products {
            summary { "Add several products at once" }
            form method="post" action=(action) {
                fieldset {
                    legend { "Products to add, every plan enabled (edit the plans of each afterwards)" }
                    @for product in products {
                        div.check {
                            input type="checkbox" name="sku_id" value=(product.sku_id)
                                id={ (id_prefix) "-" (product.sku_id) };
                            label for={ (id_prefix) "-" (product.sku_id) } {
                                (product.display_name) " (" (count(product.available_units as usize)) " available)"
                            }
                        }
                    }
                }
                button type="submit" { (button) }
            }
        }
    }
}

/// The products named by the form (`sku_id`, repeated), known and at least one.
fn submitted_products(names: &ProductNames, form: &FormFields) -> Result<Vec<Uuid>, ConsoleError> {
    let mut sku_ids = Vec::new();
    for text in form.all("sku_id") {
        let sku_id = parse_id(text, IdKind::Product)?;
        if names.product(sku_id).is_none() {
            return Err(ConsoleError::not_found(format!("The product {sku_id}")));
        }
        if !sku_ids.contains(&sku_id) {
            sku_ids.push(sku_id);
        }
    }
    if sku_ids.is_empty() {
        return Err(ConsoleError::bad_request("Select at least one product to add."));
    }
    Ok(sku_ids)
}

/// `POST /groups/{id}/licenses/add`: previews the products for every member, then (with
/// `confirmed=yes`) assigns them to the group in one change.
pub async fn add_to_group(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    form: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let confirmed = form.first("confirmed") == Some("yes");
    let (tenant_name, group_name, sku_ids, product_names, preview) = context
        .read(move |engine| {
            let group = super::group::existing_group(engine, group_id)?;
            let names = ProductNames::of(engine);
            let sku_ids = submitted_products(&names, &form)?;
            let command = Command::AssignGroupLicenses {
                group_id,
                add_licenses: sku_ids
                    .iter()
                    .map(|sku_id| AssignedLicense::new(*sku_id))
                    .collect(),
                remove_licenses: Vec::new(),
            };
            let preview = if confirmed {
                None
            } else {
                let report = super::preview::predict(engine, &[command])?;
                Some(super::preview::panel(&names, &report))
            };
            let product_names: Vec<String> =
                sku_ids.iter().map(|sku_id| names.product_name(*sku_id)).collect();
            Ok((
                engine.settings().display_name.clone(),
                group.display_name,
                sku_ids,
                product_names,
                preview,
            ))
        })
        .await?;
    let Some(preview) = preview else {
        context
            .execute(Command::AssignGroupLicenses {
                group_id,
                add_licenses: sku_ids
                    .iter()
                    .map(|sku_id| AssignedLicense::new(*sku_id))
                    .collect(),
                remove_licenses: Vec::new(),
            })
            .await?;
        return Ok(see_other(
            &Done::ProductsAssigned.on(&format!("/groups/{group_id}")),
        ));
    };
    let back = format!("/groups/{group_id}");
    let content = html! {
        h1 { "Add " (count(sku_ids.len())) " products to " (group_name) }
        h2 { "Every member of the group gets" }
        ul data-testid="products-to-add" { @for name in &product_names { li { (name) } } }
        (preview)
        form method="post" action={ "/groups/" (group_id) "/licenses/add" } {
            input type="hidden" name="confirmed" value="yes";
            @for sku_id in &sku_ids { input type="hidden" name="sku_id" value=(sku_id); }
            div.actions {
                button type="submit" { "Add for all members" }
                a.button.secondary href=(back) { "Cancel" }
            }
        }
    };
    Ok(layout::page(
        "Add products",
        Section::Groups,
        &tenant_name,
        content,
    ))
}

/// `POST /users/{id}/licenses/add`: assigns the products directly, in one change.
pub async fn add_to_user(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    form: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    let sku_ids = context
        .read(move |engine| {
            engine
                .user_view(user_id)
                .map_err(|_| ConsoleError::not_found(format!("The user {user_id}")))?;
            submitted_products(&ProductNames::of(engine), &form)
        })
        .await?;
    context
        .execute(Command::AssignUserLicenses {
            user_id,
            add_licenses: sku_ids.into_iter().map(AssignedLicense::new).collect(),
            remove_licenses: Vec::new(),
        })
        .await?;
    Ok(see_other(
        &Done::ProductsAssigned.on(&format!("/users/{user_id}")),
    ))
}
