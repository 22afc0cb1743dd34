//! What a fetch tells the user while it runs.
//!
//! - text on a terminal: one indicatif bar per file on stderr (bytes, rate, ETA), result lines
//!   on stdout;
//! - text otherwise: plain result lines on stdout (no bars, no carriage returns);
//! - `--format json`: one JSON object per line on stdout, `{"event": …, …}`, for CI;
//! - `-q`: nothing (errors still go to stderr).

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{BinaryBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::assets::http::Progress;
use crate::report::Format;

/// Seconds between two JSON progress events of one file.
const JSON_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// One thing that happened.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The release was resolved (through its metadata when it has some).
    Resolved {
        os: String,
        version: String,
        arch: String,
        /// The OS channel or stream; none for etcd.
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata_url: Option<String>,
    },
    /// The release is already published and verified: nothing to download.
    UpToDate {
        os: String,
        version: String,
        path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        verified_at: Option<String>,
    },
    /// The signature of `file` was fetched from `url`.
    Signature {
        file: String,
        url: String,
        fallback: bool,
    },
    /// A download (or a resumed one) started.
    Started {
        file: String,
        url: String,
        offset: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    Progress {
        file: String,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    Retrying {
        file: String,
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    Restarted {
        file: String,
        reason: String,
    },
    Downloaded {
        file: String,
        bytes: u64,
        seconds: f64,
    },
    /// `file` passed every check.
    Verified {
        file: String,
        sha256: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        signing_key: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pinned_key: Option<String>,
    },
    /// `file` matches the digest `against` names (etcd: the release's SHA256SUMS, or the
    /// `--sha256` pin).
    DigestMatched {
        file: String,
        sha256: String,
        against: String,
    },
    /// `file` was taken out of a verified archive.
    Extracted {
        file: String,
        bytes: u64,
        sha256: String,
    },
    Published {
        os: String,
        version: String,
        path: String,
    },
    /// The `current` symlink: `action` is created, updated or unchanged.
    Current {
        path: String,
        target: String,
        action: String,
    },
    /// The fetch failed; the same message goes to stderr.
    Failed {
        error: String,
    },
}

impl Event {
    fn text(&self) -> Option<String> {
        Some(match self {
            Event::Resolved {
                os,
                version,
                arch,
                channel,
                metadata_url,
            } => {
                let what = match channel {
                    Some(channel) => format!("{os} {version} ({channel}, {arch})"),
                    None => format!("{os} {version} ({arch})"),
                };
                match metadata_url {
                    Some(url) => format!("{what} from {url}"),
                    None => what,
                }
            }
            Event::UpToDate {
                os,
                version,
                path,
                verified_at,
            } => format!(
                "{os} {version} is already published and verified at {path}{}",
                verified_at
                    .as_ref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            ),
            Event::Signature {
                file,
                url,
                fallback: true,
            } => format!("{file}: no signature of its own; using {url}"),
            Event::Signature { .. } | Event::Progress { .. } => return None,
            Event::Started {
                file, url, offset, ..
            } if *offset > 0 => format!("{file}: resuming at byte {offset} from {url}"),
            Event::Started { file, url, .. } => format!("{file}: downloading {url}"),
            Event::Retrying {
                file,
                attempt,
                delay_ms,
                reason,
            } => format!("{file}: retry {attempt} in {delay_ms} ms: {reason}"),
            Event::Restarted { file, reason } => format!("{file}: starting over: {reason}"),
            Event::Downloaded {
                file,
                bytes,
                seconds,
            } => format!(
                "{file}: {} in {seconds:.1} s ({}/s)",
                BinaryBytes(*bytes),
                BinaryBytes((*bytes as f64 / seconds.max(1e-3)) as u64)
            ),
            Event::Verified {
                file,
                sha256,
                signing_key,
                pinned_key,
            } => match (signing_key, pinned_key) {
                (Some(key), Some(pinned)) if key == pinned => {
                    format!("{file}: ok (sha256 {sha256}, good signature by pinned key {pinned})")
                }
                (Some(key), Some(pinned)) => format!(
                    "{file}: ok (sha256 {sha256}, good signature by subkey {key} of pinned key {pinned})"
                ),
                _ => format!("{file}: sha256 {sha256} (signature NOT checked)"),
            },
            Event::DigestMatched {
                file,
                sha256,
                against,
            } => format!("{file}: ok (sha256 {sha256}, as {against} says)"),
            Event::Extracted {
                file,
                bytes,
                sha256,
            } => format!(
                "{file}: extracted, {} (sha256 {sha256})",
                BinaryBytes(*bytes)
            ),
            Event::Published { os, version, path } => {
                format!("published {os} {version} at {path}")
            }
            Event::Current {
                path,
                target,
                action,
            } => format!("{action} {path} -> {target}"),
            Event::Failed { .. } => return None,
        })
    }
}

enum Mode {
    Quiet,
    Lines,
    Bars(MultiProgress),
    Json,
}

/// Prints events as the mode says; shared by the download threads.
pub struct Reporter {
    mode: Mode,
    bars: Mutex<HashMap<String, ProgressBar>>,
    last_json: Mutex<HashMap<String, Instant>>,
}

impl Reporter {
    /// Bars only when stderr is a terminal.
    pub fn new(format: Format, quiet: bool) -> Reporter {
        let mode = match format {
            Format::Json => Mode::Json,
            Format::Text if quiet => Mode::Quiet,
            Format::Text if std::io::stderr().is_terminal() => {
                Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            Format::Text => Mode::Lines,
        };
        Reporter {
            mode,
            bars: Mutex::new(HashMap::new()),
            last_json: Mutex::new(HashMap::new()),
        }
    }

    fn print(&self, line: &str) {
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        match &self.mode {
            Mode::Bars(multi) => multi.suspend(write),
            _ => write(),
        }
    }

    pub fn event(&self, event: Event) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Json => {
                if let Event::Progress { file, .. } = &event {
                    let mut last = self.last_json.lock().expect("not poisoned");
                    let now = Instant::now();
                    match last.get(file) {
                        Some(at) if now.duration_since(*at) < JSON_PROGRESS_EVERY => return,
                        _ => {
                            last.insert(file.clone(), now);
                        }
                    }
                }
                self.print(&serde_json::to_string(&event).expect("events serialise"));
            }
            Mode::Lines => {
                if let Some(line) = event.text() {
                    self.print(&line);
                }
            }
            Mode::Bars(multi) => self.bar_event(multi, event),
        }
    }

    fn bar_event(&self, multi: &MultiProgress, event: Event) {
        let mut bars = self.bars.lock().expect("not poisoned");
        match &event {
            Event::Started {
                file,
                offset,
                total,
                ..
            } => {
                let (bar, template) = match total {
                    Some(total) => (
                        ProgressBar::new(*total),
                        "{prefix} {bar:30} {binary_bytes}/{binary_total_bytes} \
                         {binary_bytes_per_sec} eta {eta}",
                    ),
                    None => (
                        ProgressBar::no_length(),
                        "{prefix} {spinner} {binary_bytes} {binary_bytes_per_sec}",
                    ),
                };
                bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
                bar.set_prefix(file.clone());
                bar.set_position(*offset);
                // A restarted download replaces its bar.
                if let Some(old) = bars.insert(file.clone(), multi.add(bar)) {
                    old.finish_and_clear();
                    multi.remove(&old);
                }
                return;
            }
            Event::Progress { file, bytes, .. } => {
                if let Some(bar) = bars.get(file) {
                    bar.set_position(*bytes);
                }
                return;
            }
            Event::Downloaded { file, .. } => {
                if let Some(bar) = bars.remove(file) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
            _ => {}
        }
        drop(bars);
        if let Some(line) = event.text() {
            self.print(&line);
        }
    }

    /// Adapts download progress of `file` into events.
    pub fn download_progress(
        &self,
        file: &str,
        url: &str,
        total: &Mutex<Option<u64>>,
        p: Progress,
    ) {
        let file = file.to_owned();
        match p {
            Progress::Started { offset, total: t } => {
                *total.lock().expect("not poisoned") = t;
                self.event(Event::Started {
                    file,
                    url: url.to_owned(),
                    offset,
                    total: t,
                });
            }
            Progress::Bytes(bytes) => {
                if matches!(self.mode, Mode::Quiet | Mode::Lines) {
                    return;
                }
                self.event(Event::Progress {
                    file,
                    bytes,
                    total: *total.lock().expect("not poisoned"),
                });
            }
            Progress::Retrying {
                attempt,
                delay,
                reason,
            } => self.event(Event::Retrying {
                file,
                attempt,
                delay_ms: delay.as_millis() as u64,
                reason,
            }),
            Progress::Restarted { reason } => self.event(Event::Restarted { file, reason }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json_objects() {
        let line = serde_json::to_string(&Event::Downloaded {
            file: "k".into(),
            bytes: 3,
            seconds: 0.5,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"event":"downloaded","file":"k","bytes":3,"seconds":0.5}"#
        );
        let line = serde_json::to_string(&Event::Started {
            file: "k".into(),
            url: "u".into(),
            offset: 0,
            total: None,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"event":"started","file":"k","url":"u","offset":0}"#
        );
    }

    #[test]
    fn text_lines_name_the_file() {
        let text = Event::Retrying {
            file: "initrd.img".into(),
            attempt: 2,
            delay_ms: 40,
            reason: "x answered HTTP 503".into(),
        }
        .text()
        .unwrap();
        assert_eq!(text, "initrd.img: retry 2 in 40 ms: x answered HTTP 503");
        assert!(
            Event::Progress {
                file: "k".into(),
                bytes: 1,
                total: None
            }
            .text()
            .is_none()
        );
    }
}
