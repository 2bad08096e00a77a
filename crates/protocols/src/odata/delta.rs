//! The tokens of Graph's delta queries (`/v1.0/users/delta`, `/v1.0/groups/delta`) as text: the
//! `$deltatoken` of an `@odata.deltaLink` (the tenant and the store version a round reflects), the
//! `$skiptoken` of an `@odata.nextLink` (where a round stands, so every page of it is computed
//! against the same versions), and the page size `Prefer: odata.maxpagesize=N` asks for. The
//! server checks a token's tenant and versions against the tenant it serves.

use uuid::Uuid;

/// Objects per page without `Prefer: odata.maxpagesize`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page `Prefer: odata.maxpagesize` may ask for.
pub const MAX_PAGE_SIZE: usize = 999;

/// Where a round stands: the version it starts after (`None`: everything), the version it
/// reflects, the last id already returned and the page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaPosition {
    pub tenant_id: Uuid,
    pub after_version: Option<u64>,
    pub up_to_version: u64,
    pub last_id: Option<Uuid>,
    pub page_size: usize,
}

impl DeltaPosition {
    /// The `$skiptoken` of the next page.
    pub fn skip_token(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}",
            self.tenant_id.simple(),
            self.after_version
                .map_or("all".to_string(), |version| version.to_string()),
            self.up_to_version,
            self.last_id
                .map_or("start".to_string(), |id| id.simple().to_string()),
            self.page_size
        )
    }

    /// Reads a `$skiptoken` back; `None` for anything [`DeltaPosition::skip_token`] did not write.
    pub fn parse_skip_token(text: &str) -> Option<DeltaPosition> {
        let parts: Vec<&str> = text.split('.').collect();
        let [tenant, after, up_to, last, size] = parts.as_slice() else {
            return None;
        };
        Some(DeltaPosition {
            tenant_id: Uuid::try_parse(tenant).ok()?,
            after_version: match *after {
                "all" => None,
                version => Some(version.parse().ok()?),
            },
            up_to_version: up_to.parse().ok()?,
            last_id: match *last {
                "start" => None,
                id => Some(Uuid::try_parse(id).ok()?),
            },
            page_size: size
                .parse()
                .ok()
                .filter(|size| (1..=MAX_PAGE_SIZE).contains(size))?,
        })
    }
}

/// The `$deltatoken` values read ([`delta_token`]'s and `latest`, any case), as a pattern for the
/// OpenAPI document. A token of this shape can still be one the server cannot resume (another
/// tenant's, or newer than its data): Graph's 410 `syncStateNotFound`.
pub const DELTA_TOKEN_PATTERN: &str = "^(?:[Ll][Aa][Tt][Ee][Ss][Tt]|[0-9a-f]{32}\\.[0-9]{1,19})$";

/// The `$skiptoken` of a delta round's `@odata.nextLink` ([`DeltaPosition::skip_token`]), as a
/// pattern; as for the delta token, one of this shape may still be answered 410.
pub const SKIP_TOKEN_PATTERN: &str =
    "^[0-9a-f]{32}\\.(?:all|[0-9]{1,19})\\.[0-9]{1,19}\\.(?:start|[0-9a-f]{32})\\.[1-9][0-9]{0,2}$";

/// The `$deltatoken` of a round that reflects `version` of a tenant.
pub fn delta_token(tenant_id: Uuid, version: u64) -> String {
    format!("{}.{version}", tenant_id.simple())
}

/// Reads a `$deltatoken` back into its tenant and version.
pub fn parse_delta_token(text: &str) -> Option<(Uuid, u64)> {
    let (tenant, version) = text.split_once('.')?;
    Some((Uuid::try_parse(tenant).ok()?, version.parse().ok()?))
}

/// The page size the `Prefer` header values ask for (`odata.maxpagesize=N`, as Graph's delta
/// queries take it), clamped to 1–[`MAX_PAGE_SIZE`]; [`DEFAULT_PAGE_SIZE`] without one.
pub fn preferred_page_size<'a>(prefer_values: impl IntoIterator<Item = &'a str>) -> usize {
    prefer_values
        .into_iter()
        .flat_map(|value| value.split(','))
        .filter_map(|preference| preference.trim().strip_prefix("odata.maxpagesize="))
        .filter_map(|size| size.trim().parse::<usize>().ok())
        .next()
        .map(|size| size.clamp(1, MAX_PAGE_SIZE))
        .unwrap_or(DEFAULT_PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_tokens_round_trip_and_refuse_garbage() {
        let position = DeltaPosition {
            tenant_id: Uuid::from_u128(0x6fd2_c87f),
            after_version: Some(7),
            up_to_version: 12,
            last_id: Some(Uuid::from_u128(42)),
            page_size: 5,
        };
        assert_eq!(
            DeltaPosition::parse_skip_token(&position.skip_token()),
            Some(position)
        );
        let first = DeltaPosition {
            after_version: None,
            last_id: None,
            ..position
        };
        assert_eq!(DeltaPosition::parse_skip_token(&first.skip_token()), Some(first));
        for garbage in [
            "",
            "x.y",
            "a.all.1.start.5",
            &format!("{}.all.1.start.0", Uuid::nil().simple()),
        ] {
            assert_eq!(DeltaPosition::parse_skip_token(garbage), None, "{garbage}");
        }
        assert_eq!(
            parse_delta_token(&delta_token(position.tenant_id, 9)),
            Some((position.tenant_id, 9))
        );
    }

    #[test]
    fn the_token_patterns_match_the_tokens_written() {
        let position = DeltaPosition {
            tenant_id: Uuid::from_u128(u128::MAX - 7),
            after_version: Some(u64::MAX / 10),
            up_to_version: 9_999_999_999_999_999_999,
            last_id: Some(Uuid::from_u128(42)),
            page_size: MAX_PAGE_SIZE,
        };
        let skip = regex::Regex::new(SKIP_TOKEN_PATTERN).expect("a pattern");
        let first = DeltaPosition {
            after_version: None,
            last_id: None,
            page_size: 1,
            ..position
        };
        for written in [position.skip_token(), first.skip_token()] {
            assert!(skip.is_match(&written), "{written}");
            assert!(DeltaPosition::parse_skip_token(&written).is_some());
        }
        assert!(!skip.is_match(
            &DeltaPosition {
                page_size: 1000,
                ..position
            }
            .skip_token()
        ));
        let delta = regex::Regex::new(DELTA_TOKEN_PATTERN).expect("a pattern");
        let written = delta_token(position.tenant_id, u64::MAX / 10);
        assert!(delta.is_match(&written) && parse_delta_token(&written).is_some());
        assert!(delta.is_match("LATEST"));
        for garbage in ["", "0", "x.1", "latest1"] {
            assert!(!delta.is_match(garbage), "{garbage}");
        }
    }

    #[test]
    fn the_page_size_comes_from_the_first_maxpagesize_preference() {
        assert_eq!(preferred_page_size([]), DEFAULT_PAGE_SIZE);
        assert_eq!(preferred_page_size(["return=minimal"]), DEFAULT_PAGE_SIZE);
        assert_eq!(preferred_page_size(["return=minimal, odata.maxpagesize=5"]), 5);
        assert_eq!(
            preferred_page_size(["odata.maxpagesize=x", "odata.maxpagesize=7"]),
            7
        );
        assert_eq!(preferred_page_size(["odata.maxpagesize=0"]), 1);
        assert_eq!(preferred_page_size(["odata.maxpagesize=5000"]), MAX_PAGE_SIZE);
    }
}
