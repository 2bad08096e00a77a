//! Shared helpers: fixture paths, a fixed import time, one-call imports and a progress recorder.

use std::path::{Path, PathBuf};

use licensd_engine::{Timestamp, Uuid};
use licensd_import::{
    build_tenant, read_export, GraphExport, Import, ImportError, ImportOptions, NoProgress, Progress,
    ProgressStep,
};

/// 2024-05-01T09:30:00Z: every import of the tests runs at this time.
pub const IMPORT_TIME: Timestamp = Timestamp(1_714_555_800_000);

pub const CONTOSO_TENANT: Uuid = Uuid::from_u128(0xc0e7c0e7_0000_4000_8000_000000000001);
pub const OFFICE_365_E1: Uuid = Uuid::from_u128(0x18181a46_0d4e_45cd_891e_60aabd171b4e);
pub const OFFICE_365_E3: Uuid = Uuid::from_u128(0x6fd2c87f_b296_42f0_b197_1e91e994b900);
pub const EMS_E3: Uuid = Uuid::from_u128(0xefccb6f7_5641_4e0e_bd10_b4976e1bf68e);
pub const WORKPLACE_ANALYTICS: Uuid = Uuid::from_u128(0x3d957427_ecdc_4df2_aacd_01cc9d519da8);
pub const SALES: Uuid = Uuid::from_u128(0x5a1e5000_0000_4000_8000_000000000001);
pub const MARKETING: Uuid = Uuid::from_u128(0x3a2e7000_0000_4000_8000_000000000002);
pub const ANALYTICS: Uuid = Uuid::from_u128(0xa0a1e000_0000_4000_8000_000000000003);
pub const MOBILITY: Uuid = Uuid::from_u128(0x30b11e00_0000_4000_8000_000000000005);

/// The id of contoso user number `number` (`a11ce000-0000-4000-8000-0000000000NN`, decimal digits).
pub fn contoso_user(number: u64) -> Uuid {
    let text = format!("a11ce000-0000-4000-8000-{number:012}");
    Uuid::parse_str(&text).unwrap_or_default()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn options() -> ImportOptions {
    ImportOptions {
        at: IMPORT_TIME,
        ..ImportOptions::default()
    }
}

pub fn read(path: &Path) -> Result<GraphExport, ImportError> {
    read_export(&[path.to_path_buf()], &mut NoProgress)
}

/// Reads and builds the export at `path`.
pub fn import(path: &Path) -> anyhow::Result<(GraphExport, Import)> {
    let export = read(path)?;
    let import = build_tenant(&export, &options(), &mut NoProgress)?;
    Ok((export, import))
}

/// Records every progress call.
#[derive(Default)]
pub struct RecordedProgress {
    pub steps: Vec<(ProgressStep, u64, u64)>,
    pub finished: usize,
}

impl Progress for RecordedProgress {
    fn start(&mut self, step: &ProgressStep, total: u64) {
        self.steps.push((step.clone(), total, 0));
    }

    fn advance(&mut self, amount: u64) {
        if let Some(last) = self.steps.last_mut() {
            last.2 += amount;
        }
    }

    fn finish(&mut self) {
        self.finished += 1;
    }
}

/// Copies a fixture directory (recursively) into `target`.
pub fn copy_directory(source: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    for entry in std::fs::read_dir(source)? {
        let path = entry?.path();
        let Some(name) = path.file_name() else { continue };
        if path.is_dir() {
            copy_directory(&path, &target.join(name))?;
        } else {
            std::fs::copy(&path, target.join(name))?;
        }
    }
    Ok(())
}
