//! `caas lint`: finds, offline, everything in a data directory that matchbox would skip with
//! an INFO log, answer with a bare 404, or serve in a way nobody intended. matchbox reads every
//! file on every request and validates almost nothing when it loads them: a bad file shows
//! only in its log, a bad reference only as a 404 at boot
//! (<https://github.com/poseidon/matchbox/blob/v0.8.3/matchbox/storage/filestore.go>).
//!
//! A run reads the directory once into [`facts`] (with [`crate::matchbox::store`], which
//! reproduces matchbox's file store; selection questions go through
//! [`crate::matchbox::select`]), then runs every rule of the registry in [`rules`] over those
//! facts. Every finding names a file, a line and a column, a severity and a stable code (listed
//! in README.md). [`lint_dir`] is the library entry point other commands use to prove their
//! output clean.

pub mod facts;
pub mod rules;

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Serialize, Serializer};

use crate::error::invalid;
use crate::matchbox::spans::Pos;
use crate::matchbox::target::Target;

/// How bad a finding is: errors fail `caas lint`, warnings only with `--deny warnings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The kind of a finding; its kebab-case name is stable (scripts match on it).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the order README.md lists them.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// A profile, group or raw Ignition file that is not JSON.
    JsonSyntax = "json-syntax",
    /// A non-`.json` entry or a subdirectory in `groups/` or `profiles/`, or a file that
    /// cannot be read.
    StrayEntry = "stray-entry",
    /// caas's own temp files (`.caas-*.tmp`) left by a killed write, reported once.
    CaasLeftover = "caas-leftover",
    /// A value of the wrong type (a non-string selector value, …): matchbox skips the file.
    WrongType = "wrong-type",
    /// A key matchbox does not read.
    UnknownKey = "unknown-key",
    /// A key that looks like a field matchbox reads (`ignitionId`, `selectors`).
    MisspelledKey = "misspelled-key",
    /// A profile without an id: matchbox skips it.
    MissingId = "missing-id",
    /// A profile whose id differs from its file name (matchbox looks profiles up by file name).
    IdMismatch = "id-mismatch",
    /// Two profiles (or two groups) with the same id.
    DuplicateId = "duplicate-id",
    /// A profile without `boot` or without a kernel: `/ipxe` answers 404.
    MissingBoot = "missing-boot",
    /// `boot.cmdline` on a target that ignores it (matchbox v0.5 and later).
    CmdlineIgnored = "cmdline-ignored",
    /// `boot.args` on bootcfg-0.4, which reads `boot.cmdline` only.
    ArgsIgnored = "args-ignored",
    /// A group whose profile is missing, unloadable or not named.
    MissingProfile = "missing-profile",
    /// A profile naming an Ignition, cloud or generic file that does not exist.
    MissingConfig = "missing-config",
    /// A relative `/assets/…` URL with no file under the data directory's `assets/`.
    MissingAsset = "missing-asset",
    /// A `mac` selector that is not a MAC address: matchbox skips the group.
    InvalidMac = "invalid-mac",
    /// A selector a booting machine never matches: an upper-case label name (`MAC`) or an
    /// upper-case `uuid`.
    SelectorCase = "selector-case",
    /// Metadata matchbox renders otherwise than written: numbers of a million or more (`1e+06`),
    /// lists (left out of `/metadata`), a `request` key, keys differing only in case.
    MetadataRender = "metadata-render",
    /// Groups with identical selector sets: matchbox picks one in no defined order.
    DuplicateSelector = "duplicate-selector",
    /// Groups with as many selectors each that can match the same machine.
    SelectorOverlap = "selector-overlap",
    /// Raw Ignition that is JSON but not a valid Ignition config.
    IgnitionInvalid = "ignition-invalid",
    /// A key Ignition does not know.
    IgnitionUnknownKey = "ignition-unknown-key",
    /// An Ignition spec version the target cannot serve or the OS cannot read.
    IgnitionVersion = "ignition-version",
    /// Raw Ignition that drops in on (or enables) a unit the profile's OS does not ship.
    MissingUnit = "missing-unit",
    /// A template whose actions do not parse (`{{` without `}}`, a missing `{{end}}`).
    TemplateSyntax = "template-syntax",
    /// A template in a dialect the target does not read (Container Linux Config vs Butane).
    TemplateDialect = "template-dialect",
    /// A Container Linux Config template matchbox v0.8's transpiler rejects (`/ignition`
    /// answers 404), or raw Ignition JSON saved under a template's name.
    TemplateInvalid = "template-invalid",
    /// A key the Container Linux Config transpiler does not know: it drops it.
    TemplateUnknownKey = "template-unknown-key",
    /// A template caas cannot check completely: whether the server accepts it is unknown.
    TemplateUnverified = "template-unverified",
    /// A template referencing a key that a group using it does not provide.
    TemplateMissingKey = "template-missing-key",
    /// An `initrd=` kernel argument naming no initrd of the profile.
    InitrdName = "initrd-name",
    /// An Ignition URL without the OS's first-boot argument: Ignition does not run.
    MissingFirstBoot = "missing-first-boot",
    /// A kernel argument iPXE reads as its own (`;`, `||`, `&&`, `#…`, a control character):
    /// the machine runs iPXE commands from the profile.
    IpxeCommand = "ipxe-command",
    /// An Ignition URL whose labels make matchbox pick another group (or none).
    IgnitionUrlLabels = "ignition-url-labels",
    /// A profile that installs to disk with nothing that stops it reinstalling.
    InstallLoop = "install-loop",
    /// A private key, password hash or token in a config matchbox serves over plain `http://`.
    SecretOverHttp = "secret-over-http",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One problem: `path:line:column: severity[code]: message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub code: Code,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]: {}",
            self.path, self.line, self.column, self.severity, self.code, self.message
        )
    }
}

/// A finding inside one file, before the file is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    pub pos: Pos,
    pub code: Code,
    pub severity: Severity,
    pub message: String,
}

/// Lints the data directory at `root` for `target`; findings sorted by file and position.
pub fn lint_dir(root: &Path, target: Target) -> Result<Vec<Finding>> {
    Ok(lint_tree(root, target)?.0)
}

/// What a lint run read, kept for the caller to drop (or not).
pub use facts::Tree;

/// [`lint_dir`], and what it read: a caller about to exit can leak it rather than free it.
pub fn lint_tree(root: &Path, target: Target) -> Result<(Vec<Finding>, Tree)> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(invalid(format!(
                "data directory {} is not a directory",
                root.display()
            )));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(invalid(format!(
                "data directory {} does not exist",
                root.display()
            )));
        }
        Err(err) => return Err(err).with_context(|| format!("reading {}", root.display())),
    }
    let tree = Tree::read(root, target)?;
    let mut findings = rules::check(&facts::Facts::new(&tree));
    findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, a.code, &a.message)
            .cmp(&(&b.path, b.line, b.column, b.code, &b.message))
    });
    findings.dedup();
    Ok((findings, tree))
}
