//! Server-side paging of the console's lists: a page is at most [`PAGE_SIZE`] rows, found by a
//! stable key (`after=` the last id shown, `before=` the first) in a stable order, so the next
//! page is right whatever was added or removed meanwhile, and no request renders more than one
//! page. Search is a case-insensitive substring test, applied while scanning, stopping as soon as
//! the page is full — or after [`SCAN_BUDGET`] rows, when the page says it searched part of the
//! list and its "Next page" link searches on from there, so no request scans a million users.

use licensd_engine::Uuid;

use super::error::ConsoleError;
use super::forms::{parse_id, IdKind, QueryFields};

/// Rows per page of every console list.
pub const PAGE_SIZE: usize = 50;

/// Rows one request examines at most when searching; the next page continues from there.
pub const SCAN_BUDGET: usize = 100_000;

/// Rows one request examines at most when the test of a row is cheap (no text to compare).
pub const CHEAP_SCAN_BUDGET: usize = 2_000_000;

/// The longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    First,
    /// The rows after this key.
    After(Uuid),
    /// The rows before this key.
    Before(Uuid),
}

/// What a list request asks for: a position and a search text.
#[derive(Clone, Debug)]
pub struct ListRequest {
    pub cursor: Cursor,
    /// The search text as typed (trimmed), `None` when empty.
    pub search: Option<String>,
}

impl ListRequest {
    /// Reads `after`, `before` and `search` from the query string.
    pub fn from_query(query: &QueryFields, kind: IdKind) -> Result<ListRequest, ConsoleError> {
        let cursor = match (query.non_empty("after"), query.non_empty("before")) {
            (Some(_), Some(_)) => {
                return Err(ConsoleError::bad_request(
                    "A page starts either after or before a row, not both.",
                ))
            }
            (Some(after), None) => Cursor::After(parse_id(after, kind)?),
            (None, Some(before)) => Cursor::Before(parse_id(before, kind)?),
            (None, None) => Cursor::First,
        };
        let search = query.non_empty("search").map(|text| {
            let text: String = text.chars().take(MAX_SEARCH_CHARS).collect();
            text
        });
        Ok(ListRequest { cursor, search })
    }

    /// The search, ready to match.
    pub fn matcher(&self) -> SearchText {
        SearchText::new(self.search.as_deref())
    }

    /// How many rows a request may examine: fewer when a text is searched (each row's names
    /// are read and compared).
    pub fn scan_budget(&self) -> usize {
        if self.search.is_some() {
            SCAN_BUDGET
        } else {
            CHEAP_SCAN_BUDGET
        }
    }
}

/// One page of keys, with the keys of the neighbouring pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub ids: Vec<Uuid>,
    /// `before=` this key gives the previous page.
    pub previous: Option<Uuid>,
    /// `after=` this key gives the next page.
    pub next: Option<Uuid>,
    /// The key of the request no longer exists (its row was removed): the list starts over.
    pub restarted: bool,
    /// The scan stopped at its budget before the page was full: the page shows the matches of
    /// the part examined, and the link onwards (or back) continues the search.
    pub scan_stopped: bool,
}

/// Picks one page out of `ids` (in their stable order) among those `matches` accepts; `matches`
/// is called only until the page is known to be full, and at most `budget` times.
pub fn page_of(
    ids: &[Uuid],
    cursor: Cursor,
    size: usize,
    budget: usize,
    mut matches: impl FnMut(Uuid) -> bool,
) -> Page {
    let size = size.max(1);
    let budget = budget.max(size + 1);
    let position_of = |key: Uuid| ids.iter().position(|id| *id == key);
    let (cursor, restarted) = match cursor {
        Cursor::After(key) | Cursor::Before(key) if position_of(key).is_none() => (Cursor::First, true),
        other => (other, false),
    };
    // Scans `candidates` in order; returns the matches (up to `size + 1`) and, when the budget
    // ran out first, the last id examined.
    let mut scan = |candidates: &mut dyn Iterator<Item = Uuid>| {
        let mut found = Vec::with_capacity(size + 1);
        let mut last_examined = None;
        for (examined, id) in candidates.enumerate() {
            if examined == budget {
                return (found, last_examined);
            }
            last_examined = Some(id);
            if matches(id) {
                found.push(id);
                if found.len() > size {
                    break;
                }
            }
        }
        (found, None)
    };
    match cursor {
        Cursor::First | Cursor::After(_) => {
            let start = match cursor {
                Cursor::After(key) => position_of(key).map_or(0, |position| position + 1),
                _ => 0,
            };
            let (mut found, stopped_at) = scan(&mut ids[start.min(ids.len())..].iter().copied());
            let has_next = found.len() > size;
            found.truncate(size);
            let next = if has_next {
                found.last().copied()
            } else {
                stopped_at
            };
            Page {
                previous: if start > 0 {
                    found.first().copied().or(stopped_at)
                } else {
                    None
                },
                next,
                ids: found,
                restarted,
                scan_stopped: stopped_at.is_some() && !has_next,
            }
        }
        Cursor::Before(key) => {
            let end = position_of(key).unwrap_or(0);
            let (mut found, stopped_at) = scan(&mut ids[..end].iter().rev().copied());
            let has_previous = found.len() > size;
            found.truncate(size);
            found.reverse();
            let previous = if has_previous {
                found.first().copied()
            } else {
                stopped_at
            };
            Page {
                previous,
                next: found.last().copied().or(Some(key)),
                ids: found,
                restarted,
                scan_stopped: stopped_at.is_some() && !has_previous,
            }
        }
    }
}

/// A case-insensitive substring search (nothing typed matches everything).
#[derive(Clone, Debug)]
pub struct SearchText {
    lowered: Option<String>,
}

impl SearchText {
    pub fn new(text: Option<&str>) -> SearchText {
        SearchText {
            lowered: text.map(str::to_lowercase).filter(|text| !text.is_empty()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lowered.is_none()
    }

    /// Whether any of the texts contains the search, ignoring case.
    pub fn matches_any(&self, texts: &[&str]) -> bool {
        match &self.lowered {
            None => true,
            Some(needle) => texts.iter().any(|text| contains_ignoring_case(text, needle)),
        }
    }
}

/// `needle` must be lower case already. ASCII texts are compared without allocating.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
        needle.is_empty()
            || haystack
                .windows(needle.len())
                .any(|window| window.eq_ignore_ascii_case(needle))
    } else {
        haystack.to_lowercase().contains(needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: u128) -> Vec<Uuid> {
        (1..=count).map(Uuid::from_u128).collect()
    }

    #[test]
    fn pages_follow_the_keys_both_ways() {
        let all = ids(7);
        let first = page_of(&all, Cursor::First, 3, 100, |_| true);
        assert_eq!(first.ids, all[0..3]);
        assert_eq!((first.previous, first.next), (None, Some(all[2])));
        let second = page_of(&all, Cursor::After(all[2]), 3, 100, |_| true);
        assert_eq!(second.ids, all[3..6]);
        assert_eq!((second.previous, second.next), (Some(all[3]), Some(all[5])));
        let last = page_of(&all, Cursor::After(all[5]), 3, 100, |_| true);
        assert_eq!(last.ids, all[6..7]);
        assert_eq!(last.next, None);
        let back = page_of(&all, Cursor::Before(all[3]), 3, 100, |_| true);
        assert_eq!(back.ids, all[0..3]);
        assert_eq!((back.previous, back.next), (None, Some(all[2])));
        let back_middle = page_of(&all, Cursor::Before(all[6]), 3, 100, |_| true);
        assert_eq!(back_middle.ids, all[3..6]);
        assert_eq!(back_middle.previous, Some(all[3]));
    }

    #[test]
    fn a_vanished_key_starts_over_and_search_filters() {
        let all = ids(5);
        let page = page_of(&all, Cursor::After(Uuid::from_u128(99)), 2, 100, |_| true);
        assert!(page.restarted);
        assert_eq!(page.ids, all[0..2]);
        let even = page_of(&all, Cursor::First, 10, 100, |id| id.as_u128() % 2 == 0);
        assert_eq!(even.ids, vec![all[1], all[3]]);
        assert_eq!(even.next, None);
        let empty = page_of(&[], Cursor::First, 10, 100, |_| true);
        assert!(empty.ids.is_empty());
    }

    #[test]
    fn a_search_stops_at_its_budget_and_continues_from_there() {
        let all = ids(100);
        // Matches: 10, 20, ..., 100; a page of 3, examining at most 25 rows.
        let tens = |id: Uuid| id.as_u128() % 10 == 0;
        let first = page_of(&all, Cursor::First, 3, 25, tens);
        assert_eq!(first.ids, vec![all[9], all[19]]);
        assert!(first.scan_stopped);
        assert_eq!(
            first.next,
            Some(all[24]),
            "the next page searches on after the last row examined"
        );
        let second = page_of(&all, Cursor::After(all[24]), 3, 25, tens);
        assert_eq!(second.ids, vec![all[29], all[39], all[49]]);
        assert_eq!(second.next, Some(all[49]));
        let last = page_of(&all, Cursor::After(all[89]), 3, 25, tens);
        assert_eq!(last.ids, vec![all[99]]);
        assert_eq!((last.next, last.scan_stopped), (None, false));
        let back = page_of(&all, Cursor::Before(all[24]), 3, 25, tens);
        assert_eq!(back.ids, vec![all[9], all[19]]);
        assert!(!back.scan_stopped, "the start was reached within the budget");
        assert_eq!(back.previous, None);
        let far_back = page_of(&all, Cursor::Before(all[99]), 3, 4, tens);
        assert_eq!(far_back.ids, Vec::<Uuid>::new());
        assert!(far_back.scan_stopped);
        assert_eq!(far_back.previous, Some(all[95]));
        assert_eq!(far_back.next, Some(all[99]));
    }

    #[test]
    fn search_ignores_case() {
        let search = SearchText::new(Some("SaLes"));
        assert!(search.matches_any(&["Sales - Office 365 E3"]));
        assert!(!search.matches_any(&["Mobility"]));
        assert!(SearchText::new(Some("é")).matches_any(&["Équipe É"]));
        assert!(SearchText::new(None).matches_any(&[]));
    }
}
