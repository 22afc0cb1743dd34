//! `caas lint`: finds, offline, everything in a data directory that matchbox would skip with
//! an INFO log, answer with a bare 404, or serve in a way nobody intended
//! (../shared/reference/anchors.md §0, §1.2–1.8).
//!
//! The directory is read with [`crate::matchbox::store`], which reproduces matchbox's file
//! store; selection questions go through [`crate::matchbox::select`]. Every finding names a
//! file, a line and a column, a severity and a stable code (listed in README.md).
//! [`lint_dir`] is the library entry point other commands use to prove their output clean.

pub mod boot;
pub mod ignition;
pub mod keys;
pub mod spans;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use serde::{Serialize, Serializer};
use serde_json::Value;

use self::ignition::RawInfo;
use self::spans::{Part, Pos};
use self::template::{Dialect, SyntaxError, TemplateInfo};
use crate::error::invalid;
use crate::matchbox::decode::{DecodeError, PathSeg, keys_match};
use crate::matchbox::group::is_mac_key;
use crate::matchbox::select::{self, Labels, SelectIndex, selector_string};
use crate::matchbox::store::{
    ConfigKind, Entry, LoadError, Loaded, Store, is_raw_ignition, list_dir, par_map,
};
use crate::matchbox::target::{Target, TemplateDialect};
use crate::matchbox::{Group, Profile, mac};
use crate::os::Os;

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
    /// A template whose actions do not parse (`{{` without `}}`, a missing `{{end}}`).
    TemplateSyntax = "template-syntax",
    /// A template in a dialect the target does not read (Container Linux Config vs Butane).
    TemplateDialect = "template-dialect",
    /// A template referencing a key that a group using it does not provide.
    TemplateMissingKey = "template-missing-key",
    /// An `initrd=` kernel argument naming no initrd of the profile.
    InitrdName = "initrd-name",
    /// An Ignition URL without the OS's first-boot argument: Ignition does not run.
    MissingFirstBoot = "missing-first-boot",
    /// An Ignition URL whose labels make matchbox pick another group (or none).
    IgnitionUrlLabels = "ignition-url-labels",
    /// A profile that installs to disk with nothing that stops it reinstalling.
    InstallLoop = "install-loop",
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
pub struct Tree {
    _groups: Vec<Entry<Group>>,
    _profiles: Vec<Entry<Profile>>,
}

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
    let store = Store::new(root);
    let groups = listed(store.groups(), &root.join("groups"))?;
    let profiles = listed(store.profiles(), &root.join("profiles"))?;
    let lint = Lint {
        store: &store,
        target,
        has_assets: root.join("assets").is_dir(),
        findings: Mutex::new(Vec::new()),
        configs: Mutex::new(HashMap::new()),
    };
    lint.scan_ignition_dir()?;
    let facts = lint.check_profiles(&profiles);
    lint.check_groups(&groups, &profiles, facts);
    let mut findings = lint.findings.into_inner().expect("no lint worker panicked");
    findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, a.code, &a.message)
            .cmp(&(&b.path, b.line, b.column, b.code, &b.message))
    });
    findings.dedup();
    let tree = Tree {
        _groups: groups,
        _profiles: profiles,
    };
    Ok((findings, tree))
}

fn listed<T>(result: io::Result<Vec<Entry<T>>>, dir: &Path) -> Result<Vec<Entry<T>>> {
    match result {
        Ok(entries) => Ok(entries),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err).with_context(|| format!("listing {}", dir.display())),
    }
}

/// What lint knows about a config file a profile may name.
#[derive(Clone, Debug)]
enum Config {
    Unreadable(LoadError),
    Raw(RawInfo),
    Template(TemplateFile),
}

#[derive(Clone, Debug)]
struct TemplateFile {
    bytes: Vec<u8>,
    scan: Result<TemplateInfo, SyntaxError>,
    installs: bool,
}

/// What a loaded profile means for the checks that span files.
#[derive(Clone, Debug)]
struct ProfileFacts {
    path: PathBuf,
    profile: Profile,
    /// Where the kernel arguments live in the file (`boot.args` or `boot.cmdline`).
    args_field: &'static str,
    /// The resolved Ignition file, when the profile names one.
    ignition: Option<PathBuf>,
    /// Its Ignition installs to disk.
    ignition_installs: bool,
    /// Its kernel arguments make the Fedora CoreOS live system install to disk.
    kargs_install: bool,
    /// `/ignition` URLs on the kernel line (the config the booted OS fetches).
    config_urls: Vec<boot::IgnitionUrl>,
    /// `coreos.inst.ignition_url` (the config the installed system gets).
    install_url: Option<boot::IgnitionUrl>,
}

/// The profiles that loaded, with an index by file.
#[derive(Default)]
struct Facts {
    list: Vec<ProfileFacts>,
    by_path: HashMap<OsString, usize>,
}

impl Facts {
    fn insert(&mut self, fact: ProfileFacts) -> usize {
        let key = fact.path.as_os_str().to_owned();
        if let Some(&i) = self.by_path.get(&key) {
            return i;
        }
        self.list.push(fact);
        self.by_path.insert(key, self.list.len() - 1);
        self.list.len() - 1
    }
}

/// The state of one lint run. Checks take `&self` so that per-file work runs on every core;
/// findings and the config cache sit behind locks (findings are rare, lookups short).
struct Lint<'a> {
    store: &'a Store,
    target: Target,
    has_assets: bool,
    findings: Mutex<Vec<Finding>>,
    /// By resolved path.
    configs: Mutex<HashMap<OsString, Arc<Config>>>,
}

fn key(name: &str) -> PathSeg {
    PathSeg::Key(name.to_owned())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

impl Lint<'_> {
    fn add(
        &self,
        path: &Path,
        pos: Pos,
        code: Code,
        severity: Severity,
        message: impl Into<String>,
    ) {
        self.findings
            .lock()
            .expect("no lint worker panicked")
            .push(Finding {
                path: display(path),
                line: pos.line,
                column: pos.column,
                severity,
                code,
                message: message.into(),
            });
    }

    fn add_local(&self, path: &Path, local: Local) {
        self.add(path, local.pos, local.code, local.severity, local.message);
    }

    /// Reads every file under `ignition/` (matchbox may be asked for any of them).
    fn scan_ignition_dir(&self) -> Result<()> {
        let dir = self.store.root().join("ignition");
        let mut files = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(current) = stack.pop() {
            let entries = match list_dir(&current) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound && current == dir => {
                    return Ok(());
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("listing {}", current.display()));
                }
            };
            for (name, is_dir) in entries {
                let path = current.join(&name);
                if is_dir {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let target = self.target;
        let results = par_map(files, |path| {
            let result = crate::matchbox::store::read_small(&path);
            let analysed = match result {
                Ok(bytes) => analyse_config(ConfigKind::Ignition, &path, bytes, target),
                Err(err) => (
                    Config::Unreadable(LoadError::Read {
                        kind: err.kind(),
                        message: err.to_string(),
                    }),
                    Vec::new(),
                ),
            };
            (path, analysed)
        });
        for (path, (config, locals)) in results {
            for local in locals {
                self.add_local(&path, local);
            }
            self.configs
                .lock()
                .expect("no lint worker panicked")
                .insert(path.into_os_string(), Arc::new(config));
        }
        Ok(())
    }

    /// The config a profile names, analysed once; findings inside it are reported when it is
    /// first analysed.
    fn config(&self, kind: ConfigKind, name: &str) -> (PathBuf, Arc<Config>) {
        let path = match self.store.resolve(kind.dir_name(), name) {
            Ok(path) => path,
            Err(err) => {
                let path = self.store.root().join(kind.dir_name()).join(name);
                return (path, Arc::new(Config::Unreadable(err)));
            }
        };
        if let Some(config) = self
            .configs
            .lock()
            .expect("no lint worker panicked")
            .get(path.as_os_str())
        {
            return (path, Arc::clone(config));
        }
        let config = match self.store.config(kind, name) {
            Ok((_, bytes)) => {
                let (config, locals) = analyse_config(kind, &path, bytes, self.target);
                for local in locals {
                    self.add_local(&path, local);
                }
                config
            }
            Err(err) => Config::Unreadable(err),
        };
        let config = Arc::new(config);
        self.configs
            .lock()
            .expect("no lint worker panicked")
            .insert(path.as_os_str().to_owned(), Arc::clone(&config));
        (path, config)
    }

    /// Findings common to group and profile files: stray entries, syntax, keys, types.
    /// Returns the file's bytes and JSON when it parsed.
    fn check_file<'e, T>(
        &self,
        dir: &str,
        entry: &'e Entry<T>,
        schema: &keys::Schema,
    ) -> Option<(&'e [u8], &'e Value)> {
        let entry_path = self.store.root().join(dir).join(&entry.name);
        if entry.is_dir {
            self.add(
                &entry_path,
                Pos::START,
                Code::StrayEntry,
                Severity::Warning,
                format!(
                    "a subdirectory in {dir}/: matchbox does not look inside it, and reads {dir}/{}.json for it",
                    entry.stem
                ),
            );
            return None;
        }
        if !entry.is_json_file() {
            let consequence = match &entry.loaded.result {
                Err(err) if err.is_not_found() => {
                    "which does not exist (an INFO \"no such file\" on every request)".to_owned()
                }
                Err(_) => "which does not load".to_owned(),
                Ok(_) => "so that file is read a second time".to_owned(),
            };
            let what = if dir == "groups" {
                "matchbox reads"
            } else {
                "matchbox would read"
            };
            self.add(
                &entry_path,
                Pos::START,
                Code::StrayEntry,
                Severity::Warning,
                format!(
                    "not a .json file: {what} {dir}/{}.json for it, {consequence}",
                    entry.stem
                ),
            );
            return None;
        }
        let loaded = &entry.loaded;
        let Some(source) = &loaded.source else {
            let why = match &loaded.result {
                Err(err) => err.to_string(),
                Ok(_) => String::new(),
            };
            self.add(
                &loaded.path,
                Pos::START,
                Code::StrayEntry,
                Severity::Error,
                format!("cannot be read: {why}"),
            );
            return None;
        };
        let Some(json) = &source.json else {
            if let Err(LoadError::Decode(DecodeError::Syntax {
                line,
                column,
                message,
            })) = &loaded.result
            {
                let pos = spans::from_serde(&source.bytes, *line, *column);
                self.add(
                    &loaded.path,
                    pos,
                    Code::JsonSyntax,
                    Severity::Error,
                    format!("not JSON: {message}; matchbox skips this file"),
                );
            }
            return None;
        };
        for local in keys::check(&source.bytes, json, schema) {
            self.add_local(&loaded.path, local);
        }
        if let Err(LoadError::Decode(err @ DecodeError::Type { path, .. })) = &loaded.result {
            let pos = spans::locate_or_parent(&source.bytes, path, Part::Value);
            let kind = if dir == "groups" { "group" } else { "profile" };
            self.add(
                &loaded.path,
                pos,
                Code::WrongType,
                Severity::Error,
                format!("{err}: matchbox cannot decode this {kind} and skips it"),
            );
        }
        Some((&source.bytes, json))
    }

    fn check_profiles(&self, profiles: &[Entry<Profile>]) -> Facts {
        let checked = par_map(profiles.iter().collect(), |entry| {
            self.check_profile_entry(entry)
        });
        let mut facts = Facts::default();
        let mut ids: HashMap<&str, &Path> = HashMap::new();
        for (entry, fact) in profiles.iter().zip(checked) {
            let Some(fact) = fact else { continue };
            let Some(profile) = entry.loaded.ok() else {
                continue;
            };
            if let Some(first) = ids.get(profile.id.as_str()) {
                let bytes = entry.loaded.source.as_ref().map_or(&[][..], |s| &s.bytes);
                let pos = spans::locate_or_parent(bytes, &[key("id")], Part::Value);
                let message = format!("id {:?} is also the id of {}", profile.id, first.display());
                self.add(
                    &entry.loaded.path,
                    pos,
                    Code::DuplicateId,
                    Severity::Warning,
                    message,
                );
            } else {
                ids.insert(&profile.id, &entry.loaded.path);
            }
            facts.insert(fact);
        }
        facts
    }

    /// The checks of one entry of `profiles/`; the facts when the profile loads.
    fn check_profile_entry(&self, entry: &Entry<Profile>) -> Option<ProfileFacts> {
        let (bytes, json) = self.check_file("profiles", entry, &keys::PROFILE)?;
        let path = &entry.loaded.path;
        let profile = match &entry.loaded.result {
            Ok(profile) => profile,
            Err(LoadError::Decode(DecodeError::Invalid(why))) => {
                let pos = spans::locate_or_parent(bytes, &[key("id")], Part::Value);
                self.add(
                    path,
                    pos,
                    Code::MissingId,
                    Severity::Error,
                    format!("{why}: matchbox skips it, and every group naming it gets 404"),
                );
                return None;
            }
            Err(_) => return None,
        };
        if profile.id != entry.stem {
            let pos = spans::locate_or_parent(bytes, &[key("id")], Part::Value);
            self.add(
                path,
                pos,
                Code::IdMismatch,
                Severity::Warning,
                format!(
                    "id {:?} differs from the file name: matchbox looks profiles up by file name, so groups must name {:?}",
                    profile.id, entry.stem
                ),
            );
        }
        Some(self.check_profile(path, bytes, json, profile))
    }

    /// Checks one decoded profile on its own and gathers its facts.
    fn check_profile(
        &self,
        path: &Path,
        bytes: &[u8],
        json: &Value,
        profile: &Profile,
    ) -> ProfileFacts {
        let target = self.target;
        let at = |segs: &[PathSeg], part: Part| spans::locate_or_parent(bytes, segs, part);
        let args_field = if target.reads_cmdline() {
            "cmdline"
        } else {
            "args"
        };
        let args = profile
            .boot
            .as_ref()
            .map(|boot| target.kernel_args(boot))
            .unwrap_or_default();
        let arg_pos = |i: usize| -> Pos {
            if target.reads_cmdline() {
                at(&[key("boot"), key("cmdline")], Part::Key)
            } else {
                at(&[key("boot"), key("args"), PathSeg::Index(i)], Part::Value)
            }
        };
        match &profile.boot {
            None => self.add(
                path,
                Pos::START,
                Code::MissingBoot,
                Severity::Error,
                "the profile has no \"boot\": /ipxe and /grub answer 404 for every machine it is selected for",
            ),
            Some(boot) if boot.kernel.is_empty() => self.add(
                path,
                at(&[key("boot")], Part::Key),
                Code::MissingBoot,
                Severity::Error,
                "\"boot\" has no kernel: the iPXE script matchbox renders has nothing to boot",
            ),
            Some(_) => {}
        }
        if let Some(boot) = &profile.boot {
            self.check_args_field(path, bytes, json, boot);
            if self.has_assets {
                let mut uris = vec![(boot.kernel.clone(), vec![key("boot"), key("kernel")])];
                for (i, entry) in boot.initrd.iter().enumerate() {
                    if let Some(initrd) = boot::parse_initrd(entry) {
                        uris.push((
                            initrd.uri,
                            vec![key("boot"), key("initrd"), PathSeg::Index(i)],
                        ));
                    }
                }
                for (uri, segs) in uris {
                    if let Some(rel) = boot::relative_asset(&uri) {
                        let file = self.store.root().join("assets").join(&rel);
                        if !file.is_file() {
                            self.add(
                                path,
                                at(&segs, Part::Value),
                                Code::MissingAsset,
                                Severity::Error,
                                format!("{uri} does not exist: there is no {}", file.display()),
                            );
                        }
                    }
                }
            }
            // initrd= must name an image iPXE registered, or the kernel finds no initramfs.
            let initrds: Vec<boot::Initrd> = boot
                .initrd
                .iter()
                .filter_map(|e| boot::parse_initrd(e))
                .collect();
            let unknowable = initrds
                .iter()
                .any(|i| i.uri.contains("${") || i.name.contains("${"));
            if !unknowable {
                for (i, arg) in args.iter().enumerate() {
                    let Some(name) = arg.strip_prefix("initrd=") else {
                        continue;
                    };
                    if name.contains("${") || initrds.iter().any(|initrd| initrd.name == name) {
                        continue;
                    }
                    let known: Vec<&str> = initrds.iter().map(|i| i.name.as_str()).collect();
                    self.add(
                        path,
                        arg_pos(i),
                        Code::InitrdName,
                        Severity::Error,
                        format!(
                            "initrd={name} names no initrd of this profile (iPXE registers {}): a UEFI kernel finds no initramfs",
                            if known.is_empty() { "none".to_owned() } else { format!("{known:?}") }
                        ),
                    );
                }
            }
        }
        let os = profile
            .boot
            .as_ref()
            .and_then(|boot| boot::detect_os(boot, &args));
        let config_urls = boot::ignition_urls(&args, &boot::CONFIG_URL_KEYS);
        let any_config_url = args
            .iter()
            .position(|a| boot::CONFIG_URL_KEYS.contains(&crate::matchbox::kargs::key_of(a)));
        if let (Some(os), Some(i)) = (os, any_config_url) {
            let keys = boot::first_boot_keys(os);
            if !args
                .iter()
                .any(|a| keys.contains(&crate::matchbox::kargs::key_of(a)))
            {
                self.add(
                    path,
                    arg_pos(i),
                    Code::MissingFirstBoot,
                    Severity::Error,
                    format!(
                        "{} runs Ignition on a network boot only with {}: without it this config URL is never fetched",
                        os.display_name(),
                        keys[0]
                    ),
                );
            }
        }
        // Configs the profile names.
        let mut ignition = None;
        let mut ignition_installs = false;
        for kind in ConfigKind::ALL {
            let name = kind.name_in(profile);
            if name.is_empty() {
                continue;
            }
            let (config_path, config) = self.config(kind, name);
            let pos = || at(&[key(kind.field())], Part::Value);
            match config.as_ref() {
                Config::Unreadable(err) => self.add(
                    path,
                    pos(),
                    Code::MissingConfig,
                    Severity::Error,
                    format!(
                        "{} {name:?}: {} {err}: /{} answers 404",
                        kind.field(),
                        config_path.display(),
                        kind.dir_name()
                    ),
                ),
                Config::Raw(info) if kind == ConfigKind::Ignition => {
                    ignition_installs = info.installs;
                    if let (Some(os), Some(spec)) = (os, info.spec)
                        && let Some(problem) = spec_problem(os, spec, self.target)
                    {
                        self.add(
                            path,
                            pos(),
                            Code::IgnitionVersion,
                            Severity::Warning,
                            format!(
                                "{} is Ignition spec {spec}, and {problem}",
                                config_path.display()
                            ),
                        );
                    }
                }
                Config::Template(file) if kind == ConfigKind::Ignition => {
                    ignition_installs = file.installs
                }
                _ => {}
            }
            if kind == ConfigKind::Ignition {
                ignition = Some(config_path);
            }
        }
        if profile.ignition_id.is_empty()
            && let Some(url) = config_urls.first()
        {
            self.add(
                path,
                arg_pos(url.arg),
                Code::MissingConfig,
                Severity::Error,
                format!(
                    "{} points at matchbox's /ignition, but the profile names no ignition_id: /ignition answers 404",
                    url.key
                ),
            );
        }
        let install_url = boot::ignition_urls(&args, &[boot::INSTALL_IGNITION_URL_KEY])
            .into_iter()
            .next();
        ProfileFacts {
            path: path.to_owned(),
            profile: profile.clone(),
            kargs_install: args
                .iter()
                .any(|a| crate::matchbox::kargs::key_of(a) == boot::INSTALL_DEV_KEY),
            args_field,
            ignition,
            ignition_installs,
            config_urls,
            install_url,
        }
    }

    /// `cmdline` on matchbox (ignored since v0.5) and `args` on bootcfg-0.4 (not read yet).
    fn check_args_field(
        &self,
        path: &Path,
        bytes: &[u8],
        json: &Value,
        boot: &crate::matchbox::Boot,
    ) {
        let boot_json = json
            .as_object()
            .and_then(|root| root.iter().find(|(k, _)| keys_match(k, "boot")))
            .map(|(_, v)| v);
        let has = |field: &str| {
            boot_json
                .and_then(Value::as_object)
                .is_some_and(|b| b.iter().any(|(k, v)| keys_match(k, field) && !v.is_null()))
        };
        let field_pos =
            |field: &str| spans::locate_or_parent(bytes, &[key("boot"), key(field)], Part::Key);
        if self.target.reads_cmdline() {
            if has("args") {
                let (severity, consequence) = if has("cmdline") {
                    (
                        Severity::Warning,
                        "only boot.cmdline reaches the kernel line",
                    )
                } else {
                    (Severity::Error, "the kernel line gets no arguments at all")
                };
                self.add(
                    path,
                    field_pos("args"),
                    Code::ArgsIgnored,
                    severity,
                    format!("bootcfg-0.4 does not read boot.args (added in matchbox v0.5): {consequence}; write boot.cmdline (caas gen profile --compat bootcfg-0.4)"),
                );
            }
            // bootcfg decodes cmdline as a map of strings; anything else fails the profile.
            if let Some(map) = boot_json
                .and_then(Value::as_object)
                .and_then(|b| b.iter().find(|(k, _)| keys_match(k, "cmdline")))
                .map(|(_, v)| v)
            {
                let bad = match map {
                    Value::Object(entries) => entries
                        .iter()
                        .find(|(_, v)| !v.is_string() && !v.is_null())
                        .map(|(k, v)| (vec![key("boot"), key("cmdline"), key(k)], decode_type(v))),
                    Value::Null => None,
                    other => Some((vec![key("boot"), key("cmdline")], decode_type(other))),
                };
                if let Some((segs, found)) = bad {
                    self.add(
                        path,
                        spans::locate_or_parent(bytes, &segs, Part::Value),
                        Code::WrongType,
                        Severity::Error,
                        format!("boot.cmdline must map names to strings, found {found}: bootcfg-0.4 cannot decode this profile and skips it"),
                    );
                }
            }
        } else if boot.cmdline.is_some() || has("cmdline") {
            let (severity, consequence) = if boot.args.is_some() {
                (Severity::Warning, "only boot.args reaches the kernel line")
            } else {
                (
                    Severity::Error,
                    "the kernel line gets none of these arguments",
                )
            };
            self.add(
                path,
                field_pos("cmdline"),
                Code::CmdlineIgnored,
                severity,
                format!(
                    "{} ignores boot.cmdline (replaced by boot.args in matchbox v0.5): {consequence}",
                    self.target.name()
                ),
            );
        }
    }

    fn check_groups(
        &self,
        entries: &[Entry<Group>],
        profile_entries: &[Entry<Profile>],
        mut facts: Facts,
    ) {
        // Per-file checks, on every core; keep the groups matchbox would use, in listing order.
        let checked = par_map(entries.iter().collect(), |entry| {
            let (bytes, json) = self.check_file("groups", entry, &keys::GROUP)?;
            match &entry.loaded.result {
                Ok(group) => Some((group, entry.loaded.path.as_path(), bytes)),
                Err(LoadError::Decode(DecodeError::Invalid(_))) => {
                    self.invalid_macs(&entry.loaded.path, bytes, json);
                    None
                }
                Err(_) => None,
            }
        });
        let mut groups: Vec<&Group> = Vec::new();
        let mut files: Vec<(&Path, &[u8])> = Vec::new();
        let mut ids: HashMap<&str, &Path> = HashMap::new();
        for (group, path, bytes) in checked.into_iter().flatten() {
            if !group.id.is_empty() {
                if let Some(first) = ids.get(group.id.as_str()) {
                    let pos = spans::locate_or_parent(bytes, &[key("id")], Part::Value);
                    let message = format!(
                        "id {:?} is also the id of {} (the gRPC API and terraform address groups by id)",
                        group.id,
                        first.display()
                    );
                    self.add(path, pos, Code::DuplicateId, Severity::Warning, message);
                } else {
                    ids.insert(&group.id, path);
                }
            }
            groups.push(group);
            files.push((path, bytes));
        }
        let listed_profiles: HashMap<&std::ffi::OsStr, &Loaded<Profile>> = profile_entries
            .iter()
            .filter(|e| e.is_json_file())
            .map(|e| (e.loaded.path.as_os_str(), &e.loaded))
            .collect();

        // Each group's profile, as matchbox would load it.
        enum Resolved {
            Known(PathBuf),
            Outside(Box<ProfileFacts>),
            Missing,
        }
        let resolved = par_map((0..groups.len()).collect(), |i| {
            let group = groups[i];
            let (path, bytes) = files[i];
            let pos = || spans::locate_or_parent(bytes, &[key("profile")], Part::Value);
            if group.profile.is_empty() {
                self.add(
                    path,
                    pos(),
                    Code::MissingProfile,
                    Severity::Error,
                    "the group names no profile: matchbox selects it and then answers 404 (\"No profile named\")",
                );
                return Resolved::Missing;
            }
            let owned;
            let loaded: &Loaded<Profile> = match self
                .store
                .resolve("profiles", &format!("{}.json", group.profile))
            {
                Ok(profile_path) => match listed_profiles.get(profile_path.as_os_str()) {
                    Some(loaded) => loaded,
                    None => {
                        owned = self.store.profile(&group.profile);
                        &owned
                    }
                },
                Err(err) => {
                    owned = Loaded {
                        path: PathBuf::new(),
                        source: None,
                        result: Err(err),
                    };
                    &owned
                }
            };
            match &loaded.result {
                Ok(_) if facts.by_path.contains_key(loaded.path.as_os_str()) => {
                    Resolved::Known(loaded.path.clone())
                }
                Ok(profile) => {
                    // Outside profiles/ (a `..` in the name): analyse it for the cross checks.
                    let source = loaded.source.as_ref().expect("a decoded profile was read");
                    let json = source.json.as_ref().unwrap_or(&Value::Null);
                    Resolved::Outside(Box::new(self.check_profile(
                        &loaded.path,
                        &source.bytes,
                        json,
                        profile,
                    )))
                }
                Err(err) => {
                    let why = if err.is_not_found() {
                        format!("{} does not exist", loaded.path.display())
                    } else {
                        format!("{} does not load ({err})", loaded.path.display())
                    };
                    self.add(
                        path,
                        pos(),
                        Code::MissingProfile,
                        Severity::Error,
                        format!(
                            "profile {:?}: {why}: matchbox selects this group and then answers 404",
                            group.profile
                        ),
                    );
                    Resolved::Missing
                }
            }
        });
        let profile_of: Vec<Option<usize>> = resolved
            .into_iter()
            .map(|r| match r {
                Resolved::Known(path) => facts.by_path.get(path.as_os_str()).copied(),
                Resolved::Outside(fact) => Some(facts.insert(*fact)),
                Resolved::Missing => None,
            })
            .collect();
        let facts = &facts.list;

        self.check_selectors(&groups, &files);
        let index = SelectIndex::new(&groups);
        self.check_templates(&groups, &files, &profile_of, facts);
        self.check_ignition_urls(&groups, &files, &profile_of, facts, &index);
        self.check_install_loops(&groups, &files, &profile_of, facts, &index);
    }

    fn invalid_macs(&self, path: &Path, bytes: &[u8], json: &Value) {
        let Some((selector_key, Value::Object(selector))) = json
            .as_object()
            .and_then(|root| root.iter().find(|(k, _)| keys_match(k, "selector")))
        else {
            return;
        };
        for (name, value) in selector {
            let Some(text) = value.as_str() else { continue };
            if !is_mac_key(name) {
                continue;
            }
            if let Err(err) = mac::normalize(text) {
                let pos =
                    spans::locate_or_parent(bytes, &[key(selector_key), key(name)], Part::Value);
                self.add(
                    path,
                    pos,
                    Code::InvalidMac,
                    Severity::Error,
                    format!("selector {name}: {err}; matchbox skips this group"),
                );
            }
        }
    }

    /// Identical selector sets and equal-specificity overlaps.
    fn check_selectors(&self, groups: &[&Group], files: &[(&Path, &[u8])]) {
        let selector_pos =
            |i: usize| spans::locate_or_parent(files[i].1, &[key("selector")], Part::Key);
        let mut first: HashMap<&crate::matchbox::Selector, usize> = HashMap::new();
        // Distinct selector sets by size, then by key set.
        let mut by_keys: BTreeMap<usize, BTreeMap<Vec<&str>, Vec<usize>>> = BTreeMap::new();
        for (i, group) in groups.iter().enumerate() {
            if let Some(&j) = first.get(&group.selector) {
                let what = if group.selector.is_empty() {
                    "a second default group (no selector)".to_owned()
                } else {
                    format!("the same selectors ({})", selector_string(&group.selector))
                };
                self.add(
                    files[i].0,
                    selector_pos(i),
                    Code::DuplicateSelector,
                    Severity::Error,
                    format!(
                        "{what} as {}: matchbox's sort is not stable, so either group may answer these machines",
                        files[j].0.display()
                    ),
                );
                continue;
            }
            first.insert(&group.selector, i);
            by_keys
                .entry(group.selector.len())
                .or_default()
                .entry(group.selector.keys().map(String::as_str).collect())
                .or_default()
                .push(i);
        }
        for keysets in by_keys.values() {
            let keysets: Vec<(&Vec<&str>, &Vec<usize>)> = keysets.iter().collect();
            for (a, (keys_a, members_a)) in keysets.iter().enumerate() {
                for (keys_b, members_b) in &keysets[a + 1..] {
                    let shared: Vec<&str> = keys_a
                        .iter()
                        .filter(|k| keys_b.contains(k))
                        .copied()
                        .collect();
                    let project = |i: usize| -> Vec<&str> {
                        shared
                            .iter()
                            .map(|k| groups[i].selector[*k].as_str())
                            .collect()
                    };
                    let mut by_projection: HashMap<Vec<&str>, Vec<usize>> = HashMap::new();
                    for &i in members_a.iter() {
                        by_projection.entry(project(i)).or_default().push(i);
                    }
                    for &j in members_b.iter() {
                        let Some(others) = by_projection.get(&project(j)) else {
                            continue;
                        };
                        let i = others[0];
                        let (ga, gb) = (&groups[i], &groups[j]);
                        let mut machine = ga.selector.clone();
                        machine.extend(gb.selector.clone());
                        let machine = selector_string(&machine);
                        let winner = if select::precedence(&ga.selector, &gb.selector).is_le() {
                            i
                        } else {
                            j
                        };
                        let more = if others.len() > 1 {
                            format!(" (and {} other groups like it)", others.len() - 1)
                        } else {
                            String::new()
                        };
                        self.add(
                            files[j].0,
                            selector_pos(j),
                            Code::SelectorOverlap,
                            Severity::Warning,
                            format!(
                                "{} has as many selectors as this group and both match a machine with {machine}{more}: matchbox answers it with {} only because {:?} sorts after {:?}",
                                files[i].0.display(),
                                files[winner].0.display(),
                                selector_string(&groups[winner].selector),
                                selector_string(&groups[if winner == i { j } else { i }].selector),
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Template references each group's data cannot satisfy (`missingkey=error` → 404).
    fn check_templates(
        &self,
        groups: &[&Group],
        files: &[(&Path, &[u8])],
        profile_of: &[Option<usize>],
        facts: &[ProfileFacts],
    ) {
        for (i, group) in groups.iter().enumerate() {
            let Some(fact) = profile_of[i].map(|p| &facts[p]) else {
                continue;
            };
            let mut data = None;
            for kind in ConfigKind::ALL {
                let name = kind.name_in(&fact.profile);
                if name.is_empty() || (kind == ConfigKind::Ignition && is_raw_ignition(name)) {
                    continue;
                }
                let (config_path, config) = self.config(kind, name);
                let Config::Template(file) = config.as_ref() else {
                    continue;
                };
                let Ok(info) = &file.scan else { continue };
                let mut reported: Vec<String> = Vec::new();
                let data = data.get_or_insert_with(|| template::template_data(group));
                for reference in &info.required {
                    let Some(missing) = template::missing_key(data, &reference.path) else {
                        continue;
                    };
                    if reported.contains(&missing) {
                        continue;
                    }
                    let at = spans::position(&file.bytes, reference.offset);
                    let pos = spans::locate_or_parent(files[i].1, &[key("metadata")], Part::Key);
                    self.add(
                        files[i].0,
                        pos,
                        Code::TemplateMissingKey,
                        Severity::Error,
                        format!(
                            "{}:{}:{} uses .{}, but this group has no {missing:?} in its metadata or selectors: matchbox renders with missingkey=error and answers 404 for /{}",
                            config_path.display(),
                            at.line,
                            at.column,
                            reference.path.join("."),
                            kind.dir_name()
                        ),
                    );
                    reported.push(missing);
                }
            }
        }
    }

    /// The labels an Ignition URL sends for the machines of `group`: literal values as written;
    /// iPXE variables stand for the machine's own values, known where the group selects on
    /// that key and unknown otherwise.
    fn url_labels(url: &boot::IgnitionUrl, group: &Group) -> Labels {
        const UNKNOWN: &str = "\u{0}unknown";
        let pairs: Vec<(String, String)> = url
            .query
            .iter()
            .map(|(k, v)| {
                let value = if v.contains("${") {
                    group
                        .selector
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| UNKNOWN.to_owned())
                } else {
                    v.clone()
                };
                (k.clone(), value)
            })
            .collect();
        select::labels_from_query(pairs).0
    }

    /// Ignition URLs whose labels make matchbox answer the machines of a group with another
    /// group's Ignition (or a 404). Checked for groups that matchbox's own `/boot.ipxe` chain
    /// can select (their selector keys are labels that chain sends).
    fn check_ignition_urls(
        &self,
        groups: &[&Group],
        files: &[(&Path, &[u8])],
        profile_of: &[Option<usize>],
        facts: &[ProfileFacts],
        index: &SelectIndex,
    ) {
        let boot_labels = self.target.boot_labels();
        // (profile, argument) → affected groups and what they get.
        let mut problems: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        for (i, group) in groups.iter().enumerate() {
            if !group
                .selector
                .keys()
                .all(|k| boot_labels.contains(&k.as_str()))
            {
                continue;
            }
            let Some(fact) = profile_of[i].map(|p| &facts[p]) else {
                continue;
            };
            for url in &fact.config_urls {
                let labels = Self::url_labels(url, group);
                let winner = index.winner(groups, &labels);
                let outcome = match winner {
                    Some(w) if w == i || groups[w].selector == group.selector => continue,
                    Some(w)
                        if profile_of[w] == profile_of[i]
                            && is_raw_ignition(&fact.profile.ignition_id) =>
                    {
                        continue;
                    }
                    Some(w) => format!("selects {} instead", files[w].0.display()),
                    None => "matches no group (404)".to_owned(),
                };
                let selector = if group.selector.is_empty() {
                    "default group".to_owned()
                } else {
                    selector_string(&group.selector)
                };
                problems
                    .entry((profile_of[i].expect("a profile with facts"), url.arg))
                    .or_default()
                    .push(format!("{} ({selector}) {outcome}", files[i].0.display()));
            }
        }
        for ((fact, arg), affected) in problems {
            let fact = &facts[fact];
            let profile_path = &fact.path;
            let url = fact
                .config_urls
                .iter()
                .find(|u| u.arg == arg)
                .expect("the URL found above");
            // Read again for the position: findings are rare, and 10,000 profiles are not kept.
            let bytes = fs::read(profile_path).unwrap_or_default();
            let pos = if fact.args_field == "args" {
                spans::locate_or_parent(
                    &bytes,
                    &[key("boot"), key("args"), PathSeg::Index(arg)],
                    Part::Value,
                )
            } else {
                spans::locate_or_parent(&bytes, &[key("boot"), key("cmdline")], Part::Key)
            };
            let shown = affected.len();
            let mut list: Vec<String> = affected.into_iter().take(3).collect();
            if shown > 3 {
                list.push(format!("and {} more", shown - 3));
            }
            let sent: Vec<&str> = url.query.iter().map(|(k, _)| k.as_str()).collect();
            self.add(
                profile_path,
                pos,
                Code::IgnitionUrlLabels,
                Severity::Error,
                format!(
                    "{} sends only the labels {sent:?}, so matchbox does not answer with the group that booted the machine: {}; add the selector keys to the query (e.g. mac=${{mac:hexhyp}})",
                    url.key,
                    list.join("; ")
                ),
            );
        }
    }

    /// Installers whose installed system would install again.
    fn check_install_loops(
        &self,
        groups: &[&Group],
        files: &[(&Path, &[u8])],
        profile_of: &[Option<usize>],
        facts: &[ProfileFacts],
        index: &SelectIndex,
    ) {
        let installs_by_ignition =
            |i: usize| profile_of[i].is_some_and(|p| facts[p].ignition_installs);
        // (key, value) → groups with that selector pair.
        let mut postings: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        let mut with_selectors = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            for (k, v) in &group.selector {
                postings
                    .entry((k.as_str(), v.as_str()))
                    .or_default()
                    .push(i);
            }
            if !group.selector.is_empty() {
                with_selectors.push(i);
            }
        }
        for (i, group) in groups.iter().enumerate() {
            let Some(fact) = profile_of[i].map(|p| &facts[p]) else {
                continue;
            };
            let pos = || spans::locate_or_parent(files[i].1, &[key("profile")], Part::Value);
            if fact.ignition_installs {
                // The installer fetches the installed system's config itself (a URL in its
                // script, typically with os=installed): a more specific group must answer it
                // with a config that does not install.
                let candidates: &[usize] = match group
                    .selector
                    .iter()
                    .filter_map(|(k, v)| postings.get(&(k.as_str(), v.as_str())))
                    .min_by_key(|list| list.len())
                {
                    Some(list) => list,
                    None => &with_selectors,
                };
                let escaped = candidates.iter().any(|&h| {
                    h != i
                        && groups[h].selector.len() > group.selector.len()
                        && group.selector.iter().all(|(k, v)| groups[h].selector.get(k) == Some(v))
                        // (a missing profile there is reported as such, not as a loop)
                        && !installs_by_ignition(h)
                });
                if !escaped {
                    let ignition = fact
                        .ignition
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    self.add(
                        files[i].0,
                        pos(),
                        Code::InstallLoop,
                        Severity::Warning,
                        format!(
                            "profile {:?} installs to disk ({ignition}), and no more specific group (such as one adding os=installed) answers these machines with a config that does not: the installed system gets the installer's config again and reinstalls",
                            fact.profile.id
                        ),
                    );
                }
            } else if fact.kargs_install {
                // The Fedora CoreOS live installer hands the installed system the config at
                // coreos.inst.ignition_url: a loop if that config installs again.
                let Some(url) = &fact.install_url else {
                    continue;
                };
                let labels = Self::url_labels(url, group);
                let Some(w) = index.winner(groups, &labels) else {
                    continue;
                };
                if installs_by_ignition(w) {
                    self.add(
                        files[i].0,
                        pos(),
                        Code::InstallLoop,
                        Severity::Warning,
                        format!(
                            "profile {:?} installs to disk with {}, which matchbox answers from {}, whose config installs to disk again",
                            fact.profile.id,
                            url.key,
                            files[w].0.display()
                        ),
                    );
                }
            }
        }
    }
}

/// Raw Ignition whose spec the profile's OS cannot read, on a server that serves it as it is
/// (matchbox v0.11 rejects those specs itself, see [`ignition::check_raw`]).
fn spec_problem(os: Os, spec: ignition::Spec, target: Target) -> Option<&'static str> {
    if target.parses_raw_ignition() {
        return None;
    }
    match (os, spec.major) {
        (Os::Coreos, 3) => Some("CoreOS Container Linux reads Ignition spec 2.x only"),
        (Os::FedoraCoreos, 2) => Some("Fedora CoreOS reads Ignition spec 3.x only"),
        _ => None,
    }
}

fn decode_type(value: &Value) -> &'static str {
    crate::matchbox::decode::type_name(value)
}

/// Analyses one config file: raw Ignition or a template.
fn analyse_config(
    kind: ConfigKind,
    path: &Path,
    bytes: Vec<u8>,
    target: Target,
) -> (Config, Vec<Local>) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if kind == ConfigKind::Ignition && is_raw_ignition(&name) {
        let (info, locals) = ignition::check_raw(&bytes, target);
        return (Config::Raw(info), locals);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut locals = Vec::new();
    let scan = template::scan(&text);
    if let Err(err) = &scan {
        locals.push(Local {
            pos: spans::position(&bytes, err.offset),
            code: Code::TemplateSyntax,
            severity: Severity::Error,
            message: format!(
                "template does not parse: {}; matchbox answers 404 for /{}",
                err.message,
                kind.dir_name()
            ),
        });
    }
    let dialect = template::dialect(&text);
    if kind == ConfigKind::Ignition {
        locals.extend(check_dialect(&bytes, &dialect, target));
    }
    let installs = ignition::installs_to_disk(&bytes);
    (
        Config::Template(TemplateFile {
            bytes,
            scan,
            installs,
        }),
        locals,
    )
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
