//! `caas api`: the discovery receiver.
//!
//! Routes (`GET /` lists them):
//! - `POST /discovery`: store a report. 200 `{"total_elt": n, "update": bool}` once it is on
//!   disk; 400 when the body is not JSON (whatever its content type: every body is tried as
//!   JSON, as in 2016, or when it nests arrays and objects more than 32 levels deep, so that
//!   every listing stays readable); 406 when the report is incoherent (no boot MAC, or not one of its
//!   interfaces'); 413 over 1 MiB; 503 when the database file was deleted or replaced under the
//!   running server (the report would not be in the file the next start opens), or when the
//!   PostgreSQL database cannot be reached (the same POST works once it is back).
//! - `GET /discovery`: every stored report, first seen first (`[]` when none).
//! - `GET /discovery/interfaces`: `{"interfaces": [[…machine 1…], […machine 2…]]}` (2016 shape).
//! - `GET /discovery/machines`: records with the MAC, first/last seen, update count and report.
//! - `GET /healthz`: `{"global", "api", "db", "machines", "matchbox": {path: bool}}`; 503 when
//!   something is down (`db` is false when the database file was deleted or replaced under the
//!   running server: POSTs are answered 503 then, as nothing they store would be found by the
//!   next start).
//! - `GET /boot.ipxe`, `GET /boot.ipxe.0`: the 2016 iPXE script that retries DHCP, then chains
//!   to `/ipxe` with the machine's uuid, mac, domain, hostname and serial.
//! - `GET /ipxe`: proxied to matchbox (`--matchbox-url`), query string included.
//!
//! Hostile or slow clients: headers must arrive within `--header-timeout` (also the keep-alive
//! idle limit), are at most 16 KiB and 64 fields; a request, body included, must finish within
//! `--request-timeout` (408); at most `--max-connections` connections are served at once; POST
//! bodies being read and parsed share a budget of 4 MiB (a POST waits for its share); at most
//! 16 listings are streamed at once (more wait up to 20 s, then 503), each dropped when its
//! client takes nothing for 10 s or falls below 256 KiB/s after its first 30 s.
//! With `--tls-cert` and `--tls-key` every connection is HTTPS (rustls): the TLS handshake must
//! finish within `--header-timeout` too, and the limits above apply inside it unchanged.
//! SIGTERM or SIGINT stops accepting, lets requests in flight finish (10 s at most), commits and
//! closes the store.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::handler::Handler as _;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::location::Location;
use super::machine::record_json;
use super::report::{MAX_DEPTH, Report, nesting_depth};
use super::storage::{self, Storage};
use super::store::{Row, StoreError};
use super::tls;
use crate::matchbox::server::MatchboxUrl;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest request head (request line and headers).
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// How long requests in flight may still run after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);
/// Timeout of each request to matchbox.
const MATCHBOX_TIMEOUT: Duration = Duration::from_secs(5);
/// Streamed responses are sent in chunks of about this size.
const CHUNK: usize = 64 * 1024;
/// A client that takes nothing of a streamed response for this long is dropped.
const STREAM_STALL: Duration = Duration::from_secs(10);
/// A listing may take this long, plus the time to send what was sent at [`STREAM_MIN_RATE`]:
/// a client that trickles is cut off once it falls behind, not after [`STREAM_DEADLINE`].
const STREAM_GRACE: Duration = Duration::from_secs(30);
const STREAM_MIN_RATE: u64 = 256 * 1024;
/// The longest one listing may take however steadily its client reads: each holds a blocking
/// thread and a read snapshot (which keeps the WAL from being checkpointed back).
const STREAM_DEADLINE: Duration = Duration::from_secs(600);
/// Listings streamed at once (each holds a blocking thread); more wait for a slot, first come
/// first served, for at most [`STREAM_QUEUE_WAIT`], then are answered 503.
const STREAMS_AT_ONCE: usize = 16;
static STREAMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STREAMS_AT_ONCE);
/// Longer than [`STREAM_STALL`]: listings held by clients that stopped reading free their
/// slots before a waiting one gives up.
const STREAM_QUEUE_WAIT: Duration = Duration::from_secs(20);
/// Bytes of POST bodies being read, parsed and stored at once, all connections together. A
/// body parsed into JSON values takes several times its size (up to ~8× for many tiny arrays):
/// this budget, not the connection count, bounds the memory of bodies in flight. A POST waits
/// for its share (its Content-Length, or [`MAX_BODY`] when it has none) within
/// `--request-timeout`.
const BODY_BUDGET: usize = 4 * MAX_BODY;
static BODY_BYTES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BODY_BUDGET);

/// The routes, as `GET /` lists them.
pub const ROUTES: [&str; 8] = [
    "/",
    "/boot.ipxe",
    "/boot.ipxe.0",
    "/discovery",
    "/discovery/interfaces",
    "/discovery/machines",
    "/healthz",
    "/ipxe",
];

/// The matchbox paths `/healthz` probes (those the 2016 API checked).
const MATCHBOX_PROBES: [&str; 3] = ["/", "/boot.ipxe", "/assets"];

struct Inner {
    storage: Arc<dyn Storage>,
    matchbox: Option<MatchboxUrl>,
    http: ureq::Agent,
    listen: SocketAddr,
    /// `http` or `https`: how this server is reached, for the boot script's URL.
    scheme: &'static str,
}

#[derive(Clone)]
struct AppState(Arc<Inner>);

/// Limits of the server; the CLI's flags.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Connections one client address may hold at once: one host cannot take every slot.
    pub max_connections_per_client: usize,
}

/// Connections held per client address, so one host cannot hold every slot (slow readers
/// that never finish, or a flood) while the machines of a rack wait to report.
#[derive(Default)]
struct PerClient(std::sync::Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its client; dropping it gives the slot back.
struct ClientSlot {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// A slot for `ip`, unless it already holds `cap` connections.
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<ClientSlot> {
        let mut held = self.0.lock().expect("client table lock");
        let count = held.entry(ip).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.clients.0.lock().expect("client table lock");
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// The peer address of a request's connection.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// The machine a request was about, for the request's log line.
#[derive(Clone)]
struct LoggedMac(String);

/// Where `caas api` listens, what it stores into and whom it proxies.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub listen: SocketAddr,
    /// The store: a SQLite file (created if missing) or a PostgreSQL database.
    pub db: Location,
    /// matchbox: `GET /ipxe` is proxied there and `/healthz` probes it.
    pub matchbox_url: Option<MatchboxUrl>,
    pub limits: Limits,
    /// Serve HTTPS with this certificate and key instead of HTTP.
    pub tls: Option<TlsFiles>,
}

/// The PEM files of `--tls-cert` and `--tls-key`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Runs `caas api` until SIGTERM or SIGINT; prints the listening address unless `quiet`.
pub fn api(args: &ApiOptions, quiet: bool) -> anyhow::Result<()> {
    // Before the store is opened: a bad certificate or key must leave nothing behind.
    let tls = args
        .tls
        .as_ref()
        .map(|files| tls::server_config(&files.cert, &files.key))
        .transpose()?
        .map(tokio_rustls::TlsAcceptor::from);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let storage = storage::open(&args.db)?;
    let machines = storage.count()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("caas-api")
        .build()
        .context("starting the async runtime")?;
    let limits = args.limits;
    let served = runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let local = listener
            .local_addr()
            .context("reading the listening address")?;
        if !quiet {
            let mut stdout = io::stdout().lock();
            let _ = writeln!(stdout, "listening on {scheme}://{local}");
            let _ = stdout.flush();
        }
        tracing::info!(
            listen = %local,
            scheme,
            db = %args.db,
            machines,
            matchbox = args.matchbox_url.as_ref().map_or("", |u| u.as_str()),
            "caas api started"
        );
        let state = app_state(storage.clone(), args.matchbox_url.clone(), local, scheme);
        serve(
            listener,
            tls,
            router(state, limits.request_timeout),
            limits,
            shutdown_signal(),
        )
        .await;
        anyhow::Ok(())
    });
    // Connections still open after the grace period are dropped here; then the store commits
    // what it holds and closes the database.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let closed = storage.close();
    served?;
    closed?;
    drop(storage);
    tracing::info!("caas api stopped");
    Ok(())
}

/// The handlers' shared state around a store.
fn app_state(
    storage: Arc<dyn Storage>,
    matchbox: Option<MatchboxUrl>,
    listen: SocketAddr,
    scheme: &'static str,
) -> AppState {
    AppState(Arc::new(Inner {
        storage,
        matchbox,
        http: ureq::Agent::config_builder()
            .timeout_global(Some(MATCHBOX_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .new_agent(),
        listen,
        scheme,
    }))
}

/// The application: routes, limits, per-request log lines.
fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/", get(list_routes))
        .route("/healthz", get(healthz))
        .route(
            "/discovery",
            get(list_reports).post(post_report.layer(middleware::from_fn(body_budget))),
        )
        .route("/discovery/interfaces", get(list_interfaces))
        .route("/discovery/machines", get(list_machines))
        .route("/boot.ipxe", get(boot_ipxe))
        .route("/boot.ipxe.0", get(boot_ipxe))
        .route("/ipxe", get(proxy_ipxe))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Accepts connections until `shutdown` resolves, then waits (at most [`GRACE`]) for the
/// connections to finish their requests. With `tls`, each connection first completes a TLS
/// handshake, within `--header-timeout` (a client that stalls it holds a connection slot).
async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // A client that shuts its side down once its request is sent still gets the answer
        // (the report is stored either way: it must learn that).
        .half_close(true)
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let clients = Arc::new(PerClient::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accepting a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client_slot) = clients.take(peer.ip(), limits.max_connections_per_client.max(1))
        else {
            // Closed at once: the client already holds its share, and the slot goes to others.
            tracing::debug!("{peer}: over the per-client connection cap, closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            http: http.clone(),
            app: app.clone(),
            peer,
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            match tls {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(err)) => tracing::debug!("TLS handshake with {peer}: {err}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
                    }
                }
            }
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(GRACE) => {
            tracing::warn!("requests still running after {}s: closing their connections", GRACE.as_secs());
        }
    }
}

/// What serving one accepted connection needs, plain or TLS.
struct Connection {
    http: hyper::server::conn::http1::Builder,
    app: Router,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    /// Serves HTTP/1.1 on `stream` until the client is done or the server shuts down.
    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            http,
            app,
            peer,
            watcher,
        } = self;
        let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            tower::ServiceExt::oneshot(app.clone(), request.map(Body::new))
        });
        let connection = http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        if let Err(err) = watcher.watch(connection).await {
            tracing::debug!("connection from {peer}: {err}");
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

/// One log line per request: method, path, status, duration, peer (and the machine for POSTs).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<Peer>()
        .map_or_else(String::new, |p| p.0.to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    let mac = response
        .extensions()
        .get::<LoggedMac>()
        .map(|m| m.0.as_str());
    tracing::info!(
        target: "caas::api",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        peer = %peer,
        mac,
        "request"
    );
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut body = serde_json::to_string(value).expect("JSON values serialise");
    body.push('\n');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({"error": message.into()}))
}

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn list_routes() -> Response {
    json_response(StatusCode::OK, &json!(ROUTES))
}

/// Waits for the request body's share of [`BODY_BUDGET`], held until the answer.
async fn body_budget(request: Request, next: Next) -> Response {
    let claimed = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(MAX_BODY)
        .clamp(1, MAX_BODY);
    let _share = BODY_BYTES
        .acquire_many(claimed as u32)
        .await
        .expect("the body budget is never closed");
    next.run(request).await
}

async fn post_report(State(state): State<AppState>, body: Bytes) -> Response {
    let depth = nesting_depth(&body);
    if depth > MAX_DEPTH {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("the body nests {depth} levels deep; a report may nest {MAX_DEPTH} at most"),
        );
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {err}"),
            );
        }
    };
    let report = match Report::from_value(value) {
        Ok(report) => report,
        Err(err) => return error_response(StatusCode::NOT_ACCEPTABLE, err.0),
    };
    let mac = match report.check() {
        Ok(mac) => mac,
        Err(err) => return error_response(StatusCode::NOT_ACCEPTABLE, err.0),
    };
    let mut response = match state.0.storage.upsert(mac.clone(), report.to_json()).await {
        Ok(ack) => json_response(
            StatusCode::OK,
            &json!({"total_elt": ack.total, "update": ack.update}),
        ),
        Err(err @ (StoreError::Gone(_) | StoreError::Unavailable(_))) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storing the report: {err}"),
        ),
        Err(err @ StoreError::Failed(_)) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing the report: {err}"),
        ),
    };
    response.extensions_mut().insert(LoggedMac(mac));
    response
}

/// A streamed response whose client is no longer there to read it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ClientGone(&'static str);

/// Streams `open`, the rows rendered by `render` and separated by commas, then `close`, from
/// one read snapshot. An error before the first chunk is a 500; a later one cuts the body.
async fn stream_rows(
    state: &AppState,
    open: &'static str,
    close: &'static str,
    render: fn(&Row, &mut String) -> anyhow::Result<()>,
) -> Response {
    let Ok(Ok(permit)) = tokio::time::timeout(STREAM_QUEUE_WAIT, STREAMS.acquire()).await else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{STREAMS_AT_ONCE} listings are being sent already: try again shortly"),
        );
    };
    let (chunks, mut received) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    // Set once the closing chunk is in the channel.
    let finished = Arc::new(AtomicBool::new(false));
    let complete = finished.clone();
    let inner = state.0.clone();
    let runtime = tokio::runtime::Handle::current();
    let started = tokio::time::Instant::now();
    let deadline = started + STREAM_DEADLINE;
    let mut sent: u64 = 0;
    // Waits for room in the channel, but not forever: a client that stops reading, or reads
    // too slowly, must not keep a blocking thread and a read snapshot.
    let mut send = move |chunk: Result<Bytes, io::Error>| -> anyhow::Result<()> {
        let earned = STREAM_GRACE + Duration::from_secs(sent / STREAM_MIN_RATE);
        let until = deadline
            .min(started + earned)
            .min(tokio::time::Instant::now() + STREAM_STALL);
        sent += chunk.as_ref().map_or(0, |bytes| bytes.len() as u64);
        match runtime.block_on(tokio::time::timeout_at(until, chunks.send(chunk))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(anyhow::Error::new(ClientGone("the client went away"))),
            Err(_) => Err(anyhow::Error::new(ClientGone(
                "the client stopped reading, or took too long",
            ))),
        }
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut buffer = String::with_capacity(CHUNK + 4096);
        buffer.push_str(open);
        let mut first = true;
        let result = inner.storage.for_each_row(&mut |row| {
            if !first {
                buffer.push(',');
            }
            first = false;
            render(&row, &mut buffer)?;
            if buffer.len() >= CHUNK {
                send(Ok(Bytes::from(std::mem::take(&mut buffer))))?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                buffer.push_str(close);
                buffer.push('\n');
                if send(Ok(Bytes::from(buffer))).is_ok() {
                    complete.store(true, Ordering::SeqCst);
                }
            }
            Err(err) => {
                let message = crate::error::one_line(&err);
                if err.is::<ClientGone>() {
                    // No last word: waiting for room again would keep the slot another
                    // STREAM_STALL. The body ends with an error without it (see below).
                    tracing::debug!("streaming a response: {message}");
                } else {
                    tracing::error!("reading the store: {message}");
                    let _ = send(Err(io::Error::other(message)));
                }
            }
        }
    });
    let first = match received.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(err)) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the store: {err}"),
            );
        }
        None => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the store failed",
            );
        }
    };
    // The sender gone without the closing chunk: an error, so that hyper cuts the connection
    // instead of ending a truncated listing as if it were whole.
    let rest = futures_util::stream::unfold(Some(received), move |received| {
        let finished = finished.clone();
        async move {
            let mut received = received?;
            match received.recv().await {
                Some(item) => Some((item, Some(received))),
                None if finished.load(Ordering::SeqCst) => None,
                None => Some((Err(io::Error::other("the listing was cut off")), None)),
            }
        }
    });
    let body = futures_util::stream::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, io::Error>(first)]),
        rest,
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from_stream(body),
    )
        .into_response()
}

async fn list_reports(State(state): State<AppState>) -> Response {
    stream_rows(&state, "[", "]", |row, out| {
        out.push_str(&row.report);
        Ok(())
    })
    .await
}

async fn list_interfaces(State(state): State<AppState>) -> Response {
    stream_rows(&state, r#"{"interfaces":["#, "]}", |row, out| {
        let report: Value = serde_json::from_str(&row.report)
            .with_context(|| format!("the stored report of {} is unreadable", row.mac))?;
        let interfaces = report.get("interfaces").cloned().unwrap_or(json!([]));
        out.push_str(&interfaces.to_string());
        Ok(())
    })
    .await
}

async fn list_machines(State(state): State<AppState>) -> Response {
    stream_rows(&state, "[", "]", |row, out| {
        out.push_str(&record_json(
            &row.mac,
            row.first_seen,
            row.last_seen,
            row.updates,
            &row.report,
        ));
        Ok(())
    })
    .await
}

async fn healthz(State(state): State<AppState>) -> Response {
    let inner = state.0.clone();
    let db = tokio::task::spawn_blocking(move || inner.storage.health())
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
    let mut matchbox = BTreeMap::new();
    if let Some(base) = &state.0.matchbox {
        let probes: Vec<_> = MATCHBOX_PROBES
            .iter()
            .map(|path| {
                let url = base.join(path);
                let http = state.0.http.clone();
                tokio::task::spawn_blocking(move || {
                    matches!(http.get(&url).call(), Ok(response) if response.status() == StatusCode::OK)
                })
            })
            .collect();
        for (path, probe) in MATCHBOX_PROBES.iter().zip(probes) {
            matchbox.insert(*path, probe.await.unwrap_or(false));
        }
    }
    if let Err(err) = &db {
        tracing::error!("health check: {}", crate::error::one_line(err));
    }
    let global = db.is_ok() && matchbox.values().all(|up| *up);
    let body = json!({
        "global": global,
        "api": true,
        "db": db.is_ok(),
        "machines": db.as_ref().ok(),
        "matchbox": matchbox,
    });
    let status = if global {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

/// A Host header that can go into an iPXE script as it is: a host name or address and a port.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The 2016 boot script: retry DHCP until it works, then chain to `/ipxe` on this server with
/// the machine's identity.
pub fn boot_script(base: &str) -> String {
    format!(
        "#!ipxe\n\
         echo start /boot.ipxe\n\
         :retry_dhcp\n\
         dhcp || goto retry_dhcp\n\
         chain {base}/ipxe?uuid=${{uuid}}&mac=${{net0/mac:hexhyp}}&domain=${{domain}}&hostname=${{hostname}}&serial=${{serial}}\n"
    )
}

async fn boot_ipxe(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let host = match headers.get(header::HOST) {
        Some(value) => match value.to_str() {
            Ok(host) if plain_host(host) => host.to_owned(),
            _ => return error_response(StatusCode::BAD_REQUEST, "invalid Host header"),
        },
        None => state.0.listen.to_string(),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        boot_script(&format!("{}://{host}", state.0.scheme)),
    )
        .into_response()
}

async fn proxy_ipxe(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(base) = state.0.matchbox.clone() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "no matchbox to ask: start caas api with --matchbox-url",
        );
    };
    let url = match query {
        Some(query) => base.join(&format!("/ipxe?{query}")),
        None => base.join("/ipxe"),
    };
    let http = state.0.http.clone();
    let fetched = tokio::task::spawn_blocking(move || -> anyhow::Result<(u16, String)> {
        let mut response = http
            .get(&url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY as u64)
            .read_to_string()
            .with_context(|| format!("GET {url}"))?;
        Ok((status, body))
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    match fetched {
        Ok((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(err) => error_response(
            StatusCode::BAD_GATEWAY,
            format!("matchbox: {}", crate::error::one_line(&err)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::memory::MemoryStorage;
    use crate::discovery::storage::StoreRead as _;

    /// The router over an in-memory store, and the store.
    fn app() -> (Router, Arc<MemoryStorage>) {
        let storage = Arc::new(MemoryStorage::new());
        let listen = SocketAddr::from(([127, 0, 0, 1], 5000));
        let state = app_state(storage.clone(), None, listen, "http");
        (router(state, Duration::from_secs(5)), storage)
    }

    /// One request through the router, in process: (status, body).
    fn call(app: &Router, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::from(body.to_owned()))
                .unwrap();
            let response = tower::ServiceExt::oneshot(app.clone(), request)
                .await
                .unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        })
    }

    fn report(mac: &str, hostname: &str) -> String {
        json!({
            "boot-info": {"mac": mac},
            "hostname": hostname,
            "interfaces": [{"name": "eth0", "mac": mac, "ipv4": "10.0.0.5", "cidrv4": "10.0.0.5/24"}]
        })
        .to_string()
    }

    #[test]
    fn a_post_is_stored_and_a_repost_updates_it() {
        let (app, storage) = app();
        let a = "52:54:00:00:00:0a";
        let (status, body) = call(&app, "POST", "/discovery", &report(a, "one"));
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "{\"total_elt\":1,\"update\":false}\n")
        );
        let (status, body) = call(&app, "POST", "/discovery", &report(a, "two"));
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "{\"total_elt\":1,\"update\":true}\n")
        );
        let (status, body) = call(&app, "GET", "/discovery/machines", "");
        assert_eq!(status, StatusCode::OK);
        let machines: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(machines[0]["mac"], a);
        assert_eq!(machines[0]["updates"], 1);
        assert_eq!(machines[0]["report"]["hostname"], "two");
        assert_eq!(storage.machines().unwrap().len(), 1);
        let (status, body) = call(&app, "GET", "/discovery/interfaces", "");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["interfaces"][0][0]["mac"],
            a
        );
        // Refused reports are not stored.
        let (status, _) = call(&app, "POST", "/discovery", "{not json");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = call(&app, "POST", "/discovery", r#"{"hostname": "no-mac"}"#);
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(storage.count().unwrap(), 1);
    }

    #[test]
    fn a_store_that_is_down_answers_503_until_it_is_back() {
        let (app, storage) = app();
        let a = "52:54:00:00:00:0a";
        storage.set_down(true);
        let (status, body) = call(&app, "POST", "/discovery", &report(a, "h"));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let (status, body) = call(&app, "GET", "/healthz", "");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["db"], false);
        storage.set_down(false);
        let (status, _) = call(&app, "POST", "/discovery", &report(a, "h"));
        assert_eq!(status, StatusCode::OK);
        let (status, body) = call(&app, "GET", "/healthz", "");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"global": true, "api": true, "db": true, "machines": 1, "matchbox": {}})
        );
    }

    #[test]
    fn the_boot_script_is_the_2016_one() {
        assert_eq!(
            boot_script("http://172.20.0.1:5000"),
            "#!ipxe\necho start /boot.ipxe\n:retry_dhcp\ndhcp || goto retry_dhcp\n\
             chain http://172.20.0.1:5000/ipxe?uuid=${uuid}&mac=${net0/mac:hexhyp}&domain=${domain}&hostname=${hostname}&serial=${serial}\n"
        );
    }

    #[test]
    fn only_plain_hosts_go_into_scripts() {
        for ok in ["localhost", "172.20.0.1:5000", "[::1]:5000", "api.lab"] {
            assert!(plain_host(ok), "{ok}");
        }
        for bad in ["", "a b", "h\nchain x", "h/${x}", "h\"", &"a".repeat(300)] {
            assert!(!plain_host(bad), "{bad}");
        }
    }
}
