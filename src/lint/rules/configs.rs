//! Raw Ignition and templates: what each config file is, and what the profiles naming them get.

use super::{Findings, Rule};
use crate::lint::facts::{Config, Facts, key};
use crate::lint::{Code, Local, Severity};
use crate::matchbox::clc;
use crate::matchbox::ignition::{self, Problem, ProblemKind};
use crate::matchbox::spans::{self, Part, Pos};
use crate::matchbox::store::ConfigKind;
use crate::matchbox::target::{Target, TemplateDialect};
use crate::matchbox::template::{self, Dialect};
use crate::os::Os;

pub const MISSING_CONFIG: Rule = Rule {
    code: Code::MissingConfig,
    severity: Severity::Error,
    summary: "a profile naming an Ignition, cloud or generic file that does not exist",
    check: missing_configs,
};

fn missing_configs(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        for named in &fact.configs {
            let Config::Unreadable(err) = named.config else {
                continue;
            };
            let kind = named.kind;
            out.add(
                fact.path,
                fact.at(&[key(kind.field())], Part::Value),
                format!(
                    "{} {:?}: {} {err}: /{} answers 404",
                    kind.field(),
                    named.name,
                    named.path.display(),
                    kind.dir_name()
                ),
            );
        }
    }
}

pub const CONFIG_URL_WITHOUT_ID: Rule = Rule {
    code: Code::MissingConfig,
    severity: Severity::Error,
    summary: "a kernel line fetching /ignition from a profile that names no Ignition",
    check: config_urls_without_id,
};

fn config_urls_without_id(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        if !fact.profile.ignition_id.is_empty() {
            continue;
        }
        if let Some(url) = fact.config_urls.first() {
            out.add(
                fact.path,
                fact.arg_pos(url.arg),
                format!(
                    "{} points at matchbox's /ignition, but the profile names no ignition_id: /ignition answers 404",
                    url.key
                ),
            );
        }
    }
}

/// The code and severity lint gives a problem of a raw Ignition file.
fn local(problem: &Problem) -> Local {
    let (code, severity) = match problem.kind {
        ProblemKind::Syntax => (Code::JsonSyntax, Severity::Error),
        ProblemKind::Invalid => (Code::IgnitionInvalid, Severity::Error),
        ProblemKind::UnknownKey => (Code::IgnitionUnknownKey, Severity::Warning),
        ProblemKind::Version => (Code::IgnitionVersion, Severity::Error),
    };
    Local {
        pos: problem.pos,
        code,
        severity,
        message: problem.message.clone(),
    }
}

/// Each raw-Ignition rule reports the problems that carry its code.
fn raw_problems(facts: &Facts<'_>, out: &mut Findings) {
    for (path, config) in facts.configs() {
        if let Config::Raw { problems, .. } = config {
            out.add_locals(path, problems.iter().map(local));
        }
    }
}

pub const RAW_JSON_SYNTAX: Rule = Rule {
    code: Code::JsonSyntax,
    severity: Severity::Error,
    summary: "a raw Ignition file that is not JSON",
    check: raw_problems,
};

pub const IGNITION_INVALID: Rule = Rule {
    code: Code::IgnitionInvalid,
    severity: Severity::Error,
    summary: "raw Ignition that is JSON but not a valid Ignition config",
    check: raw_problems,
};

pub const IGNITION_UNKNOWN_KEY: Rule = Rule {
    code: Code::IgnitionUnknownKey,
    severity: Severity::Warning,
    summary: "a key Ignition does not know",
    check: raw_problems,
};

pub const IGNITION_VERSION: Rule = Rule {
    code: Code::IgnitionVersion,
    severity: Severity::Error,
    summary: "an Ignition spec version that does not exist or that the target cannot serve",
    check: raw_problems,
};

pub const IGNITION_VERSION_FOR_OS: Rule = Rule {
    code: Code::IgnitionVersion,
    severity: Severity::Error,
    summary: "raw Ignition of a spec the profile's OS cannot read",
    check: ignition_versions_for_os,
};

fn ignition_versions_for_os(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        let (Some(os), Some(named)) = (fact.os, fact.ignition()) else {
            continue;
        };
        let Config::Raw { info, .. } = named.config else {
            continue;
        };
        if let Some(spec) = info.spec
            && let Some(problem) = spec_problem(os, spec, facts.target)
        {
            out.add(
                fact.path,
                fact.at(&[key(ConfigKind::Ignition.field())], Part::Value),
                format!(
                    "{} is Ignition spec {spec}, and {problem}: its Ignition refuses the config (\"incorrect config version\") and the machine boots unconfigured",
                    named.path.display()
                ),
            );
        }
    }
}

/// Raw Ignition whose spec the profile's OS cannot read, on a server that serves it as it is
/// (matchbox v0.11 rejects those specs itself, see [`ignition::check_raw`]).
fn spec_problem(os: Os, spec: ignition::Spec, target: Target) -> Option<String> {
    let descriptor = os.descriptor();
    if target.parses_raw_ignition() || descriptor.ignition.reads(spec.major) {
        return None;
    }
    Some(format!(
        "{} reads Ignition spec {} only",
        descriptor.display_name,
        descriptor.ignition.name()
    ))
}

pub const MISSING_UNIT: Rule = Rule {
    code: Code::MissingUnit,
    severity: Severity::Error,
    summary: "raw Ignition that drops in on (or enables) a unit the profile's OS does not ship",
    check: missing_units,
};

/// A drop-in (or an `enabled`) for a unit the config does not write and the profile's OS does
/// not ship: Ignition writes the drop-in, and nothing runs. Units caas knows as some other OS's
/// only count (Flatcar's `etcd-member.service` on Fedora CoreOS); systemd's own and unknown
/// units are never reported.
fn missing_units(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        let (Some(os), Some(named)) = (fact.os, fact.ignition()) else {
            continue;
        };
        let Config::Raw { info, .. } = named.config else {
            continue;
        };
        for unit in &info.relies_on_units {
            if os.ships_unit(&unit.name) != Some(false) {
                continue;
            }
            let shipped_by: Vec<&str> = Os::shipping(&unit.name)
                .into_iter()
                .map(|other| other.descriptor().display_name)
                .collect();
            out.add(
                fact.path,
                fact.at(&[key(ConfigKind::Ignition.field())], Part::Value),
                format!(
                    "{} {} {} (systemd.units.{}), a unit {} does not ship ({} does): nothing \
                     runs it; write the whole unit (contents) under a name of its own",
                    named.path.display(),
                    if unit.dropins {
                        "drops in on"
                    } else {
                        "enables"
                    },
                    unit.name,
                    unit.index,
                    os.descriptor().display_name,
                    shipped_by.join(" and ")
                ),
            );
        }
    }
}

pub const TEMPLATE_SYNTAX: Rule = Rule {
    code: Code::TemplateSyntax,
    severity: Severity::Error,
    summary: "a template whose actions do not parse",
    check: template_syntax,
};

fn template_syntax(facts: &Facts<'_>, out: &mut Findings) {
    for (path, config) in facts.configs() {
        let Config::Template(file) = config else {
            continue;
        };
        if let Err(err) = &file.scan {
            out.add(
                path,
                spans::position(&file.bytes, err.offset),
                format!(
                    "template does not parse: {}; matchbox answers 404 for /{}",
                    err.message,
                    file.kind.dir_name()
                ),
            );
        }
    }
}

pub const TEMPLATE_DIALECT: Rule = Rule {
    code: Code::TemplateDialect,
    severity: Severity::Error,
    summary: "an Ignition template in a dialect the target does not read",
    check: template_dialects,
};

fn template_dialects(facts: &Facts<'_>, out: &mut Findings) {
    for (path, config) in facts.configs() {
        let Config::Template(file) = config else {
            continue;
        };
        if file.kind == ConfigKind::Ignition {
            let found = check_dialect(&file.bytes, &file.dialect, facts.target);
            out.add_locals(path, found);
        }
    }
}

/// The code and severity lint gives a note of the Container Linux Config transpiler model.
fn clc_local(note: &clc::Note) -> Local {
    let (code, severity, then) = match note.kind {
        clc::Kind::Rejected => (
            Code::TemplateInvalid,
            Severity::Error,
            ": matchbox's Container Linux Config transpiler rejects the template and /ignition answers 404",
        ),
        clc::Kind::Misread => (Code::TemplateInvalid, Severity::Error, ""),
        clc::Kind::Ignored => (Code::TemplateUnknownKey, Severity::Warning, ""),
        clc::Kind::Unverified => (
            Code::TemplateUnverified,
            Severity::Warning,
            " (cannot verify)",
        ),
    };
    Local {
        pos: note.pos,
        code,
        severity,
        message: format!("{}{then}", note.message),
    }
}

/// Each transpiler rule reports the notes that carry its code.
fn clc_notes(facts: &Facts<'_>, out: &mut Findings) {
    for (path, config) in facts.configs() {
        if let Config::Template(file) = config {
            out.add_locals(path, file.clc.iter().map(clc_local));
        }
    }
}

pub const TEMPLATE_INVALID: Rule = Rule {
    code: Code::TemplateInvalid,
    severity: Severity::Error,
    summary: "a Container Linux Config template matchbox v0.8's transpiler rejects, or raw Ignition JSON under a template's name",
    check: clc_notes,
};

pub const TEMPLATE_UNKNOWN_KEY: Rule = Rule {
    code: Code::TemplateUnknownKey,
    severity: Severity::Warning,
    summary: "a key the Container Linux Config transpiler does not know",
    check: clc_notes,
};

pub const TEMPLATE_UNVERIFIED: Rule = Rule {
    code: Code::TemplateUnverified,
    severity: Severity::Warning,
    summary: "a Container Linux Config template using what caas does not model",
    check: clc_notes,
};

pub const FUZE_UNVERIFIED: Rule = Rule {
    code: Code::TemplateUnverified,
    severity: Severity::Warning,
    summary: "an Ignition template on bootcfg v0.4, whose Fuze transpiler caas does not model",
    check: fuze_templates,
};

fn fuze_templates(facts: &Facts<'_>, out: &mut Findings) {
    if facts.target != Target::Bootcfg04 {
        return;
    }
    for (path, config) in facts.configs() {
        if let Config::Template(file) = config
            && file.kind == ConfigKind::Ignition
            && file.scan.is_ok()
        {
            out.add(
                path,
                Pos::START,
                "a Fuze template: bootcfg v0.4 transpiles it to Ignition 2.0.0, and caas does not model that transpiler (cannot verify); write raw Ignition (.ign) to know what machines get",
            );
        }
    }
}

/// Whether the target can turn an Ignition template of this dialect into Ignition.
fn check_dialect(bytes: &[u8], dialect: &Dialect, target: Target) -> Option<Local> {
    match (target.template_dialect(), dialect.dialect) {
        (TemplateDialect::Butane, TemplateDialect::ContainerLinuxConfig) => Some(Local {
            pos: Pos::START,
            code: Code::TemplateDialect,
            severity: Severity::Error,
            message: format!(
                "no \"variant:\": a Container Linux Config template, which {} no longer reads (Butane only since matchbox v0.10): /ignition answers 404",
                target.name()
            ),
        }),
        (TemplateDialect::Butane, TemplateDialect::Butane) => {
            let (variant, at) = dialect.variant.clone()?;
            let version = dialect
                .version
                .as_ref()
                .map(|(v, _)| v.as_str())
                .unwrap_or("");
            if variant.contains("{{") || version.contains("{{") {
                return None;
            }
            let pos = spans::position(bytes, at); // only Butane templates get here
            match template::butane_servable(&variant, version) {
                Some(true) => None,
                Some(false) => Some(Local {
                    pos,
                    code: Code::TemplateDialect,
                    severity: Severity::Error,
                    message: format!(
                        "Butane {variant} {version:?} translates to an Ignition spec newer than 3.4, which {} cannot parse: machines get an empty config (HTTP 200); use fcos ≤ 1.5.0 or flatcar ≤ 1.1.0",
                        target.name()
                    ),
                }),
                None => Some(Local {
                    pos,
                    code: Code::TemplateDialect,
                    severity: Severity::Warning,
                    message: format!(
                        "Butane variant {variant:?}: caas does not know which Ignition spec it emits ({} serves 3.4 or older)",
                        target.name()
                    ),
                }),
            }
        }
        (TemplateDialect::ContainerLinuxConfig, TemplateDialect::Butane) => Some(Local {
            pos: dialect
                .variant
                .as_ref()
                .map_or(Pos::START, |(_, at)| spans::position(bytes, *at)),
            code: Code::TemplateDialect,
            severity: Severity::Warning,
            message: format!(
                "a Butane config (it has \"variant:\"), but {} reads templates as Container Linux Configs, which ignore variant and version and differ in places",
                target.name()
            ),
        }),
        (TemplateDialect::ContainerLinuxConfig, TemplateDialect::ContainerLinuxConfig) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchbox::ignition::{RawInfo, Spec};

    /// Checks one raw Ignition file for `target`, as lint reports it.
    fn check_raw(bytes: &[u8], target: Target) -> (RawInfo, Vec<Local>) {
        let (info, problems) = ignition::check_raw(bytes, target);
        (info, problems.iter().map(local).collect())
    }

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
}
