//! Rendered YAML → `ignition-config` types → Ignition JSON.
//!
//! The YAML uses Ignition's own key names. It is read straight into the typed structs of the
//! chosen spec, so a wrong type is an error with its line; keys the spec does not have, which
//! serde would skip, are collected with `serde_ignored` and are errors too. The output is the
//! typed config as canonical JSON without nulls.

use anyhow::Result;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::invalid;

/// The Ignition spec version of the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Spec {
    /// Flatcar ≥ 3185 and Fedora CoreOS read it; the newest spec ignition-validate 2.14 checks
    #[default]
    #[value(name = "3.3", alias = "3.3.0")]
    V3_3,
    /// Newer Flatcar and Fedora CoreOS releases
    #[value(name = "3.4", alias = "3.4.0")]
    V3_4,
    /// CoreOS Container Linux of 2016, bootcfg v0.4's era
    #[value(name = "2.0", alias = "2.0.0")]
    V2_0,
    /// Later CoreOS Container Linux releases (and Flatcar)
    #[value(name = "2.1", alias = "2.1.0")]
    V2_1,
    /// Later still; what matchbox v0.8's Container Linux Config transpiler writes
    #[value(name = "2.2", alias = "2.2.0")]
    V2_2,
    /// The last 2.x spec, read by the last Container Linux releases
    #[value(name = "2.3", alias = "2.3.0")]
    V2_3,
}

impl Spec {
    /// Every spec caas writes, 3.x first.
    pub const ALL: [Spec; 6] = [
        Spec::V3_3,
        Spec::V3_4,
        Spec::V2_0,
        Spec::V2_1,
        Spec::V2_2,
        Spec::V2_3,
    ];

    /// The `ignition.version` written in the config.
    pub fn version(self) -> &'static str {
        match self {
            Spec::V3_3 => "3.3.0",
            Spec::V3_4 => "3.4.0",
            Spec::V2_0 => "2.0.0",
            Spec::V2_1 => "2.1.0",
            Spec::V2_2 => "2.2.0",
            Spec::V2_3 => "2.3.0",
        }
    }

    /// `major.minor`, as `--spec` takes it.
    pub fn name(self) -> &'static str {
        let version = self.version();
        &version[..version.len() - 2]
    }

    /// The spec's major version: 2 or 3.
    pub fn major(self) -> u64 {
        match self.v2_minor() {
            Some(_) => 2,
            None => 3,
        }
    }

    /// The minor version of a 2.x spec; `None` for 3.x.
    pub fn v2_minor(self) -> Option<super::v2::Minor> {
        match self {
            Spec::V2_0 => Some(0),
            Spec::V2_1 => Some(1),
            Spec::V2_2 => Some(2),
            Spec::V2_3 => Some(3),
            Spec::V3_3 | Spec::V3_4 => None,
        }
    }

    /// The spec `--spec` / `ignition_spec` names (`2.0`, `3.3.0`, …).
    pub fn parse(text: &str) -> Option<Spec> {
        Spec::ALL
            .into_iter()
            .find(|spec| text == spec.name() || text == spec.version())
    }
}

/// For each spec: the config as a template writes it (`ignition` may be left out, caas sets the
/// version), read into that spec's typed structs.
macro_rules! spec_reader {
    ($module:ident, $v:ident, |$version:ident| $make_version:expr) => {
        mod $module {
            use ignition_config::$v as v;
            use serde::Deserialize;

            #[derive(Deserialize)]
            struct Document {
                #[serde(default)]
                ignition: Option<Section>,
                #[serde(default, rename = "kernelArguments")]
                kernel_arguments: Option<v::KernelArguments>,
                #[serde(default)]
                passwd: Option<v::Passwd>,
                #[serde(default)]
                storage: Option<v::Storage>,
                #[serde(default)]
                systemd: Option<v::Systemd>,
            }

            #[derive(Default, Deserialize)]
            struct Section {
                #[serde(default)]
                config: Option<v::IgnitionConfig>,
                #[serde(default)]
                proxy: Option<v::Proxy>,
                #[serde(default)]
                security: Option<v::Security>,
                #[serde(default)]
                timeouts: Option<v::Timeouts>,
                #[serde(default)]
                version: Option<String>,
            }

            /// The typed config, and the version the template declared, if any.
            pub(super) fn read(
                yaml: &str,
                template: &str,
                $version: &str,
            ) -> anyhow::Result<(v::Config, Option<String>)> {
                let document: Document = super::parse_yaml(yaml, template)?;
                let section = document.ignition.unwrap_or_default();
                let config = v::Config {
                    ignition: v::Ignition {
                        config: section.config,
                        proxy: section.proxy,
                        security: section.security,
                        timeouts: section.timeouts,
                        version: $make_version,
                    },
                    kernel_arguments: document.kernel_arguments,
                    passwd: document.passwd,
                    storage: document.storage,
                    systemd: document.systemd,
                };
                Ok((config, section.version))
            }
        }
    };
}

spec_reader!(spec_3_3, v3_3, |version| Some(version.to_owned()));
spec_reader!(spec_3_4, v3_4, |version| version.to_owned());

/// A spec 2.x config: the YAML read as 3.3 (its keys, its unknown-key errors), checked as 3.x
/// is, then translated down ([`super::v2`]).
fn read_v2(yaml: &str, template: &str, minor: super::v2::Minor) -> Result<(Value, Option<String>)> {
    let (config, declared) = spec_3_3::read(yaml, template, "3.3.0")?;
    let v3_value = without_nulls(serde_json::to_value(&config)?);
    super::semantics::check(&v3_value)
        .map_err(|err| invalid(format!("template {template:?}: {err}")))?;
    let config = super::v2::from_v3(config, minor)
        .map_err(|err| invalid(format!("template {template:?}: {err}")))?;
    Ok((serde_json::to_value(&config)?, declared))
}

/// Reads the YAML a template rendered as an Ignition config of `spec` and writes it as
/// canonical JSON (sorted keys, no nulls, trailing newline). Errors name `template` and the
/// line of the rendered YAML.
pub fn yaml_to_ignition(yaml: &str, spec: Spec, template: &str) -> Result<Vec<u8>> {
    let version = spec.version();
    let (value, declared) = match spec {
        Spec::V3_3 => {
            let (config, declared) = spec_3_3::read(yaml, template, version)?;
            (serde_json::to_value(&config)?, declared)
        }
        Spec::V3_4 => {
            let (config, declared) = spec_3_4::read(yaml, template, version)?;
            (serde_json::to_value(&config)?, declared)
        }
        Spec::V2_0 | Spec::V2_1 | Spec::V2_2 | Spec::V2_3 => {
            let minor = spec.v2_minor().expect("a 2.x spec");
            let (value, declared) = read_v2(yaml, template, minor)?;
            return finish(value, declared, version, template, false);
        }
    };
    finish(value, declared, version, template, true)
}

/// The declared version checked, the semantic checks of 3.x run (`check_v3`; a 2.x config was
/// checked before its translation), canonical JSON written.
fn finish(
    value: Value,
    declared: Option<String>,
    version: &str,
    template: &str,
    check_v3: bool,
) -> Result<Vec<u8>> {
    if let Some(declared) = declared
        && declared != version
    {
        return Err(invalid(format!(
            "template {template:?} declares ignition.version {declared:?}, but the output is \
             spec {version}: leave the version out (caas sets it) or pass --spec"
        )));
    }
    let value = without_nulls(value);
    if check_v3 {
        super::semantics::check(&value)
            .map_err(|err| invalid(format!("template {template:?}: {err}")))?;
    }
    Ok(crate::write::canonical_json(&value))
}

/// YAML reading options: duplicate keys are errors (the default), and a number with a leading
/// zero is octal as in Butane and the Fuze/CLC configs (`mode: 0644`).
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        with_snippet: false,
    }
}

pub(crate) fn parse_yaml<T: DeserializeOwned>(yaml: &str, template: &str) -> Result<T> {
    if is_empty_document(yaml) {
        // An empty config is a valid one; serde reads `{}` with every field defaulted.
        return serde_saphyr::from_str_with_options("{}", options())
            .map_err(|err| invalid(format!("template {template:?}: {}", err.without_snippet())));
    }
    let mut unknown: Vec<Vec<Segment>> = Vec::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(yaml, options(), |de| {
        serde_ignored::deserialize(de, |path| unknown.push(segments(&path)))
    });
    let value = parsed.map_err(|err| {
        let location = err.location().filter(|l| l.line() > 0);
        let message = err.without_snippet().to_string();
        let message = strip_location_suffix(&message);
        invalid(match location {
            Some(location) => format!(
                "template {template:?}: {} {}",
                describe_line(yaml, location.line() as usize),
                message
            ),
            None => format!("template {template:?}: {message}"),
        })
    })?;
    if let Some(path) = unknown.first() {
        let line = locate_key(yaml, path);
        let dotted = dotted(path);
        return Err(invalid(match line {
            Some(line) => format!(
                "template {template:?}: {} unknown key {:?} ({dotted} is not an Ignition field)",
                describe_line(yaml, line),
                last_key(path)
            ),
            None => format!(
                "template {template:?}: unknown key {:?} ({dotted} is not an Ignition field)",
                last_key(path)
            ),
        }));
    }
    Ok(value)
}

fn is_empty_document(yaml: &str) -> bool {
    yaml.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    })
}

/// `line 12 (`  filez:`):` naming a line of the rendered YAML.
fn describe_line(yaml: &str, line: usize) -> String {
    let text = yaml
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim();
    let text: String = text.chars().take(60).collect();
    format!("rendered line {line} ({text:?}):")
}

/// serde-saphyr ends some messages with ` at line L column C`; the line is reported already.
fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains("column") => &message[..at],
        _ => message,
    }
}

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<Segment> {
    use serde_ignored::Path;
    let mut out = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    };
    match path {
        Path::Seq { index, .. } => out.push(Segment::Index(*index)),
        Path::Map { key, .. } => out.push(Segment::Key(key.clone())),
        _ => {}
    }
    out
}

fn dotted(path: &[Segment]) -> String {
    path.iter()
        .map(|segment| match segment {
            Segment::Key(key) => key.clone(),
            Segment::Index(index) => index.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn last_key(path: &[Segment]) -> &str {
    path.iter()
        .rev()
        .find_map(|segment| match segment {
            Segment::Key(key) => Some(key.as_str()),
            Segment::Index(_) => None,
        })
        .unwrap_or("")
}

/// The YAML read again as a tree that knows the line of every mapping key.
enum Node {
    Map(Vec<(serde_saphyr::Spanned<String>, Node)>),
    Seq(Vec<Node>),
    Leaf,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<serde_saphyr::Spanned<String>>()? {
                    entries.push((key, map.next_value::<Node>()?));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// The line of the key at `path` in `yaml`, when the YAML can be read as a tree.
fn locate_key(yaml: &str, path: &[Segment]) -> Option<usize> {
    let root: Node = serde_saphyr::from_str_with_options(yaml, options()).ok()?;
    let mut node = &root;
    let mut line = None;
    for segment in path {
        match (segment, node) {
            (Segment::Key(key), Node::Map(entries)) => {
                let (spanned, child) = entries.iter().find(|(k, _)| &k.value == key)?;
                line = Some(spanned.referenced.line() as usize);
                node = child;
            }
            (Segment::Index(index), Node::Seq(items)) => node = items.get(*index)?,
            _ => return None,
        }
    }
    line.filter(|&line| line > 0)
}

/// Removes `null` members: serde writes absent optional fields of ignition-config as `null`.
pub fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ign(yaml: &str) -> Result<Value> {
        let bytes = yaml_to_ignition(yaml, Spec::V3_3, "t")?;
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn sets_the_version_and_drops_nulls() {
        let value = ign("storage:\n  files:\n    - path: /etc/x\n      mode: 0644\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "ignition": {"version": "3.3.0"},
                "storage": {"files": [{"path": "/etc/x", "mode": 420}]}
            })
        );
        let empty = ign("# nothing\n").unwrap();
        assert_eq!(empty, serde_json::json!({"ignition": {"version": "3.3.0"}}));
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let err = ign("storage:\n  files:\n    - path: /etc/x\n      mod: 420\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rendered line 4"), "{err}");
        assert!(err.contains("unknown key \"mod\""), "{err}");
        assert!(err.contains("storage.files.0.mod"), "{err}");
        let err = ign("systemd:\n  unitz: []\n").unwrap_err().to_string();
        assert!(err.contains("rendered line 2"), "{err}");
    }

    #[test]
    fn wrong_types_are_errors_with_their_line() {
        let err = ign("storage:\n  files:\n    - path: /etc/x\n      mode: rw-r--r--\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rendered line 4"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = ign("systemd:\n  units:\n    - name: [a, b]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rendered line 3"), "{err}");
        // A quoted number is read as the number it spells (serde-saphyr's reading), and a
        // leading zero means octal, as in Butane.
        let value = ign("storage:\n  files:\n    - path: /x\n      mode: \"0755\"\n").unwrap();
        assert_eq!(value["storage"]["files"][0]["mode"], 0o755);
    }

    #[test]
    fn a_declared_version_must_match_the_spec() {
        assert!(ign("ignition:\n  version: 3.3.0\n").is_ok());
        let err = ign("ignition:\n  version: 3.4.0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--spec"), "{err}");
        let v34 = yaml_to_ignition("ignition:\n  version: 3.4.0\n", Spec::V3_4, "t").unwrap();
        assert!(String::from_utf8(v34).unwrap().contains("3.4.0"));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert!(ign("storage: {}\nstorage: {}\n").is_err());
    }
}
