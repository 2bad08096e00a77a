//! Progress callbacks for long imports and exports: reading large files (in bytes), applying the
//! tenant's commands, evaluating users, writing files. The CLI draws a bar from them; tests and
//! libraries pass [`NoProgress`].

use std::path::PathBuf;

/// A step of an import or export, with the unit its total is counted in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressStep {
    /// Reading one file of the export; counted in bytes.
    Reading { file: PathBuf },
    /// Applying the tenant's commands (products, rules, users, groups, licenses, memberships);
    /// counted in commands.
    Loading,
    /// Evaluating the users licensd queued; counted in users.
    Evaluating,
    /// Writing one file of an export; counted in records.
    Writing { file: PathBuf },
}

impl ProgressStep {
    /// A short label for a progress bar.
    pub fn label(&self) -> String {
        match self {
            ProgressStep::Reading { file } => format!("reading {}", file.display()),
            ProgressStep::Loading => "loading the tenant".to_string(),
            ProgressStep::Evaluating => "evaluating licenses".to_string(),
            ProgressStep::Writing { file } => format!("writing {}", file.display()),
        }
    }

    /// Whether the step counts bytes (rather than commands, users or records).
    pub fn counts_bytes(&self) -> bool {
        matches!(self, ProgressStep::Reading { .. })
    }
}

/// Receives progress. Steps do not overlap: `start`, any number of `advance`, then `finish`.
pub trait Progress {
    /// A step begins; `total` is its size in the step's unit.
    fn start(&mut self, step: &ProgressStep, total: u64);
    /// `amount` more units of the current step are done.
    fn advance(&mut self, amount: u64);
    /// The current step is complete.
    fn finish(&mut self);
}

/// Progress that goes nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _step: &ProgressStep, _total: u64) {}
    fn advance(&mut self, _amount: u64) {}
    fn finish(&mut self) {}
}

/// A reader that reports every byte it hands out as progress.
pub(crate) struct CountingReader<'progress, R> {
    pub(crate) inner: R,
    pub(crate) progress: &'progress mut dyn Progress,
}

impl<R: std::io::Read> std::io::Read for CountingReader<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.progress.advance(read as u64);
        Ok(read)
    }
}
