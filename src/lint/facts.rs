//! The facts every lint rule works from, gathered in one pass.
//!
//! [`Tree::read`] reads the data directory once, the way matchbox's file store does: every entry
//! of `groups/` and `profiles/`, the profiles groups name from elsewhere, every file under
//! `ignition/` and every config a profile names (raw Ignition classified, templates scanned).
//! [`Facts::new`] derives the lookups the rules ask for: profiles by file, groups in the order
//! matchbox reads them with a link to their profile, and an index for selection questions. No
//! rule reads a file itself.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::lint::Local;
use crate::matchbox::boot::{self, IgnitionUrl};
use crate::matchbox::clc;
use crate::matchbox::decode::PathSeg;
use crate::matchbox::ignition::{self as raw, Problem, RawInfo};
use crate::matchbox::select::{Labels, SelectIndex};
use crate::matchbox::spans::{self, Part, Pos};
use crate::matchbox::store::{
    ConfigKind, Entry, LoadError, Loaded, Source, Store, is_raw_ignition, list_dir, par_map,
    read_small,
};
use crate::matchbox::target::Target;
use crate::matchbox::template::{self, Dialect, SyntaxError, TemplateInfo};
use crate::matchbox::{Group, Profile};
use crate::os::Os;

/// What a lint run read: owned, so that the caller decides when (or whether) to free it.
pub struct Tree {
    store: Store,
    target: Target,
    has_assets: bool,
    groups: Vec<Entry<Group>>,
    profiles: Vec<Entry<Profile>>,
    /// Every profile a group names, by the name the group gives.
    named_profiles: HashMap<String, NamedProfile>,
    /// Every config file read, by the path matchbox resolves its name to.
    configs: HashMap<OsString, Config>,
    /// caas's own temp files (`.caas-*.tmp`) a killed write left in `groups/`, `profiles/` or
    /// `ignition/`: not part of the data, reported once as leftovers, checked by no other rule.
    leftovers: Vec<PathBuf>,
}

/// A profile a group names.
enum NamedProfile {
    /// A JSON file of `profiles/`, at this path.
    Listed(PathBuf),
    /// Anything else (a `..` in the name, or no such file), as matchbox reads it.
    Read(Box<Loaded<Profile>>),
}

/// What lint knows about a config file a profile may name.
#[derive(Clone, Debug)]
pub enum Config {
    Unreadable(LoadError),
    Raw {
        info: RawInfo,
        problems: Vec<Problem>,
        /// The file's bytes, for rules that locate what they find in it.
        bytes: Vec<u8>,
    },
    Template(TemplateFile),
}

/// A template under `ignition/`, `cloud/` or `generic/`.
#[derive(Clone, Debug)]
pub struct TemplateFile {
    /// The directory it was read from, as a profile names it.
    pub kind: ConfigKind,
    pub bytes: Vec<u8>,
    pub scan: Result<TemplateInfo, SyntaxError>,
    pub dialect: Dialect,
    pub installs: bool,
    /// What matchbox v0.8's Container Linux Config transpiler makes of it (Ignition templates
    /// on that target only).
    pub clc: Vec<clc::Note>,
}

impl Config {
    /// Whether the config installs the OS to disk.
    pub fn installs(&self) -> bool {
        match self {
            Config::Unreadable(_) => false,
            Config::Raw { info, .. } => info.installs,
            Config::Template(file) => file.installs,
        }
    }

    /// Analyses one config file: raw Ignition or a template.
    fn analyse(kind: ConfigKind, path: &Path, bytes: Vec<u8>, target: Target) -> Config {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if kind == ConfigKind::Ignition && is_raw_ignition(&name) {
            let (info, problems) = raw::check_raw(&bytes, target);
            return Config::Raw {
                info,
                problems,
                bytes,
            };
        }
        let text = String::from_utf8_lossy(&bytes);
        let scan = template::scan(&text);
        let dialect = template::dialect(&text);
        let installs = raw::installs_to_disk(&bytes);
        let clc = if kind == ConfigKind::Ignition && target == Target::Matchbox08 {
            clc::check(&text)
        } else {
            Vec::new()
        };
        Config::Template(TemplateFile {
            kind,
            bytes,
            scan,
            dialect,
            installs,
            clc,
        })
    }
}

impl Tree {
    /// Reads the data directory at `root` (which must exist) as matchbox would serve it.
    pub fn read(root: &Path, target: Target) -> Result<Tree> {
        let store = Store::new(root);
        let mut groups = listed(store.groups(), &root.join("groups"))?;
        let mut profiles = listed(store.profiles(), &root.join("profiles"))?;
        let mut leftovers = Vec::new();
        let temp = |name: &OsStr| crate::write::is_temp_name(&name.to_string_lossy());
        groups.retain(|e| {
            let keep = !temp(&e.name);
            if !keep {
                leftovers.push(root.join("groups").join(&e.name));
            }
            keep
        });
        profiles.retain(|e| {
            let keep = !temp(&e.name);
            if !keep {
                leftovers.push(root.join("profiles").join(&e.name));
            }
            keep
        });
        let mut tree = Tree {
            has_assets: root.join("assets").is_dir(),
            store,
            target,
            groups,
            profiles,
            named_profiles: HashMap::new(),
            configs: HashMap::new(),
            leftovers,
        };
        tree.named_profiles = tree.read_named_profiles();
        tree.configs = tree.read_ignition_dir()?;
        tree.leftovers.sort();
        tree.read_named_configs();
        Ok(tree)
    }

    /// Every profile a group names: where it is listed, or read from wherever the name leads.
    fn read_named_profiles(&self) -> HashMap<String, NamedProfile> {
        let listed: HashSet<&OsStr> = self
            .profiles
            .iter()
            .filter(|e| e.is_json_file())
            .map(|e| e.loaded.path.as_os_str())
            .collect();
        let mut named = HashMap::new();
        for entry in &self.groups {
            let Some((group, ..)) = usable(entry) else {
                continue;
            };
            if group.profile.is_empty() || named.contains_key(&group.profile) {
                continue;
            }
            let profile = match self.profile_path(&group.profile) {
                Ok(path) if listed.contains(path.as_os_str()) => NamedProfile::Listed(path),
                Ok(_) => NamedProfile::Read(Box::new(self.store.profile(&group.profile))),
                Err(err) => NamedProfile::Read(Box::new(Loaded {
                    path: PathBuf::new(),
                    source: None,
                    result: Err(err),
                })),
            };
            named.insert(group.profile.clone(), profile);
        }
        named
    }

    fn profile_path(&self, name: &str) -> Result<PathBuf, LoadError> {
        self.store.resolve("profiles", &format!("{name}.json"))
    }

    /// What matchbox loads for the profile a group names.
    fn named_profile<'a>(
        &'a self,
        name: &str,
        listed: &HashMap<&OsStr, &'a Loaded<Profile>>,
    ) -> &'a Loaded<Profile> {
        match self.named_profiles.get(name) {
            Some(NamedProfile::Read(loaded)) => loaded,
            Some(NamedProfile::Listed(path)) => listed[&path.as_os_str()],
            None => unreachable!("every profile a usable group names is read"),
        }
    }

    /// Every file under `ignition/` (matchbox may be asked for any of them), analysed.
    fn read_ignition_dir(&mut self) -> Result<HashMap<OsString, Config>> {
        let dir = self.store.root().join("ignition");
        let mut files = Vec::new();
        let leftovers = &mut self.leftovers;
        let mut stack = vec![dir.clone()];
        while let Some(current) = stack.pop() {
            let entries = match list_dir(&current) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound && current == dir => {
                    return Ok(HashMap::new());
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("listing {}", current.display()));
                }
            };
            for (name, is_dir) in entries {
                let path = current.join(&name);
                if is_dir {
                    stack.push(path);
                } else if crate::write::is_temp_name(&name.to_string_lossy()) {
                    leftovers.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let target = self.target;
        Ok(par_map(files, |path| {
            let config = match read_small(&path) {
                Ok(bytes) => Config::analyse(ConfigKind::Ignition, &path, bytes, target),
                Err(err) => Config::Unreadable(LoadError::Read {
                    kind: err.kind(),
                    message: err.to_string(),
                }),
            };
            (path.into_os_string(), config)
        })
        .into_iter()
        .collect())
    }

    /// The configs the checked profiles name that the `ignition/` scan did not read.
    fn read_named_configs(&mut self) {
        let mut wanted: Vec<(ConfigKind, &str, PathBuf)> = Vec::new();
        let mut seen: HashSet<PathBuf> = HashSet::new();
        for profile in self.checked_profiles().map(|(_, _, profile)| profile) {
            for kind in ConfigKind::ALL {
                let name = kind.name_in(profile);
                if name.is_empty() {
                    continue;
                }
                let path = self.config_path(kind, name);
                if !self.configs.contains_key(path.as_os_str()) && seen.insert(path.clone()) {
                    wanted.push((kind, name, path));
                }
            }
        }
        let (store, target) = (&self.store, self.target);
        let read = par_map(wanted, |(kind, name, path)| {
            let config = match store.config(kind, name) {
                Ok((_, bytes)) => Config::analyse(kind, &path, bytes, target),
                Err(err) => Config::Unreadable(err),
            };
            (path.into_os_string(), config)
        });
        self.configs.extend(read);
    }

    /// The file matchbox reads for a config name (a name it refuses stays under its directory).
    fn config_path(&self, kind: ConfigKind, name: &str) -> PathBuf {
        self.store
            .resolve(kind.dir_name(), name)
            .unwrap_or_else(|_| self.store.root().join(kind.dir_name()).join(name))
    }

    /// The profiles lint checks: the JSON files of `profiles/` that decode, then the ones
    /// groups name from elsewhere that decode; each with its file, bytes and JSON.
    fn checked_profiles(&self) -> impl Iterator<Item = (&Path, &[u8], &Profile)> {
        let listed = self.profiles.iter().filter_map(usable);
        let named = self.named_profiles.values().filter_map(|named| {
            let NamedProfile::Read(loaded) = named else {
                return None;
            };
            let profile = loaded.ok()?;
            let source = loaded.source.as_ref()?;
            Some((profile, loaded.path.as_path(), source.bytes.as_slice()))
        });
        listed
            .chain(named)
            .map(|(profile, path, bytes)| (path, bytes, profile))
    }
}

fn listed<T>(result: io::Result<Vec<Entry<T>>>, dir: &Path) -> Result<Vec<Entry<T>>> {
    match result {
        Ok(entries) => Ok(entries),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err).with_context(|| format!("listing {}", dir.display())),
    }
}

/// An entry matchbox uses as intended: a `.json` file that is JSON and decodes.
fn usable<T>(entry: &Entry<T>) -> Option<(&T, &Path, &[u8])> {
    let bytes = parsed(entry)?;
    let value = entry.loaded.ok()?;
    Some((value, entry.loaded.path.as_path(), bytes))
}

/// The bytes of a `.json` entry whose file was read and is JSON.
fn parsed<T>(entry: &Entry<T>) -> Option<&[u8]> {
    if !entry.is_json_file() {
        return None;
    }
    let source = entry.loaded.source.as_ref()?;
    source.is_json.then_some(source.bytes.as_slice())
}

/// Which directory an entry is listed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Groups,
    Profiles,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Groups => "groups",
            Dir::Profiles => "profiles",
        }
    }
}

/// One entry of `groups/` or `profiles/`, whatever it holds.
pub struct FileFact<'t> {
    pub dir: Dir,
    /// The entry as listed.
    pub entry_path: PathBuf,
    pub stem: &'t str,
    pub is_dir: bool,
    pub is_json_file: bool,
    /// The file matchbox reads for the entry, what was read and why it failed.
    pub path: &'t Path,
    pub source: Option<&'t Source>,
    pub error: Option<&'t LoadError>,
    /// The file's unknown and misspelled keys, worked out by the first rule that asks.
    pub keys: OnceLock<Vec<Local>>,
}

impl<'t> FileFact<'t> {
    fn new<T>(root: &Path, dir: Dir, entry: &'t Entry<T>) -> FileFact<'t> {
        FileFact {
            dir,
            entry_path: root.join(dir.name()).join(&entry.name),
            stem: &entry.stem,
            is_dir: entry.is_dir,
            is_json_file: entry.is_json_file(),
            path: &entry.loaded.path,
            source: entry.loaded.source.as_ref(),
            error: entry.loaded.result.as_ref().err(),
            keys: OnceLock::new(),
        }
    }

    /// The bytes of a `.json` entry that is JSON.
    pub fn parsed(&self) -> Option<&'t [u8]> {
        if !self.is_json_file {
            return None;
        }
        let source = self.source?;
        source.is_json.then_some(source.bytes.as_slice())
    }

    /// The JSON of a `.json` entry that is JSON, read again (it is not kept).
    pub fn json(&self) -> Option<Value> {
        self.parsed()?;
        self.source?.json()
    }
}

/// A config a profile names, resolved.
pub struct NamedConfig<'t> {
    pub kind: ConfigKind,
    pub name: &'t str,
    pub path: PathBuf,
    pub config: &'t Config,
}

/// A `/assets/…` URL a profile loads from matchbox's assets directory.
pub struct AssetRef {
    pub uri: String,
    /// Where the URL is in the profile.
    pub at: Vec<PathSeg>,
    pub file: PathBuf,
    pub exists: bool,
}

/// A profile that decodes, and what it means for the checks.
pub struct ProfileFact<'t> {
    pub path: &'t Path,
    pub bytes: &'t [u8],
    pub profile: &'t Profile,
    /// Where the kernel arguments live in the file (`args` or `cmdline` under `boot`).
    pub args_field: &'static str,
    /// The kernel arguments the target puts on the kernel line.
    pub args: Vec<String>,
    /// The OS it boots, when the kernel or its arguments say.
    pub os: Option<Os>,
    /// `/ignition` URLs on the kernel line (the config the booted OS fetches).
    pub config_urls: Vec<IgnitionUrl>,
    /// `coreos.inst.ignition_url` (the config the installed system gets).
    pub install_url: Option<IgnitionUrl>,
    /// Its kernel arguments make the Fedora CoreOS live system install to disk.
    pub kargs_install: bool,
    /// The Ignition, cloud and generic configs it names.
    pub configs: Vec<NamedConfig<'t>>,
    /// The relative asset URLs it loads (only when the data directory has `assets/`).
    pub assets: Vec<AssetRef>,
}

impl ProfileFact<'_> {
    /// The position of `segs` in the profile file, or of its closest ancestor.
    pub fn at(&self, segs: &[PathSeg], part: Part) -> Pos {
        spans::locate_or_parent(self.bytes, segs, part)
    }

    /// The position of kernel argument `i`.
    pub fn arg_pos(&self, i: usize) -> Pos {
        if self.args_field == "args" {
            self.at(&[key("boot"), key("args"), PathSeg::Index(i)], Part::Value)
        } else {
            self.at(&[key("boot"), key("cmdline")], Part::Key)
        }
    }

    /// The Ignition config it names.
    pub fn ignition(&self) -> Option<&NamedConfig<'_>> {
        self.configs
            .iter()
            .find(|named| named.kind == ConfigKind::Ignition)
    }

    /// Its Ignition config installs to disk.
    pub fn ignition_installs(&self) -> bool {
        self.ignition().is_some_and(|named| named.config.installs())
    }
}

/// How a group's profile resolved.
pub enum ProfileLink<'t> {
    /// The group names no profile.
    Unnamed,
    /// The profile decodes: a key of [`Facts::profiles`].
    Loaded(&'t Path),
    /// What matchbox read for the name, which does not decode.
    Failed(&'t Loaded<Profile>),
}

/// A group matchbox uses (a `.json` file that decodes).
pub struct GroupFact<'t> {
    pub path: &'t Path,
    pub bytes: &'t [u8],
    pub group: &'t Group,
    pub profile: ProfileLink<'t>,
}

impl std::borrow::Borrow<Group> for GroupFact<'_> {
    fn borrow(&self) -> &Group {
        self.group
    }
}

/// The named lookups the rules read.
pub struct Facts<'t> {
    pub root: &'t Path,
    pub target: Target,
    /// Every entry of `groups/` and `profiles/`.
    pub files: Vec<FileFact<'t>>,
    /// Every profile lint checks, by file: those in `profiles/` and those groups name from
    /// elsewhere.
    profiles: HashMap<&'t OsStr, ProfileFact<'t>>,
    /// The groups matchbox selects from, in the order it lists them.
    pub groups: Vec<GroupFact<'t>>,
    /// Every config file read, by resolved path.
    configs: &'t HashMap<OsString, Config>,
    index: SelectIndex,
    /// caas's temp files a killed write left behind, sorted.
    pub leftovers: &'t [PathBuf],
}

impl<'t> Facts<'t> {
    pub fn new(tree: &'t Tree) -> Facts<'t> {
        let root = tree.store.root();
        let files = (tree
            .groups
            .iter()
            .map(|e| FileFact::new(root, Dir::Groups, e)))
        .chain((tree.profiles.iter()).map(|e| FileFact::new(root, Dir::Profiles, e)))
        .collect();
        let checked: Vec<_> = tree.checked_profiles().collect();
        let profiles = par_map(checked, |(path, bytes, profile)| {
            (path.as_os_str(), profile_fact(tree, path, bytes, profile))
        })
        .into_iter()
        .collect();
        let listed: HashMap<&OsStr, &Loaded<Profile>> = (tree.profiles.iter())
            .filter(|e| e.is_json_file())
            .map(|e| (e.loaded.path.as_os_str(), &e.loaded))
            .collect();
        let groups: Vec<GroupFact<'t>> = (tree.groups.iter().filter_map(usable))
            .map(|(group, path, bytes)| GroupFact {
                path,
                bytes,
                group,
                profile: profile_link(tree, &listed, group),
            })
            .collect();
        Facts {
            root,
            target: tree.target,
            files,
            profiles,
            index: SelectIndex::new(&groups),
            groups,
            configs: &tree.configs,
            leftovers: &tree.leftovers,
        }
    }

    /// Every profile lint checks, in no particular order.
    pub fn profiles(&self) -> impl Iterator<Item = &ProfileFact<'t>> {
        self.profiles.values()
    }

    /// The checked profile in the file at `path`.
    pub fn profile(&self, path: &Path) -> Option<&ProfileFact<'t>> {
        self.profiles.get(path.as_os_str())
    }

    /// The profile a group's machines boot, when it decodes.
    pub fn profile_of(&self, group: &GroupFact<'t>) -> Option<&ProfileFact<'t>> {
        match group.profile {
            ProfileLink::Loaded(path) => self.profile(path),
            _ => None,
        }
    }

    /// Every config file read, by the path matchbox resolves its name to.
    pub fn configs(&self) -> impl Iterator<Item = (&Path, &Config)> {
        (self.configs.iter()).map(|(path, config)| (Path::new(path), config))
    }

    /// The group matchbox answers a request with these labels with.
    pub fn winner(&self, labels: &Labels) -> Option<&GroupFact<'t>> {
        self.index
            .winner(&self.groups, labels)
            .map(|i| &self.groups[i])
    }
}

fn profile_link<'t>(
    tree: &'t Tree,
    listed: &HashMap<&OsStr, &'t Loaded<Profile>>,
    group: &Group,
) -> ProfileLink<'t> {
    if group.profile.is_empty() {
        return ProfileLink::Unnamed;
    }
    let loaded = tree.named_profile(&group.profile, listed);
    match loaded.result {
        Ok(_) => ProfileLink::Loaded(&loaded.path),
        Err(_) => ProfileLink::Failed(loaded),
    }
}

/// What one decoded profile means: its kernel line, OS, Ignition URLs, configs and assets.
fn profile_fact<'t>(
    tree: &'t Tree,
    path: &'t Path,
    bytes: &'t [u8],
    profile: &'t Profile,
) -> ProfileFact<'t> {
    let target = tree.target;
    let args = profile
        .boot
        .as_ref()
        .map(|boot| target.kernel_args(boot))
        .unwrap_or_default();
    let configs = ConfigKind::ALL
        .into_iter()
        .filter(|kind| !kind.name_in(profile).is_empty())
        .map(|kind| {
            let name = kind.name_in(profile);
            let path = tree.config_path(kind, name);
            let config = tree
                .configs
                .get(path.as_os_str())
                .expect("every config a checked profile names is read");
            NamedConfig {
                kind,
                name,
                path,
                config,
            }
        })
        .collect();
    ProfileFact {
        path,
        bytes,
        profile,
        args_field: if target.reads_cmdline() {
            "cmdline"
        } else {
            "args"
        },
        os: (profile.boot.as_ref()).and_then(|boot| boot::detect_os(boot, &args)),
        config_urls: boot::ignition_urls(&args, &boot::CONFIG_URL_KEYS),
        install_url: boot::install_url(&args),
        kargs_install: boot::live_install(&args),
        assets: if tree.has_assets {
            assets(tree.store.root(), profile)
        } else {
            Vec::new()
        },
        args,
        configs,
    }
}

/// The `/assets/…` URLs of a profile's kernel and initrds, and whether each file exists.
fn assets(root: &Path, profile: &Profile) -> Vec<AssetRef> {
    let Some(boot) = &profile.boot else {
        return Vec::new();
    };
    let mut uris = vec![(boot.kernel.clone(), vec![key("boot"), key("kernel")])];
    for (i, entry) in boot.initrd.iter().enumerate() {
        if let Some(initrd) = boot::parse_initrd(entry) {
            uris.push((
                initrd.uri,
                vec![key("boot"), key("initrd"), PathSeg::Index(i)],
            ));
        }
    }
    uris.into_iter()
        .filter_map(|(uri, at)| {
            let rel = boot::relative_asset(&uri)?;
            let file = root.join("assets").join(&rel);
            let exists = file.is_file();
            Some(AssetRef {
                uri,
                at,
                file,
                exists,
            })
        })
        .collect()
}

/// A path step naming a field (matched as Go matches struct fields).
pub fn key(name: &str) -> PathSeg {
    PathSeg::Key(name.to_owned())
}

/// A path step naming a map key (selector, metadata), matched as spelled.
pub fn map_key(name: &str) -> PathSeg {
    PathSeg::MapKey(name.to_owned())
}
