//! Profiles and groups from plain options (`caas gen profile`, `caas gen group`), the boot
//! settings of a published release that every generator of profiles starts from, and
//! [`FileSet`], the one builder of the profile, group and Ignition files a run writes. It sits above
//! [`crate::matchbox`] (the file formats), [`crate::os`] and [`crate::assets`] (the releases).
//!
//! Everything is validated and built in memory; the caller writes the one file, so bad input
//! writes nothing.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use crate::assets::manifest::Manifest;
use crate::error::{InvalidInput, invalid};
use crate::ids::Id;
use crate::ignition::{Spec, config_file_name};
use crate::input::UserFile;
use crate::matchbox::datadir::DataDir;
use crate::matchbox::group::{Group, Selector, normalize_selector};
use crate::matchbox::kargs::{self, KernelArg};
use crate::matchbox::profile::{Boot, Profile};
use crate::matchbox::server::MatchboxUrl;
use crate::os::{self, Arch, Os, ReleaseFiles};
use crate::write::FileWrite;

/// The server the files are written for, when it is older than matchbox v0.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compat {
    /// bootcfg v0.4 (2016): profiles with the `boot.cmdline` map instead of `boot.args`, and
    /// (gen cluster, schedule once) Ignition spec 2.x configs, 2.0 unless --spec says otherwise
    #[value(name = "bootcfg-0.4")]
    Bootcfg04,
}

/// Where a run's OS and spec are set, for the errors of [`output_spec`]: `--os` and `--spec`
/// on the command line, `os` and `ignition_spec` in a lab spec.
#[derive(Clone, Copy, Debug)]
pub struct SpecFlags {
    pub os: &'static str,
    pub spec: &'static str,
}

/// The Ignition spec of the configs a run writes: the one asked for, else 2.0 with
/// `--compat bootcfg-0.4` (what Container Linux read in bootcfg v0.4's time), else 3.3. It
/// must be one the OS reads, and with bootcfg v0.4, a 2.x one: bootcfg serves raw Ignition as
/// it is, to CoreOS Container Linux.
pub fn output_spec(
    os: Os,
    compat: Option<Compat>,
    asked: Option<Spec>,
    flags: SpecFlags,
) -> Result<Spec, InvalidInput> {
    let spec = match (asked, compat) {
        (Some(spec), _) => spec,
        (None, Some(Compat::Bootcfg04)) => Spec::V2_0,
        (None, None) => Spec::default(),
    };
    if compat == Some(Compat::Bootcfg04) && spec.major() != 2 {
        return Err(InvalidInput(format!(
            "--compat bootcfg-0.4 writes for CoreOS Container Linux of 2016, which reads Ignition \
             spec 2.x, and {} is {}: leave {} out (2.0) or give 2.0, 2.1, 2.2 or 2.3",
            flags.spec,
            spec.name(),
            flags.spec
        )));
    }
    os.check_reads(spec).map_err(|err| {
        let fix = if spec.major() == 3 {
            format!(
                "give {} 2.0 (2.1, 2.2, 2.3), or --compat bootcfg-0.4 for the 2016 system",
                flags.spec
            )
        } else {
            format!("give {} 3.3 or 3.4", flags.spec)
        };
        InvalidInput(format!("{} {}: {err}: {fix}", flags.os, os.dir_name()))
    })?;
    Ok(spec)
}

/// Where a profile's kernel and initrd come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    /// A published release under `assets/<os>/<version>/`, with the arguments the OS needs.
    Os { os: Os, version: Id, arch: Arch },
    /// Explicit URLs (relative ones resolve against matchbox), no default arguments.
    Urls { kernel: String, initrd: Vec<String> },
}

/// Everything a profile is made from.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    pub id: Id,
    /// Human-readable name; the id when `None`.
    pub name: Option<String>,
    /// The Ignition file under `ignition/`; `<id>.ign` when `None`.
    pub ignition: Option<Id>,
    pub source: ProfileSource,
    /// Kernel arguments to add; `key=value` replaces the default with that key.
    pub args: Vec<String>,
    /// matchbox's base URL as machines reach it: makes server URLs absolute.
    pub matchbox_url: Option<MatchboxUrl>,
    pub compat: Option<Compat>,
}

/// Everything a group is made from.
#[derive(Clone, Debug)]
pub struct GroupOptions {
    pub id: Id,
    pub profile: Id,
    /// Human-readable name; the id when `None`.
    pub name: Option<String>,
    /// Labels the machine must carry, in the order given; `mac` is normalised, `uuid` lower-cased.
    pub selectors: Vec<(String, String)>,
    /// Template metadata, in the order given; values that parse as JSON stay typed.
    pub metadata: Vec<(String, String)>,
    /// A JSON or YAML object of metadata that `metadata` overrides.
    pub metadata_file: Option<UserFile>,
    /// Write the group even when its profile does not exist yet.
    pub allow_missing_profile: bool,
}

/// The profile `options` describe, with every input checked; reads the data dir's published
/// assets for [`ProfileSource::Os`].
pub fn build_profile(data_dir: &DataDir, options: &ProfileOptions) -> Result<Profile> {
    let (kernel, initrd, defaults) = match &options.source {
        ProfileSource::Os { os, version, arch } => {
            let (_, boot) = os_boot(data_dir, *os, version, *arch, options.matchbox_url.as_ref())?;
            (boot.kernel, boot.initrd, boot.args)
        }
        ProfileSource::Urls { kernel, initrd } => {
            check_boot_line("--kernel", kernel, false)?;
            for initrd in initrd {
                check_boot_line("--initrd", initrd, true)?;
            }
            (kernel.clone(), initrd.clone(), Vec::new())
        }
    };
    let boot = boot_with_args(
        kernel,
        initrd,
        defaults,
        &options.args,
        options.matchbox_url.as_ref(),
        options.compat,
    )?;
    let ignition = match &options.ignition {
        Some(name) => name.clone(),
        None => config_file_name(&options.id)?,
    };
    Ok(Profile {
        id: options.id.to_string(),
        name: options
            .name
            .clone()
            .unwrap_or_else(|| options.id.to_string()),
        boot: Some(boot),
        ignition_id: ignition.to_string(),
        ..Profile::default()
    })
}

/// The boot settings of `os` for the published release `version` (`current` resolved through
/// the `current` link), and the release's directory name: what every profile of that release
/// starts from.
pub fn os_boot(
    data_dir: &DataDir,
    os: Os,
    version: &Id,
    arch: Arch,
    base: Option<&MatchboxUrl>,
) -> Result<(Id, os::OsBoot)> {
    let release = resolve_release(data_dir, os, version, arch)?;
    let boot = os::default_boot(os, release.version.as_str(), &release.files, base);
    Ok((release.version, boot))
}

/// A profile's `boot`: `user_args` (each checked) merged into the OS `defaults`, server URLs
/// made absolute with `base`, in the format `compat` asks for.
pub fn boot_with_args(
    kernel: String,
    initrd: Vec<String>,
    defaults: Vec<KernelArg>,
    user_args: &[String],
    base: Option<&MatchboxUrl>,
    compat: Option<Compat>,
) -> Result<Boot> {
    for arg in user_args {
        kargs::validate(arg)?;
    }
    let merged = kargs::merge(defaults, user_args);
    let resolved = kargs::resolve(merged, base, |key| {
        InvalidInput(format!(
            "kernel argument {key} needs an absolute URL: pass --matchbox-url URL (or set \
             CAAS_MATCHBOX_URL), or give the whole argument with --arg {key}=URL"
        ))
    })?;
    Ok(match compat {
        Some(Compat::Bootcfg04) => Boot {
            kernel,
            initrd,
            args: None,
            cmdline: Some(kargs::to_cmdline(&resolved)?),
        },
        None => Boot {
            kernel,
            initrd,
            args: Some(resolved),
            cmdline: None,
        },
    })
}

/// A kernel or initrd URL becomes part of an iPXE command line: a newline would start a new
/// command, and a space in the kernel URL would turn the rest into arguments.
fn check_boot_line(flag: &str, value: &str, spaces_allowed: bool) -> Result<(), InvalidInput> {
    let bad = value
        .chars()
        .find(|&c| c.is_control() || (c.is_whitespace() && !(spaces_allowed && c == ' ')));
    match bad {
        _ if value.trim().is_empty() => Err(InvalidInput(format!("{flag} is empty"))),
        Some(c) => Err(InvalidInput(format!(
            "invalid {flag} {value:?}: {c:?} is not allowed in an iPXE command line"
        ))),
        None => Ok(()),
    }
}

/// A release under `assets/<os>/`: its directory name and its boot files.
struct Release {
    version: Id,
    files: ReleaseFiles,
}

/// Finds the release `version` of `os` under the data dir's assets.
///
/// `current` is pinned to the release the published `current` link points at, so a profile
/// names a fixed, verified release and changes visibly when a new one is published. File names
/// come from the release's manifest when it has one, else from the OS's naming convention.
fn resolve_release(data_dir: &DataDir, os: Os, version: &Id, arch: Arch) -> Result<Release> {
    let os_dir = data_dir.assets_dir().join(os.dir_name());
    let mut version = version.clone();
    if version.as_str() == "current" {
        let link = os_dir.join("current");
        match fs::read_link(&link) {
            Ok(target) => {
                let name = target
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or_default();
                version = Id::new(name).with_context(|| {
                    format!("{} points at {}", link.display(), target.display())
                })?;
            }
            // Nothing published, or a plain directory named `current`: use it as it is.
            Err(err)
                if err.kind() == io::ErrorKind::NotFound
                    || err.kind() == io::ErrorKind::InvalidInput => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", link.display())),
        }
    }
    let release_dir = os_dir.join(version.as_str());
    let files = match Manifest::read(&release_dir)? {
        Some(manifest) if manifest.os != os.into() => {
            return Err(invalid(format!(
                "{} describes {}, not {}",
                release_dir.display(),
                manifest.os.dir_name(),
                os.dir_name()
            )));
        }
        Some(manifest) => manifest.release_files().ok_or_else(|| {
            invalid(format!(
                "the manifest in {} names no kernel or no initrd",
                release_dir.display()
            ))
        })?,
        None => os::conventional_files(os, version.as_str(), arch)?,
    };
    Ok(Release { version, files })
}

/// The group `options` describe, with every input checked; the profile must exist unless
/// `allow_missing_profile`.
pub fn build_group(data_dir: &DataDir, options: &GroupOptions) -> Result<Group> {
    let profile_path = data_dir.profile_path(&options.profile);
    if !options.allow_missing_profile && !profile_path.is_file() {
        return Err(invalid(format!(
            "profile {:?} does not exist ({} is missing): write it first with `caas gen profile \
             --id {}`, or pass --allow-missing-profile",
            options.profile.as_str(),
            profile_path.display(),
            options.profile
        )));
    }

    let mut selector = Selector::new();
    for (key, value) in &options.selectors {
        if selector.insert(key.clone(), value.clone()).is_some() {
            return Err(invalid(format!("--selector {key} is given more than once")));
        }
    }
    let selector =
        normalize_selector(selector).map_err(|err| invalid(format!("--selector: {err}")))?;
    let selector = lower_case_uuid(selector);

    let mut metadata = match &options.metadata_file {
        Some(file) => file.read_object("metadata")?,
        None => Map::new(),
    };
    let mut from_flags = std::collections::HashSet::new();
    for (key, value) in &options.metadata {
        if !from_flags.insert(key) {
            return Err(invalid(format!("--metadata {key} is given more than once")));
        }
        metadata.insert(key.clone(), typed_value(value));
    }

    Ok(Group {
        id: options.id.to_string(),
        name: options
            .name
            .clone()
            .unwrap_or_else(|| options.id.to_string()),
        profile: options.profile.to_string(),
        selector,
        metadata,
    })
}

/// What a file of a [`FileSet`] is for: which kind of matchbox file, with which id. The path
/// follows from it (`profiles/<id>.json`, `groups/<id>.json`, `ignition/<id>.ign`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    Profile(Id),
    Group(Id),
    /// The Ignition config `<id>.ign` (an id that ends in `.ign` is the file name).
    Ignition(Id),
}

impl Purpose {
    /// Where the file lives in `data_dir`.
    pub fn path(&self, data_dir: &DataDir) -> Result<PathBuf> {
        Ok(match self {
            Purpose::Profile(id) => data_dir.profile_path(id),
            Purpose::Group(id) => data_dir.group_path(id),
            Purpose::Ignition(id) => data_dir.ignition_path(&config_file_name(id)?),
        })
    }
}

/// The profiles, groups and Ignition configs one run writes, each added for what it is and by
/// whom (an owner, for errors): `gen`, `gen cluster` and `schedule` all build their files here.
/// A file two owners would write is an error naming both, before anything is written.
pub struct FileSet<'a> {
    data_dir: &'a DataDir,
    files: Vec<FileWrite>,
    owners: HashMap<PathBuf, String>,
}

impl<'a> FileSet<'a> {
    pub fn new(data_dir: &'a DataDir) -> FileSet<'a> {
        FileSet {
            data_dir,
            files: Vec::new(),
            owners: HashMap::new(),
        }
    }

    /// `profiles/<id>.json`.
    pub fn profile(&mut self, profile: &Profile, owner: &str) -> Result<()> {
        let purpose = Purpose::Profile(Id::new(&profile.id)?);
        self.add(&purpose, profile.to_json(), owner)
    }

    /// `groups/<id>.json`.
    pub fn group(&mut self, group: &Group, owner: &str) -> Result<()> {
        let purpose = Purpose::Group(Id::new(&group.id)?);
        self.add(&purpose, group.to_json(), owner)
    }

    /// `ignition/<id>.ign`: a rendered config.
    pub fn ignition(&mut self, id: &Id, config: Vec<u8>, owner: &str) -> Result<()> {
        self.add(&Purpose::Ignition(id.clone()), config, owner)
    }

    fn add(&mut self, purpose: &Purpose, bytes: Vec<u8>, owner: &str) -> Result<()> {
        let path = purpose.path(self.data_dir)?;
        if let Some(other) = self.owners.insert(path.clone(), owner.to_owned()) {
            return Err(invalid(format!(
                "{other} and {owner} would both write {}: rename one of them",
                path.strip_prefix(self.data_dir.root())
                    .unwrap_or(&path)
                    .display()
            )));
        }
        self.files.push(FileWrite::new(path, bytes));
        Ok(())
    }

    /// The files, in the order they were added.
    pub fn into_files(self) -> Vec<FileWrite> {
        self.files
    }
}

/// A metadata value from the command line: JSON when it parses as JSON (`3`, `true`,
/// `[1,2]`, `"quoted"`), else the string as given.
pub fn typed_value(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()))
}

/// iPXE sends `${uuid}` in lower case; dmidecode and most inventories print it in upper case,
/// which would never match.
fn lower_case_uuid(selector: Selector) -> Selector {
    selector
        .into_iter()
        .map(|(key, value)| {
            let value = if key == "uuid" {
                value.to_ascii_lowercase()
            } else {
                value
            };
            (key, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const FLAGS: SpecFlags = SpecFlags {
        os: "--os",
        spec: "--spec",
    };

    #[test]
    fn the_output_spec_follows_the_server_and_the_os() {
        let bootcfg = Some(Compat::Bootcfg04);
        assert_eq!(
            output_spec(Os::Flatcar, None, None, FLAGS).unwrap(),
            Spec::V3_3
        );
        assert_eq!(
            output_spec(Os::Coreos, bootcfg, None, FLAGS).unwrap(),
            Spec::V2_0
        );
        assert_eq!(
            output_spec(Os::Coreos, bootcfg, Some(Spec::V2_2), FLAGS).unwrap(),
            Spec::V2_2
        );
        assert_eq!(
            output_spec(Os::Coreos, None, Some(Spec::V2_3), FLAGS).unwrap(),
            Spec::V2_3
        );
        // Flatcar reads both majors.
        assert_eq!(
            output_spec(Os::Flatcar, bootcfg, None, FLAGS).unwrap(),
            Spec::V2_0
        );
        let refused = [
            (
                Os::Coreos,
                None,
                None,
                "--os coreos: CoreOS Container Linux reads Ignition spec 2.x only, and the configs would be spec 3.3: give --spec 2.0",
            ),
            (
                Os::Coreos,
                bootcfg,
                Some(Spec::V3_4),
                "--compat bootcfg-0.4 writes for CoreOS Container Linux of 2016, which reads Ignition spec 2.x, and --spec is 3.4",
            ),
            (
                Os::FedoraCoreos,
                None,
                Some(Spec::V2_0),
                "--os fedora-coreos: Fedora CoreOS reads Ignition spec 3.x only, and the configs would be spec 2.0: give --spec 3.3 or 3.4",
            ),
            (
                Os::FedoraCoreos,
                bootcfg,
                None,
                "--os fedora-coreos: Fedora CoreOS reads Ignition spec 3.x only",
            ),
        ];
        for (os, compat, spec, expected) in refused {
            let err = output_spec(os, compat, spec, FLAGS).unwrap_err().0;
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn metadata_values_keep_json_types() {
        assert_eq!(typed_value("3"), json!(3));
        assert_eq!(typed_value("true"), json!(true));
        assert_eq!(typed_value("[1,\"a\"]"), json!([1, "a"]));
        assert_eq!(typed_value("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(typed_value("\"true\""), json!("true"));
        assert_eq!(typed_value("node1"), json!("node1"));
        assert_eq!(typed_value("3227.2.0"), json!("3227.2.0"));
        assert_eq!(typed_value("01"), json!("01"));
        assert_eq!(typed_value(""), json!(""));
    }

    #[test]
    fn boot_lines_cannot_inject_ipxe_commands() {
        assert!(check_boot_line("--kernel", "/assets/k", false).is_ok());
        assert!(check_boot_line("--initrd", "--name main /assets/i", true).is_ok());
        assert!(check_boot_line("--kernel", "/a b", false).is_err());
        assert!(check_boot_line("--initrd", "/i\nshell", true).is_err());
        assert!(check_boot_line("--initrd", " ", true).is_err());
    }

    #[test]
    fn a_file_set_names_both_owners_of_one_file() {
        let data_dir = DataDir::new("/srv/bootcfg");
        let id = Id::new("node1").unwrap();
        assert_eq!(
            Purpose::Ignition(id.clone()).path(&data_dir).unwrap(),
            Path::new("/srv/bootcfg/ignition/node1.ign")
        );
        let mut files = FileSet::new(&data_dir);
        files
            .ignition(&id, b"{}".to_vec(), "machine node1")
            .unwrap();
        let err = files
            .ignition(&id, b"{}".to_vec(), "the default group")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "machine node1 and the default group would both write ignition/node1.ign: rename \
             one of them"
        );
        assert_eq!(files.into_files().len(), 1);
    }
}
