//! licensd's import and export of Microsoft Graph JSON exports: a snapshot of a real Microsoft 365
//! tenant (`subscribedSkus`, users, groups, members) becomes a new licensd tenant, licensd's own
//! evaluation can be compared with the states Microsoft recorded, and any licensd tenant can be
//! written back in the same shapes.
//!
//! - [`read_export`] finds and parses the files (paged or not), strictly on broken JSON and
//!   invalid GUIDs, leniently on everything Graph clients tolerate.
//! - [`build_tenant`] turns the export into engine commands for a new tenant, entirely in memory,
//!   evaluates it, and reports what was loaded, adjusted and skipped. Nothing is written here:
//!   the caller persists the finished engine in one write, so nothing is ever half-imported.
//! - [`compare`] lists where licensd's states differ from Microsoft's.
//! - [`export_documents`] and [`write_export`] write an engine back as Graph JSON.
//!
//! This crate is an edge of licensd like `api-types`: it knows Graph's wire shapes; the engine
//! does not.

mod build;
mod compare;
mod error;
mod export;
mod graph;
mod progress;
mod read;
mod report;

pub use build::{build_tenant, mailbox_plan_names, Import, ImportOptions};
pub use compare::{
    compare, Comparison, ComparisonSummary, Difference, DifferenceKind, ProductDifference, RecordedState,
};
pub use error::{ExportError, ImportError, JsonProblem};
pub use export::{export_documents, write_export, ExportDocuments, ExportFile, ExportSummary};
pub use graph::{
    normalized_error, parse_guid, GraphAssignedLicense, GraphDirectoryObject, GraphGroup,
    GraphLicenseAssignmentState, GraphLicenseUnitsDetail, GraphOrganization, GraphServicePlanInfo,
    GraphSubscribedSku, GraphUser, Guid,
};
pub use licensd_api_types::time::format_date_time;
pub use progress::{NoProgress, Progress, ProgressStep};
pub use read::{read_export, FileSummary, GraphExport, GroupMembers, Origin, ReadNote, Record};
pub use report::{
    EvaluationSummary, ImportOutcome, ImportReport, LoadedCounts, Reason, ReportEntry, Subject,
};
