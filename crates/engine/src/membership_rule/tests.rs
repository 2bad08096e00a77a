//! Parser and evaluator tests: every operator, precedence, quoting, null, `-any`/`-all`, and
//! the examples of Microsoft's documentation on dynamic membership rules.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::*;

#[derive(Default)]
struct TestUser {
    values: BTreeMap<&'static str, String>,
    enabled: bool,
    addresses: Vec<String>,
    groups: Vec<Uuid>,
}

impl TestUser {
    fn with(mut self, name: &'static str, value: &str) -> TestUser {
        self.values.insert(name, value.to_string());
        self
    }
}

impl RuleTarget for TestUser {
    fn text(&self, property: Property) -> Option<Cow<'_, str>> {
        let name = match property {
            Property::Attribute(attribute) => attribute.name(),
            Property::UsageLocation => "usageLocation",
            Property::UserPrincipalName => "userPrincipalName",
            Property::DisplayName => "displayName",
            Property::ObjectId => "objectId",
            _ => return None,
        };
        self.values
            .get(name)
            .map(|value| Cow::Owned(value.to_lowercase()))
    }
    fn account_enabled(&self) -> bool {
        self.enabled
    }
    fn proxy_addresses(&self) -> Vec<String> {
        self.addresses.iter().map(|a| a.to_lowercase()).collect()
    }
    fn member_of(&self) -> Vec<Uuid> {
        self.groups.clone()
    }
}

fn rule(text: &str) -> MembershipRule {
    MembershipRule::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn holds(text: &str, user: &TestUser) -> bool {
    rule(text).matches(user)
}

fn error(text: &str) -> RuleError {
    match MembershipRule::parse(text) {
        Ok(_) => panic!("{text} was accepted"),
        Err(error) => error,
    }
}

fn sales() -> TestUser {
    TestUser {
        enabled: true,
        addresses: vec![
            "SMTP:ann@contoso.com".to_string(),
            "smtp:ann@fabrikam.com".to_string(),
        ],
        ..TestUser::default()
    }
    .with("department", "Sales")
    .with("jobTitle", "SDE II")
    .with("country", "US")
    .with("city", "Lagos")
    .with("displayName", "David")
    .with("userPrincipalName", "ann@contoso.com")
    .with("usageLocation", "US")
    .with("extensionAttribute15", "Contractor")
}

#[test]
fn each_comparison_operator_holds_and_fails_as_documented() {
    let user = sales();
    let cases: &[(&str, bool)] = &[
        (r#"user.department -eq "Sales""#, true),
        (r#"user.department -eq "sales""#, true),
        (r#"user.department -eq "Marketing""#, false),
        (r#"user.department -ne "Marketing""#, true),
        (r#"user.department -ne "SALES""#, false),
        (r#"user.jobTitle -startsWith "SDE""#, true),
        (r#"user.jobTitle -startsWith "PM""#, false),
        (r#"user.jobTitle -notStartsWith "PM""#, true),
        (r#"user.jobTitle -notStartsWith "sde""#, false),
        (r#"user.userPrincipalName -endsWith "@contoso.com""#, true),
        (r#"user.userPrincipalName -notEndsWith "@contoso.com""#, false),
        (r#"user.city -contains "ago""#, true),
        (r#"user.city -contains "xyz""#, false),
        (r#"user.city -notContains "xyz""#, true),
        (r#"user.city -notContains "AGO""#, false),
        (r#"user.displayName -match "^Da.*""#, true),
        (r#"user.displayName -match ".*vid""#, true),
        (r#"user.displayName -match "^vid""#, false),
        (r#"user.displayName -notMatch "^vid""#, true),
        (r#"user.displayName -notMatch "^da""#, false),
        (
            r#"user.city -in ["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]"#,
            true,
        ),
        (r#"user.city -in ["Ibadan", "Kaduna"]"#, false),
        (r#"user.city -notIn ["Ibadan", "Kaduna"]"#, true),
        (r#"user.city -notIn ["LAGOS"]"#, false),
        ("user.accountEnabled -eq true", true),
        ("user.accountEnabled -eq false", false),
        ("user.accountEnabled -ne false", true),
        (r#"user.extensionAttribute15 -eq "Contractor""#, true),
        (r#"user.usageLocation -eq "US""#, true),
        // Operators without their hyphen, in any case, and the en dash of the documentation.
        (r#"user.department EQ "Sales""#, true),
        ("user.department \u{2013}eq \"Sales\"", true),
    ];
    for (text, expected) in cases {
        assert_eq!(holds(text, &user), *expected, "{text}");
    }
}

#[test]
fn null_is_the_absence_of_a_value() {
    let user = sales();
    assert!(holds("user.companyName -eq null", &user));
    assert!(!holds("user.companyName -ne null", &user));
    assert!(holds("user.department -ne null", &user));
    assert!(!holds("user.department -eq null", &user));
    // A missing value satisfies no positive operator and every negated one.
    assert!(!holds(r#"user.companyName -startsWith "C""#, &user));
    assert!(holds(r#"user.companyName -notStartsWith "C""#, &user));
    assert!(!holds(r#"user.companyName -in ["Contoso"]"#, &user));
    assert!(holds(r#"user.companyName -notIn ["Contoso"]"#, &user));
    assert!(holds(r#"user.companyName -ne "Contoso""#, &user));
    // "null" in quotes is the text.
    assert!(!holds(r#"user.companyName -eq "null""#, &user));
    assert_eq!(
        error(r#"user.companyName -startsWith null"#).message,
        "null is compared with -eq or -ne only"
    );
}

#[test]
fn precedence_is_comparison_then_not_then_and_then_or() {
    let user = sales();
    // -and binds tighter than -or: true -or (false -and false).
    assert!(holds(
        r#"user.department -eq "Sales" -or user.city -eq "Paris" -and user.country -eq "FR""#,
        &user
    ));
    // Parentheses change it: (true -or false) -and false.
    assert!(!holds(
        r#"(user.department -eq "Sales" -or user.city -eq "Paris") -and user.country -eq "FR""#,
        &user
    ));
    // -not applies to the next expression only.
    assert!(holds(
        r#"(user.department -eq "Sales") -and -not (user.jobTitle -startsWith "PM")"#,
        &user
    ));
    assert!(!holds(
        r#"-not user.department -eq "Sales" -or user.city -eq "Paris""#,
        &user
    ));
    // Documented examples.
    assert!(holds(
        r#"user.country –eq "US" –and (user.department –eq "Marketing" –or user.department –eq "Sales")"#,
        &user
    ));
    assert!(holds(
        r#"(user.department -eq "Sales") -or (user.department -eq "Marketing")"#,
        &user
    ));
    assert!(holds(
        r#"user.department -eq "Sales" -and user.city -in ["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]"#,
        &user
    ));
}

#[test]
fn any_and_all_range_over_addresses_and_groups() {
    let group = Uuid::from_u128(0xaaaa);
    let mut user = sales();
    user.groups = vec![group];
    assert!(holds(
        r#"(user.proxyAddresses -any (_ -contains "contoso"))"#,
        &user
    ));
    assert!(holds(
        r#"user.proxyAddresses -any (_ -startsWith "smtp:ann")"#,
        &user
    ));
    assert!(!holds(
        r#"user.proxyAddresses -all (_ -contains "contoso")"#,
        &user
    ));
    assert!(holds(
        r#"user.proxyAddresses -all (_ -startsWith "smtp:")"#,
        &user
    ));
    let member_of = format!("user.memberof -any (group.objectId -in ['{group}'])");
    assert!(holds(&member_of, &user));
    let other = Uuid::from_u128(0xbbbb);
    assert!(!holds(
        &format!("user.memberOf -any (group.objectId -in ['{other}'])"),
        &user
    ));
    assert_eq!(rule(&member_of).referenced_groups(), [group]);
    // An empty collection: -any is false, -all is true.
    let nobody = TestUser::default();
    assert!(!holds(r#"user.proxyAddresses -any (_ -contains "x")"#, &nobody));
    assert!(holds(r#"user.proxyAddresses -all (_ -contains "x")"#, &nobody));
}

#[test]
fn quoting_follows_the_documentation() {
    let user = TestUser::default()
        .with("department", "\"Sales\"")
        .with("companyName", "O'Brien & Co");
    // A value that contains double quotes: `"Sales`".
    assert!(holds(r#"user.department -eq `"Sales`""#, &user));
    // A double quote inside a double-quoted string: `".
    assert!(holds(r#"user.department -eq "`"Sales`"""#, &user));
    // Single-quoted strings double their single quotes.
    assert!(holds(r#"user.companyName -in ['O''Brien & Co']"#, &user));
}

#[test]
fn a_rule_says_which_properties_it_reads() {
    let parsed = rule(
        r#"user.department -eq "Sales" -and (user.accountEnabled -eq true -or user.proxyAddresses -any (_ -contains "x"))"#,
    );
    let reads = parsed.reads();
    assert!(reads.contains(Property::Attribute(UserAttribute::DEPARTMENT)));
    assert!(reads.contains(Property::AccountEnabled));
    assert!(reads.contains(Property::ProxyAddresses));
    assert!(!reads.contains(Property::Attribute(UserAttribute::CITY)));
    assert!(!reads.contains(Property::MemberOf));
    assert!(!reads.intersects(PropertySet::of([Property::DisplayName])));
}

#[test]
fn invalid_rules_are_refused_at_their_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "the rule is empty"),
        (r#"user.departmnt -eq "Sales""#, 1, "unknown property"),
        (r#"user.department -equals "Sales""#, 17, "unknown operator"),
        (
            r#"user.department -eq Sales"#,
            21,
            "expected a value in double quotes",
        ),
        (r#"user.department -eq "Sales"#, 21, "no closing double quote"),
        (r#"(user.department -eq "Sales""#, 29, "never closed"),
        (r#"user.department -eq "Sales")"#, 28, "unexpected ')'"),
        (
            r#"user.department -eq "Sales" user.city -eq "Paris""#,
            29,
            "join expressions with -and or -or",
        ),
        (
            r#"user.department -and "Sales""#,
            17,
            "a comparison operator was expected",
        ),
        (r#"user.city -in "Lagos""#, 15, "takes a list in brackets"),
        (r#"user.accountEnabled -eq "yes""#, 25, "true or false"),
        (
            r#"user.department -eq true"#,
            21,
            "put the value in double quotes",
        ),
        (r#"user.displayName -match "(""#, 25, "invalid regular expression"),
        (r#"user.proxyAddresses -contains "x""#, 21, "-any or -all"),
        (r#"user.department -any (_ -eq "x")"#, 17, "multi-valued"),
        (r#"user.proxyAddresses -any (user.city -eq "x")"#, 27, "written _"),
        (
            r#"user.memberOf -any (group.objectId -in ['not-a-guid'])"#,
            41,
            "not a group's object id",
        ),
        (
            r#"device.deviceOSType -eq "Windows""#,
            1,
            "device rules are not supported",
        ),
        (
            r#"user.assignedPlans -any (assignedPlan.capabilityStatus -eq "Enabled")"#,
            1,
            "assignedPlans is not supported",
        ),
        (
            r#"user.department -eq "Sales" -and"#,
            33,
            "ends where an expression was expected",
        ),
        ("user.department -eq \"Sales\" ~", 29, "unexpected character"),
    ];
    for (text, position, message) in cases {
        let refused = error(text);
        assert_eq!(refused.position, *position, "{text}: {refused}");
        assert!(
            refused.message.contains(message),
            "{text}: {} does not contain {message}",
            refused.message
        );
    }
    let long = format!(r#"user.department -eq "{}""#, "x".repeat(MAX_RULE_LENGTH));
    assert!(error(&long).message.contains("at most 3072 characters"));
    let deep = format!("{}user.city -eq \"x\"{}", "(".repeat(100), ")".repeat(100));
    assert!(error(&deep).message.contains("nest at most"));
}
