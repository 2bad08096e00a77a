//! The seed document's world, ready to use: a tenant subscribed to Office 365 E1 and E3,
//! Enterprise Mobility + Security E3 and Microsoft Workplace Analytics (real GUIDs and plans from
//! the bundled catalog), with the seed's rules, plus a small harness that creates users and
//! groups with deterministic ids and advances time. Used by tests, benchmarks and the demo.

use crate::catalog::{well_known, Catalog, CatalogError};
use crate::command::Command;
use crate::error::CommandError;
use crate::model::{
    AssignedLicense, CountryCode, LicenseErrorKind, NewUser, ProxyAddress, ServicePlanRules, TenantSettings,
    Timestamp, Uuid,
};
use crate::query::LicenseAssignmentState;
use crate::setup::default_rule_commands;
use crate::{CommandOutcome, Engine, ProcessReport};

pub use crate::catalog::well_known::{
    EMS_E3, EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2, OFFICE_365_E1, OFFICE_365_E3, SHAREPOINT_PLAN_1,
    SHAREPOINT_PLAN_2, WORKPLACE_ANALYTICS_PLAN, WORKPLACE_ANALYTICS_SKU,
};

/// Microsoft Teams (`TEAMS1`): the plan the seed world makes unavailable in a few locations.
pub const MICROSOFT_TEAMS_PLAN: Uuid = Uuid::from_u128(0x57ff2da0_773e_42df_b2af_ffb7a2317929);
/// Usage locations where Microsoft Teams is unavailable in the seed world.
pub const TEAMS_UNAVAILABLE_IN: [&str; 4] = ["CU", "IR", "KP", "SY"];
/// The seed world's tenant id.
pub const SEED_TENANT_ID: Uuid = Uuid::from_u128(0x11ce45d0_0000_4000_8000_000000000001);

/// Why the seed world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SeedWorldError {
    #[error("the bundled catalog does not load: {0}")]
    Catalog(#[from] &'static CatalogError),
    #[error("the bundled catalog lacks product {0}")]
    MissingProduct(Uuid),
    #[error("setting up the seed world failed: {0}")]
    Command(#[from] CommandError),
}

/// Purchased seats of the seed world's four products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedSeats {
    pub office_365_e1: u32,
    pub office_365_e3: u32,
    pub ems_e3: u32,
    pub workplace_analytics: u32,
}

impl Default for SeedSeats {
    fn default() -> Self {
        SeedSeats {
            office_365_e1: 100,
            office_365_e3: 100,
            ems_e3: 100,
            workplace_analytics: 100,
        }
    }
}

/// A tenant plus a clock and id generator, for scenarios.
#[derive(Clone, Debug)]
pub struct SeedWorld {
    pub engine: Engine,
    pub now: Timestamp,
    next_id: u128,
}

impl SeedWorld {
    /// The seed world: default usage location `US`, the four products, the catalog's exclusions
    /// (SharePoint Plan 1/2 and Exchange Plan 1/2 among them), Workplace Analytics requiring
    /// Exchange Online Plan 1 or 2, Exchange plans as mailbox plans, and Microsoft Teams
    /// unavailable in [`TEAMS_UNAVAILABLE_IN`].
    pub fn new(seats: SeedSeats) -> Result<SeedWorld, SeedWorldError> {
        let catalog = Catalog::bundled()?;
        let mut settings = TenantSettings::new(SEED_TENANT_ID, "Contoso (seed world)");
        settings.default_usage_location = Some(CountryCode::parse("US")?);
        let mut world = SeedWorld {
            engine: Engine::new(settings),
            now: Timestamp(1_700_000_000_000),
            next_id: 1,
        };
        for (sku_id, prepaid) in [
            (well_known::OFFICE_365_E1, seats.office_365_e1),
            (well_known::OFFICE_365_E3, seats.office_365_e3),
            (well_known::EMS_E3, seats.ems_e3),
            (well_known::WORKPLACE_ANALYTICS_SKU, seats.workplace_analytics),
        ] {
            let product = catalog
                .product_by_sku_id(sku_id)
                .ok_or(SeedWorldError::MissingProduct(sku_id))?;
            world.apply(Command::AddSku(product.to_sku_definition(prepaid)))?;
        }
        for command in default_rule_commands(catalog, &world.engine) {
            world.apply(command)?;
        }
        for mailbox_plan in [EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2] {
            let mut rules = world.engine.service_plan_rules(mailbox_plan)?;
            rules.needs_unique_proxy_address = true;
            world.apply(Command::SetServicePlanRules {
                service_plan_id: mailbox_plan,
                rules,
            })?;
        }
        let mut teams_rules: ServicePlanRules = world.engine.service_plan_rules(MICROSOFT_TEAMS_PLAN)?;
        for location in TEAMS_UNAVAILABLE_IN {
            teams_rules.unavailable_in.push(CountryCode::parse(location)?);
        }
        world.apply(Command::SetServicePlanRules {
            service_plan_id: MICROSOFT_TEAMS_PLAN,
            rules: teams_rules,
        })?;
        Ok(world)
    }

    /// A fresh deterministic id.
    pub fn next_id(&mut self) -> Uuid {
        let id = Uuid::from_u128(0x5eed0000_0000_4000_8000_000000000000 | self.next_id);
        self.next_id += 1;
        id
    }

    /// Applies a command one second after the previous one.
    pub fn apply(&mut self, command: Command) -> Result<CommandOutcome, CommandError> {
        self.now = Timestamp(self.now.0 + 1000);
        self.engine.apply(command, self.now)
    }

    /// Creates a user `name@contoso.com` with an optional usage location and the primary
    /// address `SMTP:name@contoso.com`.
    pub fn add_user(&mut self, name: &str, usage_location: Option<&str>) -> Result<Uuid, CommandError> {
        let id = self.next_id();
        let mut user = NewUser::new(id, &format!("{name}@contoso.com"));
        user.usage_location = usage_location.map(CountryCode::parse).transpose()?;
        user.proxy_addresses = vec![ProxyAddress::parse(&format!("SMTP:{name}@contoso.com"))?];
        self.apply(Command::CreateUser(user))?;
        Ok(id)
    }

    pub fn add_group(&mut self, display_name: &str) -> Result<Uuid, CommandError> {
        let id = self.next_id();
        self.apply(Command::CreateGroup {
            group_id: id,
            display_name: display_name.to_string(),
        })?;
        Ok(id)
    }

    pub fn add_member(&mut self, group_id: Uuid, user_id: Uuid) -> Result<CommandOutcome, CommandError> {
        self.apply(Command::AddGroupMember { group_id, user_id })
    }

    pub fn remove_member(&mut self, group_id: Uuid, user_id: Uuid) -> Result<CommandOutcome, CommandError> {
        self.apply(Command::RemoveGroupMember { group_id, user_id })
    }

    pub fn assign_to_group(
        &mut self,
        group_id: Uuid,
        add_licenses: Vec<AssignedLicense>,
        remove_licenses: Vec<Uuid>,
    ) -> Result<CommandOutcome, CommandError> {
        self.apply(Command::AssignGroupLicenses {
            group_id,
            add_licenses,
            remove_licenses,
        })
    }

    pub fn assign_to_user(
        &mut self,
        user_id: Uuid,
        add_licenses: Vec<AssignedLicense>,
        remove_licenses: Vec<Uuid>,
    ) -> Result<CommandOutcome, CommandError> {
        self.apply(Command::AssignUserLicenses {
            user_id,
            add_licenses,
            remove_licenses,
        })
    }

    /// Runs the background processing until the queue is empty.
    pub fn process(&mut self) -> ProcessReport {
        self.now = Timestamp(self.now.0 + 1000);
        self.engine.process_all(self.now)
    }

    /// The state of one assignment of a user (`group_id` `None` for direct).
    pub fn state(
        &self,
        user_id: Uuid,
        sku_id: Uuid,
        group_id: Option<Uuid>,
    ) -> Option<LicenseAssignmentState> {
        self.engine
            .user_license_states(user_id)
            .ok()?
            .into_iter()
            .find(|state| state.sku_id == sku_id && state.assigned_by_group == group_id)
    }

    /// The error of one assignment of a user, if any.
    pub fn error(&self, user_id: Uuid, sku_id: Uuid, group_id: Option<Uuid>) -> Option<LicenseErrorKind> {
        self.state(user_id, sku_id, group_id)
            .and_then(|state| state.error)
    }
}

/// Who is who in the demo tenant, for tests and documentation.
#[derive(Clone, Debug, Default)]
pub struct DemoDirectory {
    pub users: Vec<Uuid>,
    pub sales_e3: Uuid,
    pub mobility_ems: Uuid,
    pub frontline_e1: Uuid,
    pub analytics_pilot: Uuid,
    pub engineering_e3_ems: Uuid,
}

/// The demo tenant's figures (documented in the user guide and checked by tests).
pub const DEMO_USERS: usize = 300;

impl SeedWorld {
    /// The demo tenant: the seed world with 300 users and five groups, placed so that every error
    /// of the seed occurs at least once, among many healthy users:
    /// - "Sales - Office 365 E3" (users 1-121; users 1-5 also hold E1 directly:
    ///   `MutuallyExclusiveViolation`; users 61 and 62 share a proxy address, so neither gets the
    ///   Exchange mailbox: `UniquenessViolation` for both);
    /// - "Mobility - EMS E3" (users 1-130; 140 EMS seats, 20 of them taken first by Engineering:
    ///   `CountViolation` for the last 10);
    /// - "Frontline - Office 365 E1" (users 151-300; users 291-295 are in Cuba, where Teams is
    ///   unavailable: `ProhibitedInUsageLocationViolation`; users 296-300 have no usage location
    ///   and inherit the tenant's, US);
    /// - "Analytics pilot" (E3 with only Exchange Online Plan 2, plus Workplace Analytics; users
    ///   101-115, who also hold full E3 through Sales and consume one E3 seat);
    /// - "Engineering - E3 + EMS" (users 131-150, healthy);
    /// - user 121 held Workplace Analytics directly with Exchange from Sales and then left Sales:
    ///   the removal is blocked (`DependencyViolation`, ActiveWithError).
    pub fn demo() -> Result<(SeedWorld, DemoDirectory), SeedWorldError> {
        let mut world = SeedWorld::new(SeedSeats {
            office_365_e1: 170,
            office_365_e3: 160,
            ems_e3: 140,
            workplace_analytics: 20,
        })?;
        let mut directory = DemoDirectory::default();
        for number in 1..=DEMO_USERS {
            let location = match number {
                291..=295 => Some("CU"),
                296..=300 => None,
                _ if number % 7 == 0 => Some("NL"),
                _ => Some("US"),
            };
            let id = world.add_user(&format!("user{number:03}"), location)?;
            directory.users.push(id);
        }
        let user = |number: usize| directory.users[number - 1];
        // Two users share a proxy address (an Exchange misconfiguration).
        world.apply(Command::UpdateUser {
            user_id: user(62),
            changes: crate::model::UserChanges {
                proxy_addresses: Some(vec![
                    ProxyAddress::parse("SMTP:user062@contoso.com")?,
                    ProxyAddress::parse("smtp:user061@contoso.com")?,
                ]),
                ..Default::default()
            },
        })?;
        for number in 1..=5 {
            world.assign_to_user(user(number), vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
        }
        directory.sales_e3 = world.add_group("Sales - Office 365 E3")?;
        directory.mobility_ems = world.add_group("Mobility - EMS E3")?;
        directory.frontline_e1 = world.add_group("Frontline - Office 365 E1")?;
        directory.analytics_pilot = world.add_group("Analytics pilot")?;
        directory.engineering_e3_ems = world.add_group("Engineering - E3 + EMS")?;
        world.assign_to_group(
            directory.sales_e3,
            vec![AssignedLicense::new(OFFICE_365_E3)],
            vec![],
        )?;
        world.assign_to_group(directory.mobility_ems, vec![AssignedLicense::new(EMS_E3)], vec![])?;
        world.assign_to_group(
            directory.frontline_e1,
            vec![AssignedLicense::new(OFFICE_365_E1)],
            vec![],
        )?;
        world.assign_to_group(
            directory.engineering_e3_ems,
            vec![AssignedLicense::new(OFFICE_365_E3), AssignedLicense::new(EMS_E3)],
            vec![],
        )?;
        let e3_plans: Vec<Uuid> = world
            .engine
            .sku_usage(OFFICE_365_E3)?
            .service_plans
            .iter()
            .map(|(id, _, _)| *id)
            .filter(|id| *id != EXCHANGE_ONLINE_PLAN_2)
            .collect();
        world.assign_to_group(
            directory.analytics_pilot,
            vec![
                AssignedLicense::with_disabled_plans(OFFICE_365_E3, e3_plans),
                AssignedLicense::new(WORKPLACE_ANALYTICS_SKU),
            ],
            vec![],
        )?;
        for number in 131..=150 {
            world.add_member(directory.engineering_e3_ems, user(number))?;
        }
        for number in 1..=121 {
            world.add_member(directory.sales_e3, user(number))?;
        }
        for number in 1..=130 {
            world.add_member(directory.mobility_ems, user(number))?;
        }
        for number in 151..=300 {
            world.add_member(directory.frontline_e1, user(number))?;
        }
        for number in 101..=115 {
            world.add_member(directory.analytics_pilot, user(number))?;
        }
        world.process();
        // User 121 gets Workplace Analytics directly (Exchange comes from Sales), then leaves Sales.
        world.assign_to_user(
            user(121),
            vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)],
            vec![],
        )?;
        world.remove_member(directory.sales_e3, user(121))?;
        world.process();
        Ok((world, directory))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AssignmentStatus;

    #[test]
    fn seed_world_builds_with_the_seed_rules() {
        let world = SeedWorld::new(SeedSeats::default()).expect("seed world");
        let exchange_1 = world
            .engine
            .service_plan_rules(EXCHANGE_ONLINE_PLAN_1)
            .expect("plan");
        assert!(exchange_1
            .mutually_exclusive_with
            .contains(&EXCHANGE_ONLINE_PLAN_2));
        assert!(exchange_1.needs_unique_proxy_address);
        let sharepoint_2 = world.engine.service_plan_rules(SHAREPOINT_PLAN_2).expect("plan");
        assert!(sharepoint_2.mutually_exclusive_with.contains(&SHAREPOINT_PLAN_1));
        let analytics = world
            .engine
            .service_plan_rules(WORKPLACE_ANALYTICS_PLAN)
            .expect("plan");
        assert_eq!(analytics.requires_any_of.len(), 2);
        assert_eq!(world.engine.sku_usages().len(), 4);
    }

    #[test]
    fn direct_e1_conflicts_with_group_e3_until_removed() {
        let mut world = SeedWorld::new(SeedSeats::default()).expect("seed world");
        let alice = world.add_user("alice", Some("US")).expect("user");
        let group = world.add_group("E3 users").expect("group");
        world
            .assign_to_user(alice, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])
            .expect("direct E1");
        world.add_member(group, alice).expect("member");
        world
            .assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
            .expect("group E3");
        world.process();
        assert_eq!(
            world.error(alice, OFFICE_365_E3, Some(group)),
            Some(LicenseErrorKind::MutuallyExclusiveViolation)
        );
        assert_eq!(world.engine.groups_with_errors(), vec![group]);
        world
            .assign_to_user(alice, vec![], vec![OFFICE_365_E1])
            .expect("remove E1");
        world.process();
        let state = world.state(alice, OFFICE_365_E3, Some(group)).expect("state");
        assert_eq!(state.state, AssignmentStatus::Active);
        assert!(world.engine.groups_with_errors().is_empty());
        assert_eq!(
            world.engine.sku_usage(OFFICE_365_E3).expect("sku").consumed_units,
            1
        );
        assert_eq!(
            world.engine.sku_usage(OFFICE_365_E1).expect("sku").consumed_units,
            0
        );
    }

    #[test]
    fn demo_tenant_shows_every_error_of_the_seed() {
        let (world, directory) = SeedWorld::demo().expect("demo");
        let overview = world.engine.tenant_overview();
        for kind in [
            LicenseErrorKind::CountViolation,
            LicenseErrorKind::MutuallyExclusiveViolation,
            LicenseErrorKind::DependencyViolation,
            LicenseErrorKind::ProhibitedInUsageLocationViolation,
            LicenseErrorKind::UniquenessViolation,
        ] {
            assert!(
                overview.errors_by_kind.get(&kind).copied().unwrap_or(0) > 0,
                "{kind:?} missing"
            );
        }
        assert_eq!(overview.users, DEMO_USERS);
        assert_eq!(overview.errors_by_kind[&LicenseErrorKind::CountViolation], 10);
        assert_eq!(
            overview.errors_by_kind[&LicenseErrorKind::MutuallyExclusiveViolation],
            5
        );
        assert_eq!(
            overview.errors_by_kind[&LicenseErrorKind::ProhibitedInUsageLocationViolation],
            5
        );
        assert_eq!(overview.errors_by_kind[&LicenseErrorKind::UniquenessViolation], 2);
        assert_eq!(overview.errors_by_kind[&LicenseErrorKind::DependencyViolation], 1);
        assert!(overview.users - overview.users_with_errors >= 250);
        let mut attention = world.engine.groups_with_errors();
        attention.sort();
        let mut expected = vec![directory.sales_e3, directory.mobility_ems, directory.frontline_e1];
        expected.sort();
        assert_eq!(attention, expected);
        // Engineering (20) + Sales (121 members minus 5 conflicts and 2 duplicate addresses, user 121
        // keeping its blocked E3): the analytics pilot's users are all in Sales and consume no
        // second E3 seat.
        let e3 = world.engine.sku_usage(OFFICE_365_E3).expect("E3");
        assert_eq!(e3.consumed_units, 20 + 121 - 5 - 2);
        let ems = world.engine.sku_usage(EMS_E3).expect("EMS");
        assert_eq!(
            (ems.consumed_units, ems.prepaid_units, ems.waiting_users),
            (140, 140, 10)
        );
    }
}
