//! A release server for tests: tiny_http on 127.0.0.1 (ephemeral port), one thread per request,
//! serving files from memory with `Range` support, and misbehaving on request: redirects,
//! status codes, failing N times, ignoring `Range`, or stalling mid-body.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tiny_http::{Header, Response};

/// One request the server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
}

#[derive(Clone)]
enum Route {
    File(Arc<Vec<u8>>),
    Redirect(String),
    /// A body that never ends (no length, zeros until the client hangs up).
    Endless,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    ignore_range: HashSet<String>,
    /// Path → (status, how many more times).
    failures: HashMap<String, (u16, usize)>,
    /// Path → bytes to send before stalling (once).
    stalls: HashMap<String, usize>,
    hits: Vec<Hit>,
}

pub struct Server {
    pub base: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    released: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

impl Server {
    pub fn start() -> Server {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let released = Arc::new(AtomicBool::new(false));
        let thread = {
            let (server, state, released) = (server.clone(), state.clone(), released.clone());
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let (state, released) = (state.clone(), released.clone());
                    thread::spawn(move || handle(request, &state, &released));
                }
            })
        };
        Server {
            base: format!("http://127.0.0.1:{port}"),
            state,
            server,
            released,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        state
            .routes
            .insert(path.into(), Route::File(Arc::new(bytes)));
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().routes.remove(path);
    }

    /// `path` answers 302 to `to` (a path on this server or a full URL).
    /// Serves `path` as a body that never ends, as a broken or hostile mirror would.
    pub fn endless(&self, path: &str) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), Route::Endless);
    }

    pub fn redirect(&self, path: &str, to: &str) {
        let mut state = self.state.lock().unwrap();
        state.routes.insert(path.into(), Route::Redirect(to.into()));
    }

    pub fn ignore_range(&self, path: &str) {
        self.state.lock().unwrap().ignore_range.insert(path.into());
    }

    /// The next `times` requests for `path` answer `status`.
    pub fn fail(&self, path: &str, status: u16, times: usize) {
        let mut state = self.state.lock().unwrap();
        state.failures.insert(path.into(), (status, times));
    }

    /// The next request for `path` gets `bytes` bytes of the body, then nothing (the
    /// connection stays open until the server is dropped).
    pub fn stall_after(&self, path: &str, bytes: usize) {
        self.state.lock().unwrap().stalls.insert(path.into(), bytes);
    }

    /// Requests seen for `path`, in order.
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        let state = self.state.lock().unwrap();
        state
            .hits
            .iter()
            .filter(|hit| hit.path == path)
            .cloned()
            .collect()
    }

    /// Every path requested, in order.
    pub fn paths(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.hits.iter().map(|hit| hit.path.clone()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.released.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(request: tiny_http::Request, state: &Mutex<State>, released: &AtomicBool) {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let range = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .map(|h| h.value.as_str().to_owned());
    let mut state_guard = state.lock().unwrap();
    let route = state_guard.routes.get(&path).cloned();
    let log = |status: u16, state: &mut State| {
        state.hits.push(Hit {
            path: path.clone(),
            range: range.clone(),
            status,
        })
    };

    let body = match route {
        None => {
            log(404, &mut state_guard);
            drop(state_guard);
            let _ = request.respond(Response::from_string("not found").with_status_code(404));
            return;
        }
        Some(Route::Redirect(to)) => {
            log(302, &mut state_guard);
            drop(state_guard);
            let _ = request.respond(Response::empty(302).with_header(header("Location", &to)));
            return;
        }
        Some(Route::Endless) => {
            log(200, &mut state_guard);
            drop(state_guard);
            let mut writer = request.into_writer();
            let _ = write!(
                writer,
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            let zeros = vec![0u8; 64 * 1024];
            // Until the client hangs up; 1 GiB at most, so a broken client cannot keep a test busy.
            for _ in 0..16 * 1024 {
                if writer.write_all(&zeros).is_err() {
                    break;
                }
            }
            return;
        }
        Some(Route::File(body)) => body,
    };
    if let Some((status, times)) = state_guard.failures.get_mut(&path)
        && *times > 0
    {
        *times -= 1;
        let status = *status;
        log(status, &mut state_guard);
        drop(state_guard);
        let _ = request.respond(Response::from_string("try later").with_status_code(status));
        return;
    }
    if let Some(bytes) = state_guard.stalls.remove(&path) {
        log(200, &mut state_guard);
        drop(state_guard);
        let mut writer = request.into_writer();
        let _ = write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
            body.len()
        );
        let _ = writer.write_all(&body[..bytes]);
        let _ = writer.flush();
        let deadline = Instant::now() + Duration::from_secs(300);
        while !released.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let ignore_range = state_guard.ignore_range.contains(&path);
    let start = range
        .as_deref()
        .filter(|_| !ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let len = body.len();
    let (status, response) = match start {
        Some(start) if start >= len => (
            416,
            Response::from_data(Vec::new())
                .with_status_code(416)
                .with_header(header("Content-Range", &format!("bytes */{len}"))),
        ),
        Some(start) => (
            206,
            Response::from_data(body[start..].to_vec())
                .with_status_code(206)
                .with_header(header(
                    "Content-Range",
                    &format!("bytes {start}-{}/{len}", len - 1),
                )),
        ),
        None => (200, Response::from_data(body.to_vec())),
    };
    log(status, &mut state_guard);
    drop(state_guard);
    let _ = request.respond(
        response
            .with_header(header("Accept-Ranges", "bytes"))
            .with_chunked_threshold(usize::MAX),
    );
}
