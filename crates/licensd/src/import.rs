//! `licensd import` and `licensd export`: a Microsoft Graph JSON export loaded into a new tenant
//! of the database (in one write, after the whole tenant was built and evaluated in memory), an
//! optional comparison with the states Microsoft recorded, and any stored tenant written back as
//! Graph JSON. Only argument handling, progress bars and output formatting live here; the work
//! is `licensd-import`'s.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use licensd_engine::{Engine, Timestamp, Uuid};
use licensd_import::{
    build_tenant, compare, read_export, write_export, Comparison, ImportOptions, ImportOutcome, ImportReport,
    Progress, ProgressStep,
};
use licensd_store::{Store, UserActivityRecord, WriteBatch};

#[derive(clap::Args)]
pub struct ImportArguments {
    /// The export: a directory with subscribedSkus.json, users.json, groups.json and the group
    /// members (see docs/import.md), or one or more of those files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Database to create the tenant in.
    #[arg(long, env = "LICENSD_DATABASE_URL", default_value = "sqlite://licensd.db")]
    database_url: String,
    /// Also compare licensd's evaluation with the states Microsoft recorded in the export.
    #[arg(long)]
    compare: bool,
    /// Print one JSON document (report, comparison, database) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ExportArguments {
    /// A new or empty directory to write the export into.
    directory: PathBuf,
    /// Database to read the tenant from.
    #[arg(long, env = "LICENSD_DATABASE_URL", default_value = "sqlite://licensd.db")]
    database_url: String,
    /// The tenant to export; may be left out when the database holds one tenant.
    #[arg(long)]
    tenant: Option<Uuid>,
}

/// Appends one line to a text being built (writing to a `String` cannot fail).
macro_rules! push_line {
    ($out:expr, $($argument:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($argument)*);
    }};
}

/// Prints the finished text at once. A reader that stops early (`| head`) is not an error: the
/// work is done and written by then.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("writing to standard output"))
        }
        _ => Ok(()),
    }
}

/// A progress bar on standard error (hidden when it is not a terminal or for `--json`).
struct BarProgress {
    bar: Option<ProgressBar>,
    hidden: bool,
}

impl BarProgress {
    fn new(hidden: bool) -> BarProgress {
        BarProgress { bar: None, hidden }
    }
}

impl Progress for BarProgress {
    fn start(&mut self, step: &ProgressStep, total: u64) {
        if self.hidden {
            return;
        }
        let template = if step.counts_bytes() {
            "{msg:40!} [{bar:30}] {bytes}/{total_bytes} ({eta})"
        } else {
            "{msg:40!} [{bar:30}] {pos}/{len} ({eta})"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::new(total)
            .with_style(style)
            .with_message(step.label());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn advance(&mut self, amount: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(amount);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn now() -> Timestamp {
    let milliseconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    Timestamp(i64::try_from(milliseconds).unwrap_or(i64::MAX))
}

pub fn run_import(arguments: ImportArguments) -> anyhow::Result<()> {
    let mut progress = BarProgress::new(arguments.json);
    let shown_paths = arguments
        .paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let export = read_export(&arguments.paths, &mut progress)
        .with_context(|| format!("the Graph export at {shown_paths} was refused; nothing was imported"))?;
    let options = ImportOptions {
        at: now(),
        ..ImportOptions::default()
    };
    let import = build_tenant(&export, &options, &mut progress)
        .context("building the tenant failed; nothing was imported")?;
    let comparison = arguments.compare.then(|| compare(&export, &import.engine));

    let tenant_id = import.report.tenant_id;
    let mut store = Store::open(&arguments.database_url)
        .with_context(|| format!("cannot open {}", arguments.database_url))?;
    if store.tenant_ids()?.contains(&tenant_id) {
        bail!(
            "tenant {tenant_id} already exists in {}: licensd import creates a new tenant, so nothing was \
             imported (use another database, or remove the tenant first)",
            arguments.database_url
        );
    }
    let image = import.engine.to_image();
    let settings = image.settings.clone();
    // The tenant and everything in it in one transaction: a failed write leaves no tenant.
    let tenant_version = store
        .create_tenant_with(&settings, &WriteBatch::from_image(image))
        .with_context(|| format!("writing tenant {tenant_id} failed; nothing of it was imported"))?;
    // The users' last sign-in and leave date, where the admin API's activity routes keep them.
    if !import.activity.is_empty() {
        let records: Vec<UserActivityRecord> = import
            .activity
            .iter()
            .map(|(user_id, activity)| UserActivityRecord {
                user_id: *user_id,
                last_sign_in: activity.last_sign_in.map(|at| at.0),
                leave_date: activity.leave_date.map(|at| at.0),
            })
            .collect();
        store
            .set_user_activity(tenant_id, &records, &[])
            .with_context(|| {
                format!(
                    "tenant {tenant_id} was written but storing its users' activity failed: send it again \
                 with POST /licensd/v1/activity"
                )
            })?;
    }

    let mut out = String::new();
    if arguments.json {
        let outcome = ImportOutcome {
            report: &import.report,
            comparison: comparison.as_ref(),
            database_url: &arguments.database_url,
            tenant_version,
        };
        push_line!(out, "{}", outcome.to_json());
    } else {
        print_report(&mut out, &import.report, &import.engine);
        if let Some(comparison) = &comparison {
            print_comparison(&mut out, comparison);
        }
        push_line!(
            out,
            "\nWrote tenant {tenant_id} (\"{}\") to {} in one write.",
            import.report.tenant_display_name,
            arguments.database_url
        );
    }
    emit(&out)
}

fn print_report(out: &mut String, report: &ImportReport, engine: &Engine) {
    let records: usize = report.files.iter().map(|file| file.records).sum();
    push_line!(out, "Read {} files, {records} records:", report.files.len());
    // One line per file, except the per-group member files, which are summed up.
    let is_member_file = |path: &std::path::Path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.to_ascii_lowercase().starts_with("members"))
    };
    let (member_files, other_files): (Vec<_>, Vec<_>) =
        report.files.iter().partition(|file| is_member_file(&file.path));
    for file in &other_files {
        push_line!(out, "  {:>8}  {}", file.records, file.path.display());
    }
    if !member_files.is_empty() {
        let member_records: usize = member_files.iter().map(|file| file.records).sum();
        push_line!(
            out,
            "  {member_records:>8}  in {} groups/<id>/members*.json files",
            member_files.len()
        );
    }
    let location = report
        .default_usage_location
        .as_deref()
        .map(|code| format!(", default usage location {code}"))
        .unwrap_or_else(|| ", no default usage location".to_string());
    push_line!(
        out,
        "\nTenant {} \"{}\"{location}",
        report.tenant_id,
        report.tenant_display_name
    );
    let loaded = &report.loaded;
    push_line!(out, "Loaded:");
    push_line!(
        out,
        "  products          {:>6}  ({} service plans, {} with rules, {} mailbox plans)",
        loaded.products,
        loaded.service_plans,
        loaded.plans_with_rules,
        loaded.mailbox_plans
    );
    push_line!(
        out,
        "  users             {:>6}  ({} without usage location, {} with Microsoft's recorded states)",
        loaded.users,
        loaded.users_without_usage_location,
        loaded.users_with_recorded_states
    );
    if loaded.users_with_activity > 0 {
        push_line!(
            out,
            "                            ({} with a last sign-in or leave date)",
            loaded.users_with_activity
        );
    }
    push_line!(
        out,
        "  groups            {:>6}  ({} licensed, {} product assignments, {} dynamic with their rule)",
        loaded.groups,
        loaded.licensed_groups,
        loaded.group_licenses,
        loaded.dynamic_groups
    );
    push_line!(
        out,
        "  memberships       {:>6}  (+{} taken from licenseAssignmentStates, {} former memberships replayed \
         as blocked removals)",
        loaded.memberships,
        loaded.memberships_inferred,
        loaded.former_memberships
    );
    push_line!(
        out,
        "  direct licenses   {:>6}  ({} inferred from assignedLicenses)",
        loaded.direct_licenses,
        loaded.direct_licenses_inferred
    );
    if !report.notes.is_empty() {
        push_line!(out, "\nNotes ({}):", report.notes.len());
        for note in &report.notes {
            push_line!(out, "  - {note}");
        }
    }
    if !report.adjusted.is_empty() {
        push_line!(out, "\nLoaded with an adjustment ({}):", report.adjusted.len());
        for entry in &report.adjusted {
            push_line!(out, "  - {entry}");
        }
    }
    if report.skipped.is_empty() {
        push_line!(out, "\nSkipped: nothing.");
    } else {
        push_line!(out, "\nSkipped ({}):", report.skipped.len());
        for entry in &report.skipped {
            push_line!(out, "  - {entry}");
        }
    }
    let evaluation = &report.evaluation;
    let errors = evaluation
        .errors_by_kind
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    push_line!(
        out,
        "\nlicensd evaluated the tenant: {} users in error{}, {} groups need attention.",
        evaluation.users_with_errors,
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({errors})")
        },
        evaluation.groups_with_errors
    );
    push_line!(
        out,
        "  {:<52} {:>9} {:>9} {:>9} {:>8}",
        "Product",
        "Purchased",
        "Assigned",
        "Available",
        "Waiting"
    );
    for product in engine.sku_usages() {
        push_line!(
            out,
            "  {:<52} {:>9} {:>9} {:>9} {:>8}",
            format!("{} ({})", product.display_name, product.sku_part_number),
            product.prepaid_units,
            product.consumed_units,
            product.available_units,
            product.waiting_users
        );
    }
}

/// Differences printed as text; `--json` has them all.
const MAX_DIFFERENCES_SHOWN: usize = 200;

fn print_comparison(out: &mut String, comparison: &Comparison) {
    let summary = &comparison.summary;
    push_line!(
        out,
        "\nCompared with the states Microsoft recorded: {} assignments of {} users; {} match, {} differ \
         ({} in state or error, {} only in Microsoft's record, {} only in licensd).",
        summary.assignments_compared,
        summary.users_compared,
        summary.matching,
        summary.differing,
        summary.state_differs,
        summary.only_in_microsoft,
        summary.only_in_licensd
    );
    if summary.users_without_recorded_states > 0 || summary.users_not_imported > 0 {
        push_line!(
            out,
            "Not compared: {} users without licenseAssignmentStates in the export, {} users skipped at \
             import.",
            summary.users_without_recorded_states,
            summary.users_not_imported
        );
    }
    for difference in comparison.differences.iter().take(MAX_DIFFERENCES_SHOWN) {
        let side = |state: &Option<licensd_import::RecordedState>| {
            state
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "no assignment".to_string())
        };
        push_line!(
            out,
            "\n  {}  {}  via {}",
            difference.user_principal_name,
            difference.product,
            difference.source
        );
        push_line!(
            out,
            "    Microsoft: {:<44} licensd: {}",
            side(&difference.microsoft),
            side(&difference.licensd)
        );
        if let Some(explanation) = &difference.explanation {
            push_line!(out, "    {explanation}");
        }
    }
    if comparison.differences.len() > MAX_DIFFERENCES_SHOWN {
        push_line!(
            out,
            "\n  ... and {} more differences (--json lists them all).",
            comparison.differences.len() - MAX_DIFFERENCES_SHOWN
        );
    }
    if !comparison.products.is_empty() {
        push_line!(out, "\nConsumed units that differ:");
        for product in &comparison.products {
            push_line!(
                out,
                "  {:<52} Microsoft {:>7}  licensd {:>7}",
                product.product,
                product.microsoft_consumed_units,
                product.licensd_consumed_units
            );
        }
    }
}

pub fn run_export(arguments: ExportArguments) -> anyhow::Result<()> {
    let mut store = Store::open(&arguments.database_url)
        .with_context(|| format!("cannot open {}", arguments.database_url))?;
    let tenant_ids = store.tenant_ids()?;
    let tenant_id = match arguments.tenant {
        Some(tenant_id) if tenant_ids.contains(&tenant_id) => tenant_id,
        Some(tenant_id) => bail!("tenant {tenant_id} is not in {}", arguments.database_url),
        None => match tenant_ids.as_slice() {
            [only] => *only,
            [] => bail!("{} holds no tenant", arguments.database_url),
            several => bail!(
                "{} holds {} tenants; choose one with --tenant: {}",
                arguments.database_url,
                several.len(),
                several.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let (image, version) = store
        .load_tenant(tenant_id)
        .with_context(|| format!("cannot load tenant {tenant_id}"))?;
    let engine =
        Engine::from_image(image).with_context(|| format!("tenant {tenant_id} cannot be rebuilt"))?;
    let mut progress = BarProgress::new(false);
    let summary = write_export(&engine, &arguments.directory, &mut progress)
        .with_context(|| format!("cannot export tenant {tenant_id}"))?;
    let mut out = String::new();
    push_line!(
        out,
        "Exported tenant {tenant_id} (\"{}\", version {version}) to {}: {} products, {} users, {} groups, {} \
         memberships in {} files.",
        engine.settings().display_name,
        summary.directory.display(),
        summary.products,
        summary.users,
        summary.groups,
        summary.memberships,
        summary.files.len()
    );
    if summary.queued_users > 0 {
        push_line!(
            out,
            "Note: {} users are waiting for evaluation (licensd serve processes them); their states are the \
             last ones evaluated.",
            summary.queued_users
        );
    }
    emit(&out)
}
