//! A small file system for the tests of what caas does when the disk fills up.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted on a directory for the test's life (the tests run as root,
/// like CI); unmounted when dropped.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`1200k`, `16m`) on `dir`, creating it.
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size}"))
            .arg("caas-test")
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a small tmpfs needs root");
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
