//! A running `caas api` for the tests that need one.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A running `caas api` on an ephemeral port; killed when dropped.
pub struct Api {
    child: Child,
    pub url: String,
    pub stderr: PathBuf,
}

impl Api {
    pub fn start(db: &Path, extra: &[&str]) -> Api {
        let stderr = db.with_extension(format!("stderr-{}", unique()));
        Api::start_logging(db.as_os_str(), stderr, extra)
    }

    /// `caas api --db <url>` (a PostgreSQL URL), its log in `log_dir`.
    pub fn start_url(url: &str, log_dir: &Path, extra: &[&str]) -> Api {
        let stderr = log_dir.join(format!("api-{}.stderr", unique()));
        Api::start_logging(url.as_ref(), stderr, extra)
    }

    fn start_logging(db: &std::ffi::OsStr, stderr: PathBuf, extra: &[&str]) -> Api {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caas"))
            .args(["api", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env_remove("CAAS_MATCHBOX_URL")
            .env_remove("CAAS_DB")
            .env_remove("CAAS_LOG")
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "caas api did not start: {line:?}\n{}",
                    fs::read_to_string(&stderr).unwrap_or_default()
                )
            })
            .to_owned();
        Api { child, url, stderr }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "caas api ignored SIGTERM:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Api {
    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
