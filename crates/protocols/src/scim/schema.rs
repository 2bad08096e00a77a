//! The SCIM schemas licensd serves (RFC 7643 §8.7): the core `User` and `Group`, the enterprise
//! user extension, licensd's licensing extensions and the three discovery schemas, as static
//! attribute definitions. The same definitions answer `/Schemas`, canonicalize and type-check
//! incoming resources (attribute names are case-insensitive, Entra's `"True"` strings become
//! booleans) and tell filters which strings compare case-exactly.

use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LICENSING_USER_SCHEMA: &str = "urn:licensd:params:scim:schemas:extension:licensing:2.0:User";
pub const ACTIVITY_USER_SCHEMA: &str = "urn:licensd:params:scim:schemas:extension:activity:2.0:User";
pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::DateTime => "dateTime",
            Kind::Binary => "binary",
            Kind::Reference => "reference",
            Kind::Complex => "complex",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
}

/// Suggested values of an attribute (`canonicalValues`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canonical {
    None,
    Values(&'static [&'static str]),
    /// Every ISO 3166-1 alpha-2 code licensd accepts as a usage location.
    CountryCodes,
}

/// One attribute of a schema.
#[derive(Clone, Copy, Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub unique: bool,
    pub description: &'static str,
    pub canonical: Canonical,
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [Attribute],
}

const fn attribute(name: &'static str, kind: Kind, description: &'static str) -> Attribute {
    Attribute {
        name,
        kind,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        unique: false,
        description,
        canonical: Canonical::None,
        reference_types: &[],
        sub_attributes: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    attribute(name, Kind::String, description)
}

const fn complex(
    name: &'static str,
    description: &'static str,
    sub_attributes: &'static [Attribute],
) -> Attribute {
    Attribute {
        sub_attributes,
        ..attribute(name, Kind::Complex, description)
    }
}

const fn reference(
    name: &'static str,
    description: &'static str,
    types: &'static [&'static str],
) -> Attribute {
    Attribute {
        reference_types: types,
        ..attribute(name, Kind::Reference, description)
    }
}

impl Attribute {
    const fn multi(self) -> Attribute {
        Attribute {
            multi_valued: true,
            ..self
        }
    }
    const fn required(self) -> Attribute {
        Attribute {
            required: true,
            ..self
        }
    }
    const fn case_exact(self) -> Attribute {
        Attribute {
            case_exact: true,
            ..self
        }
    }
    const fn read_only(self) -> Attribute {
        Attribute {
            mutability: Mutability::ReadOnly,
            ..self
        }
    }
    const fn immutable(self) -> Attribute {
        Attribute {
            mutability: Mutability::Immutable,
            ..self
        }
    }
    const fn write_only_never_returned(self) -> Attribute {
        Attribute {
            mutability: Mutability::WriteOnly,
            returned: Returned::Never,
            ..self
        }
    }
    const fn always(self) -> Attribute {
        Attribute {
            returned: Returned::Always,
            ..self
        }
    }
    const fn unique(self) -> Attribute {
        Attribute { unique: true, ..self }
    }
    const fn canonical(self, values: &'static [&'static str]) -> Attribute {
        Attribute {
            canonical: Canonical::Values(values),
            ..self
        }
    }
    const fn countries(self) -> Attribute {
        Attribute {
            canonical: Canonical::CountryCodes,
            ..self
        }
    }

    /// The sub-attribute named `name`, ignoring case.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
    }
}

/// A schema: its URN, name and attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

impl Schema {
    /// The attribute named `name`, ignoring case.
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
    }
}

const PRIMARY: Attribute = attribute(
    "primary",
    Kind::Boolean,
    "Whether this is the primary value; true at most once.",
);
const DISPLAY: Attribute = string(
    "display",
    "A human-readable name, primarily used for display purposes.",
);

/// The sub-attributes of the plural attributes of the core user (`value`, `display`, `type`, `primary`).
macro_rules! plural {
    ($name:literal, $description:literal, $value:expr, $types:expr) => {
        complex(
            $name,
            $description,
            &[
                $value,
                DISPLAY,
                string("type", "A label indicating the attribute's function.").canonical($types),
                PRIMARY,
            ],
        )
        .multi()
    };
}

pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        string(
            "userName",
            "Unique identifier for the User, the user principal name in licensd (a name without '@' is kept as given).",
        )
        .required()
        .unique(),
        complex(
            "name",
            "The components of the user's real name.",
            &[
                string("formatted", "The full name, formatted for display."),
                string("familyName", "The family name of the User."),
                string("givenName", "The given name of the User."),
                string("middleName", "The middle name(s) of the User."),
                string("honorificPrefix", "The honorific prefix(es) of the User."),
                string("honorificSuffix", "The honorific suffix(es) of the User."),
            ],
        ),
        string("displayName", "The name of the User, suitable for display to end-users."),
        string("nickName", "The casual way to address the user in real life."),
        reference("profileUrl", "A fully qualified URL pointing to a page representing the User's online profile.", &["external"]),
        string("title", "The user's title, such as \"Vice President\"."),
        string("userType", "The relationship between the organization and the user."),
        string("preferredLanguage", "The User's preferred written or spoken language."),
        string("locale", "The User's default location for localizing items."),
        string("timezone", "The User's time zone in the 'Olson' time zone database format."),
        attribute("active", Kind::Boolean, "The User's administrative status: accountEnabled in licensd."),
        string("password", "Accepted and never stored: licensd does not sign users in.").write_only_never_returned(),
        plural!(
            "emails",
            "Email addresses: the user's SMTP proxy addresses in licensd (the primary one is SMTP:).",
            string("value", "Email address for the User."),
            &["work", "home", "other"]
        ),
        plural!(
            "phoneNumbers",
            "Phone numbers for the User.",
            string("value", "Phone number of the User."),
            &["work", "home", "mobile", "fax", "pager", "other"]
        ),
        plural!(
            "ims",
            "Instant messaging addresses for the User.",
            string("value", "Instant messaging address for the User."),
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
        ),
        plural!(
            "photos",
            "URLs of photos of the User.",
            reference("value", "URL of a photo of the User.", &["external"]),
            &["photo", "thumbnail"]
        ),
        complex(
            "addresses",
            "A physical mailing address for this User; the work address's country is the usage location when the licensing extension sets none.",
            &[
                string("formatted", "The full mailing address, formatted for display."),
                string("streetAddress", "The full street address component."),
                string("locality", "The city or locality component."),
                string("region", "The state or region component."),
                string("postalCode", "The zip code or postal code component."),
                string("country", "The country name component (ISO 3166-1 alpha-2)."),
                string("type", "A label indicating the attribute's function.").canonical(&["work", "home", "other"]),
                PRIMARY,
            ],
        )
        .multi(),
        complex(
            "groups",
            "The groups the user is a direct member of (read-only: change them through /Groups).",
            &[
                string("value", "The identifier of the User's group.").read_only(),
                reference("$ref", "The URI of the corresponding 'Group' resource.", &["User", "Group"]).read_only(),
                string("display", "A human-readable name of the group.").read_only(),
                string("type", "How the membership is derived.").canonical(&["direct", "indirect"]).read_only(),
            ],
        )
        .multi()
        .read_only(),
        plural!(
            "entitlements",
            "A list of entitlements for the User.",
            string("value", "The value of an entitlement."),
            &[]
        ),
        plural!(
            "roles",
            "A list of roles for the User.",
            string("value", "The value of a role."),
            &[]
        ),
        plural!(
            "x509Certificates",
            "A list of certificates issued to the User.",
            attribute("value", Kind::Binary, "The value of an X.509 certificate."),
            &[]
        ),
    ],
};

pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        string("costCenter", "Identifies the name of a cost center."),
        string("organization", "Identifies the name of an organization."),
        string("division", "Identifies the name of a division."),
        string("department", "Identifies the name of a department."),
        complex(
            "manager",
            "The User's manager.",
            &[
                string(
                    "value",
                    "The id of the SCIM resource representing the User's manager.",
                ),
                reference(
                    "$ref",
                    "The URI of the SCIM resource representing the User's manager.",
                    &["User"],
                ),
                string("displayName", "The displayName of the User's manager.").read_only(),
            ],
        ),
    ],
};

pub static LICENSING_USER: Schema = Schema {
    id: LICENSING_USER_SCHEMA,
    name: "LicensingUser",
    description: "licensd: the user's usage location and, read-only, its licenses",
    attributes: &[
        string(
            "usageLocation",
            "ISO 3166-1 alpha-2 code of the country where the user uses its licenses (Graph's usageLocation).",
        )
        .case_exact()
        .countries(),
        complex(
            "assignedLicenses",
            "The products the user holds (Graph's assignedLicenses).",
            &[
                string("skuId", "The product's id.").read_only(),
                string("skuPartNumber", "The product's part number.").read_only(),
                string("disabledPlans", "Service plans switched off.").multi().read_only(),
            ],
        )
        .multi()
        .read_only(),
        complex(
            "licenseAssignmentStates",
            "Every direct and group assignment with its state (Graph's licenseAssignmentStates).",
            &[
                string("skuId", "The product's id.").read_only(),
                string("skuPartNumber", "The product's part number.").read_only(),
                string("assignedByGroup", "The group that assigns it; absent for a direct assignment.").read_only(),
                string("state", "Active, ActiveWithError, Disabled or Error.").read_only(),
                string("error", "None, CountViolation, MutuallyExclusiveViolation, DependencyViolation, ProhibitedInUsageLocationViolation, UniquenessViolation or Other.").read_only(),
            ],
        )
        .multi()
        .read_only(),
    ],
};

/// Examples of the activity extension's date-times, advertised as its `canonicalValues`: any
/// date-time in this form is accepted (see [`ACTIVITY_USER`]).
pub const DATE_TIME_EXAMPLES: &[&str] = &["2026-01-31T17:00:00Z", "2026-06-30T23:59:59Z"];

/// The user's activity as the identity provider reports it. Both attributes are strings holding
/// an RFC 3339 date-time in UTC (`2026-06-30T23:59:59Z`, optionally with fractional seconds, or
/// a bare date), which licensd checks (anything else is a 400 `invalidValue` naming the
/// attribute) and answers in the form of [`DATE_TIME_EXAMPLES`]. They are typed `string` rather
/// than `dateTime`, as custom attributes of Entra ID's provisioning are, and advertise examples
/// of the form as `canonicalValues`, so that generic clients that fill attributes from the
/// schema (scim2-tester) send a value licensd accepts and compare what it answers as text.
pub static ACTIVITY_USER: Schema = Schema {
    id: ACTIVITY_USER_SCHEMA,
    name: "ActivityUser",
    description: "licensd: the user's last sign-in and leave date (RFC 3339 date-times in UTC), which idle-seat reports and reclamation policies read",
    attributes: &[
        string(
            "lastSignInDateTime",
            "When the user last signed in (Graph's signInActivity.lastSignInDateTime): an RFC 3339 date-time in UTC such as 2026-06-30T23:59:59Z.",
        )
        .canonical(DATE_TIME_EXAMPLES),
        string(
            "employeeLeaveDateTime",
            "When the user leaves or left the company (Graph's employeeLeaveDateTime): an RFC 3339 date-time in UTC such as 2026-06-30T23:59:59Z.",
        )
        .canonical(DATE_TIME_EXAMPLES),
    ],
};

pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group: a licensd security group; its licenses go to its members",
    attributes: &[
        string("displayName", "A human-readable name for the Group.").required(),
        complex(
            "members",
            "The members of the Group: users and nested groups (type 'User' or 'Group').",
            &[
                string("value", "Identifier of the member of this Group.").immutable(),
                reference(
                    "$ref",
                    "The URI corresponding to a SCIM resource that is a member of this Group.",
                    &["User", "Group"],
                )
                .immutable(),
                string("type", "The type of the member.")
                    .canonical(&["User", "Group"])
                    .immutable(),
            ],
        )
        .multi(),
    ],
};

const SUPPORTED: Attribute = attribute("supported", Kind::Boolean, "Whether the operation is supported.")
    .required()
    .read_only();

pub static SERVICE_PROVIDER_CONFIG: Schema = Schema {
    id: SERVICE_PROVIDER_CONFIG_SCHEMA,
    name: "ServiceProviderConfig",
    description: "Service Provider Configuration",
    attributes: &[
        reference(
            "documentationUri",
            "An HTTP-addressable URL pointing to the service provider's human-consumable help documentation.",
            &["external"],
        )
        .read_only(),
        complex(
            "patch",
            "A complex type that specifies PATCH configuration options.",
            &[SUPPORTED],
        )
        .required()
        .read_only(),
        complex(
            "bulk",
            "A complex type that specifies bulk configuration options.",
            &[
                SUPPORTED,
                attribute(
                    "maxOperations",
                    Kind::Integer,
                    "An integer value specifying the maximum number of operations.",
                )
                .required()
                .read_only(),
                attribute(
                    "maxPayloadSize",
                    Kind::Integer,
                    "An integer value specifying the maximum payload size in bytes.",
                )
                .required()
                .read_only(),
            ],
        )
        .required()
        .read_only(),
        complex(
            "filter",
            "A complex type that specifies FILTER options.",
            &[
                SUPPORTED,
                attribute(
                    "maxResults",
                    Kind::Integer,
                    "An integer value specifying the maximum number of resources returned in a response.",
                )
                .required()
                .read_only(),
            ],
        )
        .required()
        .read_only(),
        complex(
            "changePassword",
            "A complex type that specifies configuration options related to changing a password.",
            &[SUPPORTED],
        )
        .required()
        .read_only(),
        complex(
            "sort",
            "A complex type that specifies sort result options.",
            &[SUPPORTED],
        )
        .required()
        .read_only(),
        complex(
            "etag",
            "A complex type that specifies ETag configuration options.",
            &[SUPPORTED],
        )
        .required()
        .read_only(),
        complex(
            "authenticationSchemes",
            "A complex type that specifies supported authentication scheme properties.",
            &[
                string("type", "The authentication scheme.")
                    .canonical(&["oauth", "oauth2", "oauthbearertoken", "httpbasic", "httpdigest"])
                    .required()
                    .read_only(),
                string("name", "The common authentication scheme name, e.g., HTTP Basic.")
                    .required()
                    .read_only(),
                string("description", "A description of the authentication scheme.")
                    .required()
                    .read_only(),
                reference(
                    "specUri",
                    "An HTTP-addressable URL pointing to the authentication scheme's specification.",
                    &["external"],
                )
                .read_only(),
                reference(
                    "documentationUri",
                    "An HTTP-addressable URL pointing to the authentication scheme's usage documentation.",
                    &["external"],
                )
                .read_only(),
                PRIMARY.read_only(),
            ],
        )
        .multi()
        .required()
        .read_only(),
    ],
};

pub static RESOURCE_TYPE: Schema = Schema {
    id: RESOURCE_TYPE_SCHEMA,
    name: "ResourceType",
    description: "Specifies the schema that describes a SCIM resource type",
    attributes: &[
        string("id", "The resource type's server unique id.")
            .case_exact()
            .read_only(),
        string("name", "The resource type name.").required().read_only(),
        string("description", "The resource type's human-readable description.").read_only(),
        reference(
            "endpoint",
            "The resource type's HTTP-addressable endpoint relative to the Base URL.",
            &["uri"],
        )
        .required()
        .read_only(),
        reference("schema", "The resource type's primary/base schema URI.", &["uri"])
            .required()
            .case_exact()
            .read_only(),
        complex(
            "schemaExtensions",
            "A list of URIs of the resource type's schema extensions.",
            &[
                reference("schema", "The URI of a schema extension.", &["uri"])
                    .required()
                    .case_exact()
                    .read_only(),
                attribute(
                    "required",
                    Kind::Boolean,
                    "Whether the schema extension is required for the resource type.",
                )
                .required()
                .read_only(),
            ],
        )
        .multi()
        .read_only(),
    ],
};

/// The fields describing an attribute (RFC 7643 §7), for the `Schema` schema.
macro_rules! schema_attribute_fields {
    ($($extra:expr),*) => {
        &[
    string("name", "The attribute's name.").required().case_exact().read_only(),
    string("type", "The attribute's data type.")
        .canonical(&["string", "complex", "boolean", "decimal", "integer", "dateTime", "reference", "binary"])
        .required()
        .read_only(),
    attribute("multiValued", Kind::Boolean, "A Boolean value indicating an attribute's plurality.").required().read_only(),
    string("description", "A human-readable description of the attribute.").read_only(),
    attribute("required", Kind::Boolean, "A Boolean value indicating whether the attribute is required.").read_only(),
    string("canonicalValues", "A collection of canonical values.").multi().read_only(),
    attribute("caseExact", Kind::Boolean, "Whether a string attribute is case sensitive.").read_only(),
    string("mutability", "Whether the attribute is modifiable.")
        .canonical(&["readOnly", "readWrite", "immutable", "writeOnly"])
        .read_only(),
    string("returned", "When the attribute is returned in a response.")
        .canonical(&["always", "never", "default", "request"])
        .read_only(),
    string("uniqueness", "How the service provider enforces uniqueness of attribute values.")
        .canonical(&["none", "server", "global"])
        .read_only(),
    string("referenceTypes", "The names of the resource types that may be referenced.").multi().read_only(),
    $($extra),*
        ]
    };
}

const SCHEMA_ATTRIBUTE_FIELDS: &[Attribute] = schema_attribute_fields!();

pub static SCHEMA: Schema = Schema {
    id: SCHEMA_SCHEMA,
    name: "Schema",
    description: "Specifies the schema attributes of a SCIM resource",
    attributes: &[
        string("id", "The unique URI of the schema.")
            .required()
            .case_exact()
            .read_only(),
        string("name", "The schema's human-readable name.").read_only(),
        string("description", "The schema's human-readable description.").read_only(),
        complex(
            "attributes",
            "A complex attribute that includes the attributes of a schema.",
            schema_attribute_fields!(complex(
                "subAttributes",
                "Used to define the sub-attributes of a complex attribute.",
                SCHEMA_ATTRIBUTE_FIELDS
            )
            .multi()
            .read_only()),
        )
        .multi()
        .required()
        .read_only(),
    ],
};

/// Every schema `/Schemas` lists, resources first.
pub static ALL: [&Schema; 8] = [
    &USER,
    &ENTERPRISE_USER,
    &LICENSING_USER,
    &ACTIVITY_USER,
    &GROUP,
    &SERVICE_PROVIDER_CONFIG,
    &RESOURCE_TYPE,
    &SCHEMA,
];

/// The schema with this URN, ignoring case.
pub fn by_id(id: &str) -> Option<&'static Schema> {
    ALL.iter()
        .copied()
        .find(|schema| schema.id.eq_ignore_ascii_case(id))
}

/// The common attributes every resource has besides its schema's (RFC 7643 §3.1).
pub static ID: Attribute = string(
    "id",
    "A unique identifier for a SCIM resource as defined by the service provider.",
)
.case_exact()
.read_only()
.always()
.unique();
pub static EXTERNAL_ID: Attribute = string(
    "externalId",
    "A String that is an identifier for the resource as defined by the provisioning client.",
)
.case_exact();
pub static META: Attribute = complex(
    "meta",
    "Resource metadata.",
    &[
        string("resourceType", "The name of the resource type of the resource.")
            .case_exact()
            .read_only(),
        attribute(
            "created",
            Kind::DateTime,
            "When the resource was added to the service provider.",
        )
        .read_only(),
        attribute(
            "lastModified",
            Kind::DateTime,
            "When the resource was last updated.",
        )
        .read_only(),
        reference("location", "The URI of the resource being returned.", &["uri"])
            .case_exact()
            .read_only(),
        string("version", "The version (ETag) of the resource being returned.")
            .case_exact()
            .read_only(),
    ],
)
.read_only();

/// A resource type: its core schema and extensions.
pub struct ResourceKind {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

pub static USER_RESOURCE: ResourceKind = ResourceKind {
    name: "User",
    endpoint: "/Users",
    core: &USER,
    extensions: &[&ENTERPRISE_USER, &LICENSING_USER, &ACTIVITY_USER],
};

pub static GROUP_RESOURCE: ResourceKind = ResourceKind {
    name: "Group",
    endpoint: "/Groups",
    core: &GROUP,
    extensions: &[],
};

impl ResourceKind {
    /// The extension with this URN, ignoring case.
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .copied()
            .find(|schema| schema.id.eq_ignore_ascii_case(urn))
    }

    /// A top-level attribute of the core schema or a common attribute, ignoring case.
    pub fn core_attribute(&self, name: &str) -> Option<&'static Attribute> {
        if name.eq_ignore_ascii_case("id") {
            return Some(&ID);
        }
        if name.eq_ignore_ascii_case("externalId") {
            return Some(&EXTERNAL_ID);
        }
        if name.eq_ignore_ascii_case("meta") {
            return Some(&META);
        }
        self.core.attribute(name)
    }

    /// The `/ResourceTypes` entry.
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "description": self.core.description,
            "endpoint": self.endpoint,
            "schema": self.core.id,
            "schemaExtensions": self.extensions.iter().map(|schema| json!({"schema": schema.id, "required": false})).collect::<Vec<_>>(),
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", self.name)},
        })
    }
}

fn attribute_json(attribute: &Attribute, countries: &[String]) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), json!(attribute.name));
    object.insert("type".into(), json!(attribute.kind.as_str()));
    object.insert("multiValued".into(), json!(attribute.multi_valued));
    object.insert("description".into(), json!(attribute.description));
    object.insert("required".into(), json!(attribute.required));
    match attribute.canonical {
        Canonical::None => {}
        Canonical::Values(values) => {
            if !values.is_empty() {
                object.insert("canonicalValues".into(), json!(values));
            }
        }
        Canonical::CountryCodes => {
            object.insert("canonicalValues".into(), json!(countries));
        }
    }
    if attribute.kind != Kind::Complex {
        object.insert("caseExact".into(), json!(attribute.case_exact));
    }
    object.insert(
        "mutability".into(),
        json!(match attribute.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }),
    );
    object.insert(
        "returned".into(),
        json!(match attribute.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
        }),
    );
    object.insert(
        "uniqueness".into(),
        json!(if attribute.unique { "server" } else { "none" }),
    );
    if attribute.kind == Kind::Reference {
        object.insert("referenceTypes".into(), json!(attribute.reference_types));
    }
    if attribute.kind == Kind::Complex {
        object.insert(
            "subAttributes".into(),
            Value::Array(
                attribute
                    .sub_attributes
                    .iter()
                    .map(|sub| attribute_json(sub, countries))
                    .collect(),
            ),
        );
    }
    Value::Object(object)
}

impl Schema {
    /// The `/Schemas` entry.
    pub fn to_json(&self, base: &str, countries: &[String]) -> Value {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(|attribute| attribute_json(attribute, countries)).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", self.id)},
        })
    }
}
