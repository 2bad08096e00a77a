//! `licensd export`: a licensd tenant written back in the shapes of a Graph export (the same
//! files `licensd import` reads): `organization.json`, `subscribedSkus.json` with
//! `consumedUnits`, `users.json` with `assignedLicenses` and `licenseAssignmentStates`,
//! `groups.json` with `assignedLicenses`, and `groups/<id>/members.json`. Each file is one page
//! of Graph's paged shape. Exporting, importing the result and exporting again gives the same
//! files (given the same import time).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use licensd_engine::{AppliesTo, AssignedLicense, Engine, Uuid};
use serde::Serialize;

use crate::error::ExportError;
use crate::progress::{Progress, ProgressStep};
use crate::read::FileSummary;
use licensd_api_types::time::format_date_time;

const METADATA: &str = "https://graph.microsoft.com/v1.0/$metadata";

/// Graph's paged shape with a single page.
#[derive(Serialize)]
struct Page<T> {
    #[serde(rename = "@odata.context")]
    odata_context: String,
    value: Vec<T>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationDocument {
    id: String,
    display_name: String,
    country_letter_code: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseUnitsDocument {
    enabled: u32,
    locked_out: u32,
    suspended: u32,
    warning: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServicePlanDocument {
    service_plan_id: String,
    service_plan_name: String,
    provisioning_status: &'static str,
    applies_to: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscribedSkuDocument {
    account_id: String,
    account_name: String,
    applies_to: &'static str,
    capability_status: &'static str,
    consumed_units: u32,
    id: String,
    prepaid_units: LicenseUnitsDocument,
    service_plans: Vec<ServicePlanDocument>,
    sku_id: String,
    sku_part_number: String,
    subscription_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AssignedLicenseDocument {
    disabled_plans: Vec<String>,
    sku_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseAssignmentStateDocument {
    assigned_by_group: Option<String>,
    disabled_plans: Vec<String>,
    error: &'static str,
    last_updated_date_time: String,
    sku_id: String,
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDocument {
    id: String,
    user_principal_name: String,
    display_name: String,
    account_enabled: bool,
    usage_location: Option<String>,
    proxy_addresses: Vec<String>,
    assigned_licenses: Vec<AssignedLicenseDocument>,
    license_assignment_states: Vec<LicenseAssignmentStateDocument>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupDocument {
    id: String,
    display_name: String,
    assigned_licenses: Vec<AssignedLicenseDocument>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberDocument {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    id: String,
    user_principal_name: String,
}

/// One file of an export: its path inside the export directory and its JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    pub path: PathBuf,
    pub records: usize,
    pub text: String,
}

/// Every file of an export, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportDocuments {
    pub files: Vec<ExportFile>,
}

impl ExportDocuments {
    /// The text of the file at `path` (relative to the export directory).
    pub fn text(&self, path: &Path) -> Option<&str> {
        self.files
            .iter()
            .find(|file| file.path == path)
            .map(|file| file.text.as_str())
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportSummary {
    pub directory: PathBuf,
    pub files: Vec<FileSummary>,
    pub products: usize,
    pub users: usize,
    pub groups: usize,
    pub memberships: usize,
    /// Users still waiting for evaluation: their states are the last ones evaluated.
    pub queued_users: usize,
}

fn guids(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

fn license_documents(licenses: &[AssignedLicense]) -> Vec<AssignedLicenseDocument> {
    licenses
        .iter()
        .map(|license| AssignedLicenseDocument {
            disabled_plans: guids(&license.disabled_plans),
            sku_id: license.sku_id.to_string(),
        })
        .collect()
}

fn json_file<T: Serialize>(path: PathBuf, context: &str, value: Vec<T>) -> Result<ExportFile, ExportError> {
    let records = value.len();
    let page = Page {
        odata_context: format!("{METADATA}#{context}"),
        value,
    };
    let mut text = serde_json::to_string_pretty(&page).map_err(|source| ExportError::Json {
        path: path.clone(),
        source,
    })?;
    text.push('\n');
    Ok(ExportFile { path, records, text })
}

/// Builds every file of the export of `engine`.
pub fn export_documents(engine: &Engine) -> Result<ExportDocuments, ExportError> {
    let settings = engine.settings();
    let tenant_id = settings.tenant_id.to_string();
    let mut files = Vec::new();

    files.push(json_file(
        PathBuf::from("organization.json"),
        "organization(id,displayName,countryLetterCode)",
        vec![OrganizationDocument {
            id: tenant_id.clone(),
            display_name: settings.display_name.clone(),
            country_letter_code: settings.default_usage_location.map(|code| code.to_string()),
        }],
    )?);

    let image = engine.to_image();
    let mut skus = Vec::new();
    for sku in &image.skus {
        let usage = engine.sku_usage(sku.sku_id)?;
        skus.push(SubscribedSkuDocument {
            account_id: tenant_id.clone(),
            account_name: settings.display_name.clone(),
            applies_to: match sku.applies_to {
                AppliesTo::User => "User",
                AppliesTo::Company => "Company",
            },
            capability_status: sku.capability_status.as_str(),
            consumed_units: usage.consumed_units,
            id: format!("{tenant_id}_{}", sku.sku_id),
            prepaid_units: LicenseUnitsDocument {
                enabled: sku.prepaid_units,
                locked_out: 0,
                suspended: 0,
                warning: 0,
            },
            service_plans: sku
                .service_plans
                .iter()
                .map(|plan| ServicePlanDocument {
                    service_plan_id: plan.service_plan_id.to_string(),
                    service_plan_name: plan.service_plan_name.clone(),
                    provisioning_status: "Success",
                    applies_to: "User",
                })
                .collect(),
            sku_id: sku.sku_id.to_string(),
            sku_part_number: sku.sku_part_number.clone(),
            subscription_ids: Vec::new(),
        });
    }
    files.push(json_file(
        PathBuf::from("subscribedSkus.json"),
        "subscribedSkus",
        skus,
    )?);

    let user_ids = engine.user_ids();
    let user_order: HashMap<Uuid, usize> = user_ids
        .iter()
        .enumerate()
        .map(|(index, id)| (*id, index))
        .collect();
    let mut users = Vec::with_capacity(user_ids.len());
    for user_id in &user_ids {
        let view = engine.user_view(*user_id)?;
        let states = engine.user_license_states(*user_id)?;
        users.push(UserDocument {
            id: view.id.to_string(),
            user_principal_name: view.user_principal_name,
            display_name: view.display_name,
            account_enabled: view.account_enabled,
            usage_location: view.usage_location.map(|code| code.to_string()),
            proxy_addresses: view
                .proxy_addresses
                .iter()
                .map(|address| address.as_str().to_string())
                .collect(),
            assigned_licenses: license_documents(&engine.user_assigned_licenses(*user_id)?),
            license_assignment_states: states
                .iter()
                .map(|state| LicenseAssignmentStateDocument {
                    assigned_by_group: state.assigned_by_group.map(|id| id.to_string()),
                    disabled_plans: guids(&state.disabled_plans),
                    error: state.error.map_or("None", |kind| kind.as_str()),
                    last_updated_date_time: format_date_time(state.last_updated.0),
                    sku_id: state.sku_id.to_string(),
                    state: state.state.as_str(),
                })
                .collect(),
        });
    }
    files.push(json_file(
        PathBuf::from("users.json"),
        "users(id,userPrincipalName,displayName,accountEnabled,usageLocation,proxyAddresses,assignedLicenses,\
         licenseAssignmentStates)",
        users,
    )?);

    let group_ids = engine.group_ids();
    let mut groups = Vec::with_capacity(group_ids.len());
    let mut member_files = Vec::with_capacity(group_ids.len());
    for group_id in &group_ids {
        let view = engine.group_view(*group_id)?;
        groups.push(GroupDocument {
            id: view.id.to_string(),
            display_name: view.display_name,
            assigned_licenses: license_documents(&view.assigned_licenses),
        });
        let mut members = engine.group_members(*group_id)?;
        members.sort_by_key(|member| user_order.get(member).copied().unwrap_or(usize::MAX));
        let mut member_documents = Vec::with_capacity(members.len());
        for member in members {
            member_documents.push(MemberDocument {
                odata_type: "#microsoft.graph.user",
                id: member.to_string(),
                user_principal_name: engine.user_view(member)?.user_principal_name,
            });
        }
        member_files.push(json_file(
            Path::new("groups")
                .join(group_id.to_string())
                .join("members.json"),
            "directoryObjects(id,userPrincipalName)",
            member_documents,
        )?);
    }
    files.push(json_file(
        PathBuf::from("groups.json"),
        "groups(id,displayName,assignedLicenses)",
        groups,
    )?);
    files.extend(member_files);
    Ok(ExportDocuments { files })
}

/// Writes the export of `engine` into `directory`, which must be new or empty (so no file of an
/// older export is read back with it).
pub fn write_export(
    engine: &Engine,
    directory: &Path,
    progress: &mut dyn Progress,
) -> Result<ExportSummary, ExportError> {
    if directory.exists() {
        if !directory.is_dir() {
            return Err(ExportError::NotADirectory {
                path: directory.to_path_buf(),
            });
        }
        let mut entries = std::fs::read_dir(directory).map_err(|source| ExportError::Io {
            path: directory.to_path_buf(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(ExportError::DirectoryNotEmpty {
                path: directory.to_path_buf(),
            });
        }
    }
    let documents = export_documents(engine)?;
    let mut summary = ExportSummary {
        directory: directory.to_path_buf(),
        queued_users: engine.queued_users(),
        ..ExportSummary::default()
    };
    for file in &documents.files {
        let path = directory.join(&file.path);
        progress.start(&ProgressStep::Writing { file: path.clone() }, file.records as u64);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ExportError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, &file.text).map_err(|source| ExportError::Io {
            path: path.clone(),
            source,
        })?;
        progress.advance(file.records as u64);
        progress.finish();
        let file_name = file.path.to_string_lossy();
        match file_name.as_ref() {
            "subscribedSkus.json" => summary.products = file.records,
            "users.json" => summary.users = file.records,
            "groups.json" => summary.groups = file.records,
            "organization.json" => {}
            _ => summary.memberships += file.records,
        }
        summary.files.push(FileSummary {
            path,
            records: file.records,
        });
    }
    Ok(summary)
}
