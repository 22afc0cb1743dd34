//! Raw Ignition files (`ignition/*.ign`, `*.ignition`) and what each target does with them
//! (matchbox's handler: <https://github.com/poseidon/matchbox/blob/v0.11.0/matchbox/http/ignition.go>):
//!
//! - matchbox v0.11 (and HEAD) parses the file with Ignition's spec 3.4 parser, which upgrades
//!   3.0–3.3, and re-serves it as 3.4.0. Anything it cannot parse (spec 2.x, 3.5, 3.6, broken
//!   JSON) is logged and answered with an *empty* config and HTTP 200: the machine boots
//!   unconfigured.
//! - matchbox v0.8 and bootcfg v0.4 serve the bytes verbatim (v0.8 parses them only to log).
//!   The machine's own Ignition decides: a file that is not JSON, or names a spec that no
//!   Ignition release reads, fails on every machine. Which spec a given OS reads depends on the
//!   profile's OS, not on the server.
//!
//! Structure is checked with `ignition-config` (spec 3.0–3.6): wrong types and missing fields
//! break the config; unknown keys do not (Ignition ignores them, but they are typos). `lint`
//! reports every [`Problem`]; `explain` says what the first one that breaks the config does.

use std::io::Read as _;
use std::sync::LazyLock;

use base64::Engine as _;
use memchr::memmem;

use super::decode::PathSeg;
use super::spans::{self, Part, Pos};
use super::target::Target;
use crate::os::Os;

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
    /// The systemd units it configures without writing them (see [`units_it_relies_on`]).
    pub relies_on_units: Vec<UnitUse>,
}

/// A systemd unit a config configures but does not write: the OS must ship it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitUse {
    /// Its index in `systemd.units`.
    pub index: usize,
    pub name: String,
    /// It drops in on the unit (else it only enables, disables or masks it).
    pub dropins: bool,
}

/// What is wrong with a raw Ignition file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not JSON at all.
    Syntax,
    /// JSON, but not a valid Ignition config (wrong types, missing fields).
    Invalid,
    /// A key Ignition does not know: it ignores it, so the config still works.
    UnknownKey,
    /// A version that is not one, a spec that does not exist, or one the target cannot serve.
    Version,
}

impl ProblemKind {
    /// Whether the machine ends up without a working config.
    pub fn breaks(self) -> bool {
        self != ProblemKind::UnknownKey
    }
}

/// One problem of a raw Ignition file, where it is and what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub kind: ProblemKind,
    pub message: String,
}

/// Checks one raw Ignition file for `target`.
pub fn check_raw(bytes: &[u8], target: Target) -> (RawInfo, Vec<Problem>) {
    let mut info = RawInfo {
        installs: installs_to_disk(bytes),
        ..RawInfo::default()
    };
    let mut out = Vec::new();
    let at_version = || version_pos(bytes);
    match ignition_config::Config::parse_slice(bytes) {
        Ok((config, warnings)) => {
            info.spec = Some(spec_of(&config));
            info.relies_on_units = units_it_relies_on(bytes);
            out.extend(unknown_keys(bytes, warnings));
            out.extend(semantic_problems(bytes, target));
        }
        Err(ignition_config::Error::Serialization(err)) => {
            out.push(not_parsed(bytes, &err, target))
        }
        Err(ignition_config::Error::InvalidVersion(err)) => out.push(Problem {
            pos: at_version(),
            kind: ProblemKind::Version,
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
                out.push(Problem {
                    pos: at_version(),
                    kind: ProblemKind::Version,
                    message: format!(
                        "Ignition spec {version} does not exist (Ignition reads 2.0–2.3 and 3.0–3.6){}",
                        served_as(target)
                    ),
                });
            }
        }
        Err(other) => out.push(Problem {
            pos: Pos::START,
            kind: ProblemKind::Invalid,
            message: format!("raw Ignition does not parse: {other}{}", served_as(target)),
        }),
    }
    out.extend(unservable(bytes, info.spec, target));
    (info, out)
}

/// The units of `systemd.units` that come with drop-ins or an `enabled` state but no
/// `contents`: units the config expects the OS to ship.
pub fn units_it_relies_on(bytes: &[u8]) -> Vec<UnitUse> {
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    let Some(units) = config["systemd"]["units"].as_array() else {
        return Vec::new();
    };
    units
        .iter()
        .enumerate()
        .filter_map(|(index, unit)| {
            let name = unit["name"].as_str()?;
            if unit.get("contents").is_some_and(|c| !c.is_null()) {
                return None;
            }
            let dropins = unit["dropins"].as_array().is_some_and(|d| !d.is_empty());
            let enabled = unit.get("enabled").is_some_and(|e| !e.is_null());
            (dropins || enabled).then(|| UnitUse {
                index,
                name: name.to_owned(),
                dropins,
            })
        })
        .collect()
}

/// Where `ignition.version` is (or its closest ancestor).
fn version_pos(bytes: &[u8]) -> Pos {
    let version_path = [
        PathSeg::Key("ignition".into()),
        PathSeg::Key("version".into()),
    ];
    spans::locate_or_parent(bytes, &version_path, Part::Value)
}

/// The keys `ignition-config` did not use.
fn unknown_keys(
    bytes: &[u8],
    warnings: Vec<ignition_config::Warning>,
) -> impl Iterator<Item = Problem> + '_ {
    warnings.into_iter().filter_map(move |warning| {
        let ignition_config::Warning::UnusedKey(path) = warning else {
            return None;
        };
        let mut segs = dollar_path(&path);
        // The unknown key itself is found as spelled (another spelling may be a known field).
        if let Some(last @ PathSeg::Key(_)) = segs.last_mut() {
            *last = PathSeg::MapKey(last.to_string());
        }
        Some(Problem {
            pos: spans::locate_or_parent(bytes, &segs, Part::Key),
            kind: ProblemKind::UnknownKey,
            message: format!(
                "unknown key {path}: Ignition ignores it (a typo or a key of a newer spec?)"
            ),
        })
    })
}

/// What Ignition (and `ignition-validate`) refuses in a config that has the right shape:
/// relative or repeated paths, bad unit and drop-in names, hashes, URL schemes, modes.
fn semantic_problems(bytes: &[u8], target: Target) -> Vec<Problem> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    crate::ignition::semantics::issues(&value)
        .into_iter()
        .map(|issue| Problem {
            pos: spans::locate_or_parent(bytes, &dollar_path(&issue.path), Part::Value),
            kind: ProblemKind::Invalid,
            message: format!(
                "{}: Ignition refuses the config{}",
                issue.message,
                served_as(target)
            ),
        })
        .collect()
}

/// A file serde cannot read as an Ignition config: not JSON, or JSON of the wrong shape.
fn not_parsed(bytes: &[u8], err: &serde_json::Error, target: Target) -> Problem {
    let pos = spans::from_serde(bytes, err.line(), err.column());
    let (kind, what) = match err.classify() {
        serde_json::error::Category::Data => {
            (ProblemKind::Invalid, "is not a valid Ignition config")
        }
        _ => (ProblemKind::Syntax, "is not JSON"),
    };
    let message = err.to_string();
    let message = message
        .rfind(" at line ")
        .map_or(message.as_str(), |at| &message[..at]);
    Problem {
        pos,
        kind,
        message: format!("raw Ignition {what}: {message}{}", served_as(target)),
    }
}

/// A spec the target does not re-serve (matchbox v0.11 serves 3.0–3.4 only).
fn unservable(bytes: &[u8], spec: Option<Spec>, target: Target) -> Option<Problem> {
    let (spec, max_minor) = (spec?, target.max_ignition_3_minor()?);
    if spec.major == 3 && spec.minor <= max_minor {
        return None;
    }
    Some(Problem {
        pos: version_pos(bytes),
        kind: ProblemKind::Version,
        message: format!(
            "Ignition spec {spec}: {} re-serves raw Ignition 3.0–3.{max_minor} only, and answers anything else with an empty config (HTTP 200)",
            target.name()
        ),
    })
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

/// Whether `bytes` mention a command or kernel argument that installs some OS to disk.
fn mentions_installer(bytes: &[u8]) -> bool {
    /// Every OS's installers, without those that contain another (`coreos-installer` is found
    /// by looking for `coreos-install`).
    static FINDERS: LazyLock<Vec<memmem::Finder<'static>>> = LazyLock::new(|| {
        let all: Vec<&str> = Os::ALL
            .into_iter()
            .flat_map(|os| os.descriptor().hints.installers)
            .copied()
            .collect();
        all.iter()
            .filter(|needle| {
                !all.iter()
                    .any(|other| other != *needle && needle.contains(other))
            })
            .map(|needle| memmem::Finder::new(needle.as_bytes()))
            .collect()
    });
    FINDERS.iter().any(|finder| finder.find(bytes).is_some())
}

/// The decoded payloads of the `"data:…"` JSON strings in `bytes`.
fn data_urls(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut starts = memmem::find_iter(bytes, b"\"data:");
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
