//! The spend page (`/spend`): what licenses cost per product and per department, idle seats and
//! why, with two charts drawn on the server as SVG (readable without JavaScript, each with a
//! table of the same figures): cost by department, and each product's seat usage over time with
//! its purchased seats (`/spend/products/{skuId}`).

use std::fmt::Write as _;

use axum::extract::Path;
use axum::response::Response;
use licensd_api_types::spend::format_amount;
use licensd_engine::spend::{
    AttributeCost, CostReport, IdlePolicy, SeatPrice, SpendInputs, UserActivity, DAY_MILLISECONDS,
};
use licensd_engine::{Timestamp, Uuid};
use licensd_store::SeatSnapshot;
use maud::{html, Markup, PreEscaped};
use rustc_hash::FxHashMap;

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::format::{count, time};
use super::layout::{self, Section};

const INACTIVE_DAYS: u32 = 90;

fn money(amounts: &std::collections::BTreeMap<String, i64>) -> String {
    if amounts.is_empty() {
        return "–".to_string();
    }
    amounts
        .iter()
        .map(|(currency, amount)| format!("{} {currency}", amount_text(*amount)))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// An amount in minor units for people: `549800` → "5,498.00" (thousands separated).
fn amount_text(minor: i64) -> String {
    let plain = format_amount(minor);
    match plain.split_once('.') {
        Some((major, cents)) => format!("{}.{cents}", count(major)),
        None => count(plain),
    }
}

/// XML text with `&`, `<`, `>` and quotes escaped (the SVG is written as text).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart of the departments' cost in their first currency.
fn department_chart(departments: &[AttributeCost]) -> Markup {
    let bars: Vec<(String, i64, String)> = departments
        .iter()
        .filter_map(|entry| {
            let (currency, amount) = entry.cost.iter().next()?;
            Some((
                entry
                    .value
                    .clone()
                    .unwrap_or_else(|| "(no department)".to_string()),
                *amount,
                currency.clone(),
            ))
        })
        .collect();
    let largest = bars
        .iter()
        .map(|(_, amount, _)| *amount)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = 28 * bars.len() + 10;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="department-chart-title" width="640" height="{height}" viewBox="0 0 640 {height}"><title id="department-chart-title">Cost by department</title>"#
    );
    for (index, (name, amount, currency)) in bars.iter().enumerate() {
        let y = 5 + index * 28;
        let width = (*amount as f64 / largest as f64 * 380.0).round().max(1.0);
        let _ = write!(
            svg,
            r##"<text x="0" y="{}" font-size="13">{}</text><rect x="150" y="{y}" width="{width}" height="20" fill="#2f6fb3"><title>{} {}</title></rect><text x="{}" y="{}" font-size="13">{} {}</text>"##,
            y + 15,
            escape(name),
            amount_text(*amount),
            escape(currency),
            150.0 + width + 6.0,
            y + 15,
            amount_text(*amount),
            escape(currency)
        );
    }
    svg.push_str("</svg>");
    html! { figure.chart { (PreEscaped(svg)) figcaption { "Cost per month by department (consumed seats)." } } }
}

/// A line chart of consumed seats over time with the purchased seats as a second line.
fn usage_chart(snapshots: &[SeatSnapshot]) -> Markup {
    if snapshots.is_empty() {
        return html! { p.muted { "No snapshot yet: the first is taken within a minute of start-up, then daily and whenever the purchased seats change." } };
    }
    let (width, height) = (640.0, 240.0);
    let first = snapshots.first().map_or(0, |snapshot| snapshot.taken_at);
    let last = snapshots
        .last()
        .map_or(1, |snapshot| snapshot.taken_at)
        .max(first + 1);
    let top = snapshots
        .iter()
        .map(|snapshot| snapshot.purchased.max(snapshot.consumed + snapshot.waiting))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |at: i64| 40.0 + (at - first) as f64 / (last - first) as f64 * (width - 60.0);
    let y = |value: i64| height - 30.0 - value as f64 / top * (height - 50.0);
    let line = |value: &dyn Fn(&SeatSnapshot) -> i64| {
        snapshots
            .iter()
            .map(|snapshot| format!("{:.1},{:.1}", x(snapshot.taken_at), y(value(snapshot))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="usage-chart-title" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title id="usage-chart-title">Seat usage over time</title><line x1="40" y1="{base}" x2="{right}" y2="{base}" stroke="#888"/><text x="0" y="{top_y}" font-size="12">{top}</text><text x="0" y="{base}" font-size="12">0</text><polyline fill="none" stroke="#b33" stroke-dasharray="6 4" stroke-width="2" points="{purchased}"><title>Purchased</title></polyline><polyline fill="none" stroke="#2f6fb3" stroke-width="2" points="{consumed}"><title>Consumed</title></polyline></svg>"##,
        base = height - 30.0,
        right = width - 20.0,
        top_y = y(top as i64) + 4.0,
        top = count(top as i64),
        purchased = line(&|snapshot| snapshot.purchased),
        consumed = line(&|snapshot| snapshot.consumed),
    );
    html! {
        figure.chart {
            (PreEscaped(svg))
            figcaption { "Consumed seats (solid) and purchased seats (dashed) from "
                (time(first)) " to " (time(last)) "." }
        }
    }
}

async fn report(context: &ConsoleContext) -> Result<(String, CostReport, usize), ConsoleError> {
    let now = licensd_runtime::tenants::now().0;
    let signed_in_before = now - i64::from(INACTIVE_DAYS) * DAY_MILLISECONDS;
    let (prices, activity) = context
        .with_store(move |store, tenant_id| {
            Ok((
                store.sku_prices(tenant_id)?,
                store.possibly_idle_activity(tenant_id, now, signed_in_before)?,
            ))
        })
        .await?;
    let prices: FxHashMap<Uuid, SeatPrice> = prices
        .into_iter()
        .map(|price| {
            (
                price.sku_id,
                SeatPrice {
                    minor_units: price.price_minor,
                    currency: price.currency,
                },
            )
        })
        .collect();
    let activity: FxHashMap<Uuid, UserActivity> = activity
        .into_iter()
        .map(|record| {
            (
                record.user_id,
                UserActivity {
                    last_sign_in: record.last_sign_in.map(Timestamp),
                    leave_date: record.leave_date.map(Timestamp),
                },
            )
        })
        .collect();
    context
        .read(move |engine| {
            let inputs = SpendInputs {
                prices: &prices,
                activity: &activity,
                policy: IdlePolicy {
                    now: Timestamp(now),
                    inactive_after_days: INACTIVE_DAYS,
                },
            };
            let report = engine.cost_report(&inputs);
            // The seats held by idle users, counted per product by the report (the same seats
            // `Engine::idle_seats` lists, without a second pass over every user).
            let held_by_idle: usize = report
                .products
                .iter()
                .flat_map(|product| product.idle_held)
                .map(|seats| seats as usize)
                .sum();
            Ok((engine.settings().display_name.clone(), report, held_by_idle))
        })
        .await
}

/// `/spend`: cost per product and department, idle seats, the department chart.
pub async fn show(context: ConsoleContext) -> Result<Response, ConsoleError> {
    let (tenant_name, report, idle_held) = report(&context).await?;
    let content = html! {
        h1 { "Spend" }
        p { "Per month. A seat is idle when no one holds it, or its holder left, is disabled or has not signed in for "
            (INACTIVE_DAYS) " days. The same figures: " a href="/licensd/v1/spend/cost?format=csv" { "cost as CSV" }
            ", " a href="/licensd/v1/spend/idle?format=csv" { "idle seats as CSV" } " (with an API token)." }
        section id="totals" {
            h2 { "Totals" }
            table {
                thead { tr { th scope="col" { "Currency" } th scope="col" { "Purchased" } th scope="col" { "Consumed" } th scope="col" { "Idle" } } }
                tbody {
                    @for (currency, purchased) in &report.purchased_cost {
                        tr {
                            td { (currency) }
                            td.number { (amount_text(*purchased)) }
                            td.number { (amount_text(report.consumed_cost.get(currency).copied().unwrap_or(0))) }
                            td.number { (amount_text(report.idle_cost.get(currency).copied().unwrap_or(0))) }
                        }
                    }
                }
            }
            p { (count(idle_held)) " seats are held by idle users. " a href="/spend/reclamation" { "Reclaim idle seats" } " with a policy." }
        }
        section id="products" {
            h2 { "Per product" }
            table {
                thead { tr {
                    th scope="col" { "Product" } th scope="col" { "Price" } th scope="col" { "Purchased" }
                    th scope="col" { "Consumed" } th scope="col" { "Unassigned" } th scope="col" { "Left" }
                    th scope="col" { "Disabled" } th scope="col" { "Inactive" } th scope="col" { "Idle cost" }
                } }
                tbody {
                    @for product in &report.products {
                        tr {
                            th scope="row" {
                                a href=(format!("/spend/products/{}", product.sku_id)) { (product.display_name) }
                                br; span.muted { (product.sku_part_number) }
                            }
                            td.number { @if let Some(price) = &product.price { (amount_text(price.minor_units)) " " (price.currency) } @else { "–" } }
                            td.number { (count(product.purchased)) } td.number { (count(product.consumed)) } td.number { (count(product.unassigned)) }
                            td.number { (count(product.idle_held[0])) } td.number { (count(product.idle_held[1])) } td.number { (count(product.idle_held[2])) }
                            td.number { @if product.price.is_some() { (amount_text(product.idle_cost)) } @else { "–" } }
                        }
                    }
                }
            }
        }
        section id="departments" {
            h2 { "Per department" }
            (department_chart(&report.departments))
            table {
                thead { tr { th scope="col" { "Department" } th scope="col" { "Seats" } th scope="col" { "Idle seats" } th scope="col" { "Cost" } th scope="col" { "Idle cost" } } }
                tbody {
                    @for entry in &report.departments {
                        tr {
                            td { (entry.value.clone().unwrap_or_else(|| "(no department)".to_string())) }
                            td.number { (count(entry.seats)) } td.number { (count(entry.idle_seats)) }
                            td.number { (money(&entry.cost)) } td.number { (money(&entry.idle_cost)) }
                        }
                    }
                }
            }
        }
        section id="sources" {
            h2 { "Per group and direct assignments" }
            p.muted { "A seat a user holds through several assignments counts once: for the direct assignment if any, else for the group with the lowest id." }
            table {
                thead { tr { th scope="col" { "Source" } th scope="col" { "Idle seats" } th scope="col" { "Cost" } } }
                tbody {
                    @for source in &report.sources {
                        tr {
                            td { @match &source.owner {
                                licensd_engine::spend::CostOwner::Direct => { "Direct assignments" }
                                licensd_engine::spend::CostOwner::Group { group_id, display_name } => {
                                    a href=(format!("/groups/{group_id}")) { (display_name) }
                                }
                            } }
                            td.number { (count(source.idle_seats)) } td.number { (money(&source.cost)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Spend", Section::Spend, &tenant_name, content))
}

/// `/spend/products/{skuId}`: a product's seat history as a chart and a table.
pub async fn product(context: ConsoleContext, Path(sku_id): Path<String>) -> Result<Response, ConsoleError> {
    let sku_id = Uuid::try_parse(&sku_id).map_err(|_| ConsoleError::NotFound {
        what: format!("product {sku_id}"),
    })?;
    let (tenant_name, usage) = context
        .read(move |engine| {
            let usage = engine.sku_usage(sku_id).map_err(|_| ConsoleError::NotFound {
                what: format!("product {sku_id}"),
            })?;
            Ok((engine.settings().display_name.clone(), usage))
        })
        .await?;
    let now = licensd_runtime::tenants::now().0;
    let snapshots = context
        .with_store(move |store, tenant_id| {
            store.seat_history(tenant_id, sku_id, now - 90 * DAY_MILLISECONDS, now)
        })
        .await?;
    let content = html! {
        h1 { "Seat usage: " (usage.display_name) }
        p.subtitle { (usage.sku_part_number) }
        p { a href="/spend" { "Back to spend" } " · " a href=(format!("/products/{sku_id}")) { "The product's holders" } }
        (usage_chart(&snapshots))
        table {
            thead { tr { th scope="col" { "Taken" } th scope="col" { "Purchased" } th scope="col" { "Consumed" } th scope="col" { "Waiting" } th scope="col" { "In error" } } }
            tbody {
                @for snapshot in &snapshots {
                    tr {
                        td { (time(snapshot.taken_at)) } td.number { (count(snapshot.purchased)) }
                        td.number { (count(snapshot.consumed)) } td.number { (count(snapshot.waiting)) } td.number { (count(snapshot.in_error)) }
                    }
                }
            }
        }
    };
    Ok(layout::page("Seat usage", Section::Spend, &tenant_name, content))
}
