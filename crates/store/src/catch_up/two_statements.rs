//! The catch-up read on PostgreSQL in two statements outside any transaction, one round trip
//! each (see the parent module): the tenant's version with the change records, then every row
//! of the patch in one statement ([`one_statement`]) that reads the tenant's version again.

use licensd_engine::Uuid;
use postgres::types::ToSql;

use super::{
    answer, assemble_patch, attributes_row, change_row, direct_row, group_row, head_row, license_row,
    membership_row, nesting_row, plan_row, sku_row, state_row, touched_by, user_row, CatchUp, Head,
    PatchRows, Touched,
};
use crate::batch::TenantChange;
use crate::error::StoreError;
use crate::load::{logical_time, logical_time_column};
use crate::postgres::PostgresStore;
use crate::sql::ReadRow;

/// The type of a column of the one statement's rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Int,
    Text,
    Id,
    Bytes,
    Flag,
}

impl Column {
    const ALL: [Column; 5] = [Column::Int, Column::Text, Column::Id, Column::Bytes, Column::Flag];

    fn sql_type(self) -> &'static str {
        match self {
            Column::Int => "bigint",
            Column::Text => "text",
            Column::Id => "uuid",
            Column::Bytes => "bytea",
            Column::Flag => "boolean",
        }
    }
}

/// One kind of row of the one statement: its columns (expression and type, in the order its
/// decoder reads them), the three integers and the GUID it is ordered by within its kind, and
/// what it reads `FROM` (with its conditions).
struct Part {
    columns: &'static [(&'static str, Column)],
    order: [&'static str; 4],
    from: &'static str,
}

// The kinds of rows, in the order they come.
const HEAD: usize = 0;
const PLANS: usize = 1;
const SKUS: usize = 2;
const SKU_PLANS: usize = 3;
const USERS: usize = 4;
const MEMBERSHIPS: usize = 5;
const STATES: usize = 6;
const GROUPS: usize = 7;
const NESTINGS: usize = 8;
const LICENSES: usize = 9;
const DIRECT: usize = 10;
const QUEUE: usize = 11;
const ALL_ATTRIBUTES: usize = 12;
const TOUCHED_ATTRIBUTES: usize = 13;

const GROUP_COLUMNS: [(&str, Column); 6] = [
    ("g.group_key", Column::Int),
    ("g.group_id", Column::Id),
    ("g.display_name", Column::Text),
    ("g.licensed_since", Column::Int),
    ("g.membership_rule", Column::Text),
    ("g.membership_rule_state", Column::Text),
];

const NO_ORDER: [&str; 4] = ["0", "0", "0", "NULL::uuid"];

/// The parts of the one statement (indexed by the kinds above). `$1` is the tenant key, `$2`
/// the touched users, `$3` the touched groups, `$4`–`$7` whether to read the products' plans,
/// the queue, every object's attributes, the touched objects' attributes. Users and groups are
/// looked up by their unique ids and every related row by key, one index probe each
/// (`OFFSET 0` keeps each lateral subquery a probe per row instead of a join a planner may
/// answer by scanning every group of the tenant). PostgreSQL plans it for each run's values
/// (about as long as running it); the generic plans tried instead were slower or JIT-compiled
/// (`BENCHMARKS.md`, "Catch-up on PostgreSQL in two statements").
const PARTS: [Part; 14] = [
    Part {
        columns: &[
            ("t.version", Column::Int),
            ("t.display_name", Column::Text),
            ("t.default_usage_location", Column::Text),
            ("t.self_healing", Column::Flag),
            ("t.clock", Column::Int),
            ("t.transitive_licensing", Column::Flag),
        ],
        order: NO_ORDER,
        from: "tenants t WHERE t.tenant_key = $1",
    },
    Part {
        columns: &[
            ("p.plan_number", Column::Int),
            ("p.position", Column::Int),
            ("p.plan_id", Column::Id),
            ("p.name", Column::Text),
            ("p.display_name", Column::Text),
        ],
        order: ["p.position", "0", "0", "NULL::uuid"],
        from: "service_plans p WHERE p.tenant_key = $1",
    },
    Part {
        columns: &[
            ("k.sku_key", Column::Int),
            ("k.sku_id", Column::Id),
            ("k.sku_part_number", Column::Text),
            ("k.display_name", Column::Text),
            ("k.applies_to", Column::Text),
            ("k.prepaid_units", Column::Int),
            ("k.capability_status", Column::Text),
        ],
        order: ["k.sku_key", "0", "0", "NULL::uuid"],
        from: "skus k WHERE k.tenant_key = $1",
    },
    Part {
        columns: &[("k.sku_key", Column::Int), ("k.plan_id", Column::Id)],
        order: ["k.sku_key", "k.position", "0", "NULL::uuid"],
        from: "sku_plans k WHERE k.tenant_key = $1 AND $4::boolean",
    },
    Part {
        columns: &[
            ("u.user_key", Column::Int),
            ("u.user_id", Column::Id),
            ("u.user_principal_name", Column::Text),
            ("u.display_name", Column::Text),
            ("u.usage_location", Column::Text),
            ("u.proxy_addresses", Column::Text),
            ("u.account_enabled", Column::Flag),
            ("u.attributes", Column::Text),
        ],
        order: ["u.user_key", "0", "0", "NULL::uuid"],
        from: "u",
    },
    Part {
        columns: &[
            ("m.user_key", Column::Int),
            ("m.group_key", Column::Int),
            ("m.since", Column::Int),
            GROUP_COLUMNS[0],
            GROUP_COLUMNS[1],
            GROUP_COLUMNS[2],
            GROUP_COLUMNS[3],
            GROUP_COLUMNS[4],
            GROUP_COLUMNS[5],
        ],
        order: ["m.user_key", "m.position", "0", "NULL::uuid"],
        from: "u CROSS JOIN LATERAL (
                 SELECT m.user_key, m.group_key, m.since, m.position FROM memberships m
                 WHERE m.tenant_key = $1 AND m.user_key = u.user_key OFFSET 0) m
               CROSS JOIN LATERAL (
                 SELECT * FROM groups g WHERE g.tenant_key = $1 AND g.group_key = m.group_key
                 OFFSET 0) g",
    },
    Part {
        columns: &[
            ("s.user_key", Column::Int),
            ("s.sku_key", Column::Int),
            ("s.source_key", Column::Int),
            ("s.status", Column::Text),
            ("s.cause", Column::Bytes),
            ("s.disabled_plans", Column::Bytes),
            ("s.granted_plans", Column::Bytes),
            ("s.since", Column::Int),
            ("s.last_updated", Column::Int),
            GROUP_COLUMNS[0],
            GROUP_COLUMNS[1],
            GROUP_COLUMNS[2],
            GROUP_COLUMNS[3],
            GROUP_COLUMNS[4],
            GROUP_COLUMNS[5],
        ],
        order: ["s.user_key", "s.sku_key", "s.source_key", "NULL::uuid"],
        from: "u CROSS JOIN LATERAL (
                 SELECT * FROM license_states s WHERE s.tenant_key = $1 AND s.user_key = u.user_key
                 OFFSET 0) s
               LEFT JOIN LATERAL (
                 SELECT * FROM groups g WHERE g.tenant_key = $1 AND g.group_key = s.source_key
                 OFFSET 0) g ON true",
    },
    Part {
        columns: &GROUP_COLUMNS,
        order: ["g.group_key", "0", "0", "NULL::uuid"],
        from: "tg g",
    },
    Part {
        columns: &[
            ("n.group_id", Column::Id),
            ("n.member_group_id", Column::Id),
            ("n.since", Column::Int),
        ],
        order: NO_ORDER,
        from: "group_nestings n
               WHERE n.tenant_key = $1 AND (n.group_id = ANY($3::uuid[])
                                            OR n.member_group_id = ANY($3::uuid[]))",
    },
    Part {
        columns: &[
            ("l.group_key", Column::Int),
            ("l.sku_key", Column::Int),
            ("l.disabled_plans", Column::Text),
        ],
        order: ["l.group_key", "l.position", "0", "NULL::uuid"],
        from: "tg CROSS JOIN LATERAL (
                 SELECT * FROM group_licenses l WHERE l.tenant_key = $1 AND l.group_key = tg.group_key
                 OFFSET 0) l",
    },
    Part {
        columns: &[
            ("d.user_key", Column::Int),
            ("d.sku_key", Column::Int),
            ("d.disabled_plans", Column::Text),
            ("d.since", Column::Int),
        ],
        order: ["d.user_key", "d.position", "0", "NULL::uuid"],
        from: "u CROSS JOIN LATERAL (
                 SELECT * FROM direct_licenses d WHERE d.tenant_key = $1 AND d.user_key = u.user_key
                 OFFSET 0) d",
    },
    Part {
        // A lookup per queued user (not a join, which a planner may answer by scanning every
        // user of the tenant, however short the queue).
        columns: &[(
            "(SELECT qu.user_id FROM users qu
              WHERE qu.tenant_key = q.tenant_key AND qu.user_key = q.user_key)",
            Column::Id,
        )],
        order: ["q.position", "0", "0", "NULL::uuid"],
        from: "work_queue q WHERE q.tenant_key = $1 AND $5::boolean",
    },
    Part {
        columns: &[("a.object_id", Column::Id), ("a.attributes", Column::Text)],
        order: ["0", "0", "0", "a.object_id"],
        from: "directory_attributes a WHERE a.tenant_key = $1 AND $6::boolean",
    },
    Part {
        columns: &[("a.object_id", Column::Id), ("a.attributes", Column::Text)],
        order: ["0", "0", "0", "a.object_id"],
        from: "directory_attributes a
               WHERE a.tenant_key = $1 AND $7::boolean
                 AND (a.object_id = ANY($2::uuid[]) OR a.object_id = ANY($3::uuid[]))",
    },
];

/// The one statement that reads a patch's rows (and the tenant's row, to check that no write
/// came in since the change records were read), and for each kind of row, where each of its
/// columns is: every kind's rows have the same columns, the kind, the three it is ordered by,
/// then as many columns of each type as the widest kind needs, unused ones `NULL`.
struct OneStatement {
    sql: String,
    slots: Vec<Vec<usize>>,
}

fn one_statement() -> &'static OneStatement {
    static STATEMENT: std::sync::OnceLock<OneStatement> = std::sync::OnceLock::new();
    STATEMENT.get_or_init(|| {
        let width = |column: Column| {
            PARTS
                .iter()
                .map(|part| part.columns.iter().filter(|(_, of)| *of == column).count())
                .max()
                .unwrap_or(0)
        };
        // The first slot of each type, after the kind and the four ordering columns.
        let mut first = [0usize; 5];
        let mut next = 5;
        for (index, column) in Column::ALL.iter().enumerate() {
            first[index] = next;
            next += width(*column);
        }
        let mut slots = Vec::with_capacity(PARTS.len());
        let mut selects = Vec::with_capacity(PARTS.len());
        for (kind, part) in PARTS.iter().enumerate() {
            let mut expressions: Vec<String> = Vec::with_capacity(next);
            expressions.push(format!("{kind}::bigint"));
            expressions.push(format!("({})::bigint", part.order[0]));
            expressions.push(format!("({})::bigint", part.order[1]));
            expressions.push(format!("({})::bigint", part.order[2]));
            expressions.push(format!("({})::uuid", part.order[3]));
            let mut map = Vec::with_capacity(part.columns.len());
            for (index, column) in Column::ALL.iter().enumerate() {
                let of_type: Vec<(usize, &str)> = part
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, of))| of == column)
                    .map(|(position, (expression, _))| (position, *expression))
                    .collect();
                for (offset, (_, expression)) in of_type.iter().enumerate() {
                    expressions.push(format!("({expression})::{}", column.sql_type()));
                    map.push((of_type[offset].0, first[index] + offset));
                }
                for _ in of_type.len()..width(*column) {
                    expressions.push(format!("NULL::{}", column.sql_type()));
                }
            }
            map.sort_unstable();
            slots.push(map.into_iter().map(|(_, slot)| slot).collect());
            selects.push(format!("SELECT {} FROM {}", expressions.join(", "), part.from));
        }
        let sql = format!(
            "WITH u AS MATERIALIZED (
                 SELECT * FROM users WHERE tenant_key = $1 AND user_id = ANY($2::uuid[])),
             tg AS MATERIALIZED (
                 SELECT * FROM groups WHERE tenant_key = $1 AND group_id = ANY($3::uuid[]))
             {}
             ORDER BY 1, 2, 3, 4, 5",
            selects.join("\nUNION ALL\n")
        );
        OneStatement { sql, slots }
    })
}

/// A row of the one statement as its kind's decoder reads it: column `index` of the kind is
/// column `slots[index]` of the row.
struct Slots<'r, R> {
    row: &'r R,
    slots: &'r [usize],
}

impl<R: ReadRow> Slots<'_, R> {
    fn slot(&self, index: usize) -> Result<usize, StoreError> {
        self.slots
            .get(index)
            .copied()
            .ok_or_else(|| StoreError::corrupt(format!("the catch-up row has no column {index}")))
    }
}

impl<R: ReadRow> ReadRow for Slots<'_, R> {
    fn integer(&self, index: usize) -> Result<i64, StoreError> {
        self.row.integer(self.slot(index)?)
    }

    fn optional_integer(&self, index: usize) -> Result<Option<i64>, StoreError> {
        self.row.optional_integer(self.slot(index)?)
    }

    fn text(&self, index: usize) -> Result<&str, StoreError> {
        self.row.text(self.slot(index)?)
    }

    fn optional_text(&self, index: usize) -> Result<Option<&str>, StoreError> {
        self.row.optional_text(self.slot(index)?)
    }

    fn flag(&self, index: usize) -> Result<bool, StoreError> {
        self.row.flag(self.slot(index)?)
    }

    fn id(&self, index: usize) -> Result<Uuid, StoreError> {
        self.row.id(self.slot(index)?)
    }

    fn optional_id(&self, index: usize) -> Result<Option<Uuid>, StoreError> {
        self.row.optional_id(self.slot(index)?)
    }

    fn bytes(&self, index: usize) -> Result<&[u8], StoreError> {
        self.row.bytes(self.slot(index)?)
    }

    fn optional_bytes(&self, index: usize) -> Result<Option<&[u8]>, StoreError> {
        self.row.optional_bytes(self.slot(index)?)
    }
}

/// The catch-up read on PostgreSQL in two statements outside any transaction (a statement
/// sees one snapshot of its own): the tenant's version and key with the change records since
/// `after`, then everything the patch needs in one statement ([`one_statement`]), which also
/// reads the tenant's row again. Two round trips instead of a dozen and a transaction's two.
/// `None` when a write came in between the two (the second saw another version): the caller
/// reads in one snapshot instead.
pub(super) fn read_alone_postgres(
    store: &mut PostgresStore,
    tenant_id: Uuid,
    after: u64,
    also: Option<&TenantChange>,
) -> Result<Option<CatchUp>, StoreError> {
    let after_column = logical_time_column(after, "the version")?;
    let mut found: Option<(i64, u64)> = None;
    let mut changes: Vec<TenantChange> = Vec::new();
    store.for_each_row_alone(
        "reading the tenant's changes",
        "SELECT t.tenant_key, t.version, c.version, c.settings, c.service_plans, c.queue,
                c.everything, c.skus, c.users, c.groups, c.deleted_users, c.deleted_groups
         FROM tenants t
         LEFT JOIN tenant_changes c
           ON c.tenant_key = t.tenant_key AND c.version > $2 AND c.version <= t.version
         WHERE t.tenant_id = $1
         ORDER BY c.version",
        &[&tenant_id, &after_column],
        |row| {
            if found.is_none() {
                found = Some((
                    row.integer(0)?,
                    logical_time(row.integer(1)?, "the tenant version")?,
                ));
            }
            if row.optional_integer(2)?.is_some() {
                changes.push(change_row(row, 2)?);
            }
            Ok(())
        },
    )?;
    let (tenant_key, version) = found.ok_or(StoreError::UnknownTenant { tenant_id })?;
    if version < after {
        return Ok(Some(CatchUp::Reload {
            reason: format!("the store is at version {version}, behind the engine's {after}"),
        }));
    }
    if version == after && also.is_none() {
        return Ok(Some(CatchUp::UpToDate { version }));
    }
    let touched = match touched_by(after, version, &changes, also) {
        Ok(touched) => touched,
        Err(reason) => return Ok(Some(CatchUp::Reload { reason })),
    };
    let Some((head, rows)) = read_patch_rows_alone(store, tenant_id, tenant_key, version, &touched)? else {
        return Ok(None);
    };
    Ok(Some(answer(assemble_patch(head, &touched, rows)?, version)))
}

/// Reads the patch's rows with [`one_statement`]; `None` when the tenant is no longer at
/// `version` (a write came in since its change records were read).
fn read_patch_rows_alone(
    store: &mut PostgresStore,
    tenant_id: Uuid,
    tenant_key: i64,
    version: u64,
    touched: &Touched,
) -> Result<Option<(Head, PatchRows)>, StoreError> {
    let statement = one_statement();
    let objects_attributes = !touched.all_attributes && touched.attributes_of_touched;
    let mut head: Option<Head> = None;
    let mut rows = PatchRows::default();
    let mut queue: Vec<Uuid> = Vec::new();
    let mut all_attributes: Vec<(Uuid, String)> = Vec::new();
    let sku_plans = !touched.skus.is_empty();
    let params: [&(dyn ToSql + Sync); 7] = [
        &tenant_key,
        &touched.users,
        &touched.groups,
        &sku_plans,
        &touched.queue,
        &touched.all_attributes,
        &objects_attributes,
    ];
    store.for_each_row_alone("reading a catch-up", &statement.sql, &params, |row| {
        let kind =
            usize::try_from(row.integer(0)?).map_err(|_| StoreError::corrupt("a catch-up row of no kind"))?;
        let slots = statement
            .slots
            .get(kind)
            .ok_or_else(|| StoreError::corrupt(format!("a catch-up row of kind {kind}")))?;
        let row = Slots { row, slots };
        match kind {
            HEAD => head = Some(head_row(&row, tenant_id)?),
            PLANS => rows.plans.push(plan_row(&row)?),
            SKUS => rows.skus.push(sku_row(&row)?),
            SKU_PLANS => rows.sku_plans.push((row.integer(0)?, row.id(1)?)),
            USERS => rows.users.push(user_row(&row)?),
            MEMBERSHIPS => {
                let (membership, group) = membership_row(&row)?;
                rows.memberships.push(membership);
                rows.named_groups.push(group);
            }
            STATES => {
                let (state, group) = state_row(&row)?;
                rows.states.push(state);
                rows.named_groups.extend(group);
            }
            GROUPS => rows.groups.push(group_row(&row, 0)?),
            NESTINGS => rows.nesting_edges.push(nesting_row(&row)?),
            LICENSES => rows.licenses.push(license_row(&row)?),
            DIRECT => rows.direct.push(direct_row(&row)?),
            QUEUE => queue.push(row.id(0)?),
            ALL_ATTRIBUTES => all_attributes.push(attributes_row(&row)?),
            TOUCHED_ATTRIBUTES => rows.touched_attributes.push(attributes_row(&row)?),
            _ => return Err(StoreError::corrupt(format!("a catch-up row of kind {kind}"))),
        }
        Ok(())
    })?;
    let Some(head) = head.filter(|head| head.version == version) else {
        return Ok(None);
    };
    rows.queue = touched.queue.then_some(queue);
    rows.all_attributes = touched.all_attributes.then_some(all_attributes);
    Ok(Some((head, rows)))
}
