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

    /// `text` (an engine's explanation or fix, an audit reason) with every product part number
    /// (`ENTERPRISEPACK`) replaced by the product's display name (`Office 365 E3`). Only whole
    /// words are replaced, longest part numbers first.
    pub fn humanize(&self, text: &str) -> String {
        let mut products: Vec<&SkuUsage> = self
            .products
            .iter()
            .filter(|product| !product.sku_part_number.is_empty())
            .collect();
        products.sort_by_key(|product| std::cmp::Reverse(product.sku_part_number.len()));
        let mut result = self.name_ids(text);
        // "Office 365 E3 (ENTERPRISEPACK)" already names the product first: kept as it is.
        let named_forms: Vec<String> = products
            .iter()
            .map(|product| format!("{} ({})", product.display_name, product.sku_part_number))
            .collect();
        for (index, named) in named_forms.iter().enumerate() {
            result = result.replace(named, &format!("\u{0}{index}\u{0}"));
        }
        for product in &products {
            result = replace_word(&result, &product.sku_part_number, &product.display_name);
        }
        for (index, named) in named_forms.iter().enumerate() {
            result = result.replace(&format!("\u{0}{index}\u{0}"), named);
        }
        result
    }

    /// `text` with every id of a known product or service plan replaced by its display name.
    fn name_ids(&self, text: &str) -> String {
        const ID_LENGTH: usize = 36;
        let mut result = String::with_capacity(text.len());
        let mut rest = text;
        while !rest.is_empty() {
            let candidate = rest.get(..ID_LENGTH).and_then(|head| Uuid::parse_str(head).ok());
            let name = candidate.and_then(|id| {
                self.product(id)
                    .map(|product| product.display_name.clone())
                    .or_else(|| self.plans.get(&id).cloned())
            });
            match name {
                Some(name) => {
                    result.push_str(&name);
                    rest = rest.get(ID_LENGTH..).unwrap_or("");
                }
                None => {
                    let mut characters = rest.chars();
                    if let Some(character) = characters.next() {
                        result.push(character);
                    }
                    rest = characters.as_str();
                }
            }
        }
        result
    }

    /// "Exchange Online (Plan 2)", or the id when the plan is unknown.
    pub fn plan_name(&self, service_plan_id: Uuid) -> String {
        match self.plans.get(&service_plan_id) {
            Some(display_name) => display_name.clone(),
            None => service_plan_id.to_string(),
        }
    }
}

/// `text` with each whole-word `word` replaced by `replacement` (a word character is a letter,
/// digit or `_`).
fn replace_word(text: &str, word: &str, replacement: &str) -> String {
    let is_word = |character: Option<char>| character.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find(word) {
        let (before, after) = rest.split_at(position);
        let following = after.get(word.len()..).unwrap_or("");
        let previous = result
            .chars()
            .last()
            .filter(|_| before.is_empty())
            .or(before.chars().last());
        result.push_str(before);
        if is_word(previous) || is_word(following.chars().next()) {
            result.push_str(word);
        } else {
            result.push_str(replacement);
        }
        rest = following;
    }
    result.push_str(rest);
    result
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

#[cfg(test)]
mod tests {
    use super::replace_word;

    #[test]
    fn only_whole_part_numbers_are_replaced() {
        assert_eq!(
            replace_word(
                "Remove ENTERPRISEPACK, not ENTERPRISEPACK_X or XENTERPRISEPACK.",
                "ENTERPRISEPACK",
                "Office 365 E3"
            ),
            "Remove Office 365 E3, not ENTERPRISEPACK_X or XENTERPRISEPACK."
        );
        assert_eq!(replace_word("EMS EMS", "EMS", "Mobility"), "Mobility Mobility");
    }
}
