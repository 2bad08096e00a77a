//! A small blocking HTTP client of licensd's API: the Graph-shaped `/v1.0/...` surface and
//! licensd's `/licensd/v1/...` extensions, with the request and response types of
//! `licensd-api-types`. It is what the admin CLI (`licensd sku list`, `licensd user show`, ...)
//! talks through.
//!
//! Invariant: the client knows the API only from the wire types and the documented paths; it
//! links neither the server nor the engine. Every failure is a typed [`ClientError`] that keeps
//! the server's Graph error envelope, and says whether the server refused the request, could not
//! be reached, or the client is misconfigured ([`FailureKind`]).

mod config;
mod error;

use std::time::Duration;

use licensd_api_types::admin::{
    ExplainedLicenseState, ExplainedLicenseStateList, Product, ProductList, TenantOverview,
    UpdateProductRequest,
};
use licensd_api_types::diagnosis::{
    AdvisorReport, ApplyChangesRequest, ApplyChangesResponse, GroupDiagnosis, UserDiagnosis, WhatIfRequest,
    WhatIfResponse,
};
use licensd_api_types::graph::{
    AssignLicenseRequest, DirectoryObjectCollectionResponse, Group, ReferenceRequest, SubscribedSku,
    SubscribedSkuCollectionResponse, User,
};
use licensd_api_types::tokens::{AccessTokenList, CreateAccessToken, CreatedAccessToken};
use licensd_api_types::ErrorResponse;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use config::{
    config_file_path, ClientConfig, ConfigError, ConfigFile, CONFIG_PATH_VARIABLE, DEFAULT_SERVER,
    TOKEN_VARIABLE,
};
pub use error::{ClientError, FailureKind};
pub use licensd_api_types as api_types;
pub use uuid::Uuid;

/// Every property of a user, so that the answer is a complete [`User`].
const ALL_USER_PROPERTIES: &str = "id,displayName,userPrincipalName,mail,accountEnabled,usageLocation,\
    proxyAddresses,assignedLicenses,assignedPlans,licenseAssignmentStates";

/// The properties of users listed with their license states; `assignedPlans` (tens of plans per
/// product) is left out to keep pages small.
const USER_PROPERTIES_WITH_STATES: &str = "id,displayName,userPrincipalName,mail,accountEnabled,\
    usageLocation,proxyAddresses,assignedLicenses,licenseAssignmentStates";

/// The largest page Graph allows.
const PAGE_SIZE: &str = "999";

/// How long to wait for a connection, and for a whole answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to one licensd server.
#[derive(Clone, Debug)]
pub struct LicensdClient {
    http: Client,
    base: Url,
}

impl LicensdClient {
    /// A client of the server in `config`, sending its token (if any) as `Authorization: Bearer`.
    /// An address without a scheme (`host:8080`) is taken as `http://`.
    pub fn new(config: &ClientConfig) -> Result<LicensdClient, ClientError> {
        let base = parse_server_address(&config.server)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(token) = &config.token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ClientError::InvalidToken)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = Client::builder()
            .default_headers(headers)
            .user_agent(concat!("licensd-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| ClientError::HttpClientSetup {
                reason: error.to_string(),
            })?;
        Ok(LicensdClient { http, base })
    }

    /// The server's base address, as requests use it.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    // ----- Products -----

    /// `GET /v1.0/subscribedSkus`: the tenant's products in Graph's shape.
    pub fn subscribed_skus(&self) -> Result<Vec<SubscribedSku>, ClientError> {
        let url = self.url(&["v1.0", "subscribedSkus"], &[]);
        let response: SubscribedSkuCollectionResponse = self.get(url)?;
        Ok(response.value)
    }

    /// `GET /licensd/v1/skus`: every product with purchased, consumed, available and
    /// over-allocated units and waiting users.
    pub fn products(&self) -> Result<Vec<Product>, ClientError> {
        let url = self.url(&["licensd", "v1", "skus"], &[]);
        let response: ProductList = self.get(url)?;
        Ok(response.value)
    }

    /// `PATCH /licensd/v1/skus/{skuId}`: buys or reduces seats, changes the subscription's status.
    pub fn update_product(
        &self,
        sku_id: Uuid,
        request: &UpdateProductRequest,
    ) -> Result<Product, ClientError> {
        let url = self.url(&["licensd", "v1", "skus", &sku_id.to_string()], &[]);
        self.send(Method::PATCH, url, Some(request))
    }

    /// The tenant's product named by `skuId` or by `skuPartNumber` (ignoring case).
    pub fn resolve_product(&self, sku: &str) -> Result<SubscribedSku, ClientError> {
        let products = self.subscribed_skus()?;
        find_product(products, sku)
    }

    // ----- Users -----

    /// `GET /v1.0/users/{id | userPrincipalName}` with every property, license assignment states
    /// and assigned plans included.
    pub fn user(&self, id_or_principal_name: &str) -> Result<User, ClientError> {
        let url = self.url(
            &["v1.0", "users", id_or_principal_name],
            &[("$select", ALL_USER_PROPERTIES)],
        );
        self.get(url)
    }

    /// `GET /v1.0/users/{id}/memberOf`: the groups the user is a direct member of (every page).
    pub fn user_member_of(&self, id_or_principal_name: &str) -> Result<Vec<Group>, ClientError> {
        let url = self.url(
            &["v1.0", "users", id_or_principal_name, "memberOf"],
            &[("$top", PAGE_SIZE)],
        );
        self.all_pages(url)?
            .into_iter()
            .map(|(url, value)| decode_value(&url, value))
            .collect()
    }

    /// `GET /licensd/v1/users/{id}/licenseAssignmentStates`: the user's states with licensd's
    /// explanation of each error; `None` when the server has no such endpoint (a server that only
    /// speaks Graph).
    pub fn explained_license_states(
        &self,
        id_or_principal_name: &str,
    ) -> Result<Option<Vec<ExplainedLicenseState>>, ClientError> {
        let url = self.url(
            &[
                "licensd",
                "v1",
                "users",
                id_or_principal_name,
                "licenseAssignmentStates",
            ],
            &[],
        );
        match self.get::<ExplainedLicenseStateList>(url) {
            Ok(list) => Ok(Some(list.value)),
            Err(error) if error.is_missing_endpoint() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `POST /v1.0/users/{id}/assignLicense`: adds or removes direct licenses (checked at once).
    /// The server answers with the user in Graph's default shape, without license states; read
    /// them with [`LicensdClient::user`].
    pub fn assign_user_license(
        &self,
        id_or_principal_name: &str,
        request: &AssignLicenseRequest,
    ) -> Result<(), ClientError> {
        let url = self.url(&["v1.0", "users", id_or_principal_name, "assignLicense"], &[]);
        self.send::<serde_json::Value>(Method::POST, url, Some(request))
            .map(drop)
    }

    /// `POST /v1.0/users/{id}/reprocessLicenseAssignment`: queues the user for evaluation.
    pub fn reprocess_user(&self, id_or_principal_name: &str) -> Result<(), ClientError> {
        let url = self.url(
            &[
                "v1.0",
                "users",
                id_or_principal_name,
                "reprocessLicenseAssignment",
            ],
            &[],
        );
        self.send::<serde_json::Value>(Method::POST, url, None::<&()>)
            .map(drop)
    }

    /// Every user of the tenant with its license states (every page; `assignedPlans` is not
    /// requested and comes back empty).
    pub fn users_with_license_states(&self) -> Result<Vec<User>, ClientError> {
        let url = self.url(
            &["v1.0", "users"],
            &[("$select", USER_PROPERTIES_WITH_STATES), ("$top", PAGE_SIZE)],
        );
        self.all_pages(url)?
            .into_iter()
            .map(|(url, value)| decode_user_without_plans(&url, value))
            .collect()
    }

    // ----- Groups -----

    /// `POST /v1.0/groups`.
    pub fn create_group(
        &self,
        request: &licensd_api_types::graph::CreateGroupRequest,
    ) -> Result<Group, ClientError> {
        self.send(Method::POST, self.url(&["v1.0", "groups"], &[]), Some(request))
    }

    /// `GET /v1.0/groups/{id}`.
    pub fn group(&self, group_id: Uuid) -> Result<Group, ClientError> {
        let url = self.url(&["v1.0", "groups", &group_id.to_string()], &[]);
        self.get(url)
    }

    /// The group with this id, or else the one group with exactly this display name (ignoring
    /// case).
    pub fn find_group(&self, id_or_display_name: &str) -> Result<Group, ClientError> {
        if let Ok(group_id) = Uuid::try_parse(id_or_display_name.trim()) {
            return self.group(group_id);
        }
        let filter = format!("displayName eq '{}'", id_or_display_name.replace('\'', "''"));
        let url = self.url(&["v1.0", "groups"], &[("$filter", &filter), ("$top", PAGE_SIZE)]);
        let mut groups: Vec<Group> = self
            .all_pages(url)?
            .into_iter()
            .map(|(url, value)| decode_value(&url, value))
            .collect::<Result<_, _>>()?;
        match groups.len() {
            0 => Err(ClientError::UnknownGroup {
                name: id_or_display_name.to_string(),
            }),
            1 => Ok(groups.remove(0)),
            count => Err(ClientError::AmbiguousGroup {
                name: id_or_display_name.to_string(),
                count,
                ids: groups
                    .iter()
                    .map(|group| group.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The number of members of a group (`$count=true` on `members`).
    pub fn group_member_count(&self, group_id: Uuid) -> Result<u64, ClientError> {
        let url = self.url(
            &["v1.0", "groups", &group_id.to_string(), "members"],
            &[("$select", "id"), ("$top", "1"), ("$count", "true")],
        );
        let request = self
            .http
            .request(Method::GET, url.clone())
            .header("ConsistencyLevel", "eventual");
        let response: DirectoryObjectCollectionResponse = self.execute(url.clone(), request)?;
        response.odata_count.ok_or_else(|| ClientError::InvalidResponse {
            url: url.to_string(),
            reason: "no @odata.count in the answer to $count=true".to_string(),
        })
    }

    /// `GET /v1.0/groups/{id}/membersWithLicenseErrors`: the members with an error on an
    /// assignment from this group, with their license states (every page; `assignedPlans` is not
    /// requested and comes back empty).
    pub fn group_members_with_license_errors(&self, group_id: Uuid) -> Result<Vec<User>, ClientError> {
        let url = self.url(
            &[
                "v1.0",
                "groups",
                &group_id.to_string(),
                "membersWithLicenseErrors",
            ],
            &[("$select", USER_PROPERTIES_WITH_STATES), ("$top", PAGE_SIZE)],
        );
        self.all_pages(url)?
            .into_iter()
            .map(|(url, value)| decode_user_without_plans(&url, value))
            .collect()
    }

    /// `GET /v1.0/groups?$filter=hasMembersWithLicenseErrors eq true`: the groups needing attention.
    pub fn groups_with_license_errors(&self) -> Result<Vec<Group>, ClientError> {
        let url = self.url(
            &["v1.0", "groups"],
            &[
                ("$filter", "hasMembersWithLicenseErrors eq true"),
                ("$top", PAGE_SIZE),
            ],
        );
        self.all_pages(url)?
            .into_iter()
            .map(|(url, value)| decode_value(&url, value))
            .collect()
    }

    /// `POST /v1.0/groups/{id}/assignLicense`: adds or removes the group's licenses; members are
    /// processed in the background (the answer's `licenseProcessingState`).
    pub fn assign_group_license(
        &self,
        group_id: Uuid,
        request: &AssignLicenseRequest,
    ) -> Result<Group, ClientError> {
        let url = self.url(&["v1.0", "groups", &group_id.to_string(), "assignLicense"], &[]);
        self.send(Method::POST, url, Some(request))
    }

    /// `POST /v1.0/groups/{id}/members/$ref`: adds a user or a group (by id) to a group.
    pub fn add_group_member(&self, group_id: Uuid, member_id: Uuid) -> Result<(), ClientError> {
        let url = self.url(&["v1.0", "groups", &group_id.to_string(), "members", "$ref"], &[]);
        let body = ReferenceRequest {
            odata_id: format!(
                "{}/v1.0/directoryObjects/{member_id}",
                self.server().trim_end_matches('/')
            ),
        };
        self.send::<serde_json::Value>(Method::POST, url, Some(&body))
            .map(drop)
    }

    /// `DELETE /v1.0/groups/{id}/members/{memberId}/$ref`: takes a user or a group out of a group.
    pub fn remove_group_member(&self, group_id: Uuid, member_id: Uuid) -> Result<(), ClientError> {
        let url = self.url(
            &[
                "v1.0",
                "groups",
                &group_id.to_string(),
                "members",
                &member_id.to_string(),
                "$ref",
            ],
            &[],
        );
        self.send::<serde_json::Value>(Method::DELETE, url, None::<&()>)
            .map(drop)
    }

    /// `POST /v1.0/groups/{id}/reprocessLicenseAssignment` (a licensd extension): queues every
    /// member and every user the group still grants licenses to.
    pub fn reprocess_group(&self, group_id: Uuid) -> Result<Group, ClientError> {
        let url = self.url(
            &[
                "v1.0",
                "groups",
                &group_id.to_string(),
                "reprocessLicenseAssignment",
            ],
            &[],
        );
        self.send(Method::POST, url, None::<&()>)
    }

    // ----- Tenant -----

    /// `GET /licensd/v1/overview`: counts, errors by kind, groups needing attention, seats;
    /// `None` when the server has no such endpoint.
    pub fn overview(&self) -> Result<Option<TenantOverview>, ClientError> {
        let url = self.url(&["licensd", "v1", "overview"], &[]);
        match self.get(url) {
            Ok(overview) => Ok(Some(overview)),
            Err(error) if error.is_missing_endpoint() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /licensd/v1/users/{id}/diagnosis`: the user's errors explained, with fixes and
    /// their predicted effect.
    pub fn user_diagnosis(&self, id_or_principal_name: &str) -> Result<UserDiagnosis, ClientError> {
        self.get(self.url(
            &["licensd", "v1", "users", id_or_principal_name, "diagnosis"],
            &[],
        ))
    }

    /// `GET /licensd/v1/groups/{id}/diagnosis`: a group's members in error, grouped by cause,
    /// with fixes (the group named by id, or by display name when unique).
    pub fn group_diagnosis(&self, id_or_display_name: &str) -> Result<GroupDiagnosis, ClientError> {
        self.get(self.url(&["licensd", "v1", "groups", id_or_display_name, "diagnosis"], &[]))
    }

    /// `POST /licensd/v1/whatif`: the predicted effect of changes; nothing is applied.
    pub fn what_if(&self, request: &WhatIfRequest) -> Result<WhatIfResponse, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "whatif"], &[]),
            Some(request),
        )
    }

    /// `POST /licensd/v1/changes`: applies changes in order (the "apply" of a fix).
    pub fn apply_changes(&self, request: &ApplyChangesRequest) -> Result<ApplyChangesResponse, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "changes"], &[]),
            Some(request),
        )
    }

    /// `GET /licensd/v1/advisor`: redundant licenses, seats of disabled accounts, add-on risks,
    /// products near exhaustion.
    pub fn advisor(&self) -> Result<AdvisorReport, ClientError> {
        self.get(self.url(&["licensd", "v1", "advisor"], &[]))
    }

    /// `PUT /licensd/v1/skus/{skuId}/price`: a product's price per seat and month.
    pub fn set_price(
        &self,
        sku_id: Uuid,
        request: &licensd_api_types::spend::SetPriceRequest,
    ) -> Result<licensd_api_types::spend::Price, ClientError> {
        self.send(
            Method::PUT,
            self.url(&["licensd", "v1", "skus", &sku_id.to_string(), "price"], &[]),
            Some(request),
        )
    }

    /// `GET /licensd/v1/spend/cost`: cost per product, source, department and company.
    pub fn cost_report(
        &self,
        inactive_days: u32,
    ) -> Result<licensd_api_types::spend::CostReport, ClientError> {
        self.get(self.url(
            &["licensd", "v1", "spend", "cost"],
            &[("inactiveDays", &inactive_days.to_string())],
        ))
    }

    /// `GET /licensd/v1/spend/idle`: idle seats with their reason.
    pub fn idle_seats(
        &self,
        inactive_days: u32,
    ) -> Result<licensd_api_types::spend::IdleSeatList, ClientError> {
        self.get(self.url(
            &["licensd", "v1", "spend", "idle"],
            &[("inactiveDays", &inactive_days.to_string())],
        ))
    }

    /// `POST /licensd/v1/migrations/directToGroup`: the coverage report, a dry run or the
    /// migration.
    pub fn direct_to_group(
        &self,
        request: &licensd_api_types::spend::DirectToGroupRequest,
    ) -> Result<licensd_api_types::spend::DirectToGroupReport, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "migrations", "directToGroup"], &[]),
            Some(request),
        )
    }

    /// `GET /licensd/v1/tokens`: the tenant's access tokens (Global Administrator only).
    pub fn access_tokens(&self) -> Result<AccessTokenList, ClientError> {
        self.get(self.url(&["licensd", "v1", "tokens"], &[]))
    }

    /// `POST /licensd/v1/tokens`: a new token, with its secret (shown once).
    pub fn create_access_token(
        &self,
        request: &CreateAccessToken,
    ) -> Result<CreatedAccessToken, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "tokens"], &[]),
            Some(request),
        )
    }

    /// `DELETE /licensd/v1/tokens/{id}`: revokes a token at once, on every instance.
    pub fn revoke_access_token(&self, token_id: &str) -> Result<(), ClientError> {
        self.send::<serde_json::Value>(
            Method::DELETE,
            self.url(&["licensd", "v1", "tokens", token_id], &[]),
            None::<&()>,
        )
        .map(drop)
    }

    /// `GET /licensd/v1/alertRules`: the tenant's license alert rules.
    pub fn alert_rules(&self) -> Result<licensd_api_types::alerts::AlertRuleList, ClientError> {
        self.get(self.url(&["licensd", "v1", "alertRules"], &[]))
    }

    /// `POST /licensd/v1/alertRules`: a new alert rule.
    pub fn create_alert_rule(
        &self,
        request: &licensd_api_types::alerts::CreateAlertRule,
    ) -> Result<licensd_api_types::alerts::AlertRule, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "alertRules"], &[]),
            Some(request),
        )
    }

    /// `DELETE /licensd/v1/alertRules/{id}`: removes an alert rule.
    pub fn delete_alert_rule(&self, rule_id: &str) -> Result<(), ClientError> {
        self.send::<serde_json::Value>(
            Method::DELETE,
            self.url(&["licensd", "v1", "alertRules", rule_id], &[]),
            None::<&()>,
        )
        .map(drop)
    }

    /// `GET /licensd/v1/reclamationPolicies`: the tenant's reclamation policies.
    pub fn reclamation_policies(
        &self,
    ) -> Result<licensd_api_types::reclamation::ReclamationPolicyList, ClientError> {
        self.get(self.url(&["licensd", "v1", "reclamationPolicies"], &[]))
    }

    /// `POST /licensd/v1/reclamationPolicies`: a new reclamation policy.
    pub fn create_reclamation_policy(
        &self,
        request: &licensd_api_types::reclamation::CreateReclamationPolicy,
    ) -> Result<licensd_api_types::reclamation::ReclamationPolicy, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "reclamationPolicies"], &[]),
            Some(request),
        )
    }

    /// `DELETE /licensd/v1/reclamationPolicies/{id}`: removes a policy and its notices.
    pub fn delete_reclamation_policy(&self, policy_id: &str) -> Result<(), ClientError> {
        self.send::<serde_json::Value>(
            Method::DELETE,
            self.url(&["licensd", "v1", "reclamationPolicies", policy_id], &[]),
            None::<&()>,
        )
        .map(drop)
    }

    /// `POST /licensd/v1/reclamationPolicies/{id}/run`: a dry run unless `dry_run` is false.
    pub fn run_reclamation_policy(
        &self,
        policy_id: &str,
        dry_run: bool,
    ) -> Result<licensd_api_types::reclamation::ReclamationRun, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "reclamationPolicies", policy_id, "run"], &[]),
            Some(&licensd_api_types::reclamation::RunReclamationPolicy {
                dry_run: Some(dry_run),
            }),
        )
    }

    /// `PATCH /licensd/v1/reclamationPolicies/{id}`: enables or disables a policy, or changes
    /// its notice period.
    pub fn update_reclamation_policy(
        &self,
        policy_id: &str,
        request: &licensd_api_types::reclamation::UpdateReclamationPolicy,
    ) -> Result<licensd_api_types::reclamation::ReclamationPolicy, ClientError> {
        self.send(
            Method::PATCH,
            self.url(&["licensd", "v1", "reclamationPolicies", policy_id], &[]),
            Some(request),
        )
    }

    /// `PUT /licensd/v1/reclamationPolicies/{id}/exemptions/{userId}`: the policy never acts on
    /// the user (its notices to them are withdrawn).
    pub fn exempt_from_reclamation(
        &self,
        policy_id: &str,
        user_id: &str,
    ) -> Result<licensd_api_types::reclamation::ReclamationPolicy, ClientError> {
        self.send(
            Method::PUT,
            self.url(
                &[
                    "licensd",
                    "v1",
                    "reclamationPolicies",
                    policy_id,
                    "exemptions",
                    user_id,
                ],
                &[],
            ),
            None::<&()>,
        )
    }

    /// `DELETE /licensd/v1/reclamationPolicies/{id}/exemptions/{userId}`: undoes an exemption.
    pub fn remove_reclamation_exemption(&self, policy_id: &str, user_id: &str) -> Result<(), ClientError> {
        self.send::<serde_json::Value>(
            Method::DELETE,
            self.url(
                &[
                    "licensd",
                    "v1",
                    "reclamationPolicies",
                    policy_id,
                    "exemptions",
                    user_id,
                ],
                &[],
            ),
            None::<&()>,
        )
        .map(drop)
    }

    /// `GET /licensd/v1/reclamationNotices`: seats the policies will act on, or to review.
    pub fn reclamation_notices(
        &self,
    ) -> Result<licensd_api_types::reclamation::ReclamationNoticeList, ClientError> {
        self.get(self.url(&["licensd", "v1", "reclamationNotices"], &[]))
    }

    /// `POST /licensd/v1/reclamations/{auditId}/revert`: restores what a reclamation removed.
    pub fn revert_reclamation(
        &self,
        audit_id: &str,
    ) -> Result<licensd_api_types::reclamation::ReclamationRevert, ClientError> {
        self.send(
            Method::POST,
            self.url(&["licensd", "v1", "reclamations", audit_id, "revert"], &[]),
            None::<&()>,
        )
    }

    // ----- HTTP -----

    /// The base address with `segments` appended (each percent-encoded as a path segment) and
    /// the query `pairs`.
    fn url(&self, segments: &[&str], pairs: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        self.send(Method::GET, url, None::<&()>)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let mut request = self.http.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        self.execute(url, request)
    }

    /// Sends a request and decodes a successful answer into `T`, or the error envelope into
    /// [`ClientError::Server`].
    fn execute<T: DeserializeOwned>(&self, url: Url, request: RequestBuilder) -> Result<T, ClientError> {
        let unreachable = |source: reqwest::Error| ClientError::Unreachable {
            server: self.server().to_string(),
            reason: error::transport_reason(&source),
            source,
        };
        let response = request.send().map_err(unreachable)?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let body = response.text().map_err(unreachable)?;
        if status.is_success() {
            let body = if body.trim().is_empty() { "null" } else { &body };
            return serde_json::from_str(body).map_err(|error| ClientError::InvalidResponse {
                url: url.to_string(),
                reason: error.to_string(),
            });
        }
        match serde_json::from_str::<ErrorResponse>(&body) {
            Ok(envelope) => Err(ClientError::Server {
                status: status.as_u16(),
                error: Box::new(envelope.error),
            }),
            Err(_) => Err(ClientError::UnexpectedStatus {
                url: url.to_string(),
                status: status.as_u16(),
                request_id,
                body_excerpt: error::excerpt(&body),
            }),
        }
    }

    /// Every item of a collection, following `@odata.nextLink` to the last page; each item with
    /// the address of its page (for error messages).
    fn all_pages(&self, first: Url) -> Result<Vec<(String, serde_json::Value)>, ClientError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let page: DirectoryObjectCollectionResponse = self.get(url.clone())?;
            let address = url.to_string();
            items.extend(page.value.into_iter().map(|item| (address.clone(), item)));
            if let Some(link) = page.odata_next_link {
                let parsed = Url::parse(&link).map_err(|error| ClientError::InvalidResponse {
                    url: address.clone(),
                    reason: format!("@odata.nextLink '{link}' is not an absolute URL: {error}"),
                })?;
                next = Some(parsed);
            }
        }
        Ok(items)
    }
}

/// `http://host:port[/prefix]`; a bare `host:port` is taken as `http://`.
fn parse_server_address(address: &str) -> Result<Url, ClientError> {
    let trimmed = address.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let invalid = |reason: String| ClientError::InvalidServerAddress {
        address: address.to_string(),
        reason,
    };
    let url = Url::parse(&with_scheme).map_err(|error| invalid(error.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().unwrap_or_default().is_empty() {
        return Err(invalid("no host name".to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a server address has no query or fragment".to_string()));
    }
    Ok(url)
}

/// The product named by `skuId` or `skuPartNumber` (ignoring case) among `products`.
pub fn find_product(mut products: Vec<SubscribedSku>, sku: &str) -> Result<SubscribedSku, ClientError> {
    let wanted = sku.trim();
    let by_id = Uuid::try_parse(wanted).ok();
    let known = products
        .iter()
        .map(|product| product.sku_part_number.clone())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(position) = products.iter().position(|product| Some(product.sku_id) == by_id) {
        return Ok(products.swap_remove(position));
    }
    // A part number names one product; when several share it, refuse rather than pick one.
    let mut matching: Vec<SubscribedSku> = products
        .into_iter()
        .filter(|product| product.sku_part_number.eq_ignore_ascii_case(wanted))
        .collect();
    if matching.len() > 1 {
        return Err(ClientError::AmbiguousProduct {
            sku: sku.to_string(),
            count: matching.len(),
            ids: matching
                .iter()
                .map(|product| product.sku_id.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    matching.pop().ok_or_else(|| ClientError::UnknownProduct {
        sku: sku.to_string(),
        known: if known.is_empty() {
            "none".to_string()
        } else {
            known
        },
    })
}

/// The ids of a product's service plans named by `servicePlanId` or `servicePlanName` (ignoring
/// case), in the order given, without repetitions.
pub fn find_service_plans(product: &SubscribedSku, plans: &[String]) -> Result<Vec<Uuid>, ClientError> {
    let mut found = Vec::new();
    for plan in plans {
        let wanted = plan.trim();
        let by_id = Uuid::try_parse(wanted).ok();
        let matching = product.service_plans.iter().find(|service_plan| {
            Some(service_plan.service_plan_id) == by_id
                || service_plan.service_plan_name.eq_ignore_ascii_case(wanted)
        });
        match matching {
            Some(service_plan) if !found.contains(&service_plan.service_plan_id) => {
                found.push(service_plan.service_plan_id)
            }
            Some(_) => {}
            None => {
                return Err(ClientError::UnknownServicePlan {
                    plan: plan.clone(),
                    sku_part_number: product.sku_part_number.clone(),
                    known: product
                        .service_plans
                        .iter()
                        .map(|service_plan| service_plan.service_plan_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
    Ok(found)
}

fn decode_value<T: DeserializeOwned>(url: &str, value: serde_json::Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|error| ClientError::InvalidResponse {
        url: url.to_string(),
        reason: error.to_string(),
    })
}

/// A user listed without `assignedPlans` (not selected): the list is filled in as empty so the
/// item is a [`User`].
fn decode_user_without_plans(url: &str, mut value: serde_json::Value) -> Result<User, ClientError> {
    if let Some(object) = value.as_object_mut() {
        object
            .entry("assignedPlans")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    decode_value(url, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_api_types::graph::{LicenseUnitsDetail, ServicePlanInfo};

    fn product(part_number: &str, sku_id: u128, plans: &[(&str, u128)]) -> SubscribedSku {
        SubscribedSku {
            id: String::new(),
            account_id: Uuid::nil(),
            account_name: String::new(),
            applies_to: "User".to_string(),
            capability_status: "Enabled".to_string(),
            consumed_units: 0,
            prepaid_units: LicenseUnitsDetail::default(),
            service_plans: plans
                .iter()
                .map(|(name, id)| ServicePlanInfo {
                    service_plan_id: Uuid::from_u128(*id),
                    service_plan_name: name.to_string(),
                    provisioning_status: "Success".to_string(),
                    applies_to: "User".to_string(),
                })
                .collect(),
            sku_id: Uuid::from_u128(sku_id),
            sku_part_number: part_number.to_string(),
            subscription_ids: Vec::new(),
        }
    }

    #[test]
    fn a_part_number_shared_by_two_products_is_refused_not_guessed() {
        let products = vec![
            product("EMS", 1, &[]),
            product("ems", 2, &[]),
            product("SPE_E3", 3, &[]),
        ];
        let error = find_product(products.clone(), "EMS").unwrap_err();
        assert!(
            matches!(&error, ClientError::AmbiguousProduct { count: 2, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains(&Uuid::from_u128(2).to_string()),
            "{error}"
        );
        let by_id = find_product(products.clone(), &Uuid::from_u128(2).to_string()).expect("by id");
        assert_eq!(by_id.sku_part_number, "ems");
        assert_eq!(
            find_product(products, "spe_e3").expect("unique").sku_id,
            Uuid::from_u128(3)
        );
    }

    #[test]
    fn server_addresses_get_a_scheme_and_keep_their_prefix() {
        let client = |address: &str| {
            LicensdClient::new(&ClientConfig {
                server: address.to_string(),
                token: None,
            })
        };
        let plain = client("127.0.0.1:8080").expect("valid");
        assert_eq!(plain.server(), "http://127.0.0.1:8080");
        assert_eq!(
            plain
                .url(&["v1.0", "users", "adele vance@contoso.com"], &[])
                .as_str(),
            "http://127.0.0.1:8080/v1.0/users/adele%20vance@contoso.com"
        );
        let prefixed = client("https://example.com/licensd/").expect("valid");
        assert_eq!(
            prefixed.url(&["v1.0", "groups"], &[("$top", "1")]).as_str(),
            "https://example.com/licensd/v1.0/groups?%24top=1"
        );
        for invalid in [
            "ftp://example.com",
            "http://",
            "http://h:1/?x=1",
            "http://h:notaport",
        ] {
            let error = client(invalid).expect_err(invalid);
            assert_eq!(error.kind(), FailureKind::Configuration, "{invalid}: {error}");
        }
        let token = LicensdClient::new(&ClientConfig {
            server: DEFAULT_SERVER.to_string(),
            token: Some("line\nbreak".to_string()),
        });
        assert!(matches!(token, Err(ClientError::InvalidToken)));
    }

    #[test]
    fn products_are_found_by_id_or_part_number_and_plans_by_id_or_name() {
        let products = vec![
            product("STANDARDPACK", 1, &[("EXCHANGE_S_STANDARD", 11)]),
            product(
                "ENTERPRISEPACK",
                2,
                &[("EXCHANGE_S_ENTERPRISE", 21), ("TEAMS1", 22)],
            ),
        ];
        let found = find_product(products.clone(), "enterprisepack").expect("by part number");
        assert_eq!(found.sku_id, Uuid::from_u128(2));
        let found = find_product(products.clone(), &Uuid::from_u128(1).to_string()).expect("by id");
        assert_eq!(found.sku_part_number, "STANDARDPACK");
        let error = find_product(products, "SPE_E5").expect_err("unknown");
        assert_eq!(error.kind(), FailureKind::Refused);
        assert!(
            error.to_string().contains("STANDARDPACK, ENTERPRISEPACK"),
            "{error}"
        );

        let plans = find_service_plans(
            &found,
            &["exchange_s_standard".to_string(), Uuid::from_u128(11).to_string()],
        )
        .expect("the same plan twice");
        assert_eq!(plans, vec![Uuid::from_u128(11)]);
        let error = find_service_plans(&found, &["TEAMS1".to_string()]).expect_err("not in E1");
        assert!(
            error
                .to_string()
                .contains("STANDARDPACK has no service plan 'TEAMS1'"),
            "{error}"
        );
    }

    #[test]
    fn users_listed_without_plans_decode_with_an_empty_plan_list() {
        let value = serde_json::json!({
            "@odata.type": "#microsoft.graph.user",
            "id": Uuid::from_u128(5).to_string(),
            "displayName": "Adele Vance",
            "userPrincipalName": "AdeleV@contoso.com",
            "mail": null,
            "accountEnabled": true,
            "usageLocation": "NL",
            "proxyAddresses": [],
            "assignedLicenses": [],
            "licenseAssignmentStates": []
        });
        let user = decode_user_without_plans("http://x", value).expect("a user");
        assert!(user.assigned_plans.is_empty());
        assert_eq!(user.usage_location.as_deref(), Some("NL"));
    }
}
