//! License alert shapes: the rules an administrator manages under `/licensd/v1/alertRules`, and
//! the bodies posted to a rule's webhook — licensd's own JSON document ([`AlertPayload`]), a
//! Slack incoming webhook message (`text` as the notification fallback plus `blocks`,
//! [`slack_message`]) and a Microsoft Teams incoming webhook message (an Adaptive Card in
//! `attachments`, [`teams_message`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// An alert rule: what it watches (`condition` and its parameters) and where it is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    pub id: Uuid,
    pub display_name: String,
    /// `licenseErrorEntered`, `licenseErrorLeft`, `seats`, `subscriptionEnding`,
    /// `processingLag`, `reclamationNoticed` or `reclamationActed`.
    #[schema(example = "licenseErrorEntered")]
    pub condition: String,
    /// Error rules: the error kinds watched (`CountViolation`, ...); empty: every kind.
    pub error_kinds: Vec<String>,
    /// Error rules: only assignments through this group (absent: every group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    /// Error, seat and reclamation rules: only this product (absent: every product).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<Uuid>,
    /// Reclamation rules: only this reclamation policy (absent: every policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<Uuid>,
    /// Seat rules: `percentUsed`, `noneAvailable` or `overAllocated`.
    pub threshold: Option<String>,
    /// Seat rules with `percentUsed`: the percentage of purchased seats consumed (1–100).
    pub percent: Option<u32>,
    /// `subscriptionEnding`: days before the end of the subscription's term.
    pub days: Option<u32>,
    /// `processingLag`: seconds the oldest queued user may wait.
    pub seconds: Option<u32>,
    /// Error rules: the matches of this many seconds are sent as one message when the window
    /// closes; 0: one message per change (per write or processing step). Other rules: 0.
    #[serde(default)]
    pub digest_window_seconds: u32,
    pub webhook_url: String,
    /// `json`, `slack` or `teams`.
    #[schema(example = "slack")]
    pub format: String,
    pub created_date_time: String,
}

/// The tenant's alert rules, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertRuleList {
    pub value: Vec<AlertRule>,
}

/// `POST /licensd/v1/alertRules`. Its OpenAPI schema ([`CreateAlertRule::schema`]) is one
/// shape per condition, each stating exactly the parameters that condition takes (the server
/// refuses a parameter that does not apply to the condition).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAlertRule {
    /// 1–128 characters.
    pub display_name: String,
    /// `licenseErrorEntered`, `licenseErrorLeft`, `seats`, `subscriptionEnding`,
    /// `processingLag`, `reclamationNoticed` or `reclamationActed`.
    pub condition: String,
    /// Error rules only: the error kinds watched; empty: every kind.
    #[serde(default)]
    pub error_kinds: Vec<String>,
    /// Error rules only.
    #[serde(default)]
    pub group_id: Option<Uuid>,
    /// Error, seat and reclamation rules only.
    #[serde(default)]
    pub sku_id: Option<Uuid>,
    /// Reclamation rules only: one reclamation policy (absent: every policy).
    #[serde(default)]
    pub policy_id: Option<Uuid>,
    /// `seats` rules only: `percentUsed`, `noneAvailable` or `overAllocated`.
    #[serde(default)]
    pub threshold: Option<String>,
    /// `seats` rules with `percentUsed` only (1–100).
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    pub percent: Option<u32>,
    /// `subscriptionEnding` rules only (1–3650).
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    pub days: Option<u32>,
    /// `processingLag` rules only (1–604800).
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    pub seconds: Option<u32>,
    /// Error rules only (0–86400, default 60): the matches of this many seconds are sent as one
    /// message when the window closes; 0 sends one per change.
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    pub digest_window_seconds: Option<u32>,
    /// An `https` (or `http`) URL: a Slack or Teams incoming webhook, or any endpoint.
    pub webhook_url: String,
    /// `json` (default), `slack` or `teams`, in any case.
    #[serde(default)]
    pub format: Option<String>,
}

/// The error kinds an error rule may name.
pub const ALERT_ERROR_KINDS: [&str; 5] = [
    "CountViolation",
    "MutuallyExclusiveViolation",
    "DependencyViolation",
    "ProhibitedInUsageLocationViolation",
    "UniquenessViolation",
];

/// The webhook URLs the schema documents: `http` or `https`, a host name of lower-case letters
/// and digits whose last label starts with a letter (an IP literal may be refused by the SSRF
/// guard: link-local and metadata addresses), an optional port and path. The server accepts any
/// `http(s)` URL the guard allows; this is the part of it a schema can state without naming
/// addresses.
pub const WEBHOOK_URL_PATTERN: &str =
    "^https?://(?:[a-z0-9]{1,30}\\.){0,4}[a-z][a-z0-9]{0,30}(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~-]{0,40}){0,8}$";

mod create_alert_rule_schema {
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
        SchemaType, Type,
    };
    use utoipa::openapi::{RefOr, Schema};

    use super::{ALERT_ERROR_KINDS, WEBHOOK_URL_PATTERN};

    fn string() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(SchemaType::Type(Type::String))
    }

    fn one_of(values: &[&str]) -> ObjectBuilder {
        string().enum_values(Some(values.iter().copied()))
    }

    fn null() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Null))
            .description(Some("Does not apply to this condition: absent or null."))
    }

    fn integer(minimum: u32, maximum: u32) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(minimum))
            .maximum(Some(maximum))
    }

    fn optional_uuid(description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .description(Some(description))
    }

    /// The parameters of a condition: `(name, schema, required)`; every other parameter is
    /// stated as null.
    fn rule(description: &str, conditions: &[&str], parameters: Vec<(&str, ObjectBuilder, bool)>) -> Schema {
        let mut object = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(description))
            .property(
                "displayName",
                string()
                    .max_length(Some(128))
                    .pattern(Some("\\S"))
                    .description(Some("1–128 characters (leading and trailing spaces are trimmed)."))
                    .examples(["Users without a seat"]),
            )
            .required("displayName")
            .property("condition", one_of(conditions))
            .required("condition")
            .property(
                "webhookUrl",
                string()
                    .max_length(Some(2_048))
                    .pattern(Some(WEBHOOK_URL_PATTERN))
                    .description(Some(
                        "An https (or http) URL: a Slack or Teams incoming webhook, or any endpoint; not a link-local or metadata address.",
                    ))
                    .examples(["https://hooks.slack.com/services/T000/B000/XXXX"]),
            )
            .required("webhookUrl")
            .property(
                "format",
                ObjectBuilder::new()
                    .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
                    .pattern(Some(
                        "^(?:[Jj][Ss][Oo][Nn]|[Ss][Ll][Aa][Cc][Kk]|[Tt][Ee][Aa][Mm][Ss])$",
                    ))
                    .description(Some("json (default), slack or teams, in any case.")),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        // `errorKinds` is an array: the error shape replaces this one (no kind: every kind).
        object = object.property(
            "errorKinds",
            ArrayBuilder::new()
                .items(string())
                .max_items(Some(0))
                .description(Some("Does not apply to this condition: absent or empty.")),
        );
        let names = [
            "groupId",
            "skuId",
            "policyId",
            "threshold",
            "percent",
            "days",
            "seconds",
            "digestWindowSeconds",
        ];
        let mut parameters = parameters;
        for name in names {
            match parameters.iter().position(|(parameter, _, _)| *parameter == name) {
                Some(index) => {
                    let (_, schema, required) = parameters.swap_remove(index);
                    object = object.property(name, schema);
                    if required {
                        object = object.required(name);
                    }
                }
                None => object = object.property(name, null()),
            }
        }
        Schema::Object(object.build())
    }

    pub(super) fn schema() -> RefOr<Schema> {
        let errors = rule(
            "A user enters (licenseErrorEntered) or leaves (licenseErrorLeft) a license error, optionally of some kinds, through one group, of one product.",
            &["licenseErrorEntered", "licenseErrorLeft"],
            vec![
                ("groupId", optional_uuid("Only assignments through this group (it must exist)."), false),
                ("skuId", optional_uuid("Only this product (it must exist)."), false),
                (
                    "digestWindowSeconds",
                    integer(0, 86_400).description(Some(
                        "The matches of this many seconds are sent as one message (count, first users, the window's start and end) when the window closes; 0: one message per change. Default 60.",
                    )),
                    false,
                ),
            ],
        );
        // Arrays are built apart (an ObjectBuilder cannot hold one): added to the error shape.
        let errors = match errors {
            Schema::Object(mut object) => {
                object.properties.insert(
                    "errorKinds".to_string(),
                    RefOr::T(Schema::Array(
                        ArrayBuilder::new()
                            .items(one_of(&ALERT_ERROR_KINDS))
                            .description(Some("The error kinds watched; empty or absent: every kind."))
                            .build(),
                    )),
                );
                Schema::Object(object)
            }
            other => other,
        };
        let sku = || optional_uuid("Only this product (it must exist); absent or null: every product.");
        let percent_used = rule(
            "A product's consumed seats reach a percentage of the purchased ones.",
            &["seats"],
            vec![
                ("skuId", sku(), false),
                ("threshold", one_of(&["percentUsed"]), true),
                ("percent", integer(1, 100), true),
            ],
        );
        let seats = rule(
            "A product has no seat left (noneAvailable) or more consumed than purchased (overAllocated).",
            &["seats"],
            vec![
                ("skuId", sku(), false),
                ("threshold", one_of(&["noneAvailable", "overAllocated"]), true),
            ],
        );
        let ending = rule(
            "A subscription's term ends within some days.",
            &["subscriptionEnding"],
            vec![("days", integer(1, 3_650), true)],
        );
        let lag = rule(
            "The oldest queued user has waited longer than some seconds.",
            &["processingLag"],
            vec![("seconds", integer(1, 604_800), true)],
        );
        let reclamation = rule(
            "A reclamation policy's run gives seats a notice (reclamationNoticed: once per notice) or reclaims them (reclamationActed), optionally of one product or one policy.",
            &["reclamationNoticed", "reclamationActed"],
            vec![
                ("skuId", sku(), false),
                (
                    "policyId",
                    optional_uuid("Only this reclamation policy (it must exist); absent or null: every policy."),
                    false,
                ),
            ],
        );
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(errors)
                .item(percent_used)
                .item(seats)
                .item(ending)
                .item(lag)
                .item(reclamation)
                .description(Some(
                    "An alert rule: one shape per condition, each with exactly the parameters it takes (a parameter that does not apply is refused, unless null).",
                ))
                .build(),
        ))
    }
}

impl utoipa::PartialSchema for CreateAlertRule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        create_alert_rule_schema::schema()
    }
}

impl ToSchema for CreateAlertRule {}

/// One user's transition named in an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertUser {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// The group the assignment comes through; `null` for a direct assignment.
    pub group_id: Option<Uuid>,
    /// The error entered or left (`CountViolation`, ...).
    pub error: String,
}

/// A product's seats named in an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertProduct {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub prepaid_units: u32,
    pub consumed_units: u32,
}

/// A seat named in a reclamation alert: given a notice, or reclaimed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertReclamation {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub policy_id: Uuid,
    pub policy_name: String,
    /// `inactive`, `disabled` or `left`.
    pub reason: String,
    /// When the seat will be (`reclamationNoticed`) or was (`reclamationActed`) reclaimed.
    pub action_date_time: String,
}

/// The body posted for a rule in the `json` format (and what the Slack and Teams messages
/// are rendered from).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertPayload {
    /// The same for every delivery attempt of this alert, different for every alert: receivers
    /// drop an alert they already have.
    pub alert_id: String,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub condition: String,
    pub occurred_date_time: String,
    /// A digest window's start (its first match) and end, when the alert gathers the matches
    /// of a rule's window; absent when it reports one change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end_date_time: Option<String>,
    /// One sentence, e.g. "200 users entered CountViolation".
    pub summary: String,
    /// How many users (or products) the alert is about; `users` and `products` name the first
    /// ten.
    pub count: u64,
    pub users: Vec<AlertUser>,
    pub products: Vec<AlertProduct>,
    /// Reclamation rules: the seats given a notice or reclaimed (the first ten; absent for
    /// other rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reclamations: Vec<AlertReclamation>,
}

/// Slack's limit on a section's text is 3,000 characters; lines beyond this are left out.
const SLACK_SECTION_BUDGET: usize = 2_800;

/// `&`, `<` and `>` are markup in Slack text (`<!channel>` mentions everyone): escaped.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The payload's detail lines: one per user or product named.
pub fn detail_lines(payload: &AlertPayload) -> Vec<String> {
    let users = payload.users.iter().map(|user| {
        format!(
            "{} — {} — {}",
            user.user_principal_name, user.sku_part_number, user.error
        )
    });
    let products = payload.products.iter().map(|product| {
        format!(
            "{}: {} of {} seats used",
            product.sku_part_number, product.consumed_units, product.prepaid_units
        )
    });
    let reclamations = payload.reclamations.iter().map(|seat| {
        format!(
            "{} — {} — {} — reclaimed {}",
            seat.user_principal_name,
            seat.sku_part_number,
            seat.reason,
            seat.action_date_time.get(..10).unwrap_or(&seat.action_date_time)
        )
    });
    users.chain(products).chain(reclamations).collect()
}

/// When the alert happened: its time, or its digest window's start and end.
fn when(payload: &AlertPayload) -> String {
    match (&payload.window_start_date_time, &payload.window_end_date_time) {
        (Some(start), Some(end)) => format!("{start} – {end}"),
        _ => payload.occurred_date_time.clone(),
    }
}

fn more_line(payload: &AlertPayload, named: usize) -> Option<String> {
    let more = payload.count.saturating_sub(named as u64);
    (more > 0).then(|| format!("… and {more} more"))
}

/// A Slack incoming webhook message: `text` (shown in notifications) and `blocks` (a header
/// section, the named users or products, and a context line with the tenant and alert id).
pub fn slack_message(payload: &AlertPayload) -> Value {
    let mut details = String::new();
    let lines = detail_lines(payload);
    let mut named = 0;
    for line in &lines {
        let line = format!("• {}\n", slack_escape(line));
        if details.len() + line.len() > SLACK_SECTION_BUDGET {
            break;
        }
        details.push_str(&line);
        named += 1;
    }
    if !lines.is_empty() {
        if let Some(more) = more_line(payload, named) {
            details.push_str(&more);
        }
    }
    let mut blocks = vec![json!({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": format!("*{}*\n{}", slack_escape(&payload.rule_name), slack_escape(&payload.summary)),
        }
    })];
    if !details.trim().is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": details.trim_end() }
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!(
                "licensd · {} · {} · alert {}",
                slack_escape(&payload.tenant_name),
                when(payload),
                slack_escape(&payload.alert_id)
            ),
        }]
    }));
    json!({
        "text": format!("{}: {}", payload.rule_name, payload.summary),
        "blocks": blocks,
    })
}

/// A Microsoft Teams incoming webhook message: one Adaptive Card (version 1.4) in
/// `attachments`, with the rule as title, the summary, the named users or products, and the
/// tenant and alert id as facts.
pub fn teams_message(payload: &AlertPayload) -> Value {
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": payload.rule_name,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true,
        }),
        json!({ "type": "TextBlock", "text": payload.summary, "wrap": true }),
    ];
    let lines = detail_lines(payload);
    if !lines.is_empty() {
        let mut text = lines
            .iter()
            .map(|line| format!("- {line}"))
            .collect::<Vec<_>>()
            .join("\n");
        if let Some(more) = more_line(payload, lines.len()) {
            text.push_str(&format!("\n\n{more}"));
        }
        body.push(json!({ "type": "TextBlock", "text": text, "wrap": true }));
    }
    body.push(json!({
        "type": "FactSet",
        "facts": [
            { "title": "Tenant", "value": payload.tenant_name },
            { "title": "When", "value": when(payload) },
            { "title": "Alert", "value": payload.alert_id },
        ]
    }));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(count: u64, users: usize) -> AlertPayload {
        AlertPayload {
            alert_id: "tenant/rule/7".to_string(),
            tenant_id: Uuid::from_u128(1),
            tenant_name: "Contoso <Ltd>".to_string(),
            rule_id: Uuid::from_u128(2),
            rule_name: "Seats & errors".to_string(),
            condition: "licenseErrorEntered".to_string(),
            occurred_date_time: "2026-12-05T06:00:00Z".to_string(),
            window_start_date_time: None,
            window_end_date_time: None,
            summary: format!("{count} users entered CountViolation"),
            count,
            users: (0..users)
                .map(|index| AlertUser {
                    user_id: Uuid::from_u128(index as u128),
                    user_principal_name: format!("user{index}@contoso.com"),
                    sku_id: Uuid::from_u128(9),
                    sku_part_number: "ENTERPRISEPACK".to_string(),
                    group_id: None,
                    error: "CountViolation".to_string(),
                })
                .collect(),
            products: Vec::new(),
            reclamations: Vec::new(),
        }
    }

    #[test]
    fn reclamation_seats_are_detail_lines_with_their_date() {
        let mut noticed = payload(2, 0);
        noticed.condition = "reclamationNoticed".to_string();
        noticed.reclamations = vec![AlertReclamation {
            user_id: Uuid::from_u128(5),
            user_principal_name: "leaver@contoso.com".to_string(),
            sku_id: Uuid::from_u128(9),
            sku_part_number: "ENTERPRISEPACK".to_string(),
            policy_id: Uuid::from_u128(3),
            policy_name: "Leavers".to_string(),
            reason: "left".to_string(),
            action_date_time: "2026-12-19T06:00:00Z".to_string(),
        }];
        assert_eq!(
            detail_lines(&noticed),
            vec!["leaver@contoso.com — ENTERPRISEPACK — left — reclaimed 2026-12-19".to_string()]
        );
        let details = slack_message(&noticed)["blocks"][1]["text"]["text"]
            .as_str()
            .expect("details")
            .to_string();
        assert!(details.contains("leaver@contoso.com"), "{details}");
        assert!(details.ends_with("… and 1 more"), "{details}");
        let json = serde_json::to_value(&noticed).expect("json");
        assert_eq!(json["reclamations"][0]["policyName"], "Leavers");
        assert!(serde_json::to_value(payload(1, 1))
            .expect("json")
            .get("reclamations")
            .is_none());
    }

    #[test]
    fn a_slack_message_has_a_fallback_text_and_escaped_blocks() {
        let message = slack_message(&payload(200, 10));
        assert_eq!(
            message["text"],
            "Seats & errors: 200 users entered CountViolation"
        );
        let blocks = message["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "section");
        assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
        assert!(blocks[0]["text"]["text"]
            .as_str()
            .expect("text")
            .starts_with("*Seats &amp; errors*"));
        let details = blocks[1]["text"]["text"].as_str().expect("details");
        assert!(details.contains("user0@contoso.com"));
        assert!(details.ends_with("… and 190 more"));
        assert!(blocks[2]["elements"][0]["text"]
            .as_str()
            .expect("context")
            .contains("Contoso &lt;Ltd&gt;"));
    }

    #[test]
    fn a_teams_message_carries_one_adaptive_card() {
        let message = teams_message(&payload(3, 3));
        assert_eq!(message["type"], "message");
        let attachments = message["attachments"].as_array().expect("attachments");
        assert_eq!(attachments.len(), 1);
        assert_eq!(
            attachments[0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachments[0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(
            card["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        let body = card["body"].as_array().expect("body");
        assert_eq!(body[0]["text"], "Seats & errors");
        assert_eq!(body[1]["text"], "3 users entered CountViolation");
        assert!(body[2]["text"]
            .as_str()
            .expect("lines")
            .contains("user2@contoso.com"));
        assert_eq!(body[3]["type"], "FactSet");
    }
}
