//! The record of what `gen cluster` wrote for a lab: `clusters/<lab>.json` in the data dir,
//! each file's path (relative to the data dir) and sha256.
//!
//! It is how caas recognises the files it may remove: a file is pruned only when the previous
//! run of the same lab recorded it, the spec no longer names it, its path is one caas writes
//! (`profiles/<id>.json`, `groups/<id>.json`, `ignition/<id>.ign`), and its bytes are still the
//! ones caas wrote. Anything else (a hand-written group, a file edited since) is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::ids::Id;
use crate::matchbox::DataDir;
use crate::write::{FileWrite, canonical_json, sha256_hex};

/// The directory of the records, under the data dir (matchbox reads nothing there).
pub const RECORDS_DIR: &str = "clusters";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub lab: String,
    /// Relative path → sha256 of the bytes caas wrote.
    pub files: BTreeMap<String, String>,
}

pub fn record_path(data_dir: &DataDir, lab: &Id) -> PathBuf {
    data_dir
        .root()
        .join(RECORDS_DIR)
        .join(format!("{lab}.json"))
}

/// The previous record, if there is one.
pub fn read(data_dir: &DataDir, lab: &Id) -> Result<Option<Record>> {
    let path = record_path(data_dir, lab);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let record = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a caas cluster record (remove it to start afresh)",
            path.display()
        )
    })?;
    Ok(Some(record))
}

/// Whether `relative` is a path `gen cluster` writes: one of its three directories, then one
/// plain file name with the right extension. A record edited to name anything else
/// (`../x`, `/etc/passwd`, `assets/…`) cannot make caas remove it.
pub fn is_generated_path(relative: &str) -> bool {
    let path = Path::new(relative);
    let mut components = path.components();
    let (Some(Component::Normal(dir)), Some(Component::Normal(file)), None) =
        (components.next(), components.next(), components.next())
    else {
        return false;
    };
    let (Some(dir), Some(file)) = (dir.to_str(), file.to_str()) else {
        return false;
    };
    if Id::new(file).is_err() {
        return false;
    }
    match dir {
        "profiles" | "groups" => file.ends_with(".json"),
        "ignition" => file.ends_with(".ign"),
        _ => false,
    }
}

/// What to do with the files an earlier run recorded and the spec no longer names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stale {
    /// Unchanged since caas wrote them: removed with `--prune`, reported otherwise.
    pub removable: Vec<(String, String)>,
    /// Changed since caas wrote them: kept, reported, and no longer recorded.
    pub modified: Vec<String>,
}

/// Compares the previous record with the paths the plan writes.
pub fn stale(data_dir: &DataDir, previous: &Record, planned: &BTreeSet<String>) -> Result<Stale> {
    let mut stale = Stale::default();
    for (relative, sha256) in &previous.files {
        if planned.contains(relative) || !is_generated_path(relative) {
            continue;
        }
        let path = data_dir.root().join(relative);
        match fs::read(&path) {
            Ok(bytes) if sha256_hex(&bytes) == *sha256 => {
                stale.removable.push((relative.clone(), sha256.clone()));
            }
            Ok(_) => stale.modified.push(relative.clone()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(stale)
}

/// The new record: every planned file, plus the stale ones that stay on disk.
pub fn record_file(
    data_dir: &DataDir,
    lab: &Id,
    files: &[FileWrite],
    kept: &[(String, String)],
) -> FileWrite {
    let mut record = Record {
        lab: lab.to_string(),
        files: BTreeMap::new(),
    };
    for file in files {
        if let Ok(relative) = file.path.strip_prefix(data_dir.root()) {
            record.files.insert(
                relative.to_string_lossy().into_owned(),
                sha256_hex(&file.bytes),
            );
        }
    }
    record.files.extend(kept.iter().cloned());
    FileWrite::new(record_path(data_dir, lab), canonical_json(&record))
}

/// `relative` (from the data dir) for a planned file.
pub fn relative(data_dir: &DataDir, path: &Path) -> Option<String> {
    path.strip_prefix(data_dir.root())
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_caas_writes_are_generated_paths() {
        for ok in [
            "profiles/a.json",
            "groups/node1-installed.json",
            "ignition/x.ign",
        ] {
            assert!(is_generated_path(ok), "{ok}");
        }
        for bad in [
            "../groups/a.json",
            "/etc/passwd",
            "groups/../../x.json",
            "groups/sub/a.json",
            "assets/caas/caas",
            "groups/.hidden.json",
            "groups/a.txt",
            "ignition/a.json",
            "clusters/lab.json",
            "groups",
        ] {
            assert!(!is_generated_path(bad), "{bad}");
        }
    }

    #[test]
    fn stale_files_are_removable_only_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path());
        fs::create_dir_all(dir.path().join("groups")).unwrap();
        fs::write(dir.path().join("groups/same.json"), b"same").unwrap();
        fs::write(dir.path().join("groups/edited.json"), b"edited by hand").unwrap();
        fs::write(dir.path().join("groups/kept.json"), b"kept").unwrap();
        let previous = Record {
            lab: "lab".into(),
            files: [
                ("groups/same.json", sha256_hex(b"same")),
                ("groups/edited.json", sha256_hex(b"as caas wrote it")),
                ("groups/gone.json", sha256_hex(b"gone")),
                ("groups/kept.json", sha256_hex(b"kept")),
                ("../outside.json", sha256_hex(b"x")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        };
        let planned = BTreeSet::from(["groups/kept.json".to_owned()]);
        let stale = stale(&data_dir, &previous, &planned).unwrap();
        assert_eq!(
            stale.removable,
            vec![("groups/same.json".to_owned(), sha256_hex(b"same"))]
        );
        assert_eq!(stale.modified, vec!["groups/edited.json".to_owned()]);
    }
}
