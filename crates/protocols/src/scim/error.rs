//! Why the SCIM grammar refuses a request (RFC 7644 §3.12): every refusal of a filter, a path, a
//! PATCH operation, a list query or a resource's attributes is a `400 Bad Request` with one of
//! RFC 7644's `scimType`s and a detail saying what to change. The server renders a [`BadRequest`]
//! as SCIM's error message in one `From` impl.

/// RFC 7644 Table 9: the `scimType` of a 400 or 409.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

/// A request the SCIM grammar refuses: answered [`BadRequest::STATUS`] with its `scimType` and
/// detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct BadRequest {
    pub scim_type: ScimType,
    pub detail: String,
}

impl BadRequest {
    /// The HTTP status of every refusal of the grammar (RFC 7644 Table 9).
    pub const STATUS: u16 = 400;

    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> BadRequest {
        BadRequest {
            scim_type,
            detail: detail.into(),
        }
    }

    pub fn invalid_value(detail: impl Into<String>) -> BadRequest {
        BadRequest::new(ScimType::InvalidValue, detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> BadRequest {
        BadRequest::new(ScimType::InvalidSyntax, detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> BadRequest {
        BadRequest::new(ScimType::InvalidFilter, detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> BadRequest {
        BadRequest::new(ScimType::InvalidPath, detail)
    }

    pub fn no_target(detail: impl Into<String>) -> BadRequest {
        BadRequest::new(ScimType::NoTarget, detail)
    }
}
