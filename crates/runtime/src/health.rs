//! Whether the database can take writes, for `/readyz`: the outcome of the last write (commands
//! and background processing record theirs here) and, for a SQLite database, the free space of
//! the file system it lives on. Also [`RepeatedWarnings`], which keeps a failure repeated every
//! few milliseconds (the processor retrying a full disk) from flooding the log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Below this much free space the file system of a SQLite database is reported not ready.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// How long a write failure keeps the server not ready when nothing writes again.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// The outcome of the last write, and where a SQLite database lives.
pub struct WriteHealth {
    last_failure: Mutex<Option<(Instant, String)>>,
    /// The directory of a SQLite database file (`None` for PostgreSQL).
    sqlite_directory: Option<PathBuf>,
}

impl WriteHealth {
    pub fn new(database_url: &str) -> WriteHealth {
        let is_postgres =
            database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
        let sqlite_directory = (!is_postgres).then(|| {
            let path = PathBuf::from(database_url.strip_prefix("sqlite://").unwrap_or(database_url));
            match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            }
        });
        WriteHealth {
            last_failure: Mutex::new(None),
            sqlite_directory,
        }
    }

    /// A write succeeded: the database takes writes again.
    pub fn write_succeeded(&self) {
        if let Ok(mut last_failure) = self.last_failure.lock() {
            *last_failure = None;
        }
    }

    /// Whether the last write recorded failed (no success since): the processor then writes its
    /// lease every round, which tells as soon as the database takes writes again.
    pub fn failing(&self) -> bool {
        self.last_failure
            .lock()
            .map_or(true, |last_failure| last_failure.is_some())
    }

    /// A write failed because of the database (not a refused command).
    pub fn write_failed(&self, error: &str) {
        if let Ok(mut last_failure) = self.last_failure.lock() {
            *last_failure = Some((Instant::now(), error.to_string()));
        }
    }

    /// `Err(why)` when the database cannot take writes: the last write failed (within
    /// [`FAILURE_MEMORY`], with no success since), or a SQLite database's file system has less
    /// than [`MIN_FREE_BYTES`] free.
    pub fn check(&self) -> Result<(), String> {
        if let Some(directory) = &self.sqlite_directory {
            if let Ok(stats) = rustix::fs::statvfs(directory) {
                let free = stats.f_bavail.saturating_mul(stats.f_frsize);
                if free < MIN_FREE_BYTES {
                    return Err(format!(
                        "the file system of the database has {free} bytes free (less than {MIN_FREE_BYTES})"
                    ));
                }
            }
        }
        let last_failure = self
            .last_failure
            .lock()
            .map_err(|_| "the write health is poisoned".to_string())?;
        match last_failure.as_ref() {
            Some((at, error)) if at.elapsed() < FAILURE_MEMORY => {
                Err(format!("the last write to the database failed: {error}"))
            }
            _ => Ok(()),
        }
    }
}

/// How long an identical warning stays quiet after it was logged.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(60);

/// Logs a warning the first time, then at most once per [`REPEAT_INTERVAL`] per identical text,
/// with how many times it was repeated in between.
#[derive(Default)]
pub struct RepeatedWarnings {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl RepeatedWarnings {
    /// `Some(repeats)` when `text` should be logged now (with the number of repeats suppressed
    /// since it was last logged), `None` when it is to be suppressed.
    pub fn admit(&self, text: &str) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else {
            return Some(0);
        };
        let now = Instant::now();
        if seen.len() > 1_000 {
            seen.retain(|_, (logged_at, _)| now.duration_since(*logged_at) < REPEAT_INTERVAL);
        }
        match seen.get_mut(text) {
            Some((logged_at, suppressed)) if now.duration_since(*logged_at) < REPEAT_INTERVAL => {
                *suppressed += 1;
                None
            }
            Some((logged_at, suppressed)) => {
                let repeats = *suppressed;
                *logged_at = now;
                *suppressed = 0;
                Some(repeats)
            }
            None => {
                seen.insert(text.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identical_warning_is_logged_once_per_interval() {
        let warnings = RepeatedWarnings::default();
        assert_eq!(warnings.admit("disk full"), Some(0));
        for _ in 0..100 {
            assert_eq!(warnings.admit("disk full"), None);
        }
        assert_eq!(warnings.admit("another failure"), Some(0));
    }

    #[test]
    fn a_failure_makes_the_database_not_ready_until_a_write_succeeds() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let health = WriteHealth::new(&format!("sqlite://{}/licensd.db", directory.path().display()));
        assert_eq!(health.check(), Ok(()));
        health.write_failed("database or disk is full");
        assert!(health.check().expect_err("not ready").contains("disk is full"));
        health.write_succeeded();
        assert_eq!(health.check(), Ok(()));
    }
}
