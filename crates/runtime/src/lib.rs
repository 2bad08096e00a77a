//! licensd's runtime, under every surface and knowing none of them: each tenant's engine in
//! memory over the store ([`tenants`]), the background processor and watcher ([`processor`],
//! [`subscription_lifecycles`]), which instance processes which tenant ([`ownership`]) and what
//! processing did ([`statistics`]), access
//! control — who the caller is, which role may read and change what, tokens, rate limits and
//! the failed-authentication guard ([`access`]) —, the audit records of every change
//! ([`audit`]), license alert rules and their alerts ([`alerts`]), what a delta round lists from the change log ([`delta`]), the write health
//! ([`health`]) and the configuration ([`config`]). No HTTP type appears here: the server (and
//! the CLI's local commands) drive it through plain calls and render its typed errors their own
//! way.

// `ExecuteError::Refused` carries the engine's `CommandError`, which names plans and products so
// every refusal explains itself; it is built only when a command is refused.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod alert_digests;
pub mod alerts;
pub mod audit;
pub mod config;
pub mod delta;
pub mod health;
pub mod notifications;
pub mod ownership;
pub mod processor;
pub mod reclamation;
pub mod seat_history;
pub mod statistics;
pub mod subscription_lifecycles;
pub mod tenants;
