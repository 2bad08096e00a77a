//! The licensing model at the engine's edges: identifiers (GUIDs), usage locations, proxy
//! addresses, the definitions callers hand in, and the enums of Microsoft Graph's licensing
//! surface (`state`, `error`, `capabilityStatus`, `licenseProcessingState`).

use std::fmt;

pub use uuid::Uuid;

/// A point in time, in milliseconds since the Unix epoch. The engine has no clock: every command
/// and every processing step is given its time by the caller, so runs are reproducible.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// An ISO 3166-1 alpha-2 country code, as Graph's `usageLocation` (`US`, `NL`, ...).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

/// Every officially assigned ISO 3166-1 alpha-2 code, two letters each.
const ASSIGNED_COUNTRY_CODES: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

impl CountryCode {
    /// Parses a usage location. Only upper-case, officially assigned ISO 3166-1 alpha-2 codes are
    /// accepted, as Graph does.
    pub fn parse(text: &str) -> Result<CountryCode, crate::CommandError> {
        let invalid = || crate::CommandError::InvalidUsageLocation {
            value: text.to_string(),
        };
        let bytes = text.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(invalid());
        }
        let assigned = ASSIGNED_COUNTRY_CODES
            .as_bytes()
            .chunks(2)
            .any(|code| code == bytes);
        if !assigned {
            return Err(invalid());
        }
        Ok(CountryCode([bytes[0], bytes[1]]))
    }

    /// A code read back from the engine's own dense image ([`crate::dense_image`]): two
    /// upper-case ASCII letters, as [`CountryCode::parse`] stored them (not checked against the
    /// list of assigned codes again).
    pub(crate) fn from_stored(bytes: [u8; 2]) -> Option<CountryCode> {
        bytes
            .iter()
            .all(u8::is_ascii_uppercase)
            .then_some(CountryCode(bytes))
    }

    /// The two letters.
    pub(crate) fn bytes(&self) -> [u8; 2] {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's proxy address (`SMTP:alice@contoso.com` primary, `smtp:` secondary, `SIP:`, `X500:`).
/// Two addresses are the same address when they are equal ignoring case, prefix included: Exchange
/// treats `SMTP:a@x` and `smtp:A@x` as one address.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyAddress(Box<str>);

impl ProxyAddress {
    /// Checks the `prefix:value` shape: a prefix of letters, digits or `-`, a colon, and a
    /// non-empty value without white space.
    pub fn parse(text: &str) -> Result<ProxyAddress, crate::CommandError> {
        let invalid = |reason: &str| crate::CommandError::InvalidProxyAddress {
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let Some((prefix, value)) = text.split_once(':') else {
            return Err(invalid("expected prefix:address, such as SMTP:alice@contoso.com"));
        };
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid("the prefix must be letters, digits or '-', such as SMTP"));
        }
        if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_whitespace) {
            return Err(invalid(
                "the address after the prefix must be non-empty and without spaces",
            ));
        }
        if prefix.eq_ignore_ascii_case("smtp") {
            let well_formed = value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            });
            if !well_formed {
                return Err(invalid("an SMTP address must look like name@domain"));
            }
        }
        Ok(ProxyAddress(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An address read back from the engine's own dense image ([`crate::dense_image`]), as
    /// [`ProxyAddress::parse`] accepted it when it was stored.
    pub(crate) fn from_stored(text: &str) -> ProxyAddress {
        ProxyAddress(text.into())
    }

    /// The form two addresses are compared in: lower case, prefix included.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// `SMTP:` in upper case marks the primary address.
    pub fn is_primary_smtp(&self) -> bool {
        self.0.starts_with("SMTP:")
    }
}

impl fmt::Debug for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Graph `licenseAssignmentState.state`.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssignmentStatus {
    /// The assignment is in effect.
    Active,
    /// The assignment is in effect as it was before a change that could not be applied.
    ActiveWithError,
    /// The product's subscription is suspended: the assignment exists but grants nothing.
    Disabled,
    /// The assignment is not in effect; the error says why.
    Error,
}

impl AssignmentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AssignmentStatus::Active => "Active",
            AssignmentStatus::ActiveWithError => "ActiveWithError",
            AssignmentStatus::Disabled => "Disabled",
            AssignmentStatus::Error => "Error",
        }
    }

    /// Whether the assignment grants plans and holds a unit of its product.
    pub fn is_in_effect(&self) -> bool {
        matches!(self, AssignmentStatus::Active | AssignmentStatus::ActiveWithError)
    }

    pub fn is_error(&self) -> bool {
        matches!(self, AssignmentStatus::ActiveWithError | AssignmentStatus::Error)
    }
}

/// Graph `licenseAssignmentState.error` (without `None`, which is the absence of an error).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LicenseErrorKind {
    CountViolation,
    MutuallyExclusiveViolation,
    DependencyViolation,
    ProhibitedInUsageLocationViolation,
    UniquenessViolation,
    Other,
}

impl LicenseErrorKind {
    pub const ALL: [LicenseErrorKind; 6] = [
        LicenseErrorKind::CountViolation,
        LicenseErrorKind::MutuallyExclusiveViolation,
        LicenseErrorKind::DependencyViolation,
        LicenseErrorKind::ProhibitedInUsageLocationViolation,
        LicenseErrorKind::UniquenessViolation,
        LicenseErrorKind::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            LicenseErrorKind::CountViolation => "CountViolation",
            LicenseErrorKind::MutuallyExclusiveViolation => "MutuallyExclusiveViolation",
            LicenseErrorKind::DependencyViolation => "DependencyViolation",
            LicenseErrorKind::ProhibitedInUsageLocationViolation => "ProhibitedInUsageLocationViolation",
            LicenseErrorKind::UniquenessViolation => "UniquenessViolation",
            LicenseErrorKind::Other => "Other",
        }
    }
}

/// Graph `subscribedSku.capabilityStatus`. A subscription that is not renewed goes
/// Enabled → Warning → Suspended → LockedOut → Deleted.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CapabilityStatus {
    #[default]
    Enabled,
    Warning,
    Suspended,
    LockedOut,
    Deleted,
}

impl CapabilityStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CapabilityStatus::Enabled => "Enabled",
            CapabilityStatus::Warning => "Warning",
            CapabilityStatus::Suspended => "Suspended",
            CapabilityStatus::LockedOut => "LockedOut",
            CapabilityStatus::Deleted => "Deleted",
        }
    }

    /// Whether assignments of the product grant its plans (Enabled and Warning do).
    pub fn grants_plans(&self) -> bool {
        matches!(self, CapabilityStatus::Enabled | CapabilityStatus::Warning)
    }
}

/// Graph `subscribedSku.appliesTo`: only `User` products can be assigned to users and groups.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AppliesTo {
    #[default]
    User,
    Company,
}

/// Graph `group.licenseProcessingState.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LicenseProcessingState {
    QueuedForProcessing,
    ProcessingInProgress,
    ProcessingComplete,
}

impl LicenseProcessingState {
    pub fn as_str(&self) -> &'static str {
        match self {
            LicenseProcessingState::QueuedForProcessing => "QueuedForProcessing",
            LicenseProcessingState::ProcessingInProgress => "ProcessingInProgress",
            LicenseProcessingState::ProcessingComplete => "ProcessingComplete",
        }
    }
}

/// Where a license assignment comes from: the user directly, or a group the user belongs to.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssignmentSource {
    Direct,
    Group(Uuid),
}

impl AssignmentSource {
    /// Graph's `assignedByGroup`: `None` for a direct assignment.
    pub fn assigned_by_group(&self) -> Option<Uuid> {
        match self {
            AssignmentSource::Direct => None,
            AssignmentSource::Group(group_id) => Some(*group_id),
        }
    }
}

/// A service plan as the catalog defines it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePlanDefinition {
    pub service_plan_id: Uuid,
    pub service_plan_name: String,
    pub display_name: String,
}

/// The rules a service plan carries (semantics: "Rules that belong to a plan").
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePlanRules {
    /// Plans it can never be enabled together with on one user; the relation is symmetric.
    pub mutually_exclusive_with: Vec<Uuid>,
    /// Prerequisites: at least one must be enabled wherever this plan is enabled.
    pub requires_any_of: Vec<Uuid>,
    /// Usage locations where the plan may not be assigned.
    pub unavailable_in: Vec<CountryCode>,
    /// Mailbox plans: the user's proxy addresses must be unique in the tenant.
    pub needs_unique_proxy_address: bool,
}

/// A product (SKU) the tenant subscribes to.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkuDefinition {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub display_name: String,
    pub applies_to: AppliesTo,
    pub service_plans: Vec<ServicePlanDefinition>,
    /// `prepaidUnits.enabled`: purchased seats.
    pub prepaid_units: u32,
    pub capability_status: CapabilityStatus,
}

/// Graph `assignedLicense`: a product and the plans of it that are switched off.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignedLicense {
    pub sku_id: Uuid,
    pub disabled_plans: Vec<Uuid>,
}

impl AssignedLicense {
    pub fn new(sku_id: Uuid) -> Self {
        AssignedLicense {
            sku_id,
            disabled_plans: Vec::new(),
        }
    }

    pub fn with_disabled_plans(sku_id: Uuid, disabled_plans: impl IntoIterator<Item = Uuid>) -> Self {
        AssignedLicense {
            sku_id,
            disabled_plans: disabled_plans.into_iter().collect(),
        }
    }
}

/// A new user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub id: Uuid,
    pub user_principal_name: String,
    pub display_name: String,
    pub usage_location: Option<CountryCode>,
    pub proxy_addresses: Vec<ProxyAddress>,
    pub account_enabled: bool,
    /// Directory attributes (department, job title, ...), each 1 to its maximum characters.
    pub attributes: crate::user_attributes::UserAttributeValues,
}

impl NewUser {
    /// A user with no usage location, no proxy address and an enabled account.
    pub fn new(id: Uuid, user_principal_name: &str) -> Self {
        NewUser {
            id,
            user_principal_name: user_principal_name.to_string(),
            display_name: user_principal_name
                .split('@')
                .next()
                .unwrap_or(user_principal_name)
                .to_string(),
            usage_location: None,
            proxy_addresses: Vec::new(),
            account_enabled: true,
            attributes: Default::default(),
        }
    }
}

/// Changes to a user; `None` leaves a property as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    /// `Some(None)` clears the usage location (the tenant's default then applies to groups).
    pub usage_location: Option<Option<CountryCode>>,
    pub proxy_addresses: Option<Vec<ProxyAddress>>,
    pub account_enabled: Option<bool>,
    /// Directory attributes to set (`Some`) or clear (`None`); the others stay.
    pub attributes: crate::user_attributes::UserAttributeChanges,
}

/// Tenant-wide settings.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSettings {
    pub tenant_id: Uuid,
    pub display_name: String,
    /// Users without a usage location inherit this one for group licensing.
    pub default_usage_location: Option<CountryCode>,
    /// When on (the default), users in error are re-queued by themselves once the cause goes away:
    /// freed or bought seats go to waiting users first come, first served, and a fixed duplicate
    /// proxy address re-queues the other users that shared it. When off, errors stay until a
    /// reprocess, as in the portal the seed describes.
    pub self_healing: bool,
    /// When on, members of groups nested in a licensed group receive its products too (each
    /// state naming the path); off (the default, Entra's behaviour), only direct members do.
    pub transitive_licensing: bool,
}

impl TenantSettings {
    pub fn new(tenant_id: Uuid, display_name: &str) -> Self {
        TenantSettings {
            tenant_id,
            display_name: display_name.to_string(),
            default_usage_location: None,
            self_healing: true,
            transitive_licensing: false,
        }
    }
}
