//! HTTP for release downloads: one ureq agent (rustls, redirects followed, no transparent
//! decompression, so byte ranges and digests are over the stored bytes), retries with
//! exponential backoff, and resumable downloads into a [`Sink`].
//!
//! Resuming: a download that finds bytes already in its sink asks for the rest with `Range`.
//! A `206` whose `Content-Range` starts where the sink ends is appended; a `200` means the
//! server ignored the range, so the sink restarts from zero; a `416` whose `Content-Range`
//! total equals the sink's length means the file is already complete.

use std::io::Read as _;
use std::time::Duration;

use anyhow::anyhow;
use ureq::ResponseExt as _;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Read buffer of a download.
const CHUNK: usize = 256 * 1024;
/// Most bytes a metadata document or a signature may have.
pub const SMALL_LIMIT: u64 = 16 * 1024 * 1024;
/// Most bytes a downloaded file may have unless `--max-size` says otherwise: the largest file
/// caas fetches (Fedora CoreOS's live rootfs) is under 1 GiB, so a server that sends more is
/// broken or hostile, and the disk is not its to fill.
pub const DEFAULT_MAX_SIZE: u64 = 2 * 1024 * 1024 * 1024;

/// How downloads behave: retries, timeouts and the largest file accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Extra attempts on 408, 429, 5xx and connection errors.
    pub retries: u32,
    /// The first wait between attempts (doubles each time).
    pub retry_delay: Duration,
    /// A connection that sends nothing for this long counts as broken.
    pub read_timeout: Duration,
    /// The largest file a download may be: a server that says or sends more is refused.
    pub max_size: u64,
}

/// A download refused because the file is larger than [`Transfer::max_size`]. Nothing of it is
/// worth keeping for a resume.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {what} more than the {limit} a download may be (--max-size)", limit = bytesize::ByteSize::b(*.limit).display().iec())]
pub struct TooLarge {
    pub url: String,
    pub what: String,
    pub limit: u64,
}

/// True when `err` says the disk (or the user's quota) is full: what a download held is then
/// better deleted than kept for a resume.
pub fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        })
    })
}

/// True when a failed download's partial file is not worth keeping: the disk is full, or the
/// file is larger than allowed.
pub fn is_unresumable(err: &anyhow::Error) -> bool {
    is_disk_full(err) || err.chain().any(|cause| cause.is::<TooLarge>())
}

/// A server answered with a status that is not success.
#[derive(Debug, thiserror::Error)]
#[error("{url} answered HTTP {code}")]
pub struct HttpStatus {
    pub url: String,
    pub code: u16,
}

impl HttpStatus {
    /// 408, 429 and 5xx are worth another try; everything else is final.
    pub fn retryable(&self) -> bool {
        matches!(self.code, 408 | 429 | 500..=599)
    }
}

/// True when `err` is (or was caused by) an HTTP 404 or 410.
pub fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<HttpStatus>()
            .is_some_and(|status| matches!(status.code, 404 | 410))
    })
}

/// Where downloaded bytes go.
pub trait Sink {
    /// Bytes held so far (a resumed download asks for the rest).
    fn held(&self) -> u64;
    /// Drops everything held: the next bytes start the file again.
    fn restart(&mut self) -> anyhow::Result<()>;
    /// Appends the next bytes.
    fn append(&mut self, bytes: &[u8]) -> anyhow::Result<()>;
}

/// What a download reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A response started: resuming at `offset` (0 = from the start), `total` bytes if known.
    Started { offset: u64, total: Option<u64> },
    /// The sink now holds `bytes` bytes.
    Bytes(u64),
    /// Attempt `attempt` failed for `reason`; the next starts after `delay`.
    Retrying {
        attempt: u32,
        delay: Duration,
        reason: String,
    },
    /// The held bytes were dropped and the download starts again, for `reason`.
    Restarted { reason: String },
}

/// The HTTP client of a fetch.
pub struct Http {
    agent: ureq::Agent,
    retries: u32,
    base_delay: Duration,
    max_size: u64,
}

enum Failure {
    /// Worth another attempt after a pause.
    Retry(anyhow::Error),
    /// Final.
    Fatal(anyhow::Error),
    /// Ask again at once (the sink was restarted).
    Again,
}

impl Http {
    /// `https_only`: refuse plain-HTTP URLs (official servers); a mirror may be plain HTTP,
    /// since every file is checked against pinned keys anyway.
    pub fn new(https_only: bool, transfer: &Transfer) -> Http {
        let read_timeout = transfer.read_timeout;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(https_only)
            .user_agent(concat!("caas/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(read_timeout))
            .timeout_per_read(Some(read_timeout))
            .max_redirects(10)
            .build();
        Http {
            agent: config.into(),
            retries: transfer.retries,
            base_delay: transfer.retry_delay,
            max_size: transfer.max_size,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .min(MAX_BACKOFF)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    fn with_retries<T>(
        &self,
        url: &str,
        progress: &dyn Fn(Progress),
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> anyhow::Result<T> {
        let mut failures = 0u32;
        let mut agains = 0u32;
        loop {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(err)) => return Err(err),
                Err(Failure::Again) if agains < 3 => agains += 1,
                Err(Failure::Again) => {
                    return Err(anyhow!(
                        "{url}: the server keeps answering with the wrong range"
                    ));
                }
                Err(Failure::Retry(err)) if failures >= self.retries => {
                    return Err(if self.retries == 0 {
                        err
                    } else {
                        err.context(format!("giving up after {} attempts", failures + 1))
                    });
                }
                Err(Failure::Retry(err)) => {
                    let delay = self.backoff(failures);
                    failures += 1;
                    progress(Progress::Retrying {
                        attempt: failures,
                        delay,
                        reason: crate::error::one_line(&err),
                    });
                    std::thread::sleep(delay);
                }
            }
        }
    }

    fn call(
        &self,
        url: &str,
        range_from: u64,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut request = self.agent.get(url);
        if range_from > 0 {
            request = request.header("Range", format!("bytes={range_from}-"));
        }
        let response = request.call().map_err(|err| classify(url, err))?;
        Ok(response)
    }

    /// GETs a small document (metadata, a signature) whole, with retries. Returns the bytes
    /// and the final URL after redirects.
    pub fn get_small(
        &self,
        url: &str,
        progress: &dyn Fn(Progress),
    ) -> anyhow::Result<(Vec<u8>, String)> {
        self.with_retries(url, progress, || {
            let response = self.call(url, 0)?;
            let code = response.status().as_u16();
            if code != 200 {
                return Err(status_failure(url, code));
            }
            let final_url = response.get_uri().to_string();
            let bytes = response
                .into_body()
                .into_with_config()
                .limit(SMALL_LIMIT)
                .read_to_vec()
                .map_err(|err| Failure::Retry(anyhow!("reading {url}: {err}")))?;
            Ok((bytes, final_url))
        })
    }

    /// Downloads `url` into `sink`, resuming after what it holds, with retries. Returns the
    /// final URL after redirects.
    pub fn download(
        &self,
        url: &str,
        sink: &mut dyn Sink,
        progress: &dyn Fn(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> anyhow::Result<String> {
        let mut final_url = url.to_owned();
        self.with_retries(url, progress, || {
            download_once(self, url, sink, progress, cancelled, &mut final_url)
        })?;
        Ok(final_url)
    }
}

fn status_failure(url: &str, code: u16) -> Failure {
    let status = HttpStatus {
        url: url.to_owned(),
        code,
    };
    if status.retryable() {
        Failure::Retry(status.into())
    } else {
        Failure::Fatal(status.into())
    }
}

fn classify(url: &str, err: ureq::Error) -> Failure {
    use ureq::Error as E;
    let retry = matches!(
        err,
        E::Io(_) | E::Timeout(_) | E::HostNotFound | E::ConnectionFailed | E::Protocol(_)
    );
    let err = anyhow!("{url}: {err}");
    if retry {
        Failure::Retry(err)
    } else {
        Failure::Fatal(err)
    }
}

fn download_once(
    http: &Http,
    url: &str,
    sink: &mut dyn Sink,
    progress: &dyn Fn(Progress),
    cancelled: &dyn Fn() -> bool,
    final_url: &mut String,
) -> Result<(), Failure> {
    let fatal = |err: anyhow::Error| Failure::Fatal(err);
    let offset = sink.held();
    let response = http.call(url, offset)?;
    *final_url = response.get_uri().to_string();
    let code = response.status().as_u16();
    let content_range = response
        .headers()
        .get("content-range")
        .and_then(|value| value.to_str().ok())
        .map(parse_content_range);
    let length = response.body().content_length();
    let total = match (code, content_range) {
        (200, _) => {
            if offset > 0 {
                sink.restart().map_err(fatal)?;
                progress(Progress::Restarted {
                    reason: "the server ignored the range request".into(),
                });
            }
            length
        }
        (206, Some(Some(range))) if range.start == offset && offset > 0 => {
            range.total.or_else(|| length.map(|length| offset + length))
        }
        (206, _) => {
            sink.restart().map_err(fatal)?;
            progress(Progress::Restarted {
                reason: "the server answered with another range".into(),
            });
            return Err(Failure::Again);
        }
        (416, Some(Some(range))) if offset > 0 && range.total == Some(offset) => {
            // Already complete.
            return Ok(());
        }
        (416, _) if offset > 0 => {
            sink.restart().map_err(fatal)?;
            progress(Progress::Restarted {
                reason: "the server refused the range".into(),
            });
            return Err(Failure::Again);
        }
        (code, _) => return Err(status_failure(url, code)),
    };
    let too_large = |what: String| {
        Failure::Fatal(
            TooLarge {
                url: url.to_owned(),
                what,
                limit: http.max_size,
            }
            .into(),
        )
    };
    if let Some(total) = total.filter(|&total| total > http.max_size) {
        return Err(too_large(format!(
            "the server says the file has {total} bytes,"
        )));
    }
    progress(Progress::Started {
        offset: sink.held(),
        total,
    });
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    loop {
        if cancelled() {
            return Err(Failure::Fatal(anyhow!("cancelled")));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) => {
                return Err(Failure::Retry(anyhow!(
                    "{url}: the connection broke after {} bytes: {err}",
                    sink.held()
                )));
            }
        };
        if sink.held() + n as u64 > http.max_size {
            return Err(too_large("the server sent".into()));
        }
        sink.append(&buf[..n]).map_err(fatal)?;
        progress(Progress::Bytes(sink.held()));
    }
    match total {
        Some(total) if sink.held() != total => Err(Failure::Retry(anyhow!(
            "{url}: the response ended after {} of {total} bytes",
            sink.held()
        ))),
        _ => Ok(()),
    }
}

/// A parsed `Content-Range: bytes start-end/total` (or `bytes */total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte; for `*/total` (unsatisfiable) it is `total` itself.
    pub start: u64,
    pub total: Option<u64>,
}

/// Parses a `Content-Range` value; `None` when it is not a byte range.
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    let start = match range.trim() {
        "*" => total?,
        range => {
            let (start, end) = range.split_once('-')?;
            let start: u64 = start.trim().parse().ok()?;
            let end: u64 = end.trim().parse().ok()?;
            if end < start || total.is_some_and(|total| end >= total) {
                return None;
            }
            start
        }
    };
    Some(ContentRange { start, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some(ContentRange {
                start: 100,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*"),
            Some(ContentRange {
                start: 0,
                total: None
            })
        );
        assert_eq!(
            parse_content_range("bytes */4096"),
            Some(ContentRange {
                start: 4096,
                total: Some(4096)
            })
        );
        for bad in [
            "",
            "bytes",
            "items 0-1/2",
            "bytes 5-1/9",
            "bytes 0-9/5",
            "bytes -1/2",
            "bytes */*",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let http = Http::new(
            true,
            &Transfer {
                retries: 5,
                retry_delay: Duration::from_millis(100),
                read_timeout: Duration::from_secs(1),
                max_size: DEFAULT_MAX_SIZE,
            },
        );
        let delays: Vec<_> = (0..4).map(|a| http.backoff(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
        assert_eq!(http.backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn retryable_statuses() {
        let status = |code| HttpStatus {
            url: "u".into(),
            code,
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).retryable(), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 410, 416] {
            assert!(!status(code).retryable(), "{code}");
        }
        assert!(is_not_found(
            &anyhow::Error::new(status(404)).context("fetching x")
        ));
        assert!(!is_not_found(&anyhow::Error::new(status(500))));
    }

    proptest! {
        #[test]
        fn content_range_parser_never_panics_and_is_consistent(value in ".{0,40}") {
            if let Some(ContentRange { start, total: Some(total) }) = parse_content_range(&value) {
                prop_assert!(start <= total);
            }
        }

        #[test]
        fn well_formed_ranges_round_trip(start in 0u64..1 << 40, len in 1u64..1 << 20, extra in 0u64..10) {
            let end = start + len - 1;
            let total = end + 1 + extra;
            let parsed = parse_content_range(&format!("bytes {start}-{end}/{total}"));
            prop_assert_eq!(parsed, Some(ContentRange { start, total: Some(total) }));
        }
    }
}
