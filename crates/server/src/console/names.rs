//! Names for what pages show by id: the tenant's products and their service plans (gathered once
//! per request from the engine, a few dozen entries), groups, and the plain-language titles of
//! license errors (the seed's headings).

use std::collections::HashMap;

use licensd_engine::{Engine, LicenseErrorKind, SkuUsage, Uuid};

/// The tenant's products and plans by id, for one request.
#[derive(Clone, Debug, Default)]
pub struct ProductNames {
    pub products: Vec<SkuUsage>,
    /// Display names of service plans.
    plans: HashMap<Uuid, String>,
}

impl ProductNames {
    pub fn of(engine: &Engine) -> ProductNames {
        let products = engine.sku_usages();
        let plans = products
            .iter()
            .flat_map(|product| product.service_plans.iter())
            .map(|(id, _, display_name)| (*id, display_name.clone()))
            .collect();
        ProductNames { products, plans }
    }

    pub fn product(&self, sku_id: Uuid) -> Option<&SkuUsage> {
        self.products.iter().find(|product| product.sku_id == sku_id)
    }

    /// "Office 365 E3", or the id when the product is unknown.
    pub fn product_name(&self, sku_id: Uuid) -> String {
        match self.product(sku_id) {
            Some(product) => product.display_name.clone(),
            None => sku_id.to_string(),
        }
    }

    /// "Exchange Online (Plan 2)", or the id when the plan is unknown.
    pub fn plan_name(&self, service_plan_id: Uuid) -> String {
        match self.plans.get(&service_plan_id) {
            Some(display_name) => display_name.clone(),
            None => service_plan_id.to_string(),
        }
    }
}

/// A group's display name, or its id when it no longer exists.
pub fn group_name(engine: &Engine, group_id: Uuid) -> String {
    engine
        .group_view(group_id)
        .map(|group| group.display_name)
        .unwrap_or_else(|_| group_id.to_string())
}

/// The seed's heading of each error.
pub fn error_title(kind: LicenseErrorKind) -> &'static str {
    match kind {
        LicenseErrorKind::CountViolation => "Not enough licenses",
        LicenseErrorKind::MutuallyExclusiveViolation => "Conflicting service plans",
        LicenseErrorKind::DependencyViolation => "Other products depend on this license",
        LicenseErrorKind::ProhibitedInUsageLocationViolation => "Usage location isn't allowed",
        LicenseErrorKind::UniquenessViolation => "Duplicate proxy address",
        LicenseErrorKind::Other => "Other error",
    }
}
