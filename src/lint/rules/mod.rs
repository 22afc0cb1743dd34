//! The lint rules: each one concern, with its code, its severity and a check over the
//! [`Facts`], listed once in [`RULES`]. A rule reports only its own code (the [`Findings`] it is
//! given carries it), so the registry says which rule stands behind every code.
//!
//! One file per family: [`files`] (the entries of `groups/` and `profiles/`), [`keys`] (fields
//! matchbox does not read), [`profiles`] (a profile on its own), [`boot`] (its kernel line and
//! assets), [`configs`] (raw Ignition and templates), [`groups`] (selectors and profile links),
//! [`machines`] (what the machines a group selects end up with), [`secrets`] (what a config
//! served over plain HTTP gives away).

pub mod boot;
pub mod configs;
pub mod files;
pub mod groups;
pub mod keys;
pub mod machines;
pub mod profiles;
pub mod secrets;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::facts::Facts;
use super::{Code, Finding, Local, Severity};
use crate::matchbox::spans::Pos;

/// One lint rule.
pub struct Rule {
    pub code: Code,
    /// The severity of its findings; a rule may report a milder case of its problem as a
    /// warning (see [`Findings::add_as`]).
    pub severity: Severity,
    /// What it finds, in a line.
    pub summary: &'static str,
    pub check: fn(&Facts<'_>, &mut Findings),
}

/// Every rule, by family.
pub static RULES: &[Rule] = &[
    files::STRAY_ENTRY,
    files::CAAS_LEFTOVER,
    files::JSON_SYNTAX,
    files::WRONG_TYPE,
    keys::MISSPELLED_KEY,
    keys::UNKNOWN_KEY,
    profiles::MISSING_ID,
    profiles::ID_MISMATCH,
    profiles::DUPLICATE_ID,
    profiles::MISSING_BOOT,
    profiles::CMDLINE_IGNORED,
    profiles::ARGS_IGNORED,
    profiles::CMDLINE_TYPE,
    boot::MISSING_ASSET,
    boot::INITRD_NAME,
    boot::MISSING_FIRST_BOOT,
    boot::IPXE_COMMAND,
    configs::MISSING_CONFIG,
    configs::CONFIG_URL_WITHOUT_ID,
    configs::RAW_JSON_SYNTAX,
    configs::IGNITION_INVALID,
    configs::IGNITION_UNKNOWN_KEY,
    configs::IGNITION_VERSION,
    configs::IGNITION_VERSION_FOR_OS,
    configs::MISSING_UNIT,
    configs::TEMPLATE_SYNTAX,
    configs::TEMPLATE_DIALECT,
    configs::TEMPLATE_INVALID,
    configs::TEMPLATE_UNKNOWN_KEY,
    configs::TEMPLATE_UNVERIFIED,
    configs::FUZE_UNVERIFIED,
    groups::INVALID_MAC,
    groups::SELECTOR_CASE,
    groups::METADATA_RENDER,
    groups::MISSING_PROFILE,
    groups::DUPLICATE_ID,
    groups::DUPLICATE_SELECTOR,
    groups::SELECTOR_OVERLAP,
    machines::TEMPLATE_MISSING_KEY,
    machines::IGNITION_URL_LABELS,
    machines::IGNITION_URL_DROPPED,
    machines::INSTALL_LOOP,
    secrets::SECRET_OVER_HTTP,
];

/// Runs every rule over `facts`, on every core; findings in no particular order.
pub fn check(facts: &Facts<'_>) -> Vec<Finding> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(RULES.len());
    let work = || {
        let mut findings = Findings {
            code: Code::ALL[0],
            severity: Severity::Error,
            list: Vec::new(),
        };
        while let Some(rule) = RULES.get(next.fetch_add(1, Ordering::Relaxed)) {
            findings.code = rule.code;
            findings.severity = rule.severity;
            (rule.check)(facts, &mut findings);
        }
        findings.list
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for handle in handles {
            all.extend(handle.join().expect("a lint rule panicked"));
        }
        all
    })
}

/// Where one rule reports: findings get the rule's code.
pub struct Findings {
    code: Code,
    severity: Severity,
    list: Vec<Finding>,
}

impl Findings {
    /// A finding at the rule's severity.
    pub fn add(&mut self, path: &Path, pos: Pos, message: impl Into<String>) {
        self.add_as(self.severity, path, pos, message);
    }

    /// A finding at another severity (a milder case of the rule's problem).
    pub fn add_as(
        &mut self,
        severity: Severity,
        path: &Path,
        pos: Pos,
        message: impl Into<String>,
    ) {
        self.list.push(Finding {
            path: path.display().to_string(),
            line: pos.line,
            column: pos.column,
            severity,
            code: self.code,
            message: message.into(),
        });
    }

    /// The findings of `locals` (inside the file at `path`) that carry this rule's code.
    pub fn add_locals(&mut self, path: &Path, locals: impl IntoIterator<Item = Local>) {
        for local in locals {
            if local.code == self.code {
                self.add_as(local.severity, path, local.pos, local.message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_rule() {
        for code in Code::ALL {
            assert!(
                RULES.iter().any(|rule| rule.code == *code),
                "no rule reports {code}"
            );
        }
        for rule in RULES {
            assert!(!rule.summary.is_empty(), "{} has no summary", rule.code);
        }
    }
}
