//! Reading exports: paging, both member layouts, PowerShell's shapes and encodings, and clear
//! refusals of broken JSON, invalid GUIDs and missing files.

use licensd_import::{read_export, ImportError, JsonProblem, NoProgress, ProgressStep, ReadNote};

use crate::support::{contoso_user, copy_directory, fixture, read, RecordedProgress, MARKETING, SALES};

#[test]
fn pages_are_read_in_page_order() -> anyhow::Result<()> {
    let export = read(&fixture("contoso"))?;
    let users: Vec<_> = export.users.iter().map(|user| user.value.id.0).collect();
    let expected: Vec<_> = (1..=16).map(contoso_user).collect();
    assert_eq!(users, expected);
    assert_eq!(export.subscribed_skus.len(), 4);
    assert_eq!(export.groups.len(), 6);
    let file_names: Vec<String> = export
        .files
        .iter()
        .map(|file| {
            file.path
                .strip_prefix(fixture("contoso"))
                .unwrap_or(&file.path)
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        file_names,
        [
            "organization.json",
            "subscribedSkus.json",
            "users.json",
            "users.2.json",
            "groups.json",
            "groupMembers.json",
            "groups/5a1e5000-0000-4000-8000-000000000001/members.json",
            "groups/5a1e5000-0000-4000-8000-000000000001/members.2.json",
        ]
    );
    assert!(export.notes.is_empty(), "{:?}", export.notes);
    assert_eq!(
        export.users[6].origin.record, 1,
        "grace is the first record of users.2.json"
    );
    Ok(())
}

#[test]
fn members_come_from_both_layouts_in_group_order() -> anyhow::Result<()> {
    let export = read(&fixture("contoso"))?;
    let groups: Vec<_> = export.group_members.iter().map(|group| group.group_id).collect();
    assert_eq!(groups.first(), Some(&SALES), "groups.json order first");
    assert_eq!(groups.get(1), Some(&MARKETING));
    let sales: Vec<_> = export.group_members[0]
        .members
        .iter()
        .map(|member| member.value.id.0)
        .collect();
    assert_eq!(
        sales,
        [
            contoso_user(1),
            contoso_user(2),
            contoso_user(3),
            contoso_user(4),
            contoso_user(6),
            MARKETING
        ],
        "both pages of groups/<id>/members, in page order"
    );
    assert_eq!(
        export.group_members[1].members.len(),
        6,
        "Marketing from groupMembers.json"
    );
    assert_eq!(
        export.group_members.len(),
        6,
        "5 groups with members + 1 group missing from groups.json"
    );
    Ok(())
}

#[test]
fn broken_json_is_refused_naming_the_file_line_and_column() {
    let error = read(&fixture("broken-json")).err();
    let Some(ImportError::Json {
        file,
        problem,
        line,
        column,
        record,
        ..
    }) = &error
    else {
        panic!("expected a JSON error, got {error:?}");
    };
    assert!(file.ends_with("broken-json/users.json"));
    assert_eq!(*problem, JsonProblem::BrokenJson);
    assert_eq!((*line, *column), (12, 7));
    assert_eq!(*record, Some(2));
    let message = error.map(|error| error.to_string()).unwrap_or_default();
    assert!(
        message.contains("users.json: broken JSON at line 12, column 7 (record 2): expected `,` or `}`"),
        "{message}"
    );
}

#[test]
fn an_invalid_guid_is_refused_naming_the_file_position_and_value() {
    let error = read(&fixture("invalid-guid")).err();
    let message = error.as_ref().map(|error| error.to_string()).unwrap_or_default();
    assert!(
        matches!(
            error,
            Some(ImportError::Json {
                problem: JsonProblem::InvalidValue,
                line: 14,
                record: Some(2),
                ..
            })
        ),
        "{error:?}"
    );
    assert!(
        message.contains("invalid-guid/users.json: invalid value at line 14"),
        "{message}"
    );
    assert!(
        message.contains(
            "invalid GUID \"18181a46-0d4e-45cd-891e-60aabd171b4\": it has 35 characters, a GUID has 36"
        ),
        "{message}"
    );
}

#[test]
fn an_export_without_users_is_refused() {
    let error = read(&fixture("missing-users")).err();
    assert!(
        matches!(
            error,
            Some(ImportError::MissingFile {
                name: "users.json",
                ..
            })
        ),
        "{error:?}"
    );
    let message = error.map(|error| error.to_string()).unwrap_or_default();
    assert!(message.contains("the export has no users.json"), "{message}");
}

#[test]
fn powershell_shapes_are_read() -> anyhow::Result<()> {
    // A UTF-8 byte-order mark, a single object instead of an array, bare arrays, PascalCase
    // property names and `AdditionalProperties`, as `ConvertTo-Json` writes them.
    let export = read(&fixture("powershell"))?;
    assert_eq!(export.subscribed_skus.len(), 2);
    assert_eq!(
        export.subscribed_skus[0].value.sku_part_number.as_deref(),
        Some("STANDARDPACK")
    );
    assert_eq!(
        export.subscribed_skus[0]
            .value
            .prepaid_units
            .as_ref()
            .and_then(|units| units.enabled),
        Some(2)
    );
    assert_eq!(export.users.len(), 2);
    assert_eq!(
        export.users[0].value.user_principal_name.as_deref(),
        Some("pat@fabrikam.com")
    );
    assert_eq!(export.users[1].value.usage_location, None);
    let states = export.users[1]
        .value
        .license_assignment_states
        .clone()
        .unwrap_or_default();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].error.as_deref(), Some("Other"));
    assert_eq!(export.group_members.len(), 1);
    Ok(())
}

#[test]
fn utf16_files_are_decoded() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    copy_directory(&fixture("powershell"), directory.path())?;
    let users = std::fs::read_to_string(fixture("powershell").join("users.json"))?;
    let mut bytes = vec![0xFF, 0xFE];
    for unit in users.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    std::fs::write(directory.path().join("users.json"), bytes)?;
    let export = read(directory.path())?;
    assert_eq!(export.users.len(), 2);
    assert_eq!(
        export.users[1].value.user_principal_name.as_deref(),
        Some("sam@fabrikam.com")
    );
    Ok(())
}

#[test]
fn a_missing_last_page_is_noted() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    copy_directory(&fixture("contoso"), directory.path())?;
    std::fs::remove_file(directory.path().join("users.2.json"))?;
    std::fs::write(directory.path().join("README.txt"), "notes of the admin")?;
    let export = read(directory.path())?;
    assert_eq!(export.users.len(), 6);
    assert!(
        export
            .notes
            .iter()
            .any(|note| matches!(note, ReadNote::IncompletePaging { file, .. }
            if file.ends_with("users.json"))),
        "{:?}",
        export.notes
    );
    assert!(export
        .notes
        .iter()
        .any(|note| matches!(note, ReadNote::Ignored { path }
            if path.ends_with("README.txt"))));
    let text = export
        .notes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("later pages are missing"), "{text}");
    Ok(())
}

#[test]
fn a_group_folder_must_be_named_after_the_group_id() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    copy_directory(&fixture("powershell"), directory.path())?;
    let folder = directory.path().join("groups").join("Sales team");
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("members.json"), "[]")?;
    let error = read(directory.path()).err();
    let message = error.as_ref().map(|error| error.to_string()).unwrap_or_default();
    assert!(
        matches!(error, Some(ImportError::InvalidGroupFolder { .. })),
        "{error:?}"
    );
    assert!(
        message.contains("the folder name \"Sales team\" should be the group's id"),
        "{message}"
    );
    Ok(())
}

#[test]
fn files_can_be_named_one_by_one() -> anyhow::Result<()> {
    let directory = fixture("powershell");
    let paths =
        ["subscribedSkus.json", "subscribedSkus.2.json", "users.json"].map(|name| directory.join(name));
    let export = read_export(&paths, &mut NoProgress)?;
    assert_eq!(
        (
            export.subscribed_skus.len(),
            export.users.len(),
            export.groups.len()
        ),
        (2, 2, 0)
    );
    assert!(export.notes.contains(&ReadNote::NoGroups));

    let unrecognized = read_export(
        &[
            directory.join("users.json"),
            fixture("contoso").join("../import.txt"),
        ],
        &mut NoProgress,
    );
    assert!(
        matches!(unrecognized, Err(ImportError::NotFound { .. })),
        "{unrecognized:?}"
    );
    let twice = read_export(
        &[directory.clone(), directory.join("users.json")],
        &mut NoProgress,
    )
    .err();
    let message = twice.map(|error| error.to_string()).unwrap_or_default();
    assert!(
        message.contains("are both users; pass one export at a time"),
        "{message}"
    );
    Ok(())
}

#[test]
fn reading_reports_the_bytes_of_every_file() -> anyhow::Result<()> {
    let mut progress = RecordedProgress::default();
    read_export(&[fixture("contoso")], &mut progress)?;
    assert_eq!(progress.steps.len(), 8);
    assert_eq!(progress.finished, 8);
    for (step, total, done) in &progress.steps {
        assert!(matches!(step, ProgressStep::Reading { .. }));
        assert_eq!(total, done, "{step:?}");
    }
    Ok(())
}
