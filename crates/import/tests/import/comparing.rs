//! `--compare`: licensd's states next to Microsoft's recorded ones.

use licensd_import::{compare, DifferenceKind, RecordedState};

use crate::support::{contoso_user, fixture, import, MARKETING, OFFICE_365_E1};

fn recorded(state: &str, error: Option<&str>) -> Option<RecordedState> {
    Some(RecordedState {
        state: state.to_string(),
        error: error.map(str::to_string),
    })
}

#[test]
fn the_planted_difference_is_found() -> anyhow::Result<()> {
    // Oscar's E1 from Marketing: Microsoft recorded a CountViolation although E1 has free seats.
    let (export, import) = import(&fixture("contoso"))?;
    let comparison = compare(&export, &import.engine);
    let oscar: Vec<_> = comparison
        .differences
        .iter()
        .filter(|difference| difference.kind == DifferenceKind::StateDiffers)
        .collect();
    assert_eq!(oscar.len(), 1, "{:#?}", comparison.differences);
    let oscar = oscar[0];
    assert_eq!(oscar.user_id, contoso_user(11));
    assert_eq!(oscar.user_principal_name, "oscar@contoso.com");
    assert_eq!(
        (oscar.sku_id, oscar.assigned_by_group),
        (OFFICE_365_E1, Some(MARKETING))
    );
    assert_eq!(oscar.product, "Office 365 E1 (STANDARDPACK)");
    assert_eq!(oscar.source, "group \"Marketing\"");
    assert_eq!(oscar.microsoft, recorded("Error", Some("CountViolation")));
    assert_eq!(oscar.licensd, recorded("Active", None));
    assert_eq!(
        oscar.to_string(),
        "oscar@contoso.com - Office 365 E1 (STANDARDPACK) via group \"Marketing\": Microsoft Error \
         (CountViolation), licensd Active"
    );
    Ok(())
}

#[test]
fn assignments_licensd_could_not_load_are_listed_with_the_reason() -> anyhow::Result<()> {
    let (export, import) = import(&fixture("contoso"))?;
    let comparison = compare(&export, &import.engine);
    let only_in_microsoft: Vec<(String, Option<String>)> = comparison
        .differences
        .iter()
        .filter(|difference| difference.kind == DifferenceKind::OnlyInMicrosoft)
        .map(|difference| {
            (
                difference.user_principal_name.clone(),
                difference.explanation.clone(),
            )
        })
        .collect();
    assert_eq!(
        only_in_microsoft,
        [
            (
                "judy@contoso.com".to_string(),
                Some(
                    "the product is not in licensd's tenant (not in subscribedSkus, or skipped at import)"
                        .to_string()
                )
            ),
            (
                "mallory@contoso.com".to_string(),
                Some("the direct license was not loaded (see the import's skipped records)".to_string())
            ),
        ]
    );
    let summary = &comparison.summary;
    assert_eq!(summary.users_compared, 14);
    assert_eq!(summary.users_without_recorded_states, 1, "trent");
    assert_eq!(summary.users_not_imported, 1, "ivan");
    assert_eq!(summary.assignments_compared, 17);
    assert_eq!(summary.matching, 14);
    assert_eq!(
        (
            summary.state_differs,
            summary.only_in_microsoft,
            summary.only_in_licensd
        ),
        (1, 2, 0)
    );
    assert_eq!(summary.differing, 3);
    assert!(comparison.products.is_empty(), "{:?}", comparison.products);
    Ok(())
}

#[test]
fn a_missing_tenant_country_shows_up_with_licensds_explanation() -> anyhow::Result<()> {
    // The PowerShell export has no organization.json, so sam (no usage location) has none to inherit.
    let (export, import) = import(&fixture("powershell"))?;
    let comparison = compare(&export, &import.engine);
    let sam = comparison
        .differences
        .iter()
        .find(|difference| difference.kind == DifferenceKind::StateDiffers);
    let Some(sam) = sam else {
        panic!("{:#?}", comparison.differences)
    };
    assert_eq!(sam.user_principal_name, "sam@fabrikam.com");
    assert_eq!(sam.microsoft, recorded("Active", None));
    assert_eq!(
        sam.licensd,
        recorded("Error", Some("ProhibitedInUsageLocationViolation"))
    );
    assert!(
        sam.explanation
            .as_deref()
            .unwrap_or_default()
            .starts_with("No usage location"),
        "{:?}",
        sam.explanation
    );
    assert_eq!(comparison.summary.only_in_microsoft, 1, "sam's Company product");
    assert_eq!(
        comparison.products.len(),
        1,
        "E1: Microsoft counts sam, licensd does not"
    );
    assert_eq!(
        (
            comparison.products[0].microsoft_consumed_units,
            comparison.products[0].licensd_consumed_units
        ),
        (2, 1)
    );
    Ok(())
}
