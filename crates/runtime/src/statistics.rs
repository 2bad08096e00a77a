//! What this instance's processor did, per tenant, for metrics: users evaluated, states
//! changed, steps and failed steps, time spent, and how long the oldest queued user has been
//! waiting.
//!
//! The engine's queue holds no times, so waiting is measured where users arrive: the processor
//! looks at each tenant's queue before every step (a write wakes it at once, so it looks within
//! milliseconds of the write), counts the users that arrived since its last look as one cohort
//! stamped with the time it saw them, and retires cohorts in queue order as steps evaluate users.
//! The oldest queued user's wait is then the age of the oldest cohort not yet evaluated — exact to
//! the processor's reaction time while it owns the tenant; tenants processed by another instance
//! have no figure here (that instance reports it).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use licensd_engine::Uuid;

use crate::tenants::StepReport;

/// One tenant's processing on this instance.
#[derive(Debug, Default)]
struct TenantProcessing {
    /// Users seen arriving, as (running total at the end of the cohort, when it was seen).
    arrivals: VecDeque<(u64, Instant)>,
    /// Users seen arriving since the start.
    arrived: u64,
    /// Position in the arrivals up to which users were evaluated (retires cohorts in order).
    retired: u64,
    evaluated_users: u64,
    /// The queue length after the last step (or look).
    queued_after_last_look: usize,
    changed_states: u64,
    steps: u64,
    failed_steps: u64,
    step_time: Duration,
    /// Whether this instance processes the tenant (holds its lease) as of the last look.
    processed_here: bool,
}

impl TenantProcessing {
    fn arrive(&mut self, users: u64, at: Instant) {
        if users > 0 {
            self.arrived += users;
            self.arrivals.push_back((self.arrived, at));
        }
    }

    fn retire(&mut self) {
        while let Some((end, _)) = self.arrivals.front() {
            if *end <= self.retired {
                self.arrivals.pop_front();
            } else {
                break;
            }
        }
    }
}

/// What one tenant's processing looks like now.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantProcessingFigures {
    pub tenant_id: Uuid,
    pub evaluated_users: u64,
    pub changed_states: u64,
    pub steps: u64,
    pub failed_steps: u64,
    pub step_time: Duration,
    /// How long the oldest queued user has waited; `None` when nothing waits or another instance
    /// processes the tenant.
    pub oldest_queued_wait: Option<Duration>,
    pub processed_here: bool,
}

/// The processor's figures of every tenant it looked at.
#[derive(Debug, Default)]
pub struct ProcessingStatistics {
    tenants: Mutex<HashMap<Uuid, TenantProcessing>>,
}

impl ProcessingStatistics {
    fn with<T>(&self, tenant_id: Uuid, update: impl FnOnce(&mut TenantProcessing) -> T) -> T {
        let mut tenants = match self.tenants.lock() {
            Ok(tenants) => tenants,
            Err(poisoned) => poisoned.into_inner(),
        };
        update(tenants.entry(tenant_id).or_default())
    }

    /// The processor looked at a tenant it processes: `queued` users wait now.
    pub fn looked(&self, tenant_id: Uuid, queued: usize, at: Instant) {
        self.with(tenant_id, |tenant| {
            tenant.processed_here = true;
            let arrived = queued.saturating_sub(tenant.queued_after_last_look);
            tenant.arrive(arrived as u64, at);
            tenant.queued_after_last_look = queued;
            if queued == 0 {
                // Drained: whatever was counted as waiting is gone.
                tenant.retired = tenant.arrived;
                tenant.arrivals.clear();
            }
        });
    }

    /// Another instance processes the tenant.
    pub fn processed_elsewhere(&self, tenant_id: Uuid) {
        self.with(tenant_id, |tenant| {
            tenant.processed_here = false;
            tenant.arrivals.clear();
            tenant.retired = tenant.arrived;
            tenant.queued_after_last_look = 0;
        });
    }

    /// A step evaluated users of a tenant that had `queued_before` queued when it began.
    pub fn stepped(
        &self,
        tenant_id: Uuid,
        queued_before: usize,
        step: &StepReport,
        took: Duration,
        at: Instant,
    ) {
        self.with(tenant_id, |tenant| {
            tenant.steps += 1;
            tenant.step_time += took;
            tenant.changed_states += step.changed_states as u64;
            tenant.evaluated_users += step.evaluated_users as u64;
            tenant.retired += step.evaluated_users as u64;
            // Users queued again by the step (self-healing) or by writes during it arrive now.
            let left_over = queued_before.saturating_sub(step.evaluated_users);
            tenant.arrive(step.remaining_users.saturating_sub(left_over) as u64, at);
            tenant.queued_after_last_look = step.remaining_users;
            if step.remaining_users == 0 {
                tenant.retired = tenant.arrived;
                tenant.arrivals.clear();
            }
            tenant.retire();
        });
    }

    /// A step of the tenant failed (nothing was written).
    pub fn step_failed(&self, tenant_id: Uuid) {
        self.with(tenant_id, |tenant| tenant.failed_steps += 1);
    }

    /// Every tenant's figures as of `now`, by tenant id.
    pub fn figures(&self, now: Instant) -> Vec<TenantProcessingFigures> {
        let tenants = match self.tenants.lock() {
            Ok(tenants) => tenants,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut figures: Vec<TenantProcessingFigures> = tenants
            .iter()
            .map(|(tenant_id, tenant)| TenantProcessingFigures {
                tenant_id: *tenant_id,
                evaluated_users: tenant.evaluated_users,
                changed_states: tenant.changed_states,
                steps: tenant.steps,
                failed_steps: tenant.failed_steps,
                step_time: tenant.step_time,
                oldest_queued_wait: tenant
                    .arrivals
                    .front()
                    .map(|(_, since)| now.saturating_duration_since(*since)),
                processed_here: tenant.processed_here,
            })
            .collect();
        figures.sort_by_key(|figures| figures.tenant_id);
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: Uuid = Uuid::from_u128(1);

    fn step(evaluated: usize, remaining: usize) -> StepReport {
        StepReport {
            evaluated_users: evaluated,
            changed_states: evaluated,
            remaining_users: remaining,
        }
    }

    fn wait(statistics: &ProcessingStatistics, now: Instant) -> Option<Duration> {
        statistics.figures(now)[0].oldest_queued_wait
    }

    #[test]
    fn the_oldest_wait_is_the_age_of_the_oldest_cohort_not_yet_evaluated() {
        let statistics = ProcessingStatistics::default();
        let start = Instant::now();
        let second = |n: u64| start + Duration::from_secs(n);
        statistics.looked(TENANT, 0, start);
        assert_eq!(
            wait(&statistics, second(1)),
            None,
            "nothing queued, nothing waits"
        );
        // 100 users arrive at 1 s, 50 more at 3 s.
        statistics.looked(TENANT, 100, second(1));
        statistics.stepped(TENANT, 100, &step(40, 60), Duration::from_millis(5), second(2));
        statistics.looked(TENANT, 110, second(3));
        assert_eq!(
            wait(&statistics, second(4)),
            Some(Duration::from_secs(3)),
            "60 of the first cohort still wait"
        );
        // The rest of the first cohort is evaluated: the second cohort (seen at 3 s) is oldest.
        statistics.stepped(TENANT, 110, &step(60, 50), Duration::from_millis(5), second(5));
        assert_eq!(wait(&statistics, second(6)), Some(Duration::from_secs(3)));
        statistics.stepped(TENANT, 50, &step(50, 0), Duration::from_millis(5), second(7));
        assert_eq!(wait(&statistics, second(8)), None, "drained");
        let figures = &statistics.figures(second(8))[0];
        assert_eq!(figures.evaluated_users, 150);
        assert_eq!(figures.steps, 3);
        assert!(figures.processed_here);
    }

    #[test]
    fn users_queued_again_by_a_step_arrive_when_it_ends() {
        let statistics = ProcessingStatistics::default();
        let start = Instant::now();
        statistics.looked(TENANT, 10, start);
        // All 10 evaluated, 2 queued again (self-healing): they wait from the step's end.
        let end = start + Duration::from_secs(5);
        statistics.stepped(TENANT, 10, &step(10, 2), Duration::from_millis(5), end);
        assert_eq!(
            wait(&statistics, end + Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_tenant_processed_elsewhere_has_no_wait_here() {
        let statistics = ProcessingStatistics::default();
        let start = Instant::now();
        statistics.looked(TENANT, 10, start);
        statistics.processed_elsewhere(TENANT);
        let figures = &statistics.figures(start + Duration::from_secs(1))[0];
        assert_eq!(figures.oldest_queued_wait, None);
        assert!(!figures.processed_here);
        statistics.step_failed(TENANT);
        assert_eq!(statistics.figures(start)[0].failed_steps, 1);
    }
}
