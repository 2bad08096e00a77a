//! Issue 17's latency figure through the API: one attribute change → memberships → licenses
//! visible. A `licensd serve` on SQLite or PostgreSQL holds a tenant of 100,000 users (by
//! default) in 50 departments, with a licensed dynamic group per department (`user.department
//! -eq "Department N"`) and transitive licensing on. Three phases, each a few hundred samples
//! taken one at a time while the processor is idle, each timed from sending the request until
//! `GET /v1.0/users/{id}?$select=licenseAssignmentStates` (polled back to back) shows the
//! expected group's license:
//!
//! - **reference**: `POST /v1.0/groups/{id}/members/$ref` adds a user to a licensed static group
//!   (the membership-add figure of `visibility.rs`, here over HTTP, in the same run);
//! - **attribute change**: `PATCH /v1.0/users/{id}` moves the user to the next department, until
//!   the new department's dynamic group's license shows;
//! - **nesting edge**: `POST /v1.0/groups/{parent}/members/$ref` nests a static group holding one
//!   user in a licensed group, until the user holds the parent's license.
//!
//! `cargo bench -p licensd-server --bench rule_visibility` (then the binary with `--bench`);
//! `LICENSD_BENCH_USERS` (default 100,000 with `--bench`, 2,000 without), `LICENSD_BENCH_SAMPLES`
//! (default 200 per phase with `--bench`, 20 without), `LICENSD_BENCH_DATABASE` (`sqlite`, the
//! default, or `postgres`: a fresh schema, dropped at the end).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use licensd_engine::{
    AssignedLicense, Command, CountryCode, Engine, NewUser, RuleProcessingState, SkuDefinition,
    TenantSettings, Timestamp, UserAttribute, Uuid,
};
use licensd_server::ServerConfig;
use serde_json::{json, Value};

#[path = "support/database.rs"]
mod database;
#[path = "support/measure.rs"]
mod measure;

use database::{BenchDatabase, BenchResult};
use measure::{env_or, store_with_token};

const DEPARTMENTS: usize = 50;

fn department(index: usize) -> String {
    format!("Department {}", index % DEPARTMENTS)
}

/// The tenant, settled (every user evaluated), and the ids the phases use.
struct Tenant {
    engine: Engine,
    users: Vec<Uuid>,
    /// The dynamic group of each department, by department number.
    dynamic_groups: Vec<Uuid>,
    static_group: Uuid,
    parent_group: Uuid,
    /// Static groups of one user each (the first users), to nest in `parent_group`.
    leaf_groups: Vec<Uuid>,
}

fn build(users: usize, leaves: usize) -> Tenant {
    let mut engine = Engine::new(TenantSettings::new(Uuid::from_u128(0x7e_0001), "Rule visibility"));
    let at = Timestamp(0);
    let apply = |engine: &mut Engine, command: Command| {
        engine
            .apply_without_images(command, at)
            .expect("a set-up command");
    };
    let sku = Uuid::from_u128(0x5c0);
    apply(
        &mut engine,
        Command::AddSku(SkuDefinition {
            sku_id: sku,
            sku_part_number: "BENCH_SKU".to_string(),
            display_name: "Bench product".to_string(),
            applies_to: licensd_engine::AppliesTo::User,
            service_plans: vec![licensd_engine::ServicePlanDefinition {
                service_plan_id: Uuid::from_u128(0x91a),
                service_plan_name: "BENCH_PLAN".to_string(),
                display_name: "Bench plan".to_string(),
            }],
            prepaid_units: (users * 2) as u32,
            capability_status: licensd_engine::CapabilityStatus::Enabled,
        }),
    );
    apply(&mut engine, Command::SetTransitiveLicensing { enabled: true });
    let licensed_group = |engine: &mut Engine, number: u128, name: String| {
        let group_id = Uuid::from_u128(0x6000_0000 + number);
        engine
            .apply_without_images(
                Command::CreateGroup {
                    group_id,
                    display_name: name,
                },
                at,
            )
            .expect("group");
        engine
            .apply_without_images(
                Command::AssignGroupLicenses {
                    group_id,
                    add_licenses: vec![AssignedLicense::new(sku)],
                    remove_licenses: Vec::new(),
                },
                at,
            )
            .expect("group license");
        group_id
    };
    let mut dynamic_groups = Vec::with_capacity(DEPARTMENTS);
    for index in 0..DEPARTMENTS {
        let group_id = licensed_group(
            &mut engine,
            index as u128,
            format!("Dynamic {}", department(index)),
        );
        apply(
            &mut engine,
            Command::SetMembershipRule {
                group_id,
                rule: Some(format!("user.department -eq \"{}\"", department(index))),
                processing_state: RuleProcessingState::On,
            },
        );
        dynamic_groups.push(group_id);
    }
    let static_group = licensed_group(&mut engine, 1_000, "Static licensed".to_string());
    let parent_group = licensed_group(&mut engine, 1_001, "Parent licensed".to_string());
    let usage_location = CountryCode::parse("US").expect("US");
    let mut user_ids = Vec::with_capacity(users);
    for index in 0..users {
        let user_id = Uuid::from_u128(0x1_0000_0000 + index as u128);
        let mut user = NewUser::new(user_id, &format!("user{index}@contoso.com"));
        user.usage_location = Some(usage_location);
        user.attributes = [(UserAttribute::DEPARTMENT, department(index))]
            .into_iter()
            .collect();
        apply(&mut engine, Command::CreateUser(user));
        user_ids.push(user_id);
    }
    let mut leaf_groups = Vec::with_capacity(leaves);
    for (index, user_id) in user_ids.iter().take(leaves).enumerate() {
        let group_id = Uuid::from_u128(0x6100_0000 + index as u128);
        apply(
            &mut engine,
            Command::CreateGroup {
                group_id,
                display_name: format!("Leaf {index}"),
            },
        );
        apply(
            &mut engine,
            Command::AddGroupMember {
                group_id,
                user_id: *user_id,
            },
        );
        leaf_groups.push(group_id);
    }
    engine.process_all(at);
    Tenant {
        engine,
        users: user_ids,
        dynamic_groups,
        static_group,
        parent_group,
        leaf_groups,
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> BenchResult<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != expected {
            return Err(format!("{path}: {status} (expected {expected}): {text}").into());
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Whether the user holds a state assigned by `group_id`.
    async fn has_state_from(&self, user_id: Uuid, group_id: Uuid) -> BenchResult<bool> {
        let user = self
            .send(
                reqwest::Method::GET,
                &format!("/v1.0/users/{user_id}?$select=id,licenseAssignmentStates"),
                None,
                200,
            )
            .await?;
        let group = group_id.to_string();
        Ok(user["licenseAssignmentStates"].as_array().is_some_and(|states| {
            states
                .iter()
                .any(|state| state["assignedByGroup"] == group.as_str())
        }))
    }

    /// Sends the change, then polls until the user holds `group_id`'s license; the time from
    /// sending to the first read that shows it.
    async fn time_until_visible(
        &self,
        change: (reqwest::Method, String, Value, u16),
        user_id: Uuid,
        group_id: Uuid,
    ) -> BenchResult<Duration> {
        // Between samples the processor falls idle (asleep, or waiting for a wake-up).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (method, path, body, expected) = change;
        let started = Instant::now();
        self.send(method, &path, Some(body), expected).await?;
        loop {
            if self.has_state_from(user_id, group_id).await? {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("user {user_id} did not get group {group_id}'s license in 30 s").into());
            }
        }
    }
}

fn report(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let percentile = |fraction: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * fraction).round() as usize)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "  {label:<62} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   ({} samples)",
        percentile(0.50),
        percentile(0.99),
        percentile(1.0),
        samples.len()
    );
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let bench_mode = std::env::args().any(|argument| argument == "--bench");
    let user_count: usize = env_or("LICENSD_BENCH_USERS", if bench_mode { 100_000 } else { 2_000 });
    let samples: usize = env_or("LICENSD_BENCH_SAMPLES", if bench_mode { 200 } else { 20 });
    assert!(samples * 2 <= user_count, "too few users for {samples} samples");
    let directory = tempfile::tempdir()?;
    let set_up = Instant::now();
    let tenant = build(user_count, samples);
    let image = tenant.engine.to_image();
    // The store's PostgreSQL client is synchronous: the set-up runs outside the async runtime.
    let (database, token) = tokio::task::block_in_place(|| -> BenchResult<(BenchDatabase, String)> {
        let database = BenchDatabase::from_environment(directory.path(), "licensd_rule_visibility")?;
        let token = store_with_token(&database, image, "rule visibility")?;
        Ok((database, token))
    })?;
    println!(
        "attribute / membership / nesting change -> license visible over HTTP, {}, {user_count} users, \
         {DEPARTMENTS} licensed dynamic groups, transitive licensing on (set-up {:.1} s)",
        database.name,
        set_up.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut server_config = ServerConfig::defaults(directory.path());
    server_config.database_url = database.url.clone();
    server_config.listen = address;
    server_config.rate_limit.per_second = 0;
    let (stop, receiver) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(licensd_server::run(listener, server_config, async move {
        let _ = receiver.await;
    }));
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{address}"),
        token,
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while !client
        .http
        .get(format!("{}/readyz", client.base))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        if Instant::now() > deadline {
            return Err("the server did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Reference: a membership added to a licensed static group (users after the leaves').
    let mut reference = Vec::with_capacity(samples);
    for user_id in &tenant.users[samples..samples * 2] {
        let change = (
            reqwest::Method::POST,
            format!("/v1.0/groups/{}/members/$ref", tenant.static_group),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user_id}")}),
            204,
        );
        reference.push(
            client
                .time_until_visible(change, *user_id, tenant.static_group)
                .await?,
        );
    }
    // One attribute change: the user moves to the next department's dynamic group.
    let mut attribute = Vec::with_capacity(samples);
    for (offset, user_id) in tenant.users[samples * 2..].iter().take(samples).enumerate() {
        let index = samples * 2 + offset;
        let next = (index + 1) % DEPARTMENTS;
        let change = (
            reqwest::Method::PATCH,
            format!("/v1.0/users/{user_id}"),
            json!({"department": department(next)}),
            204,
        );
        attribute.push(
            client
                .time_until_visible(change, *user_id, tenant.dynamic_groups[next])
                .await?,
        );
    }
    // One nesting edge: a group of one user nested in a licensed group.
    let mut nesting = Vec::with_capacity(samples);
    for (leaf, user_id) in tenant.leaf_groups.iter().zip(&tenant.users) {
        let change = (
            reqwest::Method::POST,
            format!("/v1.0/groups/{}/members/$ref", tenant.parent_group),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/groups/{leaf}")}),
            204,
        );
        nesting.push(
            client
                .time_until_visible(change, *user_id, tenant.parent_group)
                .await?,
        );
    }
    report(
        "reference: POST members/$ref (user) -> license visible",
        &mut reference,
    );
    report(
        "PATCH users/{id} department -> dynamic group's license visible",
        &mut attribute,
    );
    report(
        "POST members/$ref (nested group) -> parent's license visible",
        &mut nesting,
    );

    let _ = stop.send(());
    server.await??;
    tokio::task::block_in_place(|| database.drop_schema())?;
    Ok(())
}
