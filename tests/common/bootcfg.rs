//! The real bootcfg v0.4.2 (matchbox's 2016 ancestor), as an oracle. `scripts/install-test-deps.sh`
//! builds it next to matchbox: the directory `/var/cache/caas-test/matchbox/current` points into
//! holds `bootcfg` too; `CAAS_TEST_BOOTCFG` names another binary. Tests that need it fail when
//! it is missing, they never skip.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::matchbox::{free_port, http_get, wait_listening};

/// The bootcfg v0.4.2 binary; panics with how to get it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAAS_TEST_BOOTCFG") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("CAAS_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/caas-test"));
    let current = cache.join("matchbox/current");
    let matchbox = std::fs::read_to_string(&current)
        .map(|text| PathBuf::from(text.trim()))
        .unwrap_or_default();
    let path = matchbox.with_file_name("bootcfg");
    assert!(
        path.is_file(),
        "bootcfg v0.4.2 is not built next to {} ({}): run scripts/install-test-deps.sh",
        matchbox.display(),
        current.display()
    );
    path
}

/// A running bootcfg serving one data directory, its log in a file; stopped when dropped.
pub struct Bootcfg {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Bootcfg {
    /// Starts bootcfg on `data` and `assets`, logging at debug level to `log`. It listens on
    /// `localhost:PORT`: built with a Go newer than 1.12 it refuses `127.0.0.1:PORT`.
    pub fn start(data: &Path, assets: &Path, log: &Path) -> Bootcfg {
        let port = free_port();
        let child = Command::new(binary())
            .arg("-address")
            .arg(format!("localhost:{port}"))
            .arg("-data-path")
            .arg(data)
            .arg("-assets-path")
            .arg(assets)
            .args(["-log-level", "debug"])
            .stdout(File::create(log).unwrap())
            .stderr(File::create(log.with_extension("stderr")).unwrap())
            .spawn()
            .expect("starting bootcfg");
        let server = Bootcfg {
            child,
            port,
            log: log.to_owned(),
        };
        wait_listening(port, "bootcfg");
        server
    }

    /// `GET <path_and_query>`: the status code and the body.
    pub fn get(&self, path_and_query: &str) -> (u16, Vec<u8>) {
        http_get(self.port, path_and_query)
    }

    /// Everything bootcfg logged so far.
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.push_str(
            &std::fs::read_to_string(self.log.with_extension("stderr")).unwrap_or_default(),
        );
        text
    }
}

impl Drop for Bootcfg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
