//! Subscription lifecycles on SQLite (see `crate::subscriptions`).

use licensd_engine::Uuid;
use rusqlite::params;

use super::{blob_of, SqliteStore};
use crate::error::StoreError;
use crate::subscriptions::SubscriptionLifecycle;

impl SqliteStore {
    pub(crate) fn subscription_lifecycles(
        &mut self,
        tenant_id: Uuid,
    ) -> Result<Vec<SubscriptionLifecycle>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let rows = self
            .connection
            .prepare_cached(
                "SELECT sku_id, created_at, ends_at, is_trial FROM subscription_lifecycles
                 WHERE tenant_key = ?1 ORDER BY sku_id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([tenant_key], |row| {
                        Ok((
                            row.get::<_, Vec<u8>>(0)?,
                            row.get::<_, Option<i64>>(1)?,
                            row.get::<_, Option<i64>>(2)?,
                            row.get::<_, i64>(3)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(StoreError::sqlite("reading subscription lifecycles"))?;
        rows.into_iter()
            .map(|(sku_id, created_at, ends_at, is_trial)| {
                Ok(SubscriptionLifecycle {
                    sku_id: Uuid::from_slice(&sku_id)
                        .map_err(|_| StoreError::corrupt("a stored GUID is not 16 bytes"))?,
                    created_at,
                    ends_at,
                    is_trial: is_trial != 0,
                })
            })
            .collect()
    }

    pub(crate) fn set_subscription_lifecycle(
        &mut self,
        tenant_id: Uuid,
        lifecycle: &SubscriptionLifecycle,
    ) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        self.connection
            .execute(
                "INSERT INTO subscription_lifecycles (tenant_key, sku_id, created_at, ends_at, is_trial)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_key, sku_id) DO UPDATE SET
                     created_at = excluded.created_at, ends_at = excluded.ends_at, is_trial = excluded.is_trial",
                params![
                    tenant_key,
                    blob_of(&lifecycle.sku_id),
                    lifecycle.created_at,
                    lifecycle.ends_at,
                    i64::from(lifecycle.is_trial)
                ],
            )
            .map_err(StoreError::sqlite("writing a subscription lifecycle"))?;
        Ok(())
    }
}
