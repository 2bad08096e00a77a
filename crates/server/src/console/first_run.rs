//! The first-run page (`/setup`, and `/` while the tenant is empty): what a new administrator of
//! a fresh `licensd serve` does first, in order — add products from the catalog bundled with
//! licensd (several at once, with the catalog's default rules), create a group, give it a
//! product, add its members.

use axum::response::Response;
use licensd_engine::catalog::Catalog;
use licensd_engine::setup::default_rule_commands;
use licensd_engine::{Command, Engine, SkuUsage, Uuid};
use maud::html;

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{parse_id, see_other, FormFields, IdKind, QueryFields};
use super::layout::{self, Done, Section};

/// Catalog products listed for one search at most.
const SHOWN_PRODUCTS: usize = 20;
/// The products offered before anything is searched (part numbers of the usual suites).
const SUGGESTED: [&str; 4] = ["STANDARDPACK", "ENTERPRISEPACK", "SPE_E3", "EMS"];

/// Whether the tenant is empty: no product and no group (the overview then shows this page).
pub fn is_empty(engine: &Engine) -> bool {
    engine.sku_usages().is_empty() && engine.group_ids().is_empty()
}

fn bundled() -> Result<&'static Catalog, ConsoleError> {
    Catalog::bundled().map_err(|error| ConsoleError::Internal {
        detail: format!("the bundled catalog does not parse: {error}"),
    })
}

struct SetupData {
    tenant_name: String,
    products: Vec<SkuUsage>,
    groups: Vec<(Uuid, String)>,
    users: usize,
}

/// `GET /setup[?search=…]`.
pub async fn show(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    render(&context, query.non_empty("search"), query.first("done")).await
}

pub async fn render(
    context: &ConsoleContext,
    search: Option<&str>,
    done: Option<&str>,
) -> Result<Response, ConsoleError> {
    let result = super::processing::change_result(context, done).await?;
    let data = context
        .read(|engine| {
            let groups = engine
                .group_ids()
                .into_iter()
                .map(|group_id| (group_id, super::names::group_name(engine, group_id)))
                .collect();
            Ok(SetupData {
                tenant_name: engine.settings().display_name.clone(),
                products: engine.sku_usages(),
                groups,
                users: engine.user_ids().len(),
            })
        })
        .await?;
    let catalog = bundled()?;
    let search_text = search.map(str::trim).unwrap_or("").to_lowercase();
    let subscribed = |sku_id: Uuid| data.products.iter().any(|product| product.sku_id == sku_id);
    let offered: Vec<_> = if search_text.is_empty() {
        SUGGESTED
            .iter()
            .filter_map(|part| catalog.product_by_part_number(part))
            .collect()
    } else {
        catalog
            .products()
            .iter()
            .filter(|product| {
                product.display_name.to_lowercase().contains(&search_text)
                    || product.sku_part_number.to_lowercase().contains(&search_text)
            })
            .take(SHOWN_PRODUCTS)
            .collect()
    };
    let may_products = context.may(ConsoleAction::ChangeSeats);
    let may_groups = context.may(ConsoleAction::ChangeMembers);
    let content = html! {
        h1 { "Get started" }
        (result)
        p { "This tenant is new. Four steps give its users their first licenses; each can be done again later from the other pages." }
        ol.steps {
            li {
                h2 { "Add products" }
                @if !data.products.is_empty() {
                    p data-testid="products-added" { "Subscribed: "
                        @for (index, product) in data.products.iter().enumerate() {
                            @if index > 0 { ", " }
                            a href={ "/products/" (product.sku_id) } { (product.display_name) }
                        }
                        "."
                    }
                }
                form.search role="search" method="get" action="/setup" {
                    label for="catalog-search" { "Search Microsoft's product catalog (bundled with licensd)" }
                    input #catalog-search type="search" name="search" maxlength="200" value=[search];
                    button type="submit" { "Search" }
                }
                @if offered.is_empty() {
                    p.muted { "No catalog product matches." }
                } @else if may_products {
                    form.stacked method="post" action="/setup/products" {
                        fieldset {
                            legend { @if search_text.is_empty() { "Usual products" } @else { "Catalog products found" } }
                            @for product in &offered {
                                @let id = format!("catalog-{}", product.sku_id);
                                div.plan-choice {
                                    input type="checkbox" name="sku_id" value=(product.sku_id) id=(id) disabled[subscribed(product.sku_id)];
                                    label for=(id) {
                                        (product.display_name) " " span.muted { "(" (product.sku_part_number) ", " (product.service_plans.len()) " plans)" }
                                        @if subscribed(product.sku_id) { " — already subscribed" }
                                    }
                                }
                            }
                        }
                        label for="setup-seats" { "Purchased seats of each product" }
                        input #setup-seats type="number" name="prepaid_units" min="0" max="4294967295" value="25" required;
                        div.actions { button type="submit" { "Add the selected products" } }
                    }
                }
            }
            li {
                h2 { "Create a group" }
                @if !data.groups.is_empty() {
                    p { "Groups: "
                        @for (index, (group_id, name)) in data.groups.iter().enumerate() {
                            @if index > 0 { ", " }
                            a href={ "/groups/" (group_id) } { (name) }
                        }
                        "."
                    }
                }
                @if may_groups {
                    form.search method="post" action="/setup/groups" {
                        label for="group-name" { "Group name" }
                        input #group-name type="text" name="display_name" maxlength="256" required;
                        button type="submit" { "Create the group" }
                    }
                }
            }
            li {
                h2 { "Give the group a product" }
                p { "Open the group, choose a product under " strong { "Add a product" } ", pick its plans, preview and save. "
                    "Every member then receives it." }
            }
            li {
                h2 { "Add members" }
                p { "On the group's " strong { "Members" } " tab, add users by name. "
                    "The tenant has " (super::format::count(data.users)) " users; users arrive through SCIM provisioning, "
                    code { "licensd import" } " or the Graph API." }
            }
        }
    };
    Ok(layout::page(
        "Get started",
        Section::Overview,
        &data.tenant_name,
        content,
    ))
}

/// `POST /setup/products`: subscribes the tenant to the selected catalog products, each with the
/// given seats, and gives their plans the catalog's default rules.
pub async fn add_products(context: ConsoleContext, form: FormFields) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeSeats)?;
    let catalog = bundled()?;
    let typed = form.required("prepaid_units", "purchased seats")?;
    let prepaid_units = typed.parse::<u32>().map_err(|_| {
        ConsoleError::bad_request(format!(
            "'{typed}' is not a number of seats (a whole number from 0 to 4294967295)."
        ))
    })?;
    let mut definitions = Vec::new();
    for text in form.all("sku_id") {
        let sku_id = parse_id(text, IdKind::Product)?;
        let product = catalog.product_by_sku_id(sku_id).ok_or_else(|| {
            ConsoleError::bad_request(format!("The product {sku_id} is not in the catalog."))
        })?;
        definitions.push(product.to_sku_definition(prepaid_units));
    }
    if definitions.is_empty() {
        return Err(ConsoleError::bad_request("Select at least one product."));
    }
    for definition in definitions {
        context.execute(Command::AddSku(definition)).await?;
    }
    let commands = context
        .read(move |engine| Ok(default_rule_commands(catalog, engine)))
        .await?;
    for command in commands {
        context.execute(command).await?;
    }
    Ok(see_other(&Done::ProductsAdded.on("/setup")))
}

/// `POST /setup/groups`: creates a group and opens it.
pub async fn create_group(context: ConsoleContext, form: FormFields) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    let display_name = form.required("display_name", "group name")?.trim().to_string();
    if display_name.is_empty() {
        return Err(ConsoleError::bad_request("Give the group a name."));
    }
    let group_id = Uuid::new_v4();
    context
        .execute(Command::CreateGroup {
            group_id,
            display_name,
        })
        .await?;
    Ok(see_other(&Done::GroupCreated.on(&format!("/groups/{group_id}"))))
}
