//! Why an import or an export stopped. An import that returns one of these errors has built
//! nothing: the files are refused as a whole, so nothing is ever half-imported.

use std::path::PathBuf;

use licensd_engine::catalog::CatalogError;
use licensd_engine::CommandError;

/// Whether a JSON file could not be read at all or held a value of the wrong kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonProblem {
    /// Not well-formed JSON (a missing comma, a truncated file, ...).
    BrokenJson,
    /// Well-formed JSON with a value Graph never writes there (an invalid GUID, a string where an
    /// array belongs, a missing `id`, ...).
    InvalidValue,
}

impl std::fmt::Display for JsonProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            JsonProblem::BrokenJson => "broken JSON",
            JsonProblem::InvalidValue => "invalid value",
        })
    }
}

/// Where in a file a record starts, for messages ("record 3" is the third entry of the file's
/// array or `value` array).
fn record_context(record: &Option<usize>, group_key: &Option<String>) -> String {
    match (record, group_key) {
        (Some(record), Some(group)) => format!(" (group {group}, record {record})"),
        (Some(record), None) => format!(" (record {record})"),
        (None, Some(group)) => format!(" (group {group})"),
        (None, None) => String::new(),
    }
}

/// Why reading or building an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error(
        "{}: {problem} at line {line}, column {column}{}: {message}",
        file.display(),
        record_context(record, group_key)
    )]
    Json {
        file: PathBuf,
        problem: JsonProblem,
        line: usize,
        column: usize,
        /// The 1-based position of the record in the file's array, when the problem is inside one.
        record: Option<usize>,
        /// The group whose members were being read (`groupMembers.json`).
        group_key: Option<String>,
        message: String,
    },
    #[error("{}: {reason}", file.display())]
    UnexpectedShape { file: PathBuf, reason: String },
    #[error("{}: the file is not UTF-8 or UTF-16 text", file.display())]
    NotText { file: PathBuf },
    #[error("the export has no {name}: expected {name} (or {name} pages such as {first_page}) in {}", directory.display())]
    MissingFile {
        directory: PathBuf,
        name: &'static str,
        first_page: String,
    },
    #[error("{} and {} are both {what}; pass one export at a time", first.display(), second.display())]
    DuplicateFile {
        what: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: the folder name {name:?} should be the group's id: {reason}", path.display())]
    InvalidGroupFolder {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("{}: not a file of a Graph export (expected organization, subscribedSkus, users, groups, groupMembers or groups/<id>/members, each .json or .N.json)", path.display())]
    UnrecognizedFile { path: PathBuf },
    #[error("the bundled product catalog does not load: {0}")]
    Catalog(#[from] &'static CatalogError),
    #[error("setting up the tenant failed: {0}")]
    TenantSetup(#[source] Box<CommandError>),
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not empty: export into a new or empty directory, so no file of an older export is read back with it", path.display())]
    DirectoryNotEmpty { path: PathBuf },
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot encode {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("reading the tenant failed: {0}")]
    Engine(#[source] Box<CommandError>),
}

impl From<CommandError> for ExportError {
    fn from(error: CommandError) -> ExportError {
        ExportError::Engine(Box::new(error))
    }
}
