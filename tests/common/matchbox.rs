//! The real matchbox v0.8.3, as an oracle: started on a data directory, asked over HTTP.
//!
//! `scripts/install-test-deps.sh` builds stock matchbox v0.8.3 and caches it under
//! `/var/cache/caas-test/matchbox/<hash>/matchbox`; `CAAS_TEST_MATCHBOX` names another binary.
//! Tests that need it fail when it is missing, they never skip.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CACHE: &str = "/var/cache/caas-test/matchbox";

/// The matchbox v0.8.3 binary; panics with how to get it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAAS_TEST_MATCHBOX") {
        return PathBuf::from(path);
    }
    let found = std::fs::read_dir(CACHE).ok().and_then(|entries| {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path().join("matchbox")))
            .filter(|path| path.is_file())
            .collect();
        found.sort();
        found.pop()
    });
    found.unwrap_or_else(|| {
        panic!("matchbox v0.8.3 is not built under {CACHE}: run scripts/install-test-deps.sh")
    })
}

/// A running matchbox serving one data directory; stopped when dropped.
pub struct Matchbox {
    child: Child,
    port: u16,
}

impl Matchbox {
    pub fn start(data: &Path) -> Matchbox {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary())
            .arg("-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-data-path")
            .arg(data)
            .args(["-assets-path", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting matchbox");
        let server = Matchbox { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "matchbox did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `GET <path_and_query>`: the status code and the body.
    pub fn get(&self, path_and_query: &str) -> (u16, Vec<u8>) {
        http_get(self.port, path_and_query)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `GET /ipxe?<query>`: the script when matchbox answers 200, `None` for a 404.
    pub fn ipxe(&self, query: &str) -> Option<String> {
        match self.get(&format!("/ipxe?{query}")) {
            (200, body) => Some(String::from_utf8(body).unwrap()),
            (404, _) => None,
            (status, body) => panic!("/ipxe?{query}: {status} {}", String::from_utf8_lossy(&body)),
        }
    }
}

/// `GET <path_and_query>` from a server on 127.0.0.1:`port`: the status code and the body.
pub fn http_get(port: u16, path_and_query: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    (status, response[end + 4..].to_vec())
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Matchbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
