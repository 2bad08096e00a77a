//! Reading a Graph export from disk: finding its files (a directory, or files named on the
//! command line), their pages (`users.json`, `users.2.json`, ...), and streaming each file's
//! records into typed Graph shapes with the file, line, column and record of any problem.
//!
//! Each file may be a bare JSON array, Graph's paged object (`{"@odata.context": ..., "value":
//! [...], "@odata.nextLink": ...}`) or a single record (what PowerShell's `ConvertTo-Json`
//! writes for a one-element array). A UTF-8 byte-order mark is skipped and UTF-16 files (Windows
//! PowerShell's default encoding) are decoded.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use licensd_engine::Uuid;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{ImportError, JsonProblem};
use crate::graph::{
    parse_guid, GraphDirectoryObject, GraphGroup, GraphOrganization, GraphSubscribedSku, GraphUser,
};
use crate::progress::{CountingReader, Progress, ProgressStep};

/// Where a record comes from: its file and its 1-based position in the file's array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub record: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} record {}", self.file.display(), self.record)
    }
}

/// A record of the export with where it was read.
#[derive(Clone, Debug)]
pub struct Record<T> {
    pub origin: Origin,
    pub value: T,
}

/// The members the export lists for one group, from `groups/<id>/members*.json` or
/// `groupMembers.json`.
#[derive(Clone, Debug)]
pub struct GroupMembers {
    pub group_id: Uuid,
    pub members: Vec<Record<GraphDirectoryObject>>,
}

/// One file that was read, and how many records it held.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileSummary {
    pub path: PathBuf,
    pub records: usize,
}

/// Something about the files worth telling the administrator that does not stop the import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadNote {
    /// A file or folder in the export directory that is not part of a Graph export.
    Ignored { path: PathBuf },
    /// The last page of a collection still has `@odata.nextLink`: later pages were not saved.
    IncompletePaging { file: PathBuf, next_link: String },
    /// No `groups.json`: no group, membership or group license is imported.
    NoGroups,
    /// Several organizations: the first one gives the tenant's id, name and country.
    SeveralOrganizations { count: usize },
}

impl fmt::Display for ReadNote {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadNote::Ignored { path } => write!(formatter, "{}: not part of a Graph export, ignored", path.display()),
            ReadNote::IncompletePaging { file, next_link } => write!(
                formatter,
                "{}: the last page still has @odata.nextLink ({next_link}); later pages are missing, so the \
                 export may be incomplete",
                file.display()
            ),
            ReadNote::NoGroups => {
                formatter.write_str("no groups.json: no group, membership or group license is imported")
            }
            ReadNote::SeveralOrganizations { count } => write!(
                formatter,
                "organization.json lists {count} organizations; the first gives the tenant's id, name and country"
            ),
        }
    }
}

/// Everything read from an export, in file order (pages in page order).
#[derive(Clone, Debug, Default)]
pub struct GraphExport {
    pub organization: Option<Record<GraphOrganization>>,
    pub subscribed_skus: Vec<Record<GraphSubscribedSku>>,
    pub users: Vec<Record<GraphUser>>,
    pub groups: Vec<Record<GraphGroup>>,
    /// In the order of `groups.json`, then groups it does not list.
    pub group_members: Vec<GroupMembers>,
    pub files: Vec<FileSummary>,
    pub notes: Vec<ReadNote>,
}

impl GraphExport {
    /// Total number of records read.
    pub fn record_count(&self) -> usize {
        self.files.iter().map(|file| file.records).sum()
    }
}

/// The kinds of file an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FileKind {
    Organization,
    SubscribedSkus,
    Users,
    Groups,
    GroupMembersMap,
    GroupMembers(Uuid),
}

impl FileKind {
    fn describe(&self) -> String {
        match self {
            FileKind::Organization => "organization".to_string(),
            FileKind::SubscribedSkus => "subscribedSkus".to_string(),
            FileKind::Users => "users".to_string(),
            FileKind::Groups => "groups".to_string(),
            FileKind::GroupMembersMap => "groupMembers".to_string(),
            FileKind::GroupMembers(group_id) => format!("the members of group {group_id}"),
        }
    }
}

/// A file of the export, classified by its name.
#[derive(Clone, Debug)]
struct ExportFile {
    kind: FileKind,
    page: u32,
    path: PathBuf,
}

/// Splits `users.2.json` into `("users", 2)` and `users.json` into `("users", 0)`, lower case.
fn base_and_page(file_name: &str) -> Option<(String, u32)> {
    let lower = file_name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".json")?;
    match stem.rsplit_once('.') {
        Some((base, page)) => page.parse::<u32>().ok().map(|page| (base.to_string(), page)),
        None => Some((stem.to_string(), 0)),
    }
}

/// Classifies a file by its name (and, for `members.json`, its folder: the group's id).
fn classify(path: &Path) -> Result<Option<ExportFile>, ImportError> {
    let Some(file_name) = path.file_name().and_then(|name| name.to_str()) else {
        return Ok(None);
    };
    let Some((base, page)) = base_and_page(file_name) else {
        return Ok(None);
    };
    let kind = match base.as_str() {
        "organization" => FileKind::Organization,
        "subscribedskus" => FileKind::SubscribedSkus,
        "users" => FileKind::Users,
        "groups" => FileKind::Groups,
        "groupmembers" => FileKind::GroupMembersMap,
        "members" => {
            let folder = path
                .parent()
                .and_then(|parent| parent.file_name())
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            let group_id = parse_guid(folder).map_err(|reason| ImportError::InvalidGroupFolder {
                path: path.to_path_buf(),
                name: folder.to_string(),
                reason,
            })?;
            FileKind::GroupMembers(group_id)
        }
        _ => return Ok(None),
    };
    Ok(Some(ExportFile {
        kind,
        page,
        path: path.to_path_buf(),
    }))
}

fn sorted_entries(directory: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let io_error = |source| ImportError::Io {
        path: directory.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(directory).map_err(io_error)? {
        entries.push(entry.map_err(io_error)?.path());
    }
    entries.sort();
    Ok(entries)
}

/// Finds the export's files in a directory: the top-level files, and `groups/<id>/members*.json`.
fn scan_directory(
    directory: &Path,
    files: &mut Vec<ExportFile>,
    notes: &mut Vec<ReadNote>,
) -> Result<(), ImportError> {
    for path in sorted_entries(directory)? {
        let is_groups_folder = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.eq_ignore_ascii_case("groups"));
        if path.is_dir() && is_groups_folder {
            for group_folder in sorted_entries(&path)? {
                if !group_folder.is_dir() {
                    notes.push(ReadNote::Ignored { path: group_folder });
                    continue;
                }
                for member_file in sorted_entries(&group_folder)? {
                    match classify(&member_file)? {
                        Some(file) if matches!(file.kind, FileKind::GroupMembers(_)) => files.push(file),
                        _ => notes.push(ReadNote::Ignored { path: member_file }),
                    }
                }
            }
        } else if path.is_dir() {
            notes.push(ReadNote::Ignored { path });
        } else {
            match classify(&path)? {
                Some(file) if !matches!(file.kind, FileKind::GroupMembers(_)) => files.push(file),
                _ => notes.push(ReadNote::Ignored { path }),
            }
        }
    }
    Ok(())
}

/// Where a JSON file's text comes from: a UTF-8 stream, or UTF-16 text decoded in memory.
enum JsonText {
    Utf8(BufReader<File>),
    Decoded(std::io::Cursor<Vec<u8>>),
}

impl Read for JsonText {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            JsonText::Utf8(reader) => reader.read(buffer),
            JsonText::Decoded(cursor) => cursor.read(buffer),
        }
    }
}

/// Opens a JSON file, skipping a UTF-8 byte-order mark and decoding UTF-16; returns the text and
/// its length in bytes (for progress).
fn open_json(path: &Path) -> Result<(JsonText, u64), ImportError> {
    let io_error = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let start = reader.fill_buf().map_err(io_error)?;
    if start.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
        return Ok((JsonText::Utf8(reader), size.saturating_sub(3)));
    }
    let little_endian = start.starts_with(&[0xFF, 0xFE]);
    if little_endian || start.starts_with(&[0xFE, 0xFF]) {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(io_error)?;
        let units = bytes.get(2..).unwrap_or_default().chunks(2).map(|pair| {
            let pair = [
                pair.first().copied().unwrap_or(0),
                pair.get(1).copied().unwrap_or(0),
            ];
            if little_endian {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            }
        });
        let text = char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| ImportError::NotText {
                file: path.to_path_buf(),
            })?;
        let length = text.len() as u64;
        return Ok((JsonText::Decoded(std::io::Cursor::new(text.into_bytes())), length));
    }
    Ok((JsonText::Utf8(reader), size))
}

/// Which record (and group) is being read, kept outside the parser so that an error can say it.
#[derive(Default)]
struct Position {
    record: Cell<Option<usize>>,
    group_key: RefCell<Option<String>>,
}

/// Reads the records of a bare array into `records`.
struct RecordsSeed<'a, T> {
    position: &'a Position,
    records: &'a mut Vec<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for RecordsSeed<'_, T> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for RecordsSeed<'_, T> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        loop {
            self.position.record.set(Some(self.records.len() + 1));
            match sequence.next_element::<T>()? {
                Some(record) => self.records.push(record),
                None => break,
            }
        }
        self.position.record.set(None);
        Ok(())
    }
}

/// Reads one document: a bare array, Graph's paged object or a single record.
struct DocumentSeed<'a, T> {
    position: &'a Position,
    records: &'a mut Vec<T>,
    next_link: &'a mut Option<String>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for DocumentSeed<'_, T> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for DocumentSeed<'_, T> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of records or Graph's paged object {\"value\": [...]}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, sequence: A) -> Result<(), A::Error> {
        RecordsSeed {
            position: self.position,
            records: self.records,
        }
        .visit_seq(sequence)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut other_properties = serde_json::Map::new();
        let mut has_value_array = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "value" {
                map.next_value_seed(RecordsSeed {
                    position: self.position,
                    records: &mut *self.records,
                })?;
                has_value_array = true;
            } else if key.eq_ignore_ascii_case("@odata.nextLink") {
                *self.next_link = map.next_value::<Option<String>>()?;
            } else if key.starts_with('@') {
                map.next_value::<IgnoredAny>()?;
            } else {
                let value: serde_json::Value = map.next_value()?;
                other_properties.insert(key, value);
            }
        }
        if has_value_array {
            return Ok(());
        }
        if other_properties.is_empty() {
            return Err(de::Error::custom(
                "expected an array of records or Graph's paged object {\"value\": [...]}, found an object \
                 without \"value\"",
            ));
        }
        // A single record, as PowerShell writes a one-element array.
        self.position.record.set(Some(1));
        let record =
            T::deserialize(serde_json::Value::Object(other_properties)).map_err(de::Error::custom)?;
        self.records.push(record);
        self.position.record.set(None);
        Ok(())
    }
}

/// The members `groupMembers.json` lists for each group, with each list's `@odata.nextLink`.
type MembersByGroup = Vec<(Uuid, Vec<GraphDirectoryObject>, Option<String>)>;

/// Reads `groupMembers.json`: an object from group id to that group's members (each an array or
/// a paged object).
struct MemberMapSeed<'a> {
    position: &'a Position,
    groups: &'a mut MembersByGroup,
}

impl<'de> DeserializeSeed<'de> for MemberMapSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MemberMapSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object mapping each group id to the group's members")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key.starts_with('@') {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let group_id = parse_guid(&key)
                .map_err(|reason| de::Error::custom(format!("the key should be a group id: {reason}")))?;
            self.position.group_key.replace(Some(key));
            let mut members = Vec::new();
            let mut next_link = None;
            map.next_value_seed(DocumentSeed {
                position: self.position,
                records: &mut members,
                next_link: &mut next_link,
            })?;
            self.groups.push((group_id, members, next_link));
            self.position.group_key.replace(None);
        }
        Ok(())
    }
}

/// Turns a parser error into an [`ImportError`] naming the file, the position and the record.
fn json_error(path: &Path, position: &Position, error: serde_json::Error) -> ImportError {
    let problem = match error.classify() {
        serde_json::error::Category::Io => {
            return ImportError::Io {
                path: path.to_path_buf(),
                source: error.into(),
            }
        }
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => JsonProblem::BrokenJson,
        serde_json::error::Category::Data => JsonProblem::InvalidValue,
    };
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    ImportError::Json {
        file: path.to_path_buf(),
        problem,
        line: error.line(),
        column: error.column(),
        record: position.record.get(),
        group_key: position.group_key.borrow().clone(),
        message,
    }
}

/// The parser every file goes through: its bytes are counted as progress.
type FileDeserializer<'progress> =
    serde_json::Deserializer<serde_json::de::IoRead<BufReader<CountingReader<'progress, JsonText>>>>;

/// Parses one file with `parse`, reporting its bytes as progress, and checks that nothing but
/// white space follows the document.
fn parse_file<F>(path: &Path, progress: &mut dyn Progress, parse: F) -> Result<(), ImportError>
where
    F: FnOnce(&Position, &mut FileDeserializer<'_>) -> Result<(), serde_json::Error>,
{
    let (text, size) = open_json(path)?;
    progress.start(
        &ProgressStep::Reading {
            file: path.to_path_buf(),
        },
        size,
    );
    let position = Position::default();
    // The parser reads byte by byte: the buffer in front of the counter makes progress count
    // in large chunks.
    let mut deserializer = serde_json::Deserializer::from_reader(BufReader::with_capacity(
        1 << 16,
        CountingReader {
            inner: text,
            progress: &mut *progress,
        },
    ));
    let result = parse(&position, &mut deserializer).and_then(|()| deserializer.end());
    progress.finish();
    result.map_err(|error| json_error(path, &position, error))
}

/// Reads one collection file: its records and its `@odata.nextLink`.
fn read_collection<T: DeserializeOwned>(
    path: &Path,
    progress: &mut dyn Progress,
) -> Result<(Vec<T>, Option<String>), ImportError> {
    let mut records = Vec::new();
    let mut next_link = None;
    parse_file(path, progress, |position, deserializer| {
        DocumentSeed {
            position,
            records: &mut records,
            next_link: &mut next_link,
        }
        .deserialize(deserializer)
    })?;
    Ok((records, next_link))
}

/// Reads `groupMembers.json`.
fn read_member_map(path: &Path, progress: &mut dyn Progress) -> Result<MembersByGroup, ImportError> {
    let mut groups = Vec::new();
    parse_file(path, progress, |position, deserializer| {
        MemberMapSeed {
            position,
            groups: &mut groups,
        }
        .deserialize(deserializer)
    })?;
    Ok(groups)
}

fn with_origins<T>(path: &Path, records: Vec<T>) -> Vec<Record<T>> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, value)| Record {
            origin: Origin {
                file: path.to_path_buf(),
                record: index + 1,
            },
            value,
        })
        .collect()
}

/// Finds and reads an export: `paths` are directories (scanned) or files (classified by name).
/// `subscribedSkus` and `users` are required; everything else is optional.
pub fn read_export(paths: &[PathBuf], progress: &mut dyn Progress) -> Result<GraphExport, ImportError> {
    let mut files: Vec<ExportFile> = Vec::new();
    let mut notes = Vec::new();
    for path in paths {
        if path.is_dir() {
            scan_directory(path, &mut files, &mut notes)?;
        } else if path.is_file() {
            match classify(path)? {
                Some(file) => files.push(file),
                None => return Err(ImportError::UnrecognizedFile { path: path.clone() }),
            }
        } else {
            return Err(ImportError::NotFound { path: path.clone() });
        }
    }
    files.sort_by_key(|file| (file.kind, file.page));
    for pair in files.windows(2) {
        if let [first, second] = pair {
            if (first.kind, first.page) == (second.kind, second.page) {
                let page = if first.page == 0 {
                    String::new()
                } else {
                    format!(" page {}", first.page)
                };
                return Err(ImportError::DuplicateFile {
                    what: format!("{}{page}", first.kind.describe()),
                    first: first.path.clone(),
                    second: second.path.clone(),
                });
            }
        }
    }
    let where_expected = paths.first().cloned().unwrap_or_default();
    for (kind, name, first_page) in [
        (
            FileKind::SubscribedSkus,
            "subscribedSkus.json",
            "subscribedSkus.2.json",
        ),
        (FileKind::Users, "users.json", "users.2.json"),
    ] {
        if !files.iter().any(|file| file.kind == kind) {
            return Err(ImportError::MissingFile {
                directory: where_expected,
                name,
                first_page: first_page.to_string(),
            });
        }
    }
    if !files.iter().any(|file| file.kind == FileKind::Groups) {
        notes.push(ReadNote::NoGroups);
    }

    let mut export = GraphExport::default();
    let mut members_by_group: BTreeMap<Uuid, Vec<Record<GraphDirectoryObject>>> = BTreeMap::new();
    let mut last_next_link: BTreeMap<FileKind, (PathBuf, Option<String>)> = BTreeMap::new();
    for file in &files {
        let path = file.path.as_path();
        let records = match file.kind {
            FileKind::Organization => {
                let (organizations, next_link) = read_collection::<GraphOrganization>(path, progress)?;
                last_next_link.insert(file.kind, (path.to_path_buf(), next_link));
                let count = organizations.len();
                if count > 1 {
                    notes.push(ReadNote::SeveralOrganizations { count });
                }
                if export.organization.is_none() {
                    export.organization = with_origins(path, organizations).into_iter().next();
                }
                count
            }
            FileKind::SubscribedSkus => {
                let (skus, next_link) = read_collection::<GraphSubscribedSku>(path, progress)?;
                last_next_link.insert(file.kind, (path.to_path_buf(), next_link));
                let count = skus.len();
                export.subscribed_skus.extend(with_origins(path, skus));
                count
            }
            FileKind::Users => {
                let (users, next_link) = read_collection::<GraphUser>(path, progress)?;
                last_next_link.insert(file.kind, (path.to_path_buf(), next_link));
                let count = users.len();
                export.users.extend(with_origins(path, users));
                count
            }
            FileKind::Groups => {
                let (groups, next_link) = read_collection::<GraphGroup>(path, progress)?;
                last_next_link.insert(file.kind, (path.to_path_buf(), next_link));
                let count = groups.len();
                export.groups.extend(with_origins(path, groups));
                count
            }
            FileKind::GroupMembers(group_id) => {
                let (members, next_link) = read_collection::<GraphDirectoryObject>(path, progress)?;
                last_next_link.insert(file.kind, (path.to_path_buf(), next_link));
                let count = members.len();
                members_by_group
                    .entry(group_id)
                    .or_default()
                    .extend(with_origins(path, members));
                count
            }
            FileKind::GroupMembersMap => {
                let groups = read_member_map(path, progress)?;
                let mut count = 0;
                for (group_id, members, next_link) in groups {
                    if let Some(next_link) = next_link {
                        notes.push(ReadNote::IncompletePaging {
                            file: path.join(group_id.to_string()),
                            next_link,
                        });
                    }
                    count += members.len();
                    members_by_group
                        .entry(group_id)
                        .or_default()
                        .extend(with_origins(path, members));
                }
                count
            }
        };
        export.files.push(FileSummary {
            path: path.to_path_buf(),
            records,
        });
    }
    for (file, next_link) in last_next_link.into_values() {
        if let Some(next_link) = next_link {
            notes.push(ReadNote::IncompletePaging { file, next_link });
        }
    }
    for group in &export.groups {
        if let Some(members) = members_by_group.remove(&group.value.id.0) {
            export.group_members.push(GroupMembers {
                group_id: group.value.id.0,
                members,
            });
        }
    }
    for (group_id, members) in members_by_group {
        export.group_members.push(GroupMembers { group_id, members });
    }
    export.notes = notes;
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphUser;

    /// Reads one document from text, returning the records, the next link and the record being
    /// read when it failed.
    fn document(text: &str) -> (Result<Vec<GraphUser>, String>, Option<String>, Option<usize>) {
        let position = Position::default();
        let mut records = Vec::new();
        let mut next_link = None;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let result = DocumentSeed {
            position: &position,
            records: &mut records,
            next_link: &mut next_link,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map(|()| records)
        .map_err(|error| error.to_string());
        (result, next_link, position.record.get())
    }

    const ALICE: &str =
        r#"{"id":"00000000-0000-4000-8000-000000000001","userPrincipalName":"alice@contoso.com"}"#;
    const BOB: &str =
        r#"{"id":"00000000-0000-4000-8000-000000000002","userPrincipalName":"bob@contoso.com"}"#;

    #[test]
    fn reads_a_bare_array() {
        let (records, next_link, _) = document(&format!("[{ALICE},{BOB}]"));
        assert_eq!(records.map(|records| records.len()), Ok(2));
        assert_eq!(next_link, None);
    }

    #[test]
    fn reads_a_page_and_its_next_link_in_any_order() {
        let text = format!(
            r#"{{"@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=x","value":[{ALICE}],
                "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users"}}"#
        );
        let (records, next_link, _) = document(&text);
        assert_eq!(records.map(|records| records.len()), Ok(1));
        assert_eq!(
            next_link.as_deref(),
            Some("https://graph.microsoft.com/v1.0/users?$skiptoken=x")
        );
    }

    #[test]
    fn reads_a_single_record() {
        let (records, _, _) = document(ALICE);
        let names: Vec<Option<String>> = records
            .unwrap_or_default()
            .into_iter()
            .map(|user| user.user_principal_name)
            .collect();
        assert_eq!(names, [Some("alice@contoso.com".to_string())]);
    }

    #[test]
    fn refuses_an_object_that_is_neither_a_page_nor_a_record() {
        let (records, _, _) = document(r#"{"@odata.context":"x"}"#);
        let message = records.err().unwrap_or_default();
        assert!(message.contains("found an object without \"value\""), "{message}");
        let (records, _, _) = document("42");
        let message = records.err().unwrap_or_default();
        assert!(
            message.contains("expected an array of records or Graph's paged object"),
            "{message}"
        );
    }

    #[test]
    fn remembers_which_record_failed() {
        let (records, _, record) = document(&format!(r#"{{"value":[{ALICE},{{"id":"not-a-guid"}}]}}"#));
        assert!(records.is_err());
        assert_eq!(record, Some(2));
    }

    #[test]
    fn splits_page_numbers_from_file_names() {
        assert_eq!(base_and_page("users.json"), Some(("users".to_string(), 0)));
        assert_eq!(base_and_page("Users.12.JSON"), Some(("users".to_string(), 12)));
        assert_eq!(base_and_page("users.backup.json"), None);
        assert_eq!(base_and_page("users.csv"), None);
    }
}
