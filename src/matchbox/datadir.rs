//! The data directory matchbox serves (`-data-path`): where each kind of file lives.

use std::path::{Path, PathBuf};

use crate::ids::Id;

/// A matchbox data directory: `profiles/`, `groups/`, `ignition/`, `cloud/`, `generic/` and
/// (by default, matchbox's `-assets-path`) `assets/`.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn profiles_dir(&self) -> PathBuf {
        self.root.join("profiles")
    }

    pub fn groups_dir(&self) -> PathBuf {
        self.root.join("groups")
    }

    pub fn ignition_dir(&self) -> PathBuf {
        self.root.join("ignition")
    }

    pub fn assets_dir(&self) -> PathBuf {
        self.root.join("assets")
    }

    /// `profiles/<id>.json`: matchbox looks profiles up by file name, never by the id inside.
    pub fn profile_path(&self, id: &Id) -> PathBuf {
        self.profiles_dir().join(format!("{id}.json"))
    }

    /// `groups/<id>.json`.
    pub fn group_path(&self, id: &Id) -> PathBuf {
        self.groups_dir().join(format!("{id}.json"))
    }

    /// `ignition/<name>`: the name carries its own extension (`.ign` for raw Ignition).
    pub fn ignition_path(&self, name: &Id) -> PathBuf {
        self.ignition_dir().join(name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_matchbox_layout() {
        let dir = DataDir::new("/var/lib/matchbox");
        let id = Id::new("node1").unwrap();
        assert_eq!(
            dir.profile_path(&id),
            Path::new("/var/lib/matchbox/profiles/node1.json")
        );
        assert_eq!(
            dir.group_path(&id),
            Path::new("/var/lib/matchbox/groups/node1.json")
        );
        let ign = Id::new("node1.ign").unwrap();
        assert_eq!(
            dir.ignition_path(&ign),
            Path::new("/var/lib/matchbox/ignition/node1.ign")
        );
    }
}
