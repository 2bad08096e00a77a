//! Subscription lifecycles on PostgreSQL (see `crate::subscriptions`).

use licensd_engine::Uuid;

use super::{get, PostgresStore};
use crate::error::StoreError;
use crate::subscriptions::SubscriptionLifecycle;

impl PostgresStore {
    pub(crate) fn subscription_lifecycles(
        &mut self,
        tenant_id: Uuid,
    ) -> Result<Vec<SubscriptionLifecycle>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let rows = self
            .client
            .query(
                "SELECT sku_id, created_at, ends_at, is_trial FROM subscription_lifecycles
                 WHERE tenant_key = $1 ORDER BY sku_id",
                &[&tenant_key],
            )
            .map_err(StoreError::postgres("reading subscription lifecycles"))?;
        rows.iter()
            .map(|row| {
                Ok(SubscriptionLifecycle {
                    sku_id: get(row, 0)?,
                    created_at: get(row, 1)?,
                    ends_at: get(row, 2)?,
                    is_trial: get(row, 3)?,
                })
            })
            .collect()
    }

    pub(crate) fn set_subscription_lifecycle(
        &mut self,
        tenant_id: Uuid,
        lifecycle: &SubscriptionLifecycle,
    ) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        self.client
            .execute(
                "INSERT INTO subscription_lifecycles (tenant_key, sku_id, created_at, ends_at, is_trial)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant_key, sku_id) DO UPDATE SET
                     created_at = EXCLUDED.created_at, ends_at = EXCLUDED.ends_at, is_trial = EXCLUDED.is_trial",
                &[
                    &tenant_key,
                    &lifecycle.sku_id,
                    &lifecycle.created_at,
                    &lifecycle.ends_at,
                    &lifecycle.is_trial,
                ],
            )
            .map_err(StoreError::postgres("writing a subscription lifecycle"))?;
        Ok(())
    }
}
