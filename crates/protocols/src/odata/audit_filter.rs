//! The `$filter`, `$top` and `$skiptoken` of Graph's audit log (`/v1.0/auditLogs/directoryAudits`),
//! a grammar of its own rather than the entity `$filter` of [`super::filter`]: a conjunction
//! (`and`) of at most [`MAX_FILTER_CLAUSES`] clauses, `activityDisplayName eq '…'`,
//! `category eq '…'`, `result eq 'success'|'failure'`, `activityDateTime ge|gt|le|lt
//! 2024-05-01T00:00:00Z` and `targetResources/any(t:t/id eq '{guid}')`; only conditions an audit
//! query answers exactly, so anything else is refused with what was not understood. The server
//! turns an [`AuditLogOptions`] into the store's audit conditions.

use licensd_api_types::time::parse_date_time;
use uuid::Uuid;

use super::QueryError;

/// The most records one page holds.
pub const MAX_TOP: usize = 999;
/// Records per page without `$top`.
pub const DEFAULT_TOP: usize = 100;
/// The most clauses a `$filter` may combine.
pub const MAX_FILTER_CLAUSES: usize = 8;
/// The longest `$filter` accepted.
pub const MAX_FILTER_LENGTH: usize = 1_024;

/// The conditions of an audit log `$filter`, each set at most once (two different values for one
/// property are refused: nothing could match); date-times are milliseconds since the epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub activity: Option<String>,
    pub category: Option<String>,
    pub result: Option<String>,
    pub target_id: Option<Uuid>,
    /// Inclusive lower bound on the activity date-time (`gt` is moved up by a millisecond).
    pub since: Option<i64>,
    /// Inclusive upper bound on the activity date-time (`lt` is moved down by a millisecond).
    pub until: Option<i64>,
}

/// The query options of one audit log request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLogOptions {
    pub filter: AuditFilter,
    /// Records per page: `$top`, or [`DEFAULT_TOP`].
    pub top: usize,
    /// `$skiptoken`: only records older than this sequence (the paging cursor).
    pub before_sequence: Option<u64>,
}

impl AuditLogOptions {
    /// Parses the decoded `$filter`, `$top` and `$skiptoken` of a request.
    pub fn parse(
        filter: Option<&str>,
        top: Option<&str>,
        skip_token: Option<&str>,
    ) -> Result<AuditLogOptions, QueryError> {
        let mut options = AuditLogOptions {
            filter: AuditFilter::default(),
            top: DEFAULT_TOP,
            before_sequence: None,
        };
        if let Some(top) = top {
            options.top = top
                .trim()
                .parse()
                .ok()
                .filter(|top| (1..=MAX_TOP).contains(top))
                .ok_or_else(|| {
                    invalid(format!(
                        "$top must be a whole number from 1 to {MAX_TOP}, not '{top}'."
                    ))
                })?;
        }
        if let Some(filter) = filter {
            options.filter = parse_filter(filter)?;
        }
        if let Some(token) = skip_token {
            let sequence: u64 = token
                .trim()
                .parse()
                .map_err(|_| invalid(format!("'{token}' is not a $skiptoken of this list.")))?;
            options.before_sequence = Some(sequence);
        }
        Ok(options)
    }
}

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::invalid(message)
}

/// A quoted OData string literal (`'it''s'` is `it's`), and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut rest = text.strip_prefix('\'')?;
    let mut value = String::new();
    loop {
        let end = rest.find('\'')?;
        value.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('\'') {
            Some(after) => {
                value.push('\'');
                rest = after;
            }
            None => return Some((value, rest)),
        }
    }
}

/// Splits on ` and ` outside quotes.
fn clauses(filter: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut inside = false;
    let bytes = filter.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\'' {
            inside = !inside;
        } else if !inside
            && bytes.len() - index >= 5
            && bytes[index..index + 5].eq_ignore_ascii_case(b" and ")
        {
            parts.push(filter[start..index].trim());
            start = index + 5;
            index += 5;
            continue;
        }
        index += 1;
    }
    parts.push(filter[start..].trim());
    parts
}

/// Parses an audit log `$filter`.
pub fn parse_filter(filter: &str) -> Result<AuditFilter, QueryError> {
    if filter.len() > MAX_FILTER_LENGTH {
        return Err(invalid(format!(
            "The $filter is longer than {MAX_FILTER_LENGTH} characters."
        )));
    }
    let parts = clauses(filter);
    if parts.len() > MAX_FILTER_CLAUSES {
        return Err(invalid(format!(
            "The $filter combines {} clauses; at most {MAX_FILTER_CLAUSES} are allowed.",
            parts.len()
        )));
    }
    let mut parsed = AuditFilter::default();
    for clause in parts {
        parse_clause(clause, &mut parsed)?;
    }
    Ok(parsed)
}

fn parse_clause(clause: &str, conditions: &mut AuditFilter) -> Result<(), QueryError> {
    let unsupported = || {
        invalid(format!(
            "The $filter clause '{clause}' is not supported: use activityDisplayName, category or result \
             with eq and a quoted value, activityDateTime with ge, gt, le or lt and a UTC date-time, or \
             targetResources/any(t:t/id eq '<guid>'), joined by 'and'."
        ))
    };
    if let Some(inner) = clause
        .strip_prefix("targetResources/any(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (variable, predicate) = inner.split_once(':').ok_or_else(unsupported)?;
        let variable = variable.trim();
        let predicate = predicate.trim();
        let rest = predicate
            .strip_prefix(variable)
            .and_then(|rest| rest.strip_prefix("/id eq "))
            .ok_or_else(unsupported)?;
        let text = rest.trim();
        let text = quoted(text)
            .filter(|(_, after)| after.trim().is_empty())
            .map(|(value, _)| value)
            .unwrap_or_else(|| text.to_string());
        let id =
            Uuid::try_parse(&text).map_err(|_| invalid(format!("'{text}' in the $filter is not a GUID.")))?;
        set_once(&mut conditions.target_id, id, "targetResources/any")?;
        return Ok(());
    }
    let mut words = clause.splitn(3, ' ');
    let (Some(property), Some(operator), Some(value)) = (words.next(), words.next(), words.next()) else {
        return Err(unsupported());
    };
    let operator = operator.to_ascii_lowercase();
    match property {
        "activityDisplayName" | "category" | "result" if operator == "eq" => {
            let (text, rest) = quoted(value.trim()).ok_or_else(|| {
                invalid(format!(
                    "The value of {property} in the $filter must be a quoted string."
                ))
            })?;
            if !rest.trim().is_empty() {
                return Err(unsupported());
            }
            let slot = match property {
                "activityDisplayName" => &mut conditions.activity,
                "category" => &mut conditions.category,
                _ => &mut conditions.result,
            };
            set_once(slot, text, property)
        }
        "activityDateTime" => {
            let at = parse_date_time(value.trim()).ok_or_else(|| {
                invalid(format!(
                    "'{}' is not a UTC date-time such as 2024-05-01T09:30:00Z.",
                    value.trim()
                ))
            })?;
            match operator.as_str() {
                "ge" => tighten_lower(conditions, at),
                "gt" => tighten_lower(conditions, at.saturating_add(1)),
                "le" => tighten_upper(conditions, at),
                "lt" => tighten_upper(conditions, at.saturating_sub(1)),
                _ => return Err(unsupported()),
            }
            Ok(())
        }
        _ => Err(unsupported()),
    }
}

fn set_once<T: PartialEq>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), QueryError> {
    match slot {
        Some(existing) if *existing != value => Err(invalid(format!(
            "The $filter compares {name} with two different values; nothing can match."
        ))),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn tighten_lower(conditions: &mut AuditFilter, at: i64) {
    conditions.since = Some(conditions.since.map_or(at, |since| since.max(at)));
}

fn tighten_upper(conditions: &mut AuditFilter, at: i64) {
    conditions.until = Some(conditions.until.map_or(at, |until| until.min(at)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_api_types::time::format_date_time;

    fn parsed(filter: &str) -> Result<AuditFilter, QueryError> {
        AuditLogOptions::parse(Some(filter), None, None).map(|options| options.filter)
    }

    #[test]
    fn the_supported_clauses_become_conditions() {
        let query = parsed(
            "activityDisplayName eq 'Change user license' and activityDateTime ge 2024-05-01T00:00:00Z \
             and activityDateTime lt 2024-05-02 and targetResources/any(t:t/id eq '6fd2c87f-b296-42f0-b197-1e91e994b900') \
             and result eq 'success'",
        )
        .expect("valid");
        assert_eq!(query.activity.as_deref(), Some("Change user license"));
        assert_eq!(query.result.as_deref(), Some("success"));
        assert_eq!(query.since, Some(1_714_521_600_000));
        assert_eq!(query.until, Some(1_714_607_999_999));
        assert_eq!(
            query.target_id,
            Some(Uuid::parse_str("6fd2c87f-b296-42f0-b197-1e91e994b900").expect("guid"))
        );
        assert_eq!(
            parsed("category eq 'it''s'").expect("valid").category.as_deref(),
            Some("it's")
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in [
            "activityDisplayName ne 'x'",
            "activityDisplayName eq x",
            "activityDisplayName eq 'x' or result eq 'y'",
            "activityDateTime ge yesterday",
            "targetResources/any(t:t/id eq 'not-a-guid')",
            "result eq 'a' and result eq 'b'",
            "initiatedBy/user/id eq 'x'",
            "",
        ] {
            assert!(parsed(bad).is_err(), "{bad}");
        }
        let many = ["result eq 'success'"; MAX_FILTER_CLAUSES + 1].join(" and ");
        assert!(parsed(&many).is_err());
        assert!(parsed(&"x".repeat(MAX_FILTER_LENGTH + 1)).is_err());
        for top in ["0", "1000", "-1", "ten"] {
            assert!(AuditLogOptions::parse(None, Some(top), None).is_err(), "{top}");
        }
    }

    proptest::proptest! {
        /// Whatever the text, the parser answers (never panics), and what it accepts it accepted
        /// for a reason: every accepted clause set a condition.
        #[test]
        fn the_filter_parser_never_panics(filter in ".{0,200}") {
            if let Ok(query) = parse_filter(&filter) {
                let set = query.activity.is_some() || query.category.is_some() || query.result.is_some()
                    || query.target_id.is_some() || query.since.is_some() || query.until.is_some();
                proptest::prop_assert!(set, "accepted without a condition: {filter:?}");
            }
        }

        /// The filter reads the date-times responses write (to the second).
        #[test]
        fn date_times_round_trip(milliseconds in -62_000_000_000_000i64..250_000_000_000_000i64) {
            let text = format_date_time(milliseconds);
            proptest::prop_assert_eq!(parse_date_time(&text), Some(milliseconds - milliseconds.rem_euclid(1_000)));
        }
    }
}
