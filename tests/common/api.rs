//! A running `caas api` for the tests that need one.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The operator token of every `caas api` the tests start (see [`Api::start`]).
pub const TOKEN: &str = "test-operator-token-0123456789";

/// A running `caas api` on an ephemeral port; killed when dropped.
pub struct Api {
    child: Child,
    pub url: String,
    pub stderr: PathBuf,
    /// The file holding [`TOKEN`], given as `--operator-token-file`; `None` without a token.
    pub token_file: Option<PathBuf>,
}

impl Api {
    /// `caas api` with the operator token [`TOKEN`] (its file next to `db`).
    pub fn start(db: &Path, extra: &[&str]) -> Api {
        let token_file = db.with_extension(format!("token-{}", unique()));
        fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = vec!["--operator-token-file", token_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut api = Api::start_without_token(db, &args);
        api.token_file = Some(token_file);
        api
    }

    /// `caas api` as started with `extra` only: no operator token unless `extra` gives one.
    pub fn start_without_token(db: &Path, extra: &[&str]) -> Api {
        let stderr = db.with_extension(format!("stderr-{}", unique()));
        Api::start_logging(db.as_os_str(), stderr, extra)
    }

    /// `caas api --db <url>` (a PostgreSQL URL) with the operator token [`TOKEN`], its log and
    /// token file in `log_dir`.
    pub fn start_url(url: &str, log_dir: &Path, extra: &[&str]) -> Api {
        let n = unique();
        let token_file = log_dir.join(format!("api-{n}.token"));
        fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = vec!["--operator-token-file", token_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let stderr = log_dir.join(format!("api-{n}.stderr"));
        let mut api = Api::start_logging(url.as_ref(), stderr, &args);
        api.token_file = Some(token_file);
        api
    }

    fn start_logging(db: &std::ffi::OsStr, stderr: PathBuf, extra: &[&str]) -> Api {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caas"))
            .args(["api", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env_remove("CAAS_OPERATOR_TOKEN_FILE")
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
        Api {
            child,
            url,
            stderr,
            token_file: None,
        }
    }

    /// The operator token as clients hold it.
    pub fn operator_token(&self) -> caas::discovery::token::OperatorToken {
        let file = self.token_file.as_ref().expect("started with a token");
        caas::discovery::token::OperatorToken::read("--operator-token-file", file).unwrap()
    }

    /// How an operator's client reaches this API (the token; the system's CAs).
    pub fn operator(&self) -> caas::discovery::client::Operator {
        caas::discovery::client::Operator {
            token: Some(self.operator_token()),
            ca: None,
        }
    }

    /// `--operator-token-file FILE` for a client command.
    pub fn token_args(&self) -> [&str; 2] {
        let file = self.token_file.as_ref().expect("started with a token");
        ["--operator-token-file", file.to_str().unwrap()]
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
