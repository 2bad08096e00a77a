//! The compact column encodings both backends share: enums as their Graph names, short lists as
//! space-separated text, error causes as tagged binary, and the plan sets of license assignment
//! states as bitsets over per-tenant plan numbers (a state row stays a few dozen bytes even for
//! products with dozens of plans).

use std::sync::Arc;

use licensd_engine::image::{CauseImage, PlanList, StateImage};
use licensd_engine::{
    AppliesTo, AssignmentSource, AssignmentStatus, CapabilityStatus, CountryCode, LicenseErrorKind,
    ProxyAddress, UserAttribute, UserAttributeValues, Uuid,
};
use rustc_hash::FxHashMap;

use crate::error::StoreError;

pub(crate) fn parse_status(text: &str) -> Result<AssignmentStatus, StoreError> {
    Ok(match text {
        "Active" => AssignmentStatus::Active,
        "ActiveWithError" => AssignmentStatus::ActiveWithError,
        "Disabled" => AssignmentStatus::Disabled,
        "Error" => AssignmentStatus::Error,
        other => {
            return Err(StoreError::corrupt(format!(
                "unknown assignment status {other:?}"
            )))
        }
    })
}

pub(crate) fn parse_capability_status(text: &str) -> Result<CapabilityStatus, StoreError> {
    Ok(match text {
        "Enabled" => CapabilityStatus::Enabled,
        "Warning" => CapabilityStatus::Warning,
        "Suspended" => CapabilityStatus::Suspended,
        "LockedOut" => CapabilityStatus::LockedOut,
        "Deleted" => CapabilityStatus::Deleted,
        other => {
            return Err(StoreError::corrupt(format!(
                "unknown capability status {other:?}"
            )))
        }
    })
}

pub(crate) fn applies_to_text(applies_to: AppliesTo) -> &'static str {
    match applies_to {
        AppliesTo::User => "User",
        AppliesTo::Company => "Company",
    }
}

pub(crate) fn parse_applies_to(text: &str) -> Result<AppliesTo, StoreError> {
    Ok(match text {
        "User" => AppliesTo::User,
        "Company" => AppliesTo::Company,
        other => return Err(StoreError::corrupt(format!("unknown appliesTo {other:?}"))),
    })
}

fn error_kind_code(kind: LicenseErrorKind) -> u8 {
    match kind {
        LicenseErrorKind::CountViolation => 1,
        LicenseErrorKind::MutuallyExclusiveViolation => 2,
        LicenseErrorKind::DependencyViolation => 3,
        LicenseErrorKind::ProhibitedInUsageLocationViolation => 4,
        LicenseErrorKind::UniquenessViolation => 5,
        LicenseErrorKind::Other => 6,
    }
}

fn error_kind_of_code(code: u8) -> Result<LicenseErrorKind, StoreError> {
    LicenseErrorKind::ALL
        .into_iter()
        .find(|kind| error_kind_code(*kind) == code)
        .ok_or_else(|| StoreError::corrupt(format!("unknown error kind code {code} in a cause")))
}

pub(crate) fn parse_country(text: &str) -> Result<CountryCode, StoreError> {
    CountryCode::parse(text).map_err(|_| StoreError::corrupt(format!("invalid usage location {text:?}")))
}

pub(crate) fn parse_optional_country(text: Option<&str>) -> Result<Option<CountryCode>, StoreError> {
    text.map(parse_country).transpose()
}

/// GUIDs as space-separated hyphenated text (rules and disabled plans of assignments).
pub(crate) fn join_uuids(ids: &[Uuid]) -> String {
    let mut text = String::with_capacity(ids.len() * 37);
    for (index, id) in ids.iter().enumerate() {
        if index > 0 {
            text.push(' ');
        }
        text.push_str(&id.hyphenated().to_string());
    }
    text
}

pub(crate) fn split_uuids(text: &str) -> Result<Vec<Uuid>, StoreError> {
    text.split_ascii_whitespace()
        .map(|part| Uuid::parse_str(part).map_err(|_| StoreError::corrupt(format!("invalid GUID {part:?}"))))
        .collect()
}

/// Usage locations as space-separated text (`"CU IR"`).
pub(crate) fn join_countries(countries: &[CountryCode]) -> String {
    countries
        .iter()
        .map(CountryCode::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn split_countries(text: &str) -> Result<Vec<CountryCode>, StoreError> {
    text.split_ascii_whitespace().map(parse_country).collect()
}

/// Proxy addresses as space-separated text; an address never contains white space.
pub(crate) fn join_proxy_addresses(addresses: &[ProxyAddress]) -> String {
    addresses
        .iter()
        .map(ProxyAddress::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn split_proxy_addresses(text: &str) -> Result<Vec<ProxyAddress>, StoreError> {
    text.split_ascii_whitespace()
        .map(|part| {
            ProxyAddress::parse(part)
                .map_err(|_| StoreError::corrupt(format!("invalid proxy address {part:?}")))
        })
        .collect()
}

/// A user's directory attributes as a JSON object of name to value, `""` when it has none.
pub(crate) fn join_user_attributes(values: &UserAttributeValues) -> String {
    if values.is_empty() {
        return String::new();
    }
    let object: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(attribute, value)| {
            (
                attribute.name().to_string(),
                serde_json::Value::String(value.clone()),
            )
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

pub(crate) fn split_user_attributes(text: &str) -> Result<UserAttributeValues, StoreError> {
    if text.is_empty() {
        return Ok(UserAttributeValues::new());
    }
    let object: std::collections::BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|error| StoreError::corrupt(format!("invalid user attributes {text:?}: {error}")))?;
    object
        .into_iter()
        .map(|(name, value)| {
            UserAttribute::from_name(&name)
                .map(|attribute| (attribute, value))
                .ok_or_else(|| StoreError::corrupt(format!("unknown user attribute {name:?}")))
        })
        .collect()
}

/// GUIDs as their 16-byte forms one after the other (the id lists of `tenant_changes`).
pub(crate) fn concat_uuids(ids: &[Uuid]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ids.len() * 16);
    for id in ids {
        bytes.extend_from_slice(id.as_bytes());
    }
    bytes
}

pub(crate) fn split_concat_uuids(bytes: &[u8]) -> Result<Vec<Uuid>, StoreError> {
    if bytes.len() % 16 != 0 {
        return Err(StoreError::corrupt(format!(
            "a GUID list of {} bytes is not a multiple of 16",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|chunk| {
            let mut id = [0u8; 16];
            id.copy_from_slice(chunk);
            Uuid::from_bytes(id)
        })
        .collect())
}

/// A GUID from a 16-byte SQLite blob.
pub(crate) fn uuid_from_blob(bytes: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes)
        .map_err(|_| StoreError::corrupt(format!("a GUID column holds {} bytes", bytes.len())))
}

// ----- causes -----------------------------------------------------------------------------------

const CAUSE_COUNT: u8 = 1;
const CAUSE_MUTUALLY_EXCLUSIVE: u8 = 2;
const CAUSE_MISSING_PREREQUISITE: u8 = 3;
const CAUSE_REMOVAL_BLOCKED: u8 = 4;
const CAUSE_USAGE_LOCATION: u8 = 5;
const CAUSE_UNIQUENESS: u8 = 6;
const CAUSE_BLOCKED_BY_SIBLING: u8 = 7;

const USAGE_LOCATION_HAS_PLAN: u8 = 1;
const USAGE_LOCATION_HAS_LOCATION: u8 = 2;
const USAGE_LOCATION_INHERITED: u8 = 4;

fn push_source(source: &AssignmentSource, out: &mut Vec<u8>) {
    match source {
        AssignmentSource::Direct => out.push(0),
        AssignmentSource::Group(group_id) => {
            out.push(1);
            out.extend_from_slice(group_id.as_bytes());
        }
    }
}

/// Encodes a cause as one tag byte followed by its fields: GUIDs as 16 bytes, sources as a byte
/// (0 direct, 1 group followed by its GUID), usage locations as two ASCII letters, a proxy
/// address as the rest of the value. A `CountViolation` takes 17 bytes.
pub(crate) fn encode_cause(cause: &CauseImage, out: &mut Vec<u8>) {
    out.clear();
    match cause {
        CauseImage::Count { sku_id } => {
            out.push(CAUSE_COUNT);
            out.extend_from_slice(sku_id.as_bytes());
        }
        CauseImage::MutuallyExclusive {
            plan_id,
            conflicting_plan_id,
            conflicting_sku_id,
            conflicting_source,
        } => {
            out.push(CAUSE_MUTUALLY_EXCLUSIVE);
            out.extend_from_slice(plan_id.as_bytes());
            out.extend_from_slice(conflicting_plan_id.as_bytes());
            out.extend_from_slice(conflicting_sku_id.as_bytes());
            push_source(conflicting_source, out);
        }
        CauseImage::MissingPrerequisite { plan_id } => {
            out.push(CAUSE_MISSING_PREREQUISITE);
            out.extend_from_slice(plan_id.as_bytes());
        }
        CauseImage::RemovalBlocked {
            dependent_plan_id,
            dependent_sku_id,
            dependent_source,
        } => {
            out.push(CAUSE_REMOVAL_BLOCKED);
            out.extend_from_slice(dependent_plan_id.as_bytes());
            out.extend_from_slice(dependent_sku_id.as_bytes());
            match dependent_source {
                None => out.push(0),
                Some(source) => {
                    out.push(1);
                    push_source(source, out);
                }
            }
        }
        CauseImage::UsageLocation {
            plan_id,
            location,
            inherited_from_tenant,
        } => {
            out.push(CAUSE_USAGE_LOCATION);
            let mut flags = 0;
            if plan_id.is_some() {
                flags |= USAGE_LOCATION_HAS_PLAN;
            }
            if location.is_some() {
                flags |= USAGE_LOCATION_HAS_LOCATION;
            }
            if *inherited_from_tenant {
                flags |= USAGE_LOCATION_INHERITED;
            }
            out.push(flags);
            if let Some(plan_id) = plan_id {
                out.extend_from_slice(plan_id.as_bytes());
            }
            if let Some(location) = location {
                out.extend_from_slice(location.as_str().as_bytes());
            }
        }
        CauseImage::Uniqueness { proxy_address } => {
            out.push(CAUSE_UNIQUENESS);
            out.extend_from_slice(proxy_address.as_bytes());
        }
        CauseImage::BlockedBySibling { sku_id, kind } => {
            out.push(CAUSE_BLOCKED_BY_SIBLING);
            out.extend_from_slice(sku_id.as_bytes());
            out.push(error_kind_code(*kind));
        }
    }
}

/// Reads the fields of an encoded cause front to back.
struct CauseReader<'a> {
    bytes: &'a [u8],
}

impl<'a> CauseReader<'a> {
    fn truncated() -> StoreError {
        StoreError::corrupt("an encoded error cause is truncated")
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        let (first, rest) = self.bytes.split_first().ok_or_else(Self::truncated)?;
        self.bytes = rest;
        Ok(*first)
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < count {
            return Err(Self::truncated());
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn uuid(&mut self) -> Result<Uuid, StoreError> {
        uuid_from_blob(self.take(16)?)
    }

    fn source(&mut self) -> Result<AssignmentSource, StoreError> {
        match self.byte()? {
            0 => Ok(AssignmentSource::Direct),
            1 => Ok(AssignmentSource::Group(self.uuid()?)),
            other => Err(StoreError::corrupt(format!(
                "unknown source tag {other} in a cause"
            ))),
        }
    }

    fn finish(self) -> Result<(), StoreError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(StoreError::corrupt("an encoded error cause has trailing bytes"))
        }
    }
}

pub(crate) fn decode_cause(bytes: &[u8]) -> Result<CauseImage, StoreError> {
    let mut reader = CauseReader { bytes };
    let cause = match reader.byte()? {
        CAUSE_COUNT => CauseImage::Count {
            sku_id: reader.uuid()?,
        },
        CAUSE_MUTUALLY_EXCLUSIVE => CauseImage::MutuallyExclusive {
            plan_id: reader.uuid()?,
            conflicting_plan_id: reader.uuid()?,
            conflicting_sku_id: reader.uuid()?,
            conflicting_source: reader.source()?,
        },
        CAUSE_MISSING_PREREQUISITE => CauseImage::MissingPrerequisite {
            plan_id: reader.uuid()?,
        },
        CAUSE_REMOVAL_BLOCKED => CauseImage::RemovalBlocked {
            dependent_plan_id: reader.uuid()?,
            dependent_sku_id: reader.uuid()?,
            dependent_source: match reader.byte()? {
                0 => None,
                1 => Some(reader.source()?),
                other => {
                    return Err(StoreError::corrupt(format!(
                        "unknown optional-source tag {other} in a cause"
                    )))
                }
            },
        },
        CAUSE_USAGE_LOCATION => {
            let flags = reader.byte()?;
            let plan_id = if flags & USAGE_LOCATION_HAS_PLAN != 0 {
                Some(reader.uuid()?)
            } else {
                None
            };
            let location = if flags & USAGE_LOCATION_HAS_LOCATION != 0 {
                let letters = reader.take(2)?;
                let text = std::str::from_utf8(letters)
                    .map_err(|_| StoreError::corrupt("a usage location in a cause is not text"))?;
                Some(parse_country(text)?)
            } else {
                None
            };
            CauseImage::UsageLocation {
                plan_id,
                location,
                inherited_from_tenant: flags & USAGE_LOCATION_INHERITED != 0,
            }
        }
        CAUSE_UNIQUENESS => {
            let rest = reader.take(reader.bytes.len())?;
            let proxy_address = std::str::from_utf8(rest)
                .map_err(|_| StoreError::corrupt("a proxy address in a cause is not UTF-8"))?
                .to_string();
            CauseImage::Uniqueness { proxy_address }
        }
        CAUSE_BLOCKED_BY_SIBLING => CauseImage::BlockedBySibling {
            sku_id: reader.uuid()?,
            kind: error_kind_of_code(reader.byte()?)?,
        },
        other => return Err(StoreError::corrupt(format!("unknown cause tag {other}"))),
    };
    reader.finish()?;
    Ok(cause)
}

// ----- plan sets --------------------------------------------------------------------------------

/// The tenant's plan numbers, for encoding plan sets as bitsets. A plan keeps its number for the
/// tenant's lifetime (`service_plans.plan_number`), so stored bitsets never need rewriting.
#[derive(Debug, Default)]
pub(crate) struct PlanNumbers {
    by_id: FxHashMap<Uuid, u32>,
}

impl PlanNumbers {
    pub(crate) fn insert(&mut self, plan_id: Uuid, number: u32) {
        self.by_id.insert(plan_id, number);
    }

    /// Encodes plans as a little-endian bitset (bit `n` = plan number `n`) without trailing
    /// zero bytes; the empty set is the empty value. Returns the first unknown plan as an error.
    pub(crate) fn encode(&self, plan_ids: &[Uuid], out: &mut Vec<u8>) -> Result<(), Uuid> {
        out.clear();
        for plan_id in plan_ids {
            let number = *self.by_id.get(plan_id).ok_or(*plan_id)? as usize;
            let byte = number / 8;
            if out.len() <= byte {
                out.resize(byte + 1, 0);
            }
            out[byte] |= 1 << (number % 8);
        }
        Ok(())
    }
}

/// The tenant's plans by number, for decoding bitsets back into GUID lists in registration
/// order (the order the engine lists them in).
#[derive(Debug, Default)]
pub(crate) struct PlanDecoder {
    /// Indexed by plan number: the plan's position and id.
    by_number: Vec<Option<(u32, Uuid)>>,
    /// Whether numbers and positions are in the same order, so decoding needs no sort.
    numbers_follow_positions: bool,
}

impl PlanDecoder {
    /// Builds the decoder from `(number, position, id)` of every plan of a tenant.
    pub(crate) fn new(plans: &[(u32, u32, Uuid)]) -> PlanDecoder {
        let size = plans
            .iter()
            .map(|(number, _, _)| *number as usize + 1)
            .max()
            .unwrap_or(0);
        let mut by_number = vec![None; size];
        for (number, position, id) in plans {
            by_number[*number as usize] = Some((*position, *id));
        }
        let positions: Vec<u32> = by_number
            .iter()
            .flatten()
            .map(|(position, _)| *position)
            .collect();
        let numbers_follow_positions = positions.windows(2).all(|pair| pair[0] < pair[1]);
        PlanDecoder {
            by_number,
            numbers_follow_positions,
        }
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Vec<Uuid>, StoreError> {
        let mut plans: Vec<(u32, Uuid)> = Vec::new();
        for (byte_index, byte) in bytes.iter().enumerate() {
            let mut bits = *byte;
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let number = byte_index * 8 + bit;
                let plan = self.by_number.get(number).copied().flatten().ok_or_else(|| {
                    StoreError::corrupt(format!(
                        "a plan set names plan number {number}, which does not exist"
                    ))
                })?;
                plans.push(plan);
            }
        }
        if !self.numbers_follow_positions {
            plans.sort_unstable_by_key(|(position, _)| *position);
        }
        Ok(plans.into_iter().map(|(_, id)| id).collect())
    }
}

// ----- state rows -------------------------------------------------------------------------------

/// One license assignment state in column form, borrowing the encoder's buffers.
pub(crate) struct EncodedState<'a> {
    pub(crate) status: &'static str,
    pub(crate) error_kind: Option<&'static str>,
    pub(crate) cause: Option<&'a [u8]>,
    pub(crate) disabled_plans: &'a [u8],
    pub(crate) granted_plans: Option<&'a [u8]>,
    pub(crate) since: i64,
    pub(crate) last_updated: i64,
}

/// Encodes state images into column values, reusing its buffers from row to row so that a
/// write of millions of states allocates nothing per row.
pub(crate) struct StateRowEncoder<'a> {
    tenant_id: Uuid,
    numbers: &'a PlanNumbers,
    cause: Vec<u8>,
    disabled_plans: Vec<u8>,
    granted_plans: Vec<u8>,
    /// The bitset of each plan list encoded so far, by the address of the shared list (the
    /// images of one batch share one list per distinct plan set, so each is encoded once). The
    /// encoder borrows the states it encodes, which keeps every list alive and its address
    /// unique while it is a key.
    plan_sets: FxHashMap<usize, Vec<u8>>,
}

impl<'a> StateRowEncoder<'a> {
    pub(crate) fn new(tenant_id: Uuid, numbers: &'a PlanNumbers) -> StateRowEncoder<'a> {
        StateRowEncoder {
            tenant_id,
            numbers,
            cause: Vec::with_capacity(64),
            disabled_plans: Vec::with_capacity(16),
            granted_plans: Vec::with_capacity(16),
            plan_sets: FxHashMap::default(),
        }
    }

    /// Encodes a plan list into `out`, each distinct shared list once.
    fn encode_plans(
        numbers: &PlanNumbers,
        plan_sets: &mut FxHashMap<usize, Vec<u8>>,
        plan_ids: &PlanList,
        out: &mut Vec<u8>,
    ) -> Result<(), Uuid> {
        let address = Arc::as_ptr(plan_ids) as *const Uuid as usize;
        let bitset = match plan_sets.get(&address) {
            Some(bitset) => bitset,
            None => {
                let mut bitset = Vec::new();
                numbers.encode(plan_ids, &mut bitset)?;
                plan_sets.entry(address).or_insert(bitset)
            }
        };
        out.clear();
        out.extend_from_slice(bitset);
        Ok(())
    }

    /// Encodes a state into column values. `state` must stay borrowed for as long as the
    /// encoder is used (the caller encodes the states of one batch it holds).
    pub(crate) fn encode(
        &mut self,
        user_id: Uuid,
        state: &'a StateImage,
    ) -> Result<EncodedState<'_>, StoreError> {
        let unknown_plan = |plan_id: Uuid| {
            StoreError::InvalidBatch {
            tenant_id: self.tenant_id,
            reason: format!(
                "the state of user {user_id} on product {} names plan {plan_id}, which the tenant does not have",
                state.sku_id
            ),
        }
        };
        Self::encode_plans(
            self.numbers,
            &mut self.plan_sets,
            &state.disabled_plans,
            &mut self.disabled_plans,
        )
        .map_err(unknown_plan)?;
        if let Some(granted) = &state.granted_plans {
            Self::encode_plans(
                self.numbers,
                &mut self.plan_sets,
                granted,
                &mut self.granted_plans,
            )
            .map_err(unknown_plan)?;
        }
        if let Some(cause) = &state.cause {
            encode_cause(cause, &mut self.cause);
        }
        let since = i64::try_from(state.since).map_err(|_| StoreError::InvalidBatch {
            tenant_id: self.tenant_id,
            reason: format!(
                "the state of user {user_id} has since {} beyond 63 bits",
                state.since
            ),
        })?;
        Ok(EncodedState {
            status: state.status.as_str(),
            error_kind: state.cause.as_ref().map(|cause| cause.kind().as_str()),
            cause: state.cause.as_ref().map(|_| self.cause.as_slice()),
            disabled_plans: &self.disabled_plans,
            granted_plans: state
                .granted_plans
                .as_ref()
                .map(|_| self.granted_plans.as_slice()),
            since,
            last_updated: state.last_updated.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: u128) -> Uuid {
        Uuid::from_u128(value)
    }

    fn round_trip(cause: CauseImage) {
        let mut bytes = Vec::new();
        encode_cause(&cause, &mut bytes);
        assert_eq!(decode_cause(&bytes).expect("decodes"), cause, "bytes {bytes:?}");
        // Every strict prefix is refused rather than misread.
        for length in 0..bytes.len() {
            if let Ok(decoded) = decode_cause(&bytes[..length]) {
                assert_ne!(decoded, cause);
            }
        }
    }

    #[test]
    fn every_cause_round_trips() {
        let country = |text: &str| CountryCode::parse(text).expect("country");
        round_trip(CauseImage::Count { sku_id: id(1) });
        for source in [AssignmentSource::Direct, AssignmentSource::Group(id(9))] {
            round_trip(CauseImage::MutuallyExclusive {
                plan_id: id(2),
                conflicting_plan_id: id(3),
                conflicting_sku_id: id(4),
                conflicting_source: source,
            });
        }
        round_trip(CauseImage::MissingPrerequisite { plan_id: id(5) });
        for dependent_source in [
            None,
            Some(AssignmentSource::Direct),
            Some(AssignmentSource::Group(id(10))),
        ] {
            round_trip(CauseImage::RemovalBlocked {
                dependent_plan_id: id(6),
                dependent_sku_id: id(7),
                dependent_source,
            });
        }
        for plan_id in [None, Some(id(8))] {
            for location in [None, Some(country("CU"))] {
                for inherited_from_tenant in [false, true] {
                    round_trip(CauseImage::UsageLocation {
                        plan_id,
                        location,
                        inherited_from_tenant,
                    });
                }
            }
        }
        round_trip(CauseImage::Uniqueness {
            proxy_address: "smtp:shared@contoso.com".to_string(),
        });
        round_trip(CauseImage::Uniqueness {
            proxy_address: String::new(),
        });
        for kind in LicenseErrorKind::ALL {
            round_trip(CauseImage::BlockedBySibling { sku_id: id(11), kind });
        }
    }

    #[test]
    fn a_count_violation_takes_seventeen_bytes() {
        let mut bytes = Vec::new();
        encode_cause(&CauseImage::Count { sku_id: id(1) }, &mut bytes);
        assert_eq!(bytes.len(), 17);
    }

    #[test]
    fn unknown_tags_and_trailing_bytes_are_refused() {
        assert!(decode_cause(&[99]).is_err());
        assert!(decode_cause(&[]).is_err());
        let mut bytes = Vec::new();
        encode_cause(&CauseImage::Count { sku_id: id(1) }, &mut bytes);
        bytes.push(0);
        assert!(decode_cause(&bytes).is_err());
    }

    #[test]
    fn plan_sets_round_trip_in_registration_order() {
        // Plan numbers 0..20 registered at positions in reverse for the second half, so the
        // decoder must sort by position.
        let plans: Vec<(u32, u32, Uuid)> = (0..20u32)
            .map(|number| {
                let position = if number < 10 { number } else { 29 - number };
                (number, position, id(100 + number as u128))
            })
            .collect();
        let mut numbers = PlanNumbers::default();
        for (number, _, plan_id) in &plans {
            numbers.insert(*plan_id, *number);
        }
        let decoder = PlanDecoder::new(&plans);
        let mut in_position_order = plans.clone();
        in_position_order.sort_by_key(|(_, position, _)| *position);
        let ids: Vec<Uuid> = in_position_order.iter().map(|(_, _, plan_id)| *plan_id).collect();
        let mut bytes = Vec::new();
        numbers.encode(&ids, &mut bytes).expect("known plans");
        assert_eq!(bytes.len(), 3);
        assert_eq!(decoder.decode(&bytes).expect("decodes"), ids);
        numbers.encode(&[], &mut bytes).expect("empty");
        assert!(bytes.is_empty());
        assert_eq!(decoder.decode(&bytes).expect("decodes"), Vec::<Uuid>::new());
        assert_eq!(numbers.encode(&[id(1)], &mut bytes), Err(id(1)));
        assert!(decoder.decode(&[0, 0, 0, 1]).is_err());
    }

    #[test]
    fn text_lists_round_trip() {
        let ids = vec![id(1), id(2)];
        assert_eq!(split_uuids(&join_uuids(&ids)).expect("uuids"), ids);
        assert_eq!(split_uuids("").expect("empty"), Vec::<Uuid>::new());
        let countries = vec![
            CountryCode::parse("CU").expect("CU"),
            CountryCode::parse("IR").expect("IR"),
        ];
        assert_eq!(join_countries(&countries), "CU IR");
        assert_eq!(split_countries("CU IR").expect("countries"), countries);
        let addresses = vec![
            ProxyAddress::parse("SMTP:a@contoso.com").expect("address"),
            ProxyAddress::parse("smtp:b@contoso.com").expect("address"),
        ];
        assert_eq!(
            split_proxy_addresses(&join_proxy_addresses(&addresses)).expect("addresses"),
            addresses
        );
        assert_eq!(split_concat_uuids(&concat_uuids(&ids)).expect("blob"), ids);
        assert!(split_concat_uuids(&[1, 2, 3]).is_err());
    }
}
