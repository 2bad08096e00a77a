//! Seeded, deterministic synthetic tenants for tests, demos and benchmarks.
//!
//! A [`Generator`] is a lazy stream of ordinary [`Command`]s that builds a tenant of any size
//! from the bundled Microsoft catalog.
//!
//! The same [`GeneratorConfig`] always yields the same commands, and every command is accepted
//! by the engine when the commands are applied in order to an engine created with
//! [`Generator::tenant_settings`] (no background processing is needed in between; processing
//! in between does not make any command invalid either). [`build_engine`] does exactly that.
//!
//! The stream has four parts:
//!
//! 1. Setup: the tenant's default usage location, `skus` real products of the catalog (Office 365
//!    E3 and E1, Enterprise Mobility + Security E3 and Microsoft Workplace Analytics first, then
//!    products picked by the seed), the catalog's default rules (exclusions and prerequisites),
//!    the mailbox flag on the Exchange Online plans, and one plan (Microsoft Teams when the tenant
//!    knows it) made unavailable in one country.
//! 2. Groups: `groups` groups whose expected sizes follow a Zipf law, so that a few groups hold
//!    10–30 % of the users and most groups are small. Most groups carry one or two products; an
//!    add-on always travels with its prerequisite, and some assignments disable a few plans.
//! 3. Users, one at a time, each sometimes followed by a direct Office 365 E1 license (which
//!    conflicts with the E3 product of the groups) and then by its memberships (about
//!    `mean_groups_per_user` on average).
//! 4. Nothing else: the stream ends after the last user.
//!
//! Seats are scarce on some products (fewer seats than the expected demand) and ample on the
//! others, a few users live in the country where the prohibited plan is unavailable, and a few
//! users list a proxy address of another user, so that background processing produces every
//! kind of error: `CountViolation`, `MutuallyExclusiveViolation`,
//! `ProhibitedInUsageLocationViolation` and `UniquenessViolation`.
//!
//! Only the setup commands and one small plan per group are kept in memory; users are produced
//! on demand, so a tenant of millions of users never holds its commands in memory at once.

use std::collections::VecDeque;

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rustc_hash::FxHashSet;

use crate::catalog::{well_known, Catalog, CatalogProduct};
use crate::command::Command;
use crate::error::CommandError;
use crate::model::{AssignedLicense, CountryCode, NewUser, ProxyAddress, TenantSettings, Timestamp, Uuid};
use crate::setup::default_rule_commands;
use crate::Engine;

/// Microsoft Teams (`TEAMS1`): the plan made unavailable in the prohibited country when the
/// tenant knows it.
const MICROSOFT_TEAMS_PLAN: Uuid = Uuid::from_u128(0x57ff2da0_773e_42df_b2af_ffb7a2317929);

/// Technical names of the plans that hold a mailbox and therefore need unique proxy addresses.
const MAILBOX_PLAN_NAMES: [&str; 5] = [
    "EXCHANGE_S_STANDARD",
    "EXCHANGE_S_ENTERPRISE",
    "EXCHANGE_S_DESKLESS",
    "EXCHANGE_S_ESSENTIALS",
    "EXCHANGE_S_STANDARD_MIDMARKET",
];

/// Usage locations given to users who have one, with their relative weights.
const COUNTRIES: [(&str, u32); 12] = [
    ("US", 40),
    ("GB", 10),
    ("DE", 8),
    ("IN", 8),
    ("FR", 6),
    ("NL", 5),
    ("JP", 5),
    ("CA", 5),
    ("BR", 4),
    ("AU", 4),
    ("ES", 3),
    ("IT", 2),
];

const FIRST_NAMES: [&str; 40] = [
    "Aiko", "Alex", "Amara", "Ana", "Ben", "Carla", "Chen", "Dana", "David", "Elena", "Emma", "Farid",
    "Grace", "Hana", "Ivan", "Jonas", "Julia", "Kai", "Lars", "Leila", "Lucas", "Maria", "Mateo", "Mei",
    "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Ravi", "Sara", "Sofia", "Tariq", "Tom", "Uma",
    "Victor", "Wei", "Yara", "Zoe",
];

const LAST_NAMES: [&str; 40] = [
    "Abe", "Adams", "Bakker", "Brown", "Chen", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Gupta",
    "Hansen", "Ito", "Jansen", "Kim", "Kowalski", "Larsen", "Lee", "Lopez", "Martin", "Meyer", "Moreau",
    "Nakamura", "Nguyen", "Novak", "Okafor", "Patel", "Petrov", "Rossi", "Santos", "Schmidt", "Silva",
    "Singh", "Smith", "Suzuki", "Tanaka", "Taylor", "Wang", "Weber", "Wilson",
];

const DEPARTMENTS: [&str; 12] = [
    "Sales",
    "Marketing",
    "Engineering",
    "Finance",
    "Legal",
    "Support",
    "Operations",
    "Research",
    "Human Resources",
    "Facilities",
    "Procurement",
    "Design",
];

/// Tags that separate the derived identifiers of different kinds of objects.
const TAG_TENANT: u64 = 0x7e4a_4e70;
const TAG_USER: u64 = 0x05e4;
const TAG_GROUP: u64 = 0x0006_e009;
const TAG_NAME: u64 = 0x4a4e;
const TAG_USER_STREAM: u64 = 0x57e4_a400;
const TAG_PROHIBITED: u64 = 0x9e0b;
const TAG_SHARED: u64 = 0x54a4;

/// How to generate a tenant. Build one with [`GeneratorConfig::new`] and adjust the public
/// fields; every fraction is a probability between 0 and 1 (values outside are clamped).
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// Number of users.
    pub users: usize,
    /// Number of groups (licensed or not).
    pub groups: usize,
    /// Number of products the tenant subscribes to (at most the catalog's size).
    pub skus: usize,
    /// Average number of groups a user is a direct member of (Poisson distributed).
    pub mean_groups_per_user: f64,
    /// Seed of every random choice and of every identifier.
    pub seed: u64,
    /// Share of the users in the largest group; the Zipf exponent of group sizes follows from it.
    pub largest_group_fraction: f64,
    /// Share of the groups (beyond the first three, always licensed) that carry products.
    pub licensed_group_fraction: f64,
    /// Share of the licensed groups that carry a second product.
    pub second_product_fraction: f64,
    /// Share of the licensed groups whose product may conflict with Office 365 E3 (the product
    /// of the largest group); the others only draw products compatible with it.
    pub conflicting_product_fraction: f64,
    /// Share of the licensed groups that carry the Workplace Analytics add-on as well.
    pub add_on_fraction: f64,
    /// Share of the licensed groups that disable one or two plans of a product.
    pub disabled_plans_fraction: f64,
    /// Share of the products used by groups whose seats are scarce (EMS always is).
    pub scarce_sku_fraction: f64,
    /// Seats of a scarce product as a share of its expected demand.
    pub scarce_seat_ratio: f64,
    /// Share of the users without a usage location (they inherit the tenant's default).
    pub missing_location_fraction: f64,
    /// Share of the users located in the country where the prohibited plan is unavailable.
    pub prohibited_location_fraction: f64,
    /// Share of the users who also list the primary address of an earlier user.
    pub shared_proxy_fraction: f64,
    /// Share of the users with a secondary proxy address of their own.
    pub secondary_address_fraction: f64,
    /// Share of the eligible users with a direct Office 365 E1 license.
    pub direct_assignment_fraction: f64,
    /// The tenant's default usage location (ISO 3166-1 alpha-2).
    pub default_usage_location: String,
    /// The country where one plan is unavailable (ISO 3166-1 alpha-2).
    pub prohibited_location: String,
    /// The domain of user principal names and primary addresses.
    pub domain: String,
    /// Time of the first command; [`build_engine`] spaces commands one millisecond apart.
    pub start: Timestamp,
}

impl GeneratorConfig {
    /// A tenant of the given size with realistic defaults: about three groups per user, the
    /// largest group holding 30 % of the users, 60 % of the groups licensed, default location
    /// `US`, Microsoft Teams unavailable in `CU`.
    pub fn new(users: usize, groups: usize, skus: usize, seed: u64) -> Self {
        GeneratorConfig {
            users,
            groups,
            skus,
            mean_groups_per_user: 3.0,
            seed,
            largest_group_fraction: 0.3,
            licensed_group_fraction: 0.6,
            second_product_fraction: 0.3,
            conflicting_product_fraction: 0.05,
            add_on_fraction: 0.1,
            disabled_plans_fraction: 0.2,
            scarce_sku_fraction: 0.2,
            scarce_seat_ratio: 0.85,
            missing_location_fraction: 0.08,
            prohibited_location_fraction: 0.002,
            shared_proxy_fraction: 0.001,
            secondary_address_fraction: 0.3,
            direct_assignment_fraction: 0.02,
            default_usage_location: "US".to_string(),
            prohibited_location: "CU".to_string(),
            domain: "contoso.com".to_string(),
            start: Timestamp(1_700_000_000_000),
        }
    }

    /// The id of the user at `index` (0-based) in the stream of this configuration.
    pub fn user_id(&self, index: usize) -> Uuid {
        user_id(self.seed, index)
    }

    /// The id of the group at `index` (0-based); group 0 is the largest.
    pub fn group_id(&self, index: usize) -> Uuid {
        group_id(self.seed, index)
    }
}

/// A product the generated tenant subscribes to.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedSku {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub prepaid_units: u32,
    /// Whether the seats were set below the expected demand.
    pub scarce: bool,
    /// Expected number of users who want the product (members of at least one group that
    /// carries it, or the direct assignments for E1).
    pub estimated_demand: u64,
    /// Number of groups that carry the product.
    pub licensed_groups: usize,
}

/// What a generator produced (so far, while it is being iterated).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationSummary {
    pub tenant_id: Uuid,
    /// Commands yielded so far.
    pub commands: u64,
    pub users: usize,
    pub groups: usize,
    pub licensed_groups: usize,
    pub groups_with_add_on: usize,
    pub groups_with_disabled_plans: usize,
    pub memberships: u64,
    pub direct_assignments: usize,
    pub users_without_location: usize,
    pub users_in_prohibited_location: usize,
    pub users_sharing_proxy_address: usize,
    pub skus: Vec<GeneratedSku>,
    /// The plan made unavailable in [`GenerationSummary::prohibited_location`].
    pub prohibited_plan: Option<Uuid>,
    pub prohibited_location: Option<CountryCode>,
    /// Plans flagged as mailbox plans (unique proxy addresses).
    pub mailbox_plans: Vec<Uuid>,
    /// Time of the last command applied by [`build_engine`].
    pub last_timestamp: Timestamp,
}

/// The id of the user at `index` in the stream generated with `seed`: a version-4 GUID derived
/// from both, so it looks random but is reproducible.
pub fn user_id(seed: u64, index: usize) -> Uuid {
    derived_uuid(seed, TAG_USER, index as u64)
}

/// The id of the group at `index` in the stream generated with `seed`.
pub fn group_id(seed: u64, index: usize) -> Uuid {
    derived_uuid(seed, TAG_GROUP, index as u64)
}

/// The commands of the tenant described by `config`, produced lazily. When the configuration is
/// invalid (an unknown country code) the stream is empty; [`Generator::new`] says why.
pub fn generate(config: &GeneratorConfig) -> impl Iterator<Item = Command> {
    Generator::new(config).into_iter().flatten()
}

/// Builds the tenant described by `config`: applies every generated command, one millisecond
/// apart from [`GeneratorConfig::start`] on. The users are queued, not yet evaluated: call
/// [`Engine::process_all`] (after [`GenerationSummary::last_timestamp`]) to evaluate them.
///
/// ```
/// use licensd_engine::generator::{build_engine, GeneratorConfig};
/// use licensd_engine::Timestamp;
///
/// let (mut engine, summary) = build_engine(&GeneratorConfig::new(200, 20, 8, 42))?;
/// engine.process_all(Timestamp(summary.last_timestamp.0 + 1));
/// assert_eq!(engine.user_count(), 200);
/// assert_eq!(engine.queued_users(), 0);
/// # Ok::<(), licensd_engine::CommandError>(())
/// ```
pub fn build_engine(config: &GeneratorConfig) -> Result<(Engine, GenerationSummary), CommandError> {
    let mut generator = Generator::new(config)?;
    let mut engine = Engine::new(generator.tenant_settings());
    let mut at = config.start;
    for command in generator.by_ref() {
        at = Timestamp(at.0 + 1);
        engine.apply_without_images(command, at)?;
    }
    let mut summary = generator.summary().clone();
    summary.last_timestamp = at;
    Ok((engine, summary))
}

/// The products one group carries.
#[derive(Clone, Debug, Default)]
struct PlannedGroup {
    licenses: Vec<AssignedLicense>,
    add_on: bool,
}

/// The lazy command stream of a synthetic tenant; see the module documentation.
#[derive(Clone, Debug)]
pub struct Generator {
    config: GeneratorConfig,
    settings: TenantSettings,
    summary: GenerationSummary,
    /// Setup commands not yielded yet.
    setup: std::vec::IntoIter<Command>,
    /// Products per group; emptied as the group commands are produced.
    groups: Vec<PlannedGroup>,
    next_group: usize,
    /// Cumulative membership weights of the groups (Zipf), for sampling.
    cumulative_weights: Vec<f64>,
    next_user: usize,
    rng: Xoshiro256PlusPlus,
    /// Commands of the current group or user not yielded yet.
    pending: VecDeque<Command>,
    prohibited_location: CountryCode,
    /// Country codes and cumulative weights of the usage locations users get.
    countries: Vec<(CountryCode, u32)>,
    direct_sku: Option<Uuid>,
    direct_budget: usize,
    /// Every `prohibited_period`-th user (at a seeded phase) lives in the prohibited country.
    prohibited_period: u64,
    prohibited_phase: u64,
    shared_period: u64,
    shared_phase: u64,
    /// Reused buffer of one user's groups.
    chosen_groups: Vec<usize>,
}

impl Generator {
    /// Plans the tenant: picks the products and their seats, the rules and the groups' products,
    /// each validated against a scratch engine so that the stream only holds accepted commands.
    /// Fails when the catalog does not load or a country code of the configuration is invalid.
    pub fn new(config: &GeneratorConfig) -> Result<Generator, CommandError> {
        let catalog = Catalog::bundled().map_err(|error| CommandError::InvalidValue {
            field: "catalog",
            reason: error.to_string(),
        })?;
        let default_location = CountryCode::parse(&config.default_usage_location)?;
        let prohibited_location = CountryCode::parse(&config.prohibited_location)?;
        let mut countries = Vec::with_capacity(COUNTRIES.len());
        let mut total_weight = 0;
        for (code, weight) in COUNTRIES {
            total_weight += weight;
            countries.push((CountryCode::parse(code)?, total_weight));
        }
        let seed = config.seed;
        let tenant_id = derived_uuid(seed, TAG_TENANT, 0);
        let settings = TenantSettings::new(tenant_id, &format!("Synthetic tenant {seed:#x}"));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);

        // A scratch engine receives every setup and group command first; only the commands it
        // accepts are kept, so the real engine accepts them too.
        let mut probe = Engine::new(settings.clone());
        let mut probe_at = Timestamp(0);
        let mut accept = |probe: &mut Engine, command: &Command| {
            probe_at = Timestamp(probe_at.0 + 1);
            probe.apply_without_images(command.clone(), probe_at).is_ok()
        };
        let location_command = Command::SetDefaultUsageLocation {
            usage_location: Some(default_location),
        };
        accept(&mut probe, &location_command);

        let products = pick_products(catalog, config.skus, &mut rng, &mut probe, &mut accept);
        let index_of = |sku_id: Uuid| products.iter().position(|product| product.sku_id == sku_id);
        let e3 = index_of(well_known::OFFICE_365_E3);
        let ems = index_of(well_known::EMS_E3);
        let e1 = index_of(well_known::OFFICE_365_E1);
        let add_on = index_of(well_known::WORKPLACE_ANALYTICS_SKU);

        // The catalog's default rules, then the mailbox flag and the location rule.
        let mut rule_commands = Vec::new();
        for command in default_rule_commands(catalog, &probe) {
            if accept(&mut probe, &command) {
                rule_commands.push(command);
            }
        }
        let mut known_plans: Vec<(Uuid, &str)> = Vec::new();
        let mut seen_plans = FxHashSet::default();
        for product in &products {
            for plan in &product.service_plans {
                if seen_plans.insert(plan.service_plan_id) {
                    known_plans.push((plan.service_plan_id, plan.service_plan_name.as_str()));
                }
            }
        }
        let mut mailbox_plans = Vec::new();
        for (plan, name) in &known_plans {
            if !MAILBOX_PLAN_NAMES.contains(name) {
                continue;
            }
            if let Ok(mut rules) = probe.service_plan_rules(*plan) {
                rules.needs_unique_proxy_address = true;
                let command = Command::SetServicePlanRules {
                    service_plan_id: *plan,
                    rules,
                };
                if accept(&mut probe, &command) {
                    rule_commands.push(command);
                    mailbox_plans.push(*plan);
                }
            }
        }
        let prohibited_plan = if probe.knows_service_plan(MICROSOFT_TEAMS_PLAN) {
            Some(MICROSOFT_TEAMS_PLAN)
        } else {
            known_plans
                .iter()
                .map(|(plan, _)| *plan)
                .find(|plan| !mailbox_plans.contains(plan))
        };
        let mut applied_prohibited_plan = None;
        if let Some(plan) = prohibited_plan {
            if let Ok(mut rules) = probe.service_plan_rules(plan) {
                rules.unavailable_in.push(prohibited_location);
                let command = Command::SetServicePlanRules {
                    service_plan_id: plan,
                    rules,
                };
                if accept(&mut probe, &command) {
                    rule_commands.push(command);
                    applied_prohibited_plan = Some(plan);
                }
            }
        }

        // Group sizes: weight (i + 1)^-s. A user draws a Poisson number of groups with mean m, so
        // it joins a group of relative weight q with probability 1 - exp(-m q); s is chosen so
        // that the largest group holds about `largest_group_fraction` of the users.
        let mean = finite_non_negative(config.mean_groups_per_user);
        let largest = clamp_fraction(config.largest_group_fraction).min(0.99);
        let exponent = if largest > 0.0 && mean > 0.0 {
            zipf_exponent(config.groups, mean / -(1.0 - largest).ln())
        } else {
            0.0
        };
        let mut cumulative_weights = Vec::with_capacity(config.groups);
        let mut total = 0.0;
        for index in 0..config.groups {
            total += ((index + 1) as f64).powf(-exponent);
            cumulative_weights.push(total);
        }
        let membership_probability = |index: usize| -> f64 {
            if total <= 0.0 {
                return 0.0;
            }
            let weight = ((index + 1) as f64).powf(-exponent);
            1.0 - (-mean * weight / total).exp()
        };

        // The products of each group.
        let exclusive_pairs: FxHashSet<(Uuid, Uuid)> =
            catalog.default_mutually_exclusive_pairs().into_iter().collect();
        let conflicts = |a: &CatalogProduct, b: &CatalogProduct| {
            a.service_plans.iter().any(|x| {
                b.service_plans.iter().any(|y| {
                    let pair = if x.service_plan_id < y.service_plan_id {
                        (x.service_plan_id, y.service_plan_id)
                    } else {
                        (y.service_plan_id, x.service_plan_id)
                    };
                    x.service_plan_id != y.service_plan_id && exclusive_pairs.contains(&pair)
                })
            })
        };
        // Products groups may carry: everything but E1, which is kept for direct assignments.
        let pool: Vec<usize> = (0..products.len()).filter(|index| Some(*index) != e1).collect();
        // Products that can be held together with E3 (all of them when the tenant has no E3).
        let compatible: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|index| !e3.is_some_and(|e3| conflicts(products[e3], products[*index])))
            .collect();
        let special_fraction = clamp_fraction(config.prohibited_location_fraction)
            + clamp_fraction(config.shared_proxy_fraction);
        // Per product, the probability that a user is in none of the groups carrying it.
        let mut missed = vec![1.0f64; products.len()];
        let mut licensed_by = vec![0usize; products.len()];
        let mut groups = Vec::with_capacity(config.groups);
        let mut summary_groups = (0usize, 0usize, 0usize);
        for index in 0..config.groups {
            let licensed = index < 3 || chance(&mut rng, config.licensed_group_fraction);
            if !licensed || pool.is_empty() {
                groups.push(PlannedGroup::default());
                continue;
            }
            let fixed: Option<Vec<usize>> = match index {
                0 => e3.map(|e3| vec![e3]),
                1 => ems.map(|ems| vec![ems]),
                2 => e3.zip(add_on).map(|(e3, add_on)| vec![e3, add_on]),
                _ => None,
            };
            let (chosen, disabled) = match fixed {
                Some(chosen) => (chosen, None),
                None => {
                    let first_pool =
                        if compatible.is_empty() || chance(&mut rng, config.conflicting_product_fraction) {
                            &pool
                        } else {
                            &compatible
                        };
                    let first = first_pool[rng.random_range(0..first_pool.len())];
                    let mut chosen = vec![first];
                    if compatible.len() > 1 && chance(&mut rng, config.second_product_fraction) {
                        for _ in 0..8 {
                            let second = compatible[rng.random_range(0..compatible.len())];
                            if second != first && !conflicts(products[first], products[second]) {
                                chosen.push(second);
                                break;
                            }
                        }
                    }
                    if let Some(add_on) = add_on {
                        if !chosen.contains(&add_on) && chance(&mut rng, config.add_on_fraction) {
                            chosen.push(add_on);
                        }
                    }
                    let mut disabled = None;
                    if chance(&mut rng, config.disabled_plans_fraction) {
                        let target = rng.random_range(0..chosen.len());
                        let plans = &products[chosen[target]].service_plans;
                        if plans.len() >= 3 {
                            let count = rng.random_range(1..=2);
                            let picked: Vec<Uuid> = plans
                                .sample(&mut rng, count)
                                .map(|plan| plan.service_plan_id)
                                .collect();
                            disabled = Some((target, picked));
                        }
                    }
                    (chosen, disabled)
                }
            };
            let group = group_id(seed, index);
            let create = Command::CreateGroup {
                group_id: group,
                display_name: format!("probe {index}"),
            };
            if !accept(&mut probe, &create) {
                groups.push(PlannedGroup::default());
                continue;
            }
            // Try the plan as drawn, then without disabled plans, then with E3 added (the
            // prerequisite of the add-on); a group whose products are all refused stays unlicensed.
            let licenses_of = |chosen: &[usize],
                               disabled: Option<&(usize, Vec<Uuid>)>|
             -> Vec<AssignedLicense> {
                chosen
                    .iter()
                    .enumerate()
                    .map(|(position, product)| match disabled {
                        Some((target, plans)) if *target == position => AssignedLicense::with_disabled_plans(
                            products[*product].sku_id,
                            plans.iter().copied(),
                        ),
                        _ => AssignedLicense::new(products[*product].sku_id),
                    })
                    .collect()
            };
            let mut candidates = vec![licenses_of(&chosen, disabled.as_ref())];
            if disabled.is_some() {
                candidates.push(licenses_of(&chosen, None));
            }
            if let Some(e3) = e3 {
                if !chosen.contains(&e3) {
                    let mut with_e3 = vec![e3];
                    with_e3.extend(chosen.iter().copied());
                    candidates.push(licenses_of(&with_e3, None));
                }
            }
            let mut planned = PlannedGroup::default();
            for licenses in candidates {
                let command = Command::AssignGroupLicenses {
                    group_id: group,
                    add_licenses: licenses.clone(),
                    remove_licenses: Vec::new(),
                };
                if accept(&mut probe, &command) {
                    planned.add_on = add_on
                        .is_some_and(|add_on| licenses.iter().any(|l| l.sku_id == products[add_on].sku_id));
                    planned.licenses = licenses;
                    break;
                }
            }
            if !planned.licenses.is_empty() {
                summary_groups.0 += 1;
                summary_groups.1 += usize::from(planned.add_on);
                summary_groups.2 +=
                    usize::from(planned.licenses.iter().any(|l| !l.disabled_plans.is_empty()));
                let mut outside = 1.0 - membership_probability(index);
                if index == 0 {
                    outside *= 1.0 - special_fraction.min(1.0);
                }
                for license in &planned.licenses {
                    if let Some(product) = index_of(license.sku_id) {
                        missed[product] *= outside;
                        licensed_by[product] += 1;
                    }
                }
            }
            groups.push(planned);
        }

        // Seats: E1 covers the direct assignments; scarce products get fewer seats than their
        // expected demand, the others more.
        let direct_fraction = clamp_fraction(config.direct_assignment_fraction);
        let direct_budget = if e1.is_some() {
            (config.users as f64 * direct_fraction * 1.25).ceil() as usize + 10
        } else {
            0
        };
        let demand: Vec<f64> = missed
            .iter()
            .zip(&licensed_by)
            .map(|(missed, groups)| {
                if *groups == 0 {
                    0.0
                } else {
                    config.users as f64 * (1.0 - missed)
                }
            })
            .collect();
        let scarce_ratio = clamp_fraction(config.scarce_seat_ratio);
        let mut skus = Vec::with_capacity(products.len());
        let mut sku_commands = Vec::with_capacity(products.len());
        for (index, product) in products.iter().enumerate() {
            let (prepaid, scarce, estimated) = if Some(index) == e1 {
                (direct_budget as f64, false, config.users as f64 * direct_fraction)
            } else if demand[index] <= 0.0 {
                (25.0, false, 0.0)
            } else {
                let scarce =
                    Some(index) == ems || (Some(index) != e3 && chance(&mut rng, config.scarce_sku_fraction));
                if scarce {
                    (
                        (demand[index] * scarce_ratio).floor().max(1.0),
                        true,
                        demand[index],
                    )
                } else {
                    ((demand[index] * 1.2).ceil() + 10.0, false, demand[index])
                }
            };
            let prepaid_units = prepaid.min(u32::MAX as f64) as u32;
            sku_commands.push(Command::AddSku(product.to_sku_definition(prepaid_units)));
            skus.push(GeneratedSku {
                sku_id: product.sku_id,
                sku_part_number: product.sku_part_number.clone(),
                prepaid_units,
                scarce,
                estimated_demand: estimated.round() as u64,
                licensed_groups: licensed_by[index],
            });
        }
        let mut setup = Vec::with_capacity(1 + sku_commands.len() + rule_commands.len());
        setup.push(location_command);
        setup.extend(sku_commands);
        setup.extend(rule_commands);

        let period = |fraction: f64| -> u64 {
            let fraction = clamp_fraction(fraction);
            if fraction <= 0.0 {
                0
            } else {
                (1.0 / fraction).round().max(1.0) as u64
            }
        };
        let prohibited_period = period(config.prohibited_location_fraction);
        let shared_period = period(config.shared_proxy_fraction);
        let summary = GenerationSummary {
            tenant_id,
            licensed_groups: summary_groups.0,
            groups_with_add_on: summary_groups.1,
            groups_with_disabled_plans: summary_groups.2,
            skus,
            prohibited_plan: applied_prohibited_plan,
            prohibited_location: Some(prohibited_location),
            mailbox_plans,
            ..GenerationSummary::default()
        };
        Ok(Generator {
            config: config.clone(),
            settings,
            summary,
            setup: setup.into_iter(),
            groups,
            next_group: 0,
            cumulative_weights,
            next_user: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(mix(seed ^ TAG_USER_STREAM)),
            pending: VecDeque::new(),
            prohibited_location,
            countries,
            direct_sku: e1.map(|e1| products[e1].sku_id),
            direct_budget,
            prohibited_period,
            prohibited_phase: mix(seed ^ TAG_PROHIBITED) % prohibited_period.max(1),
            shared_period,
            shared_phase: mix(seed ^ TAG_SHARED) % shared_period.max(1),
            chosen_groups: Vec::new(),
        })
    }

    /// The settings of the tenant the commands are meant for (its id is derived from the seed;
    /// the default usage location is set by the first command).
    pub fn tenant_settings(&self) -> TenantSettings {
        self.settings.clone()
    }

    /// What has been produced so far; complete once the iterator is exhausted.
    pub fn summary(&self) -> &GenerationSummary {
        &self.summary
    }

    /// Prepares the commands of the next group.
    fn push_group(&mut self) {
        let index = self.next_group;
        self.next_group += 1;
        let group = group_id(self.config.seed, index);
        let display_name = match index {
            0 => "All Staff".to_string(),
            1 => "Mobility Users".to_string(),
            2 => "Analytics Pilot".to_string(),
            _ => {
                let department = DEPARTMENTS[index % DEPARTMENTS.len()];
                format!("{department} Team {index:05}")
            }
        };
        self.pending.push_back(Command::CreateGroup {
            group_id: group,
            display_name,
        });
        self.summary.groups += 1;
        let licenses = std::mem::take(&mut self.groups[index].licenses);
        if !licenses.is_empty() {
            self.pending.push_back(Command::AssignGroupLicenses {
                group_id: group,
                add_licenses: licenses,
                remove_licenses: Vec::new(),
            });
        }
    }

    /// Prepares the commands of the next user: the user, maybe a direct license, and its
    /// memberships.
    fn push_user(&mut self) {
        let index = self.next_user;
        self.next_user += 1;
        let seed = self.config.seed;
        let (first, last, local) = user_name(seed, index);
        let user_principal_name = format!("{local}@{}", self.config.domain);
        let position = index as u64;
        let prohibited =
            self.prohibited_period > 0 && (position + self.prohibited_phase) % self.prohibited_period == 0;
        let sharer = !prohibited
            && index > 0
            && self.shared_period > 0
            && (position + self.shared_phase) % self.shared_period == 0;

        let usage_location = if prohibited {
            Some(self.prohibited_location)
        } else if chance(&mut self.rng, self.config.missing_location_fraction) {
            None
        } else {
            let total = self.countries.last().map_or(0, |(_, total)| *total);
            let draw = if total > 0 {
                self.rng.random_range(0..total)
            } else {
                0
            };
            self.countries
                .iter()
                .find(|(_, cumulative)| draw < *cumulative)
                .map(|(code, _)| *code)
        };

        let mut addresses = vec![format!("SMTP:{user_principal_name}")];
        if chance(&mut self.rng, self.config.secondary_address_fraction) {
            addresses.push(format!("smtp:{local}@{}", secondary_domain(&self.config.domain)));
        }
        let mut shares = false;
        if sharer {
            let other = self.rng.random_range(0..index);
            let (_, _, other_local) = user_name(seed, other);
            addresses.push(format!("smtp:{other_local}@{}", self.config.domain));
            shares = true;
        }
        let proxy_addresses: Vec<ProxyAddress> = addresses
            .iter()
            .filter_map(|address| ProxyAddress::parse(address).ok())
            .collect();

        let id = user_id(seed, index);
        let mut user = NewUser::new(id, &user_principal_name);
        user.display_name = format!("{first} {last}");
        user.usage_location = usage_location;
        user.proxy_addresses = proxy_addresses;
        self.pending.push_back(Command::CreateUser(user));
        self.summary.users += 1;
        self.summary.users_without_location += usize::from(usage_location.is_none());
        self.summary.users_in_prohibited_location += usize::from(prohibited);
        self.summary.users_sharing_proxy_address += usize::from(shares);

        // A direct E1 license, before any membership so that the user holds nothing it could
        // conflict with even when groups are processed in between, and only for users it can be
        // assigned to at once: a usage location that allows it, and no proxy address shared (E1
        // holds a mailbox plan). No earlier user shares this user's address: a user only copies
        // the address of an earlier user.
        if let Some(sku_id) = self.direct_sku {
            let eligible = usage_location.is_some_and(|location| location != self.prohibited_location)
                && !shares
                && self.summary.direct_assignments < self.direct_budget;
            if eligible && chance(&mut self.rng, self.config.direct_assignment_fraction) {
                self.pending.push_back(Command::AssignUserLicenses {
                    user_id: id,
                    add_licenses: vec![AssignedLicense::new(sku_id)],
                    remove_licenses: Vec::new(),
                });
                self.summary.direct_assignments += 1;
            }
        }

        // Memberships: a Poisson number of distinct groups drawn by weight. Users in the
        // prohibited country and users sharing an address always join the largest group, whose
        // product has a mailbox plan and the prohibited plan, so that their errors show.
        let group_count = self.cumulative_weights.len();
        let wanted = poisson(&mut self.rng, self.config.mean_groups_per_user).min(group_count);
        self.chosen_groups.clear();
        if (prohibited || shares) && group_count > 0 {
            self.chosen_groups.push(0);
        }
        let target = wanted.max(self.chosen_groups.len());
        let total = self.cumulative_weights.last().copied().unwrap_or(0.0);
        let mut attempts = 0;
        while self.chosen_groups.len() < target && attempts < 16 * target + 16 && total > 0.0 {
            attempts += 1;
            let draw = self.rng.random::<f64>() * total;
            let group = self
                .cumulative_weights
                .partition_point(|cumulative| *cumulative <= draw)
                .min(group_count - 1);
            if !self.chosen_groups.contains(&group) {
                self.chosen_groups.push(group);
            }
        }
        for position in 0..self.chosen_groups.len() {
            let group = self.chosen_groups[position];
            self.pending.push_back(Command::AddGroupMember {
                group_id: group_id(seed, group),
                user_id: id,
            });
        }
        self.summary.memberships += self.chosen_groups.len() as u64;
    }
}

impl Iterator for Generator {
    type Item = Command;

    fn next(&mut self) -> Option<Command> {
        loop {
            if let Some(command) = self.pending.pop_front() {
                self.summary.commands += 1;
                return Some(command);
            }
            if let Some(command) = self.setup.next() {
                self.summary.commands += 1;
                return Some(command);
            }
            if self.next_group < self.groups.len() {
                self.push_group();
                continue;
            }
            if self.next_user < self.config.users {
                self.push_user();
                continue;
            }
            return None;
        }
    }
}

/// Picks the tenant's products: the four products of the seed document first, then catalog
/// products in a seeded order, skipping any the scratch engine refuses (for example because
/// the tenant would know more than [`crate::MAX_SERVICE_PLANS`] plans).
fn pick_products<'a>(
    catalog: &'a Catalog,
    count: usize,
    rng: &mut Xoshiro256PlusPlus,
    probe: &mut Engine,
    accept: &mut impl FnMut(&mut Engine, &Command) -> bool,
) -> Vec<&'a CatalogProduct> {
    let essentials = [
        well_known::OFFICE_365_E3,
        well_known::EMS_E3,
        well_known::OFFICE_365_E1,
        well_known::WORKPLACE_ANALYTICS_SKU,
    ];
    let mut picked: Vec<&CatalogProduct> = Vec::with_capacity(count);
    let mut try_add = |product: &'a CatalogProduct, picked: &mut Vec<&'a CatalogProduct>| {
        if picked.len() < count && accept(probe, &Command::AddSku(product.to_sku_definition(0))) {
            picked.push(product);
        }
    };
    for sku_id in essentials {
        if let Some(product) = catalog.product_by_sku_id(sku_id) {
            try_add(product, &mut picked);
        }
    }
    let mut others: Vec<&CatalogProduct> = catalog
        .products()
        .iter()
        .filter(|product| !essentials.contains(&product.sku_id) && !product.service_plans.is_empty())
        .collect();
    others.shuffle(rng);
    for product in others {
        if picked.len() >= count {
            break;
        }
        try_add(product, &mut picked);
    }
    picked
}

/// The Zipf exponent `s` for which the weights `(i + 1)^-s` of `groups` groups sum to
/// `total_weight` (the largest weight being 1), found by bisection; 0 (equal sizes) when even
/// equal sizes do not reach that total.
fn zipf_exponent(groups: usize, total_weight: f64) -> f64 {
    if groups <= 1 || !total_weight.is_finite() || total_weight >= groups as f64 {
        return 0.0;
    }
    let sum = |exponent: f64| -> f64 { (1..=groups).map(|i| (i as f64).powf(-exponent)).sum() };
    let (mut low, mut high) = (0.0f64, 8.0f64);
    for _ in 0..48 {
        let middle = (low + high) / 2.0;
        if sum(middle) > total_weight {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low + high) / 2.0
}

/// A Poisson-distributed count with the given mean (Knuth's method below 30, a rounded normal
/// approximation above).
fn poisson(rng: &mut Xoshiro256PlusPlus, mean: f64) -> usize {
    let mean = finite_non_negative(mean);
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        return (mean + mean.sqrt() * normal).round().max(0.0) as usize;
    }
    let limit = (-mean).exp();
    let mut product = 1.0;
    let mut count = 0;
    loop {
        product *= rng.random::<f64>();
        if product <= limit || count >= 1_000 {
            return count;
        }
        count += 1;
    }
}

/// True with probability `probability` (clamped to 0..=1).
fn chance(rng: &mut Xoshiro256PlusPlus, probability: f64) -> bool {
    rng.random::<f64>() < clamp_fraction(probability)
}

fn clamp_fraction(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

fn finite_non_negative(value: f64) -> f64 {
    if value.is_finite() {
        value.max(0.0)
    } else {
        0.0
    }
}

/// The first name, last name and mailbox name (`first.last<index>`, lower case) of a user: a
/// pure function of the seed and the index, so that a later user can copy an earlier user's
/// address without the generator remembering it.
fn user_name(seed: u64, index: usize) -> (&'static str, &'static str, String) {
    let hash = mix(seed ^ mix(TAG_NAME ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let first = FIRST_NAMES[(hash % FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[((hash >> 32) % LAST_NAMES.len() as u64) as usize];
    // Names are letters only, so the digits of the index keep every mailbox name unique.
    let local = format!(
        "{}.{}{index}",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase()
    );
    (first, last, local)
}

/// The routing domain of secondary addresses (`contoso.mail.onmicrosoft.com` for `contoso.com`).
fn secondary_domain(domain: &str) -> String {
    let label = domain.split('.').next().unwrap_or(domain);
    format!("{label}.mail.onmicrosoft.com")
}

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4 GUID derived from a seed, a kind tag and an index.
fn derived_uuid(seed: u64, tag: u64, index: u64) -> Uuid {
    let high = mix(seed ^ mix(tag ^ mix(index)));
    let low = mix(high ^ index.rotate_left(17) ^ tag);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LicenseErrorKind;
    use crate::plan_set::MAX_SERVICE_PLANS;

    fn small(seed: u64) -> GeneratorConfig {
        GeneratorConfig::new(2_000, 200, 12, seed)
    }

    #[test]
    fn the_same_seed_gives_the_same_commands() {
        let config = GeneratorConfig::new(500, 50, 10, 42);
        let first: Vec<Command> = generate(&config).collect();
        let second: Vec<Command> = generate(&config).collect();
        assert!(first.len() > 500);
        assert_eq!(first, second);
    }

    #[test]
    fn different_seeds_give_different_tenants() {
        let a: Vec<Command> = generate(&GeneratorConfig::new(300, 30, 10, 1)).collect();
        let b: Vec<Command> = generate(&GeneratorConfig::new(300, 30, 10, 2)).collect();
        assert_ne!(a, b);
        assert_ne!(user_id(1, 0), user_id(2, 0));
        assert_ne!(user_id(1, 0), user_id(1, 1));
        assert_ne!(user_id(1, 0), group_id(1, 0));
    }

    #[test]
    fn every_command_of_a_2000_user_tenant_is_accepted() {
        let config = small(7);
        let mut generator = Generator::new(&config).expect("generator");
        let mut engine = Engine::new(generator.tenant_settings());
        let mut applied = 0u64;
        for (index, command) in generator.by_ref().enumerate() {
            let name = command.name();
            if let Err(error) = engine.apply(command, Timestamp(index as i64 + 1)) {
                panic!("command {index} ({name}) refused: {error}");
            }
            applied += 1;
        }
        let summary = generator.summary();
        assert_eq!(summary.commands, applied);
        assert_eq!(engine.user_count(), 2_000);
        assert_eq!(engine.group_count(), 200);
        assert_eq!(summary.skus.len(), 12);
        assert_eq!(engine.sku_usages().len(), 12);
        for sku_id in [
            well_known::OFFICE_365_E1,
            well_known::OFFICE_365_E3,
            well_known::EMS_E3,
            well_known::WORKPLACE_ANALYTICS_SKU,
        ] {
            assert!(summary.skus.iter().any(|sku| sku.sku_id == sku_id));
        }
        assert!(summary.skus.iter().any(|sku| sku.scarce));
        assert!(summary
            .skus
            .iter()
            .any(|sku| !sku.scarce && sku.licensed_groups > 0));
        assert!(summary.direct_assignments > 0);
        assert!(summary.users_without_location > 0);
        assert!(summary.users_in_prohibited_location > 0);
        assert!(summary.users_sharing_proxy_address > 0);
        assert!(summary.groups_with_add_on > 0);
        assert!(summary.groups_with_disabled_plans > 0);
        assert!(summary.prohibited_plan.is_some());
        assert!(!summary.mailbox_plans.is_empty());
        let mean = summary.memberships as f64 / summary.users as f64;
        assert!((2.5..=3.5).contains(&mean), "mean groups per user {mean}");
        // Interleaving background processing does not make any command invalid either.
        let mut engine = Engine::new(generator.tenant_settings());
        for (index, command) in generate(&config).enumerate() {
            engine
                .apply(command, Timestamp(index as i64 + 1))
                .expect("accepted with processing in between");
            if index % 97 == 0 {
                engine.process_batch(50, Timestamp(index as i64 + 1));
            }
        }
    }

    #[test]
    fn processing_produces_every_kind_of_error() {
        for seed in [7, 8, 9] {
            let (mut engine, summary) = build_engine(&small(seed)).expect("tenant");
            engine.process_all(Timestamp(summary.last_timestamp.0 + 1));
            let overview = engine.tenant_overview();
            for kind in [
                LicenseErrorKind::CountViolation,
                LicenseErrorKind::MutuallyExclusiveViolation,
                LicenseErrorKind::ProhibitedInUsageLocationViolation,
                LicenseErrorKind::UniquenessViolation,
            ] {
                assert!(
                    overview.errors_by_kind.get(&kind).copied().unwrap_or(0) > 0,
                    "seed {seed}: no {kind:?} in {:?}",
                    overview.errors_by_kind
                );
            }
            assert_eq!(overview.queued_users, 0);
        }
    }

    #[test]
    fn group_sizes_are_skewed() {
        let config = small(11);
        let (engine, summary) = build_engine(&config).expect("tenant");
        let mut sizes: Vec<usize> = (0..config.groups)
            .map(|index| {
                engine
                    .group_view(config.group_id(index))
                    .expect("group")
                    .member_count
            })
            .collect();
        let largest_share = sizes[0] as f64 / summary.users as f64;
        assert!(
            (0.1..=0.4).contains(&largest_share),
            "largest group {largest_share}"
        );
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        let largest = sizes[sizes.len() - 1];
        assert!(
            largest >= 10 * median.max(1),
            "largest {largest}, median {median}"
        );
    }

    #[test]
    fn degenerate_sizes_are_accepted() {
        for (users, groups, skus) in [
            (0, 0, 0),
            (5, 0, 3),
            (5, 3, 0),
            (10, 1, 1),
            (20, 5, 2),
            (50, 4, 600),
        ] {
            let config = GeneratorConfig::new(users, groups, skus, 3);
            let (mut engine, summary) = build_engine(&config).expect("tenant");
            assert_eq!(engine.user_count(), users);
            assert_eq!(engine.group_count(), groups);
            assert!(summary.skus.len() <= skus);
            engine.process_all(Timestamp(summary.last_timestamp.0 + 1));
        }
    }

    #[test]
    fn invalid_country_codes_are_reported() {
        let mut config = GeneratorConfig::new(10, 2, 4, 1);
        config.prohibited_location = "XX".to_string();
        assert!(matches!(
            Generator::new(&config),
            Err(CommandError::InvalidUsageLocation { .. })
        ));
        assert_eq!(generate(&config).count(), 0);
    }

    #[test]
    fn the_tenant_never_exceeds_the_plan_limit() {
        let config = GeneratorConfig::new(10, 10, 600, 5);
        let (engine, summary) = build_engine(&config).expect("tenant");
        let plans: FxHashSet<Uuid> = engine
            .sku_usages()
            .iter()
            .flat_map(|usage| usage.service_plans.iter().map(|plan| plan.0))
            .collect();
        assert!(plans.len() <= MAX_SERVICE_PLANS);
        assert!(summary.skus.len() > 100);
    }
}
