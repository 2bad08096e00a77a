//! [`ConsoleContext`]: what a console request acts on (the signed-in token's tenant), who asks
//! (its role, so pages hide or disable what the role may not do), and whether htmx asked for a
//! fragment. Engine work is blocking (locks, database writes), so queries and commands run on
//! tokio's blocking threads, through the same [`TenantRuntime`] as the API.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use licensd_engine::{Command, CommandOutcome, Engine, Uuid};

use super::error::ConsoleError;
use crate::AppState;
use licensd_runtime::access::{Caller, CommandKind, Role};
use licensd_runtime::tenants::{SharedStore, TenantRuntime};

/// The changes the console offers, each checked against the signed-in role (shown, disabled or
/// refused); the command itself is checked again when it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleAction {
    /// Add, edit or remove a group's products or a user's direct products.
    ChangeLicenses,
    /// Add or remove group members.
    ChangeMembers,
    /// Change a user's proxy addresses.
    ChangeUsers,
    /// Change a user's usage location.
    ChangeUsageLocation,
    /// Change the purchased seats of a product.
    ChangeSeats,
    /// Queue a group or a user for processing again.
    Reprocess,
    /// Change a tenant setting (transitive licensing).
    ChangeTenantSettings,
}

impl ConsoleAction {
    /// The kind of command the action runs.
    pub fn kind(self) -> CommandKind {
        match self {
            ConsoleAction::ChangeLicenses | ConsoleAction::Reprocess => CommandKind::Licenses,
            ConsoleAction::ChangeMembers | ConsoleAction::ChangeUsers => CommandKind::Directory,
            ConsoleAction::ChangeUsageLocation => CommandKind::UsageLocation,
            ConsoleAction::ChangeSeats => CommandKind::Subscriptions,
            ConsoleAction::ChangeTenantSettings => CommandKind::TenantSettings,
        }
    }
}

/// The tenant, role and htmx state of one console request.
#[derive(Clone)]
pub struct ConsoleContext {
    pub tenant_id: Uuid,
    /// Who is signed in.
    pub caller: Caller,
    pub role: Role,
    /// The `id` of the element htmx will swap the answer into, when htmx sent the request.
    pub htmx_target: Option<String>,
    /// Whether htmx sent the request (`HX-Request: true`).
    pub is_htmx: bool,
    runtime: Arc<TenantRuntime>,
    store: SharedStore,
}

impl FromRequestParts<AppState> for ConsoleContext {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ConsoleError::SignInRequired)?;
        let tenant_id = caller.tenant_id;
        let role = caller.role;
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let is_htmx = header("hx-request").is_some_and(|value| value == "true");
        let htmx_target = if is_htmx { header("hx-target") } else { None };
        let runtime = state.tenant_runtime(tenant_id).await?;
        Ok(ConsoleContext {
            tenant_id,
            caller,
            role,
            htmx_target,
            is_htmx,
            runtime,
            store: state.store.clone(),
        })
    }
}

impl ConsoleContext {
    /// Whether the request's role may perform an action (pages hide or disable it otherwise).
    pub fn may(&self, action: ConsoleAction) -> bool {
        self.role.may_change(action.kind())
    }

    /// Refuses the request unless its role may perform the action.
    pub fn require(&self, action: ConsoleAction) -> Result<(), ConsoleError> {
        if self.may(action) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden {
                action: action.kind().description(),
            })
        }
    }

    /// Whether htmx asked for the answer to go into the element with this id.
    pub fn targets(&self, element_id: &str) -> bool {
        self.htmx_target.as_deref() == Some(element_id)
    }

    /// Runs a query against the tenant's engine on a blocking thread. Keep queries to one page of
    /// rows: the tenant is locked while they run.
    pub async fn read<T, F>(&self, query: F) -> Result<T, ConsoleError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ConsoleError> + Send + 'static,
    {
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || runtime.read(query).map_err(ConsoleError::from)?)
            .await
            .map_err(|error| ConsoleError::Internal {
                detail: format!("a console query task failed: {error}"),
            })?
    }

    /// A read with the advisor's report, cached by the runtime per engine state
    /// ([`licensd_runtime::tenants::TenantRuntime::read_advised`]).
    pub async fn read_advised<T, F>(&self, query: F) -> Result<T, ConsoleError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine, &licensd_engine::AdvisorReport) -> Result<T, ConsoleError> + Send + 'static,
    {
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || runtime.read_advised(query).map_err(ConsoleError::from)?)
            .await
            .map_err(|error| ConsoleError::Internal {
                detail: format!("a console query task failed: {error}"),
            })?
    }

    /// The tenant's audit records matching `query`, newest first.
    /// Runs a read on the store for this tenant (prices, activity, seat history).
    pub async fn with_store<T, F>(&self, query: F) -> Result<T, ConsoleError>
    where
        T: Send + 'static,
        F: FnOnce(&mut licensd_store::Store, Uuid) -> Result<T, licensd_store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        let tenant_id = self.tenant_id;
        tokio::task::spawn_blocking(move || {
            let mut store = licensd_runtime::tenants::lock_store(&store).map_err(ConsoleError::from)?;
            query(&mut store, tenant_id).map_err(|error| ConsoleError::Storage {
                detail: error.to_string(),
            })
        })
        .await
        .map_err(|error| ConsoleError::Internal {
            detail: format!("a store query failed: {error}"),
        })?
    }

    pub async fn audit_records(
        &self,
        query: licensd_store::AuditQuery,
    ) -> Result<Vec<licensd_store::StoredAuditRecord>, ConsoleError> {
        let store = self.store.clone();
        let tenant_id = self.tenant_id;
        tokio::task::spawn_blocking(move || {
            licensd_runtime::tenants::lock_store(&store)
                .map_err(ConsoleError::from)?
                .audit_records(tenant_id, &query)
                .map_err(|error| ConsoleError::Storage {
                    detail: error.to_string(),
                })
        })
        .await
        .map_err(|error| ConsoleError::Internal {
            detail: format!("an audit log query failed: {error}"),
        })?
    }

    /// Runs work that needs the store, the tenant's runtime and the caller together (a
    /// reclamation run or revert) on a blocking thread.
    pub async fn with_runtime<T, F>(&self, work: F) -> Result<T, ConsoleError>
    where
        T: Send + 'static,
        F: FnOnce(&SharedStore, &TenantRuntime, &Caller) -> Result<T, ConsoleError> + Send + 'static,
    {
        let runtime = Arc::clone(&self.runtime);
        let store = self.store.clone();
        let caller = self.caller.clone();
        tokio::task::spawn_blocking(move || work(&store, &runtime, &caller))
            .await
            .map_err(|error| ConsoleError::Internal {
                detail: format!("a console runtime task failed: {error}"),
            })?
    }

    /// Applies a command and persists it (the same path as the API); a refusal changes nothing
    /// and comes back as [`ConsoleError::Refused`].
    pub async fn execute(&self, command: Command) -> Result<CommandOutcome, ConsoleError> {
        let runtime = Arc::clone(&self.runtime);
        let store = self.store.clone();
        let name = command.name();
        let caller = self.caller.clone();
        let outcome = tokio::task::spawn_blocking(move || runtime.execute(&store, command, &caller))
            .await
            .map_err(|error| ConsoleError::Internal {
                detail: format!("a console command task failed: {error}"),
            })?;
        match &outcome {
            Ok(done) => {
                tracing::info!(tenant = %self.tenant_id, command = name, queued = done.queued_users, "console change")
            }
            Err(error) => {
                tracing::debug!(tenant = %self.tenant_id, command = name, %error, "console change refused")
            }
        }
        Ok(outcome?)
    }
}
