//! "All products" (`/products`): every product the tenant subscribes to with its totals —
//! purchased, assigned, available, users waiting for a seat — each leading to who consumes it.

use axum::response::Response;
use licensd_engine::SkuUsage;
use maud::html;

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::layout::{self, seat_bar, Section};

/// `GET /products`.
pub async fn list(context: ConsoleContext) -> Result<Response, ConsoleError> {
    let (tenant_name, products): (String, Vec<SkuUsage>) = context
        .read(|engine| Ok((engine.settings().display_name.clone(), engine.sku_usages())))
        .await?;
    let content = html! {
        h1 { "All products" }
        @if products.is_empty() {
            p.muted { "The tenant subscribes to no product yet." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Product" }
                        th scope="col" { "Status" }
                        th scope="col" class="number" { "Purchased" }
                        th scope="col" class="number" { "Assigned" }
                        th scope="col" class="number" { "Available" }
                        th scope="col" class="number" { "Waiting" }
                        th scope="col" { "Usage" }
                    }
                }
                tbody {
                    @for product in &products {
                        tr data-sku=(product.sku_part_number) {
                            th scope="row" {
                                a href={ "/products/" (product.sku_id) } { (product.display_name) }
                                br; span.muted { (product.sku_part_number) }
                            }
                            td.state { (product.capability_status.as_str()) }
                            td.number data-field="purchased" { (super::format::count(product.prepaid_units)) }
                            td.number data-field="assigned" { (super::format::count(product.consumed_units)) }
                            td.number data-field="available" { (super::format::count(product.available_units)) }
                            td.number data-field="waiting" { (super::format::count(product.waiting_users)) }
                            td { (seat_bar(product)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        "All products",
        Section::Products,
        &tenant_name,
        content,
    ))
}
