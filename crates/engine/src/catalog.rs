//! The Microsoft product and service-plan catalog, embedded in the binary so that the engine can name products and plans and derive its default conflict and prerequisite rules without any I/O at run time.
//!
//! Two tables are bundled with the crate and parsed once on first use:
//!
//! * `data/product-service-plan-catalog.csv` is Microsoft's "Product names and service plan
//!   identifiers for licensing" table, with one row per (product, service plan) pair.
//! * `data/mutually-exclusive-plans.csv` is Microsoft's 2021 table of service plans that cannot be
//!   assigned to the same user, arranged in exclusion groups.
//!
//! The published data is hand-maintained and a little untidy, so the parser is deliberately
//! tolerant of cosmetic problems and strict about structural ones. Every text field is trimmed
//! (including non-breaking spaces) and runs of internal whitespace are collapsed to one space.
//! Rows of one product do not have to be contiguous, and a plan listed twice for the same product
//! is kept once. A plan whose name or friendly name differs between products keeps the first
//! spelling seen as its catalog-wide name, while each product keeps the spelling of its own row.
//! A missing column, a malformed GUID, an empty required field, or a product whose rows disagree
//! on its part number or display name is an error that names the file and line.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use uuid::Uuid;

/// The bundled product and service-plan table, exactly as Microsoft publishes it (with a UTF-8 BOM).
pub const BUNDLED_PRODUCTS_CSV: &str = include_str!("../data/product-service-plan-catalog.csv");

/// The bundled table of mutually exclusive service plans, grouped by exclusion group.
pub const BUNDLED_EXCLUSIONS_CSV: &str = include_str!("../data/mutually-exclusive-plans.csv");

/// Identifiers of the products and service plans that the seed document refers to by name.
///
/// The values are the real Microsoft GUIDs; a unit test checks each one against the bundled catalog.
pub mod well_known {
    use uuid::Uuid;

    /// Office 365 E1 (`STANDARDPACK`).
    pub const OFFICE_365_E1: Uuid = Uuid::from_u128(0x18181a46_0d4e_45cd_891e_60aabd171b4e);
    /// Office 365 E3 (`ENTERPRISEPACK`).
    pub const OFFICE_365_E3: Uuid = Uuid::from_u128(0x6fd2c87f_b296_42f0_b197_1e91e994b900);
    /// Enterprise Mobility + Security E3 (`EMS`).
    pub const EMS_E3: Uuid = Uuid::from_u128(0xefccb6f7_5641_4e0e_bd10_b4976e1bf68e);
    /// Microsoft Workplace Analytics, the product (`WORKPLACE_ANALYTICS`).
    pub const WORKPLACE_ANALYTICS_SKU: Uuid = Uuid::from_u128(0x3d957427_ecdc_4df2_aacd_01cc9d519da8);

    /// Exchange Online (Plan 1), the service plan `EXCHANGE_S_STANDARD`.
    pub const EXCHANGE_ONLINE_PLAN_1: Uuid = Uuid::from_u128(0x9aaf7827_d63c_4b61_89c3_182f06f82e5c);
    /// Exchange Online (Plan 2), the service plan `EXCHANGE_S_ENTERPRISE`.
    pub const EXCHANGE_ONLINE_PLAN_2: Uuid = Uuid::from_u128(0xefb87545_963c_4e0d_99df_69c6916d9eb0);
    /// SharePoint (Plan 1), the service plan `SHAREPOINTSTANDARD`.
    pub const SHAREPOINT_PLAN_1: Uuid = Uuid::from_u128(0xc7699d2e_19aa_44de_8edf_1736da088ca1);
    /// SharePoint (Plan 2), the service plan `SHAREPOINTENTERPRISE`.
    pub const SHAREPOINT_PLAN_2: Uuid = Uuid::from_u128(0x5dbe027f_2339_4123_9542_606e4d348a72);
    /// Microsoft Workplace Analytics, the service plan `WORKPLACE_ANALYTICS`.
    pub const WORKPLACE_ANALYTICS_PLAN: Uuid = Uuid::from_u128(0xf477b0f0_3bb1_4890_940c_40fcee6ce05f);
}

/// A service plan, either as listed inside one product or as the catalog-wide entry for its identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatalogServicePlan {
    /// The plan's GUID (`Service_Plan_Id`).
    pub service_plan_id: Uuid,
    /// The plan's technical name (`Service_Plan_Name`), such as `EXCHANGE_S_STANDARD`.
    pub service_plan_name: String,
    /// The plan's friendly name (`Service_Plans_Included_Friendly_Names`).
    pub display_name: String,
}

/// A product (SKU) together with the service plans it includes, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    /// The product's GUID (`GUID`, known to Microsoft Graph as `skuId`).
    pub sku_id: Uuid,
    /// The product's part number (`String_Id`, known to Microsoft Graph as `skuPartNumber`).
    pub sku_part_number: String,
    /// The product's display name (`Product_Display_Name`).
    pub display_name: String,
    /// The plans included in the product, each listed once, with the names given on this product's rows.
    pub service_plans: Vec<CatalogServicePlan>,
}

impl CatalogProduct {
    /// Returns whether the product includes the given service plan.
    pub fn contains_service_plan(&self, service_plan_id: Uuid) -> bool {
        self.service_plans
            .iter()
            .any(|plan| plan.service_plan_id == service_plan_id)
    }

    /// Returns the identifiers of the plans included in the product, in file order.
    pub fn service_plan_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.service_plans.iter().map(|plan| plan.service_plan_id)
    }
}

/// A set of service plans of which a user may hold at most one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExclusionGroup {
    /// The group's name as written in the exclusion table, such as `exchange_online`.
    pub name: String,
    /// The plans in the group, in file order and without repetition.
    pub service_plan_ids: Vec<Uuid>,
}

/// Which of the two catalog tables an error was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatalogFile {
    /// The product and service-plan table.
    Products,
    /// The table of mutually exclusive service plans.
    Exclusions,
}

impl fmt::Display for CatalogFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogFile::Products => f.write_str("product catalog"),
            CatalogFile::Exclusions => f.write_str("exclusion table"),
        }
    }
}

/// A reason why the catalog tables could not be parsed.
///
/// Line numbers are 1-based and count physical lines, so the header is line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The header line lacks a column that the parser needs.
    #[error("{file}, line 1: the header has no `{name}` column")]
    MissingColumn {
        /// The table whose header is incomplete.
        file: CatalogFile,
        /// The name of the missing column.
        name: &'static str,
    },
    /// The text is not well-formed CSV, for example because a row has the wrong number of fields.
    #[error("{file}, line {line}: malformed CSV: {message}")]
    Csv {
        /// The table that is malformed.
        file: CatalogFile,
        /// The line where the problem was found.
        line: u64,
        /// A description of the problem.
        message: String,
    },
    /// A field that must hold a GUID holds something else.
    #[error("{file}, line {line}: column `{column}` holds `{value}`, which is not a GUID")]
    InvalidGuid {
        /// The table containing the bad value.
        file: CatalogFile,
        /// The line of the row containing the bad value.
        line: u64,
        /// The name of the column containing the bad value.
        column: &'static str,
        /// The bad value, after trimming.
        value: String,
    },
    /// A field that must not be empty is empty.
    #[error("{file}, line {line}: column `{column}` is empty")]
    EmptyField {
        /// The table containing the empty field.
        file: CatalogFile,
        /// The line of the row containing the empty field.
        line: u64,
        /// The name of the empty column.
        column: &'static str,
    },
    /// Two rows of the same product disagree on its part number or display name.
    #[error(
        "product catalog, line {line}: product {sku_id} has {field} `{found}`, \
         but line {first_line} gave it `{expected}`"
    )]
    InconsistentProduct {
        /// The line of the row that disagrees with the product's first row.
        line: u64,
        /// The product whose rows disagree.
        sku_id: Uuid,
        /// The name of the column that disagrees.
        field: &'static str,
        /// The value given by the product's first row.
        expected: String,
        /// The value given by the disagreeing row.
        found: String,
        /// The line of the product's first row.
        first_line: u64,
    },
}

/// The parsed catalog: products in file order, the distinct service plans, the exclusion groups,
/// and lookup maps over all of them.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The products in the order in which each first appears in the product table.
    products: Vec<CatalogProduct>,
    /// The distinct service plans in order of first appearance, each with the first names seen.
    service_plans: Vec<CatalogServicePlan>,
    /// The exclusion groups in order of first appearance.
    exclusion_groups: Vec<ExclusionGroup>,
    /// Maps a product's GUID to its index in `products`.
    product_by_sku: HashMap<Uuid, usize>,
    /// Maps a lower-cased part number to the indices of every product that carries it, in file order.
    products_by_part_number: HashMap<String, Vec<usize>>,
    /// Maps a plan's GUID to its index in `service_plans`.
    plan_by_id: HashMap<Uuid, usize>,
    /// Maps every lower-cased spelling of a plan name to the first plan seen with that spelling.
    plan_by_name: HashMap<String, usize>,
    /// The default mutually exclusive pairs, sorted, each with the smaller GUID first.
    default_exclusive_pairs: Vec<(Uuid, Uuid)>,
    /// The pairs from the exclusion groups that were dropped because a product includes both plans.
    exclusive_pairs_sold_together: Vec<(Uuid, Uuid)>,
}

/// Column names of the product table.
const COL_PRODUCT_DISPLAY_NAME: &str = "Product_Display_Name";
const COL_STRING_ID: &str = "String_Id";
const COL_GUID: &str = "GUID";
const COL_SERVICE_PLAN_NAME: &str = "Service_Plan_Name";
const COL_SERVICE_PLAN_ID: &str = "Service_Plan_Id";
const COL_FRIENDLY_NAMES: &str = "Service_Plans_Included_Friendly_Names";

/// Column names of the exclusion table.
const COL_EXCLUSION_GROUP: &str = "exclusion_group";
const COL_EXCLUSION_PLAN_ID: &str = "service_plan_id";

impl Catalog {
    /// Parses a product table and an exclusion table in the formats of the bundled files.
    ///
    /// Either text may start with a UTF-8 byte-order mark. Column order does not matter, header
    /// names are matched without regard to ASCII case, and extra columns are ignored.
    pub fn parse(products_csv: &str, exclusions_csv: &str) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog {
            products: Vec::new(),
            service_plans: Vec::new(),
            exclusion_groups: Vec::new(),
            product_by_sku: HashMap::new(),
            products_by_part_number: HashMap::new(),
            plan_by_id: HashMap::new(),
            plan_by_name: HashMap::new(),
            default_exclusive_pairs: Vec::new(),
            exclusive_pairs_sold_together: Vec::new(),
        };
        catalog.read_products(products_csv)?;
        catalog.read_exclusions(exclusions_csv)?;
        catalog.derive_exclusive_pairs();
        Ok(catalog)
    }

    /// Returns the catalog parsed from the bundled tables, parsing them on the first call only.
    ///
    /// A unit test checks that the bundled tables parse, so the error case is not expected in practice.
    pub fn bundled() -> Result<&'static Catalog, &'static CatalogError> {
        static BUNDLED: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
        BUNDLED
            .get_or_init(|| Catalog::parse(BUNDLED_PRODUCTS_CSV, BUNDLED_EXCLUSIONS_CSV))
            .as_ref()
    }

    /// Returns every product, in the order in which each first appears in the product table.
    pub fn products(&self) -> &[CatalogProduct] {
        &self.products
    }

    /// Returns every distinct service plan, in order of first appearance, with the first names seen.
    pub fn service_plans(&self) -> &[CatalogServicePlan] {
        &self.service_plans
    }

    /// Looks a product up by its GUID.
    pub fn product_by_sku_id(&self, sku_id: Uuid) -> Option<&CatalogProduct> {
        self.product_by_sku
            .get(&sku_id)
            .and_then(|&index| self.products.get(index))
    }

    /// Looks a product up by its part number, ignoring case and surrounding whitespace.
    ///
    /// A few part numbers are shared by several products (the bundled table gives `MCOPSTN5` to
    /// two of them); the first one in file order is returned, and
    /// [`Catalog::products_by_part_number`] returns them all.
    pub fn product_by_part_number(&self, sku_part_number: &str) -> Option<&CatalogProduct> {
        self.products_by_part_number(sku_part_number).into_iter().next()
    }

    /// Returns every product with the given part number, ignoring case and surrounding whitespace, in file order.
    pub fn products_by_part_number(&self, sku_part_number: &str) -> Vec<&CatalogProduct> {
        self.products_by_part_number
            .get(&lookup_key(sku_part_number))
            .map(|indices| {
                indices
                    .iter()
                    .filter_map(|&index| self.products.get(index))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Looks a service plan up by its GUID, returning the catalog-wide entry with the first names seen.
    pub fn service_plan(&self, service_plan_id: Uuid) -> Option<&CatalogServicePlan> {
        self.plan_by_id
            .get(&service_plan_id)
            .and_then(|&index| self.service_plans.get(index))
    }

    /// Looks a service plan up by its technical name, ignoring case and surrounding whitespace.
    ///
    /// Every spelling that appears in the product table is recognised, not only the first one.
    /// When one spelling belongs to several plans (the bundled table gives `PROJECT_ESSENTIALS`
    /// to two), the plan seen first in file order is returned.
    pub fn service_plan_by_name(&self, service_plan_name: &str) -> Option<&CatalogServicePlan> {
        self.plan_by_name
            .get(&lookup_key(service_plan_name))
            .and_then(|&index| self.service_plans.get(index))
    }

    /// Returns the exclusion groups, in order of first appearance in the exclusion table.
    pub fn exclusion_groups(&self) -> &[ExclusionGroup] {
        &self.exclusion_groups
    }

    /// Pairs (a, b) with a < b of plans that are mutually exclusive by default. Derived from the exclusion groups,
    /// but a pair is dropped when both plans are sold together inside one product of the catalog (Microsoft cannot
    /// sell a product whose own plans conflict), so the default rules never make a catalog product unassignable.
    ///
    /// The pairs are sorted and contain no repetition. Plans of the exclusion table that do not appear
    /// in the product table still take part, since nothing shows that they are compatible.
    pub fn default_mutually_exclusive_pairs(&self) -> Vec<(Uuid, Uuid)> {
        self.default_exclusive_pairs.clone()
    }

    /// Returns the pairs (a, b) with a < b that the exclusion groups imply but that
    /// [`Catalog::default_mutually_exclusive_pairs`] drops because some product includes both plans.
    pub fn exclusive_pairs_sold_together(&self) -> &[(Uuid, Uuid)] {
        &self.exclusive_pairs_sold_together
    }

    /// Prerequisites the project knows (not published as a table by Microsoft). The seed document gives one:
    /// WORKPLACE_ANALYTICS f477b0f0-3bb1-4890-940c-40fcee6ce05f requires EXCHANGE_S_STANDARD 9aaf7827-d63c-4b61-89c3-182f06f82e5c
    /// or EXCHANGE_S_ENTERPRISE efb87545-963c-4e0d-99df-69c6916d9eb0.
    ///
    /// Each entry is a dependent plan and the plans of which the user must hold at least one.
    /// The rules are returned whether or not this catalog lists the plans they mention.
    pub fn default_prerequisites(&self) -> Vec<(Uuid, Vec<Uuid>)> {
        vec![(
            well_known::WORKPLACE_ANALYTICS_PLAN,
            vec![
                well_known::EXCHANGE_ONLINE_PLAN_1,
                well_known::EXCHANGE_ONLINE_PLAN_2,
            ],
        )]
    }

    /// Reads the product table into `products`, `service_plans` and their lookup maps.
    fn read_products(&mut self, text: &str) -> Result<(), CatalogError> {
        const FILE: CatalogFile = CatalogFile::Products;
        let mut table = Table::open(FILE, text)?;
        let product_display_name = table.column(COL_PRODUCT_DISPLAY_NAME)?;
        let string_id = table.column(COL_STRING_ID)?;
        let guid = table.column(COL_GUID)?;
        let plan_name = table.column(COL_SERVICE_PLAN_NAME)?;
        let plan_id = table.column(COL_SERVICE_PLAN_ID)?;
        let friendly_name = table.column(COL_FRIENDLY_NAMES)?;

        // The line of each product's first row, used to explain inconsistencies.
        let mut first_lines: Vec<u64> = Vec::new();
        // The plans already listed in each product, used to skip repeated rows.
        let mut plans_in_product: Vec<HashSet<Uuid>> = Vec::new();

        while let Some(row) = table.next_row()? {
            let sku_id = row.guid(guid)?;
            let part_number = row.text(string_id)?;
            let display_name = row.text(product_display_name)?;
            let service_plan_id = row.guid(plan_id)?;
            let service_plan_name = row.text(plan_name)?;
            let plan_display_name = row.text(friendly_name)?;

            let product_index = match self.product_by_sku.get(&sku_id) {
                Some(&index) => {
                    let (Some(product), Some(&first_line)) =
                        (self.products.get(index), first_lines.get(index))
                    else {
                        continue;
                    };
                    let disagreement = if product.sku_part_number != part_number {
                        Some((COL_STRING_ID, &product.sku_part_number, part_number))
                    } else if product.display_name != display_name {
                        Some((COL_PRODUCT_DISPLAY_NAME, &product.display_name, display_name))
                    } else {
                        None
                    };
                    if let Some((field, expected, found)) = disagreement {
                        return Err(CatalogError::InconsistentProduct {
                            line: row.line,
                            sku_id,
                            field,
                            expected: expected.clone(),
                            found,
                            first_line,
                        });
                    }
                    index
                }
                None => {
                    let index = self.products.len();
                    self.products.push(CatalogProduct {
                        sku_id,
                        sku_part_number: part_number,
                        display_name,
                        service_plans: Vec::new(),
                    });
                    first_lines.push(row.line);
                    plans_in_product.push(HashSet::new());
                    self.product_by_sku.insert(sku_id, index);
                    index
                }
            };

            let plan_index = *self.plan_by_id.entry(service_plan_id).or_insert_with(|| {
                self.service_plans.push(CatalogServicePlan {
                    service_plan_id,
                    service_plan_name: service_plan_name.clone(),
                    display_name: plan_display_name.clone(),
                });
                self.service_plans.len() - 1
            });
            self.plan_by_name
                .entry(lookup_key(&service_plan_name))
                .or_insert(plan_index);

            let first_time_in_product = plans_in_product
                .get_mut(product_index)
                .is_some_and(|seen| seen.insert(service_plan_id));
            if first_time_in_product {
                if let Some(product) = self.products.get_mut(product_index) {
                    product.service_plans.push(CatalogServicePlan {
                        service_plan_id,
                        service_plan_name,
                        display_name: plan_display_name,
                    });
                }
            }
        }

        for (index, product) in self.products.iter().enumerate() {
            self.products_by_part_number
                .entry(lookup_key(&product.sku_part_number))
                .or_default()
                .push(index);
        }
        Ok(())
    }

    /// Reads the exclusion table into `exclusion_groups`.
    fn read_exclusions(&mut self, text: &str) -> Result<(), CatalogError> {
        const FILE: CatalogFile = CatalogFile::Exclusions;
        let mut table = Table::open(FILE, text)?;
        let group_column = table.column(COL_EXCLUSION_GROUP)?;
        let plan_column = table.column(COL_EXCLUSION_PLAN_ID)?;

        let mut group_by_name: HashMap<String, usize> = HashMap::new();
        while let Some(row) = table.next_row()? {
            let name = row.text(group_column)?;
            let service_plan_id = row.guid(plan_column)?;
            let index = *group_by_name.entry(name.clone()).or_insert_with(|| {
                self.exclusion_groups.push(ExclusionGroup {
                    name,
                    service_plan_ids: Vec::new(),
                });
                self.exclusion_groups.len() - 1
            });
            if let Some(group) = self.exclusion_groups.get_mut(index) {
                if !group.service_plan_ids.contains(&service_plan_id) {
                    group.service_plan_ids.push(service_plan_id);
                }
            }
        }
        Ok(())
    }

    /// Expands the exclusion groups into pairs and splits off those whose plans share a product.
    fn derive_exclusive_pairs(&mut self) {
        let mut candidates: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
        for group in &self.exclusion_groups {
            for (position, &first) in group.service_plan_ids.iter().enumerate() {
                for &second in group.service_plan_ids.iter().skip(position + 1) {
                    candidates.insert(ordered_pair(first, second));
                }
            }
        }

        // Only plans that belong to some exclusion group can form a dropped pair, so each product
        // is reduced to those plans before its pairs are examined.
        let excluded_plans: HashSet<Uuid> = self
            .exclusion_groups
            .iter()
            .flat_map(|group| group.service_plan_ids.iter().copied())
            .collect();
        let mut sold_together: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
        for product in &self.products {
            let members: Vec<Uuid> = product
                .service_plan_ids()
                .filter(|id| excluded_plans.contains(id))
                .collect();
            for (position, &first) in members.iter().enumerate() {
                for &second in members.iter().skip(position + 1) {
                    let pair = ordered_pair(first, second);
                    if candidates.contains(&pair) {
                        sold_together.insert(pair);
                    }
                }
            }
        }

        self.default_exclusive_pairs = candidates.difference(&sold_together).copied().collect();
        self.exclusive_pairs_sold_together = sold_together.into_iter().collect();
    }
}

/// Returns the two identifiers as a pair with the smaller one first.
fn ordered_pair(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Normalises a name for case-insensitive lookup.
fn lookup_key(name: &str) -> String {
    normalize_text(name).to_lowercase()
}

/// Trims a field and collapses each run of internal whitespace, including tabs and non-breaking
/// spaces, to a single space.
fn normalize_text(field: &str) -> String {
    field.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A CSV table being read row by row, with its header already checked.
struct Table<'a> {
    /// The table being read, for error messages.
    file: CatalogFile,
    /// The underlying CSV reader.
    reader: csv::Reader<&'a [u8]>,
    /// The trimmed header names, in column order.
    headers: Vec<String>,
    /// The line of the most recent row, used when the CSV reader reports no position.
    last_line: u64,
}

impl<'a> Table<'a> {
    /// Starts reading a table, removing a leading byte-order mark and reading the header line.
    fn open(file: CatalogFile, text: &'a str) -> Result<Table<'a>, CatalogError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|error| csv_error(file, &error, 1))?
            .iter()
            .map(|name| name.trim_start_matches('\u{feff}').trim().to_owned())
            .collect();
        Ok(Table {
            file,
            reader,
            headers,
            last_line: 1,
        })
    }

    /// Returns the index of the named column, matched without regard to ASCII case.
    fn column(&self, name: &'static str) -> Result<Column, CatalogError> {
        self.headers
            .iter()
            .position(|header| header.eq_ignore_ascii_case(name))
            .map(|index| Column { index, name })
            .ok_or(CatalogError::MissingColumn {
                file: self.file,
                name,
            })
    }

    /// Reads the next row, or returns `None` at the end of the table.
    fn next_row(&mut self) -> Result<Option<Row>, CatalogError> {
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let line = record.position().map_or(self.last_line + 1, csv::Position::line);
                self.last_line = line;
                Ok(Some(Row {
                    file: self.file,
                    line,
                    record,
                }))
            }
            Err(error) => Err(csv_error(self.file, &error, self.last_line + 1)),
        }
    }
}

/// Converts a CSV reader error into a catalog error that names the line.
fn csv_error(file: CatalogFile, error: &csv::Error, fallback_line: u64) -> CatalogError {
    let line = error.position().map_or(fallback_line, csv::Position::line);
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields as in the header, found {len}"),
        _ => error.to_string(),
    };
    CatalogError::Csv { file, line, message }
}

/// A column located in the header.
#[derive(Debug, Clone, Copy)]
struct Column {
    /// The column's zero-based position.
    index: usize,
    /// The column's name, for error messages.
    name: &'static str,
}

/// One data row of a table.
struct Row {
    /// The table the row belongs to, for error messages.
    file: CatalogFile,
    /// The line on which the row starts.
    line: u64,
    /// The row's fields.
    record: csv::StringRecord,
}

impl Row {
    /// Returns the normalised text of a required field.
    fn text(&self, column: Column) -> Result<String, CatalogError> {
        let value = normalize_text(self.record.get(column.index).unwrap_or_default());
        if value.is_empty() {
            return Err(CatalogError::EmptyField {
                file: self.file,
                line: self.line,
                column: column.name,
            });
        }
        Ok(value)
    }

    /// Returns a required field parsed as a GUID.
    fn guid(&self, column: Column) -> Result<Uuid, CatalogError> {
        let value = self.record.get(column.index).unwrap_or_default().trim();
        Uuid::parse_str(value).map_err(|_| CatalogError::InvalidGuid {
            file: self.file,
            line: self.line,
            column: column.name,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::well_known::*;
    use super::*;

    const PRODUCTS_HEADER: &str = "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,Service_Plans_Included_Friendly_Names\n";
    const EXCLUSIONS_HEADER: &str = "exclusion_group,service_plan_name,service_plan_id\n";

    fn bundled() -> &'static Catalog {
        match Catalog::bundled() {
            Ok(catalog) => catalog,
            Err(error) => panic!("the bundled catalog does not parse: {error}"),
        }
    }

    fn uuid(text: &str) -> Uuid {
        Uuid::parse_str(text).expect("test GUIDs are valid")
    }

    fn product(catalog: &Catalog, sku_id: Uuid) -> &CatalogProduct {
        catalog
            .product_by_sku_id(sku_id)
            .unwrap_or_else(|| panic!("product {sku_id} is missing"))
    }

    fn parse_err(products: &str, exclusions: &str) -> CatalogError {
        match Catalog::parse(products, exclusions) {
            Ok(_) => panic!("the input should have been rejected"),
            Err(error) => error,
        }
    }

    #[test]
    fn bundled_catalog_has_the_published_counts() {
        let catalog = bundled();
        assert_eq!(catalog.products().len(), 569);
        assert_eq!(catalog.service_plans().len(), 723);
        let distinct: HashSet<Uuid> = catalog
            .products()
            .iter()
            .flat_map(CatalogProduct::service_plan_ids)
            .collect();
        assert_eq!(distinct.len(), 723);
        assert_eq!(catalog.exclusion_groups().len(), 8);
    }

    #[test]
    fn bundled_is_parsed_once() {
        let first = bundled();
        let second = bundled();
        assert!(std::ptr::eq(first, second));
    }

    #[test]
    fn well_known_constants_match_their_text_form() {
        assert_eq!(OFFICE_365_E1, uuid("18181a46-0d4e-45cd-891e-60aabd171b4e"));
        assert_eq!(OFFICE_365_E3, uuid("6fd2c87f-b296-42f0-b197-1e91e994b900"));
        assert_eq!(EMS_E3, uuid("efccb6f7-5641-4e0e-bd10-b4976e1bf68e"));
        assert_eq!(
            WORKPLACE_ANALYTICS_SKU,
            uuid("3d957427-ecdc-4df2-aacd-01cc9d519da8")
        );
        assert_eq!(
            EXCHANGE_ONLINE_PLAN_1,
            uuid("9aaf7827-d63c-4b61-89c3-182f06f82e5c")
        );
        assert_eq!(
            EXCHANGE_ONLINE_PLAN_2,
            uuid("efb87545-963c-4e0d-99df-69c6916d9eb0")
        );
        assert_eq!(SHAREPOINT_PLAN_1, uuid("c7699d2e-19aa-44de-8edf-1736da088ca1"));
        assert_eq!(SHAREPOINT_PLAN_2, uuid("5dbe027f-2339-4123-9542-606e4d348a72"));
        assert_eq!(
            WORKPLACE_ANALYTICS_PLAN,
            uuid("f477b0f0-3bb1-4890-940c-40fcee6ce05f")
        );
    }

    #[test]
    fn well_known_products_have_the_right_part_numbers_and_plans() {
        let catalog = bundled();
        let e1 = product(catalog, OFFICE_365_E1);
        assert_eq!(e1.sku_part_number, "STANDARDPACK");
        assert_eq!(e1.display_name, "Office 365 E1");
        assert!(e1.contains_service_plan(EXCHANGE_ONLINE_PLAN_1));
        assert!(e1.contains_service_plan(SHAREPOINT_PLAN_1));
        assert!(!e1.contains_service_plan(EXCHANGE_ONLINE_PLAN_2));
        assert!(!e1.contains_service_plan(SHAREPOINT_PLAN_2));

        let e3 = product(catalog, OFFICE_365_E3);
        assert_eq!(e3.sku_part_number, "ENTERPRISEPACK");
        assert_eq!(e3.display_name, "Office 365 E3");
        assert!(e3.contains_service_plan(EXCHANGE_ONLINE_PLAN_2));
        assert!(e3.contains_service_plan(SHAREPOINT_PLAN_2));
        assert!(!e3.contains_service_plan(EXCHANGE_ONLINE_PLAN_1));
        assert!(!e3.contains_service_plan(SHAREPOINT_PLAN_1));

        let ems = product(catalog, EMS_E3);
        assert_eq!(ems.sku_part_number, "EMS");
        assert_eq!(ems.service_plans.len(), 7);

        let analytics = product(catalog, WORKPLACE_ANALYTICS_SKU);
        assert_eq!(analytics.sku_part_number, "WORKPLACE_ANALYTICS");
        assert!(analytics.contains_service_plan(WORKPLACE_ANALYTICS_PLAN));
        assert!(!analytics.contains_service_plan(EXCHANGE_ONLINE_PLAN_1));
        assert!(!analytics.contains_service_plan(EXCHANGE_ONLINE_PLAN_2));
    }

    #[test]
    fn well_known_plans_have_the_right_names() {
        let catalog = bundled();
        for (id, name) in [
            (EXCHANGE_ONLINE_PLAN_1, "EXCHANGE_S_STANDARD"),
            (EXCHANGE_ONLINE_PLAN_2, "EXCHANGE_S_ENTERPRISE"),
            (SHAREPOINT_PLAN_1, "SHAREPOINTSTANDARD"),
            (SHAREPOINT_PLAN_2, "SHAREPOINTENTERPRISE"),
            (WORKPLACE_ANALYTICS_PLAN, "WORKPLACE_ANALYTICS"),
        ] {
            let plan = catalog
                .service_plan(id)
                .unwrap_or_else(|| panic!("plan {name} is missing"));
            assert_eq!(plan.service_plan_name, name);
            assert_eq!(
                catalog.service_plan_by_name(name).map(|p| p.service_plan_id),
                Some(id)
            );
        }
        assert_eq!(
            catalog
                .service_plan(EXCHANGE_ONLINE_PLAN_1)
                .map(|p| p.display_name.as_str()),
            Some("Exchange Online (Plan 1)")
        );
    }

    #[test]
    fn default_pairs_include_exchange_and_sharepoint_plans() {
        let pairs = bundled().default_mutually_exclusive_pairs();
        assert!(pairs.contains(&ordered_pair(EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2)));
        assert!(pairs.contains(&ordered_pair(SHAREPOINT_PLAN_1, SHAREPOINT_PLAN_2)));
        assert!(!pairs.contains(&ordered_pair(EXCHANGE_ONLINE_PLAN_1, SHAREPOINT_PLAN_1)));
    }

    #[test]
    fn default_pairs_are_ordered_sorted_and_distinct() {
        let pairs = bundled().default_mutually_exclusive_pairs();
        assert!(pairs.iter().all(|(a, b)| a < b));
        assert!(pairs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn default_pairs_never_conflict_inside_one_product() {
        let catalog = bundled();
        let pairs = catalog.default_mutually_exclusive_pairs();
        for product in catalog.products() {
            let plans: HashSet<Uuid> = product.service_plan_ids().collect();
            for (a, b) in &pairs {
                assert!(
                    !(plans.contains(a) && plans.contains(b)),
                    "{} ({}) includes both {a} and {b}",
                    product.sku_part_number,
                    product.sku_id
                );
            }
        }
    }

    #[test]
    fn default_pairs_are_the_group_pairs_minus_those_sold_together() {
        let catalog = bundled();
        let mut all_pairs: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
        for group in catalog.exclusion_groups() {
            for &a in &group.service_plan_ids {
                for &b in &group.service_plan_ids {
                    if a < b {
                        all_pairs.insert((a, b));
                    }
                }
            }
        }
        let kept = catalog.default_mutually_exclusive_pairs();
        let dropped = catalog.exclusive_pairs_sold_together();
        assert_eq!(all_pairs.len(), 125);
        assert_eq!(kept.len(), 124);
        assert_eq!(dropped.len(), 1);
        assert_eq!(kept.len() + dropped.len(), all_pairs.len());

        // The only dropped pair is sold together in "Dynamics 365 Multi-app" (Dynamics_365_Multi_app_).
        let sales = catalog.service_plan_by_name("DYN365_ENTERPRISE_SALES");
        let service = catalog.service_plan_by_name("DYN365_ENTERPRISE_CUSTOMER_SERVICE");
        let (Some(sales), Some(service)) = (sales, service) else {
            panic!("the Dynamics 365 plans are missing");
        };
        assert_eq!(
            dropped,
            [ordered_pair(sales.service_plan_id, service.service_plan_id)]
        );
        for pair in dropped {
            assert!(all_pairs.contains(pair));
            assert!(catalog.products().iter().any(|product| {
                product.contains_service_plan(pair.0) && product.contains_service_plan(pair.1)
            }));
        }
    }

    #[test]
    fn default_prerequisites_give_workplace_analytics_its_exchange_requirement() {
        assert_eq!(
            bundled().default_prerequisites(),
            vec![(
                WORKPLACE_ANALYTICS_PLAN,
                vec![EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2]
            )]
        );
    }

    #[test]
    fn part_number_lookup_ignores_case_and_whitespace() {
        let catalog = bundled();
        for spelling in [
            "ENTERPRISEPACK",
            "enterprisepack",
            "EnterprisePack",
            " enterprisepack ",
        ] {
            assert_eq!(
                catalog.product_by_part_number(spelling).map(|p| p.sku_id),
                Some(OFFICE_365_E3),
                "{spelling}"
            );
        }
        assert!(catalog.product_by_part_number("NO_SUCH_SKU").is_none());
        assert_eq!(
            catalog
                .service_plan_by_name("exchange_s_standard")
                .map(|p| p.service_plan_id),
            Some(EXCHANGE_ONLINE_PLAN_1)
        );
    }

    #[test]
    fn shared_part_numbers_resolve_to_the_first_product() {
        let catalog = bundled();
        let products = catalog.products_by_part_number("MCOPSTN5");
        assert_eq!(products.len(), 2);
        assert_eq!(
            catalog.product_by_part_number("mcopstn5").map(|p| p.sku_id),
            products.first().map(|p| p.sku_id)
        );
    }

    #[test]
    fn bundled_quirks_are_normalised() {
        let catalog = bundled();
        // The part number and GUID of this product end with a non-breaking space in the source.
        let faculty = catalog.product_by_part_number("MCOCAP_FACULTY");
        assert_eq!(
            faculty.map(|p| p.sku_id),
            Some(uuid("420c7602-7f70-4895-9394-d3d679ea36fb"))
        );
        // This part number ends with an ordinary space in the source.
        assert!(catalog
            .product_by_part_number("AAD_PREMIUM_USGOV_GCCHIGH")
            .is_some_and(|p| p.sku_part_number == "AAD_PREMIUM_USGOV_GCCHIGH"));
        // This product's rows are split into two blocks that repeat some plans.
        let voice = catalog.product_by_part_number("BUSINESS_VOICE_DIRECTROUTING");
        let Some(voice) = voice else {
            panic!("BUSINESS_VOICE_DIRECTROUTING is missing");
        };
        let distinct: HashSet<Uuid> = voice.service_plan_ids().collect();
        assert_eq!(distinct.len(), voice.service_plans.len());
        // No name keeps stray whitespace.
        for plan in catalog.service_plans() {
            assert_eq!(plan.service_plan_name, normalize_text(&plan.service_plan_name));
            assert_eq!(plan.display_name, normalize_text(&plan.display_name));
        }
    }

    #[test]
    fn parses_bom_quotes_and_non_ascii() {
        let products = format!(
            "\u{feff}{PRODUCTS_HEADER}\
             \"Suite, with a comma\",SUITE,11111111-1111-1111-1111-111111111111,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Plan A – Café\n\
             \"Suite, with a comma\",SUITE,11111111-1111-1111-1111-111111111111,PLAN_B,bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb,\"Plan \"\"B\"\"\"\n\
             Other,OTHER,22222222-2222-2222-2222-222222222222,plan_a,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Another name for A\n"
        );
        let exclusions = format!(
            "\u{feff}{EXCLUSIONS_HEADER}g,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\n\
             g,PLAN_B,bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb\n"
        );
        let catalog = match Catalog::parse(&products, &exclusions) {
            Ok(catalog) => catalog,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(catalog.products().len(), 2);
        assert_eq!(catalog.service_plans().len(), 2);
        let suite = product(&catalog, uuid("11111111-1111-1111-1111-111111111111"));
        assert_eq!(suite.display_name, "Suite, with a comma");
        assert_eq!(suite.service_plans[0].display_name, "Plan A – Café");
        assert_eq!(suite.service_plans[1].display_name, "Plan \"B\"");

        // The catalog-wide entry keeps the first names, while the second product keeps its own.
        let plan_a = uuid("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa");
        let shared = catalog.service_plan(plan_a).map(|p| p.display_name.as_str());
        assert_eq!(shared, Some("Plan A – Café"));
        let other = product(&catalog, uuid("22222222-2222-2222-2222-222222222222"));
        assert_eq!(other.service_plans[0].display_name, "Another name for A");
        assert_eq!(other.service_plans[0].service_plan_name, "plan_a");

        // The two plans share a product, so their exclusion pair is dropped.
        assert!(catalog.default_mutually_exclusive_pairs().is_empty());
        assert_eq!(catalog.exclusive_pairs_sold_together().len(), 1);

        // A catalog without a byte-order mark parses to the same result.
        let plain = Catalog::parse(
            products.trim_start_matches('\u{feff}'),
            exclusions.trim_start_matches('\u{feff}'),
        );
        assert_eq!(
            plain.map(|c| c.products().to_vec()),
            Ok(catalog.products().to_vec())
        );
    }

    #[test]
    fn rejects_a_missing_column() {
        let products =
            "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plans_Included_Friendly_Names\n";
        let error = parse_err(products, EXCLUSIONS_HEADER);
        assert_eq!(
            error,
            CatalogError::MissingColumn {
                file: CatalogFile::Products,
                name: "Service_Plan_Id"
            }
        );
        assert!(error.to_string().contains("Service_Plan_Id"));

        let error = parse_err(PRODUCTS_HEADER, "exclusion_group,service_plan_name\n");
        assert_eq!(
            error,
            CatalogError::MissingColumn {
                file: CatalogFile::Exclusions,
                name: "service_plan_id"
            }
        );
    }

    #[test]
    fn rejects_an_invalid_guid_and_names_the_line() {
        let products = format!(
            "{PRODUCTS_HEADER}\
             Suite,SUITE,11111111-1111-1111-1111-111111111111,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Plan A\n\
             Suite,SUITE,11111111-1111-1111-1111-111111111111,PLAN_B,not-a-guid,Plan B\n"
        );
        let error = parse_err(&products, EXCLUSIONS_HEADER);
        assert_eq!(
            error,
            CatalogError::InvalidGuid {
                file: CatalogFile::Products,
                line: 3,
                column: "Service_Plan_Id",
                value: "not-a-guid".to_owned(),
            }
        );
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("not-a-guid"), "{message}");

        let exclusions = format!("{EXCLUSIONS_HEADER}g,PLAN_A,xyz\n");
        let error = parse_err(PRODUCTS_HEADER, &exclusions);
        assert!(matches!(
            error,
            CatalogError::InvalidGuid {
                file: CatalogFile::Exclusions,
                line: 2,
                ..
            }
        ));
    }

    #[test]
    fn rejects_a_product_whose_rows_disagree_on_its_part_number() {
        let products = format!(
            "{PRODUCTS_HEADER}\
             Suite,SUITE,11111111-1111-1111-1111-111111111111,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Plan A\n\
             Other,OTHER,22222222-2222-2222-2222-222222222222,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Plan A\n\
             Suite,SUITE_2,11111111-1111-1111-1111-111111111111,PLAN_B,bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb,Plan B\n"
        );
        let error = parse_err(&products, EXCLUSIONS_HEADER);
        assert_eq!(
            error,
            CatalogError::InconsistentProduct {
                line: 4,
                sku_id: uuid("11111111-1111-1111-1111-111111111111"),
                field: "String_Id",
                expected: "SUITE".to_owned(),
                found: "SUITE_2".to_owned(),
                first_line: 2,
            }
        );
        let message = error.to_string();
        assert!(message.contains("line 4"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn rejects_a_product_whose_rows_disagree_on_its_display_name() {
        let products = format!(
            "{PRODUCTS_HEADER}\
             Suite,SUITE,11111111-1111-1111-1111-111111111111,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Plan A\n\
             Suite Renamed,SUITE,11111111-1111-1111-1111-111111111111,PLAN_B,bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb,Plan B\n"
        );
        let error = parse_err(&products, EXCLUSIONS_HEADER);
        assert!(matches!(
            error,
            CatalogError::InconsistentProduct {
                line: 3,
                field: "Product_Display_Name",
                first_line: 2,
                ..
            }
        ));
    }

    #[test]
    fn rejects_a_row_with_the_wrong_number_of_fields() {
        let products = format!(
            "{PRODUCTS_HEADER}\
             Suite,SUITE,11111111-1111-1111-1111-111111111111,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Plan A\n\
             Suite,SUITE,11111111-1111-1111-1111-111111111111,PLAN_B\n"
        );
        let error = parse_err(&products, EXCLUSIONS_HEADER);
        assert!(
            matches!(
                error,
                CatalogError::Csv {
                    file: CatalogFile::Products,
                    line: 3,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn rejects_an_empty_required_field() {
        let products = format!(
            "{PRODUCTS_HEADER}\
             Suite,  ,11111111-1111-1111-1111-111111111111,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa,Plan A\n"
        );
        let error = parse_err(&products, EXCLUSIONS_HEADER);
        assert_eq!(
            error,
            CatalogError::EmptyField {
                file: CatalogFile::Products,
                line: 2,
                column: "String_Id"
            }
        );
    }

    #[test]
    fn exclusion_groups_keep_file_order_and_drop_repeats() {
        let exclusions = format!(
            "{EXCLUSIONS_HEADER}\
             second,PLAN_B,bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb\n\
             first,PLAN_A,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\n\
             second,PLAN_C,cccccccc-cccc-cccc-cccc-cccccccccccc\n\
             second,PLAN_B,bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb\n"
        );
        let catalog = match Catalog::parse(PRODUCTS_HEADER, &exclusions) {
            Ok(catalog) => catalog,
            Err(error) => panic!("{error}"),
        };
        let names: Vec<&str> = catalog
            .exclusion_groups()
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, ["second", "first"]);
        assert_eq!(
            catalog.exclusion_groups()[0].service_plan_ids,
            [
                uuid("bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"),
                uuid("cccccccc-cccc-cccc-cccc-cccccccccccc")
            ]
        );
        // Plans absent from the product table still form pairs.
        assert_eq!(catalog.default_mutually_exclusive_pairs().len(), 1);
    }
}
