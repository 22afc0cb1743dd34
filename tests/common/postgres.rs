//! A private PostgreSQL cluster for the tests: Debian's `postgresql` package
//! (`scripts/install-test-deps.sh` installs it), `initdb` in a temporary directory, the server
//! on a Unix socket in that directory (no TCP port at all), stopped when dropped.
//!
//! PostgreSQL refuses to run as root: as root, the cluster runs as the package's `postgres`
//! user; otherwise as the current user.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running cluster; `postgres` database, `postgres` superuser, trust authentication on its
/// socket (reachable only through the private directory).
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run the server and its tools as this (uid, gid), when the tests run as root.
    user: Option<(u32, u32)>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(root)
        .unwrap_or_else(|err| {
            panic!(
                "{}: {err}: PostgreSQL is needed (Debian package postgresql): run \
                 scripts/install-test-deps.sh",
                root.display()
            )
        })
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL under {}: run scripts/install-test-deps.sh",
                root.display()
            )
        })
        .1
}

/// The (uid, gid) of the `postgres` user from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .expect("no postgres user (Debian package postgresql): run scripts/install-test-deps.sh")
}

impl Postgres {
    /// initdb and start a new cluster.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("caas-pg-")
            .tempdir()
            .unwrap();
        let user = rustix::process::geteuid().is_root().then(postgres_user);
        // The server's user must reach its directories inside ours.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["data", "socket"] {
            let path = dir.path().join(sub);
            fs::create_dir(&path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
        let cluster = Postgres { dir, bin, user };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// The URL of database `name` (see [`Postgres::create_database`]).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgresql:///{name}?host={}&user=postgres",
            self.socket_dir().display()
        )
    }

    /// Creates database `name`; its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// Runs SQL with psql in database `db`; its output (tuples only, unaligned).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let socket = self.socket_dir();
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                socket.to_str().unwrap(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts the server (again).
    pub fn start_server(&self) {
        let data = self.data();
        let socket = self.socket_dir();
        let log = self.dir.path().join("server.log");
        if !log.exists() {
            fs::write(&log, b"").unwrap();
            if let Some((uid, gid)) = self.user {
                std::os::unix::fs::chown(&log, Some(uid), Some(gid)).unwrap();
            }
        }
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c max_connections=200",
            socket.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (fast shutdown: clients are disconnected), waiting until it is down.
    pub fn stop_server(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// The server's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn command(&self, tool: &str) -> Command {
        let mut command = Command::new(self.bin.join(tool));
        command.env("LC_ALL", "C").env_remove("PGPASSWORD");
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid).current_dir(self.dir.path());
        }
        command
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let out = self.command(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}
