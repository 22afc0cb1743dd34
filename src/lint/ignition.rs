//! Raw Ignition files (`ignition/*.ign`, `*.ignition`) and what each target does with them
//! (matchbox's handler: <https://github.com/poseidon/matchbox/blob/v0.11.0/matchbox/http/ignition.go>):
//!
//! - matchbox v0.11 (and HEAD) parses the file with Ignition's spec 3.4 parser, which upgrades
//!   3.0–3.3, and re-serves it as 3.4.0. Anything it cannot parse (spec 2.x, 3.5, 3.6, broken
//!   JSON) is logged and answered with an *empty* config and HTTP 200: the machine boots
//!   unconfigured. These are errors.
//! - matchbox v0.8 and bootcfg v0.4 serve the bytes verbatim (v0.8 parses them only to log).
//!   The machine's own Ignition decides: a file that is not JSON, or names a spec that no
//!   Ignition release reads, fails on every machine (error). Which spec a given OS reads is
//!   checked against the profile's OS elsewhere (warning), since the server does not care.
//!
//! Structure is checked with `ignition-config` (spec 3.0–3.6): wrong types and missing fields
//! are errors, unknown keys warnings (Ignition itself ignores them, but they are typos).

use std::io::Read as _;

use base64::Engine as _;

use super::spans::{self, Part, Pos};
use super::{Code, Local, Severity};
use crate::matchbox::decode::PathSeg;
use crate::matchbox::target::Target;

/// An Ignition spec version as written in `ignition.version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Spec {
    pub major: u64,
    pub minor: u64,
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What lint learns from a raw Ignition file.
#[derive(Clone, Debug, Default)]
pub struct RawInfo {
    /// The spec version, when the file names one that exists.
    pub spec: Option<Spec>,
    /// Whether the config installs the OS to disk (see [`installs_to_disk`]).
    pub installs: bool,
}

/// Checks one raw Ignition file for `target`.
pub fn check_raw(bytes: &[u8], target: Target) -> (RawInfo, Vec<Local>) {
    let mut out = Vec::new();
    let mut info = RawInfo {
        installs: installs_to_disk(bytes),
        ..RawInfo::default()
    };
    let version_path = [
        PathSeg::Key("ignition".into()),
        PathSeg::Key("version".into()),
    ];
    let at_version = || spans::locate_or_parent(bytes, &version_path, Part::Value);
    match ignition_config::Config::parse_slice(bytes) {
        Ok((config, warnings)) => {
            info.spec = Some(spec_of(&config));
            for warning in warnings {
                let ignition_config::Warning::UnusedKey(path) = warning else {
                    continue;
                };
                let segs = dollar_path(&path);
                out.push(Local {
                    pos: spans::locate_or_parent(bytes, &segs, Part::Key),
                    code: Code::IgnitionUnknownKey,
                    severity: Severity::Warning,
                    message: format!(
                        "unknown key {path}: Ignition ignores it (a typo or a key of a newer spec?)"
                    ),
                });
            }
        }
        Err(ignition_config::Error::Serialization(err)) => {
            let pos = spans::from_serde(bytes, err.line(), err.column());
            let (code, what) = match err.classify() {
                serde_json::error::Category::Data => {
                    (Code::IgnitionInvalid, "is not a valid Ignition config")
                }
                _ => (Code::JsonSyntax, "is not JSON"),
            };
            let message = err.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(message.as_str(), |at| &message[..at]);
            out.push(Local {
                pos,
                code,
                severity: Severity::Error,
                message: format!("raw Ignition {what}: {message}{}", served_as(target)),
            });
        }
        Err(ignition_config::Error::InvalidVersion(err)) => out.push(Local {
            pos: at_version(),
            code: Code::IgnitionVersion,
            severity: Severity::Error,
            message: format!(
                "ignition.version is not a version: {err}{}",
                served_as(target)
            ),
        }),
        Err(ignition_config::Error::UnknownVersion(version)) => {
            if version.major == 2 && version.minor <= 3 && version.pre.is_empty() {
                info.spec = Some(Spec {
                    major: 2,
                    minor: version.minor,
                });
            } else {
                out.push(Local {
                    pos: at_version(),
                    code: Code::IgnitionVersion,
                    severity: Severity::Error,
                    message: format!(
                        "Ignition spec {version} does not exist (Ignition reads 2.0–2.3 and 3.0–3.6){}",
                        served_as(target)
                    ),
                });
            }
        }
        Err(other) => out.push(Local {
            pos: Pos::START,
            code: Code::IgnitionInvalid,
            severity: Severity::Error,
            message: format!("raw Ignition does not parse: {other}{}", served_as(target)),
        }),
    }
    if let (Some(spec), Some(max_minor)) = (info.spec, target.max_ignition_3_minor())
        && (spec.major != 3 || spec.minor > max_minor)
    {
        out.push(Local {
            pos: at_version(),
            code: Code::IgnitionVersion,
            severity: Severity::Error,
            message: format!(
                "Ignition spec {spec}: {} re-serves raw Ignition 3.0–3.{max_minor} only, and answers anything else with an empty config (HTTP 200)",
                target.name()
            ),
        });
    }
    (info, out)
}

/// What the machine gets when the server cannot use the file.
fn served_as(target: Target) -> &'static str {
    if target.parses_raw_ignition() {
        "; matchbox serves an empty config instead (HTTP 200)"
    } else {
        "; the server sends these bytes as they are and Ignition fails on the machine"
    }
}

fn spec_of(config: &ignition_config::Config) -> Spec {
    use ignition_config::Config::*;
    let minor = match config {
        V3_0(_) => 0,
        V3_1(_) => 1,
        V3_2(_) => 2,
        V3_3(_) => 3,
        V3_4(_) => 4,
        V3_5(_) => 5,
        V3_6(_) => 6,
        _ => 6,
    };
    Spec { major: 3, minor }
}

/// `$.storage.files.0.mode` → path steps (numbers are indices).
fn dollar_path(path: &str) -> Vec<PathSeg> {
    path.trim_start_matches('$')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse() {
            Ok(i) => PathSeg::Index(i),
            Err(_) => PathSeg::Key(s.to_owned()),
        })
        .collect()
}

/// Commands and kernel arguments that install the OS to disk.
const INSTALLERS: [&str; 3] = [
    "flatcar-install",
    "coreos-install",
    "coreos.inst.install_dev",
];

/// Whether a config (raw Ignition or a template's text) installs the OS to disk: it mentions
/// `flatcar-install`, `coreos-install`/`coreos-installer` or `coreos.inst.install_dev`, in the
/// text or inside a `data:` URL (base64 and gzip included, as in matchbox's own
/// flatcar-install example).
pub fn installs_to_disk(bytes: &[u8]) -> bool {
    if mentions_installer(bytes) {
        return true;
    }
    data_urls(bytes).any(|payload| mentions_installer(&payload))
}

fn mentions_installer(bytes: &[u8]) -> bool {
    INSTALLERS
        .iter()
        .any(|needle| memchr::memmem::find(bytes, needle.as_bytes()).is_some())
}

/// The decoded payloads of the `"data:…"` JSON strings in `bytes`.
fn data_urls(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut starts = memchr::memmem::find_iter(bytes, b"\"data:");
    std::iter::from_fn(move || {
        loop {
            let start = starts.next()?;
            let mut end = start + 1;
            while end < bytes.len() && bytes[end] != b'"' {
                if bytes[end] == b'\\' {
                    end += 1;
                }
                end += 1;
            }
            let literal = bytes.get(start..=end)?;
            let Ok(url) = serde_json::from_slice::<String>(literal) else {
                continue;
            };
            if let Some(payload) = decode_data_url(&url) {
                return Some(payload);
            }
        }
    })
}

/// Decodes a `data:` URL (RFC 2397), gunzipping a gzip payload (at most 64 MiB).
pub fn decode_data_url(url: &str) -> Option<Vec<u8>> {
    let rest = url.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let raw = if header.ends_with(";base64") {
        let cleaned: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(cleaned.trim_end_matches('='))
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(cleaned.trim_end_matches('='))
            })
            .ok()?
    } else {
        percent_encoding::percent_decode_str(data).collect()
    };
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(64 << 20)
            .read_to_end(&mut out)
            .ok()?;
        return Some(out);
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(bytes: &[u8], target: Target) -> Vec<Code> {
        check_raw(bytes, target)
            .1
            .into_iter()
            .map(|l| l.code)
            .collect()
    }

    #[test]
    fn versions_per_target() {
        let v = |s: &str| format!(r#"{{"ignition": {{"version": "{s}"}}}}"#).into_bytes();
        assert!(codes(&v("3.4.0"), Target::Matchbox011).is_empty());
        assert!(codes(&v("3.0.0"), Target::Matchbox011).is_empty());
        assert_eq!(
            codes(&v("3.5.0"), Target::Matchbox011),
            vec![Code::IgnitionVersion]
        );
        assert_eq!(
            codes(&v("2.2.0"), Target::Matchbox011),
            vec![Code::IgnitionVersion]
        );
        assert!(codes(&v("3.5.0"), Target::Matchbox08).is_empty());
        assert!(codes(&v("2.2.0"), Target::Matchbox08).is_empty());
        assert_eq!(
            codes(&v("4.0.0"), Target::Matchbox08),
            vec![Code::IgnitionVersion]
        );
        assert_eq!(
            codes(&v("x"), Target::Bootcfg04),
            vec![Code::IgnitionVersion]
        );
        assert_eq!(
            check_raw(&v("2.1.0"), Target::Matchbox08).0.spec,
            Some(Spec { major: 2, minor: 1 })
        );
    }

    #[test]
    fn structure_and_syntax() {
        assert_eq!(codes(b"{", Target::Matchbox08), vec![Code::JsonSyntax]);
        assert_eq!(
            codes(b"{}", Target::Matchbox011),
            vec![Code::IgnitionInvalid]
        );
        let typo = br#"{"ignition": {"version": "3.3.0"}, "storage": {"filez": []}}"#;
        let (_, found) = check_raw(typo, Target::Matchbox011);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, Code::IgnitionUnknownKey);
        assert_eq!(
            found[0].pos,
            Pos {
                line: 1,
                column: 48
            }
        );
        let wrong = br#"{"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": 1}]}}"#;
        assert_eq!(
            codes(wrong, Target::Matchbox011),
            vec![Code::IgnitionInvalid]
        );
    }

    #[test]
    fn installers_are_found_in_compressed_data_urls() {
        let example = include_bytes!(
            "../../tests/reference/matchbox-examples/head/ignition/flatcar-install.ign"
        );
        assert!(!mentions_installer(example));
        assert!(installs_to_disk(example));
        let plain =
            include_bytes!("../../tests/reference/matchbox-examples/head/ignition/flatcar.ign");
        assert!(!installs_to_disk(plain));
        assert_eq!(
            decode_data_url("data:,coreos-install%20-d").unwrap(),
            b"coreos-install -d"
        );
    }
}
