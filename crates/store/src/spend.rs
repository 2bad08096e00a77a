//! What spend reports need beyond the engine's image: the price of a seat of each product, the
//! activity the identity provider reports for users (last sign-in, leave date) and the seat
//! history of each product. Both backends read and write them with the same statements; each
//! change is written with its audit records in one transaction.

use licensd_engine::Uuid;

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::security::{insert_audit, AuditRecord};
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// The price of one seat of a product, per month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkuPrice {
    pub sku_id: Uuid,
    /// In the currency's minor unit (cents).
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// A user's activity as the identity provider reports it; times in milliseconds since the Unix
/// epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserActivityRecord {
    pub user_id: Uuid,
    pub last_sign_in: Option<i64>,
    pub leave_date: Option<i64>,
}

/// One product's seats at one time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatSnapshot {
    pub sku_id: Uuid,
    /// Milliseconds since the Unix epoch.
    pub taken_at: i64,
    pub purchased: i64,
    pub consumed: i64,
    pub waiting: i64,
    pub in_error: i64,
}

pub(crate) fn sku_prices(session: &mut impl Session, tenant_id: Uuid) -> Result<Vec<SkuPrice>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading product prices",
        "SELECT sku_id, price_minor, currency FROM sku_prices WHERE tenant_key = $1 ORDER BY sku_id",
        &[Param::Integer(tenant_key)],
        |row| {
            Ok(SkuPrice {
                sku_id: row.id(0)?,
                price_minor: row.integer(1)?,
                currency: row.text(2)?.to_string(),
            })
        },
    )
}

/// Sets (`Some`) or removes (`None`) a product's price, with its audit records.
pub(crate) fn set_sku_price(
    database: &mut impl Database,
    tenant_id: Uuid,
    sku_id: Uuid,
    price: Option<&SkuPrice>,
    audit: &[AuditRecord],
) -> Result<(), StoreError> {
    let mut transaction = database.begin("starting to set a product's price")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    match price {
        Some(price) => transaction.execute(
            "writing a product's price",
            "INSERT INTO sku_prices (tenant_key, sku_id, price_minor, currency) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_key, sku_id) DO UPDATE SET
                 price_minor = excluded.price_minor, currency = excluded.currency",
            &[
                Param::Integer(tenant_key),
                Param::Id(sku_id),
                Param::Integer(price.price_minor),
                Param::Text(&price.currency),
            ],
        )?,
        None => transaction.execute(
            "removing a product's price",
            "DELETE FROM sku_prices WHERE tenant_key = $1 AND sku_id = $2",
            &[Param::Integer(tenant_key), Param::Id(sku_id)],
        )?,
    };
    insert_audit(&mut transaction, tenant_key, audit)?;
    transaction.commit("committing a product's price")
}

fn read_activity(row: &impl ReadRow) -> Result<UserActivityRecord, StoreError> {
    Ok(UserActivityRecord {
        user_id: row.id(0)?,
        last_sign_in: row.optional_integer(1)?,
        leave_date: row.optional_integer(2)?,
    })
}

/// The activity of the given users (those that have any).
pub(crate) fn user_activity(
    session: &mut impl Session,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Option<UserActivityRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_optional(
        "reading a user's activity",
        "SELECT user_id, last_sign_in, leave_date FROM user_activity WHERE tenant_key = $1 AND user_id = $2",
        &[Param::Integer(tenant_key), Param::Id(user_id)],
        |row| read_activity(row),
    )
}

/// Every stored activity record of the tenant (a user with neither date has none).
pub(crate) fn all_user_activity(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<UserActivityRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading users' activity",
        "SELECT user_id, last_sign_in, leave_date FROM user_activity WHERE tenant_key = $1",
        &[Param::Integer(tenant_key)],
        |row| read_activity(row),
    )
}

/// The users who may be idle at `now`: their leave date is at or before `now`, or their last
/// sign-in at or before `signed_in_before`. (The engine decides; this only narrows the rows.)
pub(crate) fn possibly_idle_activity(
    session: &mut impl Session,
    tenant_id: Uuid,
    now: i64,
    signed_in_before: i64,
) -> Result<Vec<UserActivityRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading the activity of possibly idle users",
        "SELECT user_id, last_sign_in, leave_date FROM user_activity
         WHERE tenant_key = $1 AND leave_date <= $2
         UNION
         SELECT user_id, last_sign_in, leave_date FROM user_activity
         WHERE tenant_key = $1 AND last_sign_in <= $3",
        &[
            Param::Integer(tenant_key),
            Param::Integer(now),
            Param::Integer(signed_in_before),
        ],
        |row| read_activity(row),
    )
}

/// Replaces the activity of each given user (a record with neither date removes the row), with
/// its audit records, in one transaction.
pub(crate) fn set_user_activity(
    database: &mut impl Database,
    tenant_id: Uuid,
    records: &[UserActivityRecord],
    audit: &[AuditRecord],
) -> Result<(), StoreError> {
    let mut transaction = database.begin("starting to store users' activity")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    for record in records {
        if record.last_sign_in.is_none() && record.leave_date.is_none() {
            transaction.execute(
                "removing a user's activity",
                "DELETE FROM user_activity WHERE tenant_key = $1 AND user_id = $2",
                &[Param::Integer(tenant_key), Param::Id(record.user_id)],
            )?;
            continue;
        }
        transaction.execute(
            "writing a user's activity",
            "INSERT INTO user_activity (tenant_key, user_id, last_sign_in, leave_date) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_key, user_id) DO UPDATE SET
                 last_sign_in = excluded.last_sign_in, leave_date = excluded.leave_date",
            &[
                Param::Integer(tenant_key),
                Param::Id(record.user_id),
                Param::OptionalInteger(record.last_sign_in),
                Param::OptionalInteger(record.leave_date),
            ],
        )?;
    }
    insert_audit(&mut transaction, tenant_key, audit)?;
    transaction.commit("committing users' activity")
}

fn read_snapshot(row: &impl ReadRow) -> Result<SeatSnapshot, StoreError> {
    Ok(SeatSnapshot {
        sku_id: row.id(0)?,
        taken_at: row.integer(1)?,
        purchased: row.integer(2)?,
        consumed: row.integer(3)?,
        waiting: row.integer(4)?,
        in_error: row.integer(5)?,
    })
}

/// Stores snapshots (one taken twice at the same millisecond keeps the first).
pub(crate) fn record_seat_snapshots(
    database: &mut impl Database,
    tenant_id: Uuid,
    snapshots: &[SeatSnapshot],
) -> Result<(), StoreError> {
    let mut transaction = database.begin("starting to record seat snapshots")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    for snapshot in snapshots {
        transaction.execute(
            "recording a seat snapshot",
            "INSERT INTO seat_history (tenant_key, sku_id, taken_at, purchased, consumed, waiting, in_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_key, sku_id, taken_at) DO NOTHING",
            &[
                Param::Integer(tenant_key),
                Param::Id(snapshot.sku_id),
                Param::Integer(snapshot.taken_at),
                Param::Integer(snapshot.purchased),
                Param::Integer(snapshot.consumed),
                Param::Integer(snapshot.waiting),
                Param::Integer(snapshot.in_error),
            ],
        )?;
    }
    transaction.commit("committing seat snapshots")
}

/// A product's snapshots taken in `[from, to]`, oldest first.
pub(crate) fn seat_history(
    session: &mut impl Session,
    tenant_id: Uuid,
    sku_id: Uuid,
    from: i64,
    to: i64,
) -> Result<Vec<SeatSnapshot>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading a product's seat history",
        "SELECT sku_id, taken_at, purchased, consumed, waiting, in_error FROM seat_history
         WHERE tenant_key = $1 AND sku_id = $2 AND taken_at >= $3 AND taken_at <= $4 ORDER BY taken_at",
        &[
            Param::Integer(tenant_key),
            Param::Id(sku_id),
            Param::Integer(from),
            Param::Integer(to),
        ],
        |row| read_snapshot(row),
    )
}

/// The latest snapshot of each product that has one.
pub(crate) fn latest_seat_snapshots(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<SeatSnapshot>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading the latest seat snapshots",
        "SELECT history.sku_id, history.taken_at, history.purchased, history.consumed, history.waiting,
             history.in_error
         FROM seat_history history
         JOIN (SELECT sku_id, max(taken_at) AS taken_at FROM seat_history WHERE tenant_key = $1
               GROUP BY sku_id) latest
           ON latest.sku_id = history.sku_id AND latest.taken_at = history.taken_at
         WHERE history.tenant_key = $1 ORDER BY history.sku_id",
        &[Param::Integer(tenant_key)],
        |row| read_snapshot(row),
    )
}
