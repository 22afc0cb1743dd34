//! Reading a data directory exactly the way matchbox's file store does
//! (<https://github.com/poseidon/matchbox/blob/v0.8.3/matchbox/storage/filestore.go>), so that
//! `lint` and `explain` see what the server sees.
//!
//! - `groups/` is listed entry by entry, sorted by name (Go's `ioutil.ReadDir`). Every entry
//!   counts, subdirectories and non-JSON files too: matchbox strips the extension
//!   (`filepath.Ext`) and reads `groups/<stem>.json`, so `a.yaml` reads `a.json` (which may not
//!   exist) and a `sub/` directory reads `sub.json`. Nothing is read recursively.
//! - Profiles are looked up by file name: `profiles/<id>.json`. The id inside is not compared.
//! - Ignition, cloud and generic files are read by name from `ignition/`, `cloud/`, `generic/`;
//!   a name ending in `.ign` or `.ignition` is raw Ignition, any other name a template.
//! - Every name goes through matchbox's sanitiser, `path.Clean("/" + <dir>/<name>)`, so `..`
//!   cannot leave the data directory (but can move between its subdirectories).
//! - Names are bytes: a file name that is not UTF-8 is listed and read like any other (Go
//!   strings hold any bytes); caas keeps it as an `OsStr` and only shows it lossily.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::decode::{DecodeError, GoJson, parse_go};
use super::group::Group;
use super::profile::Profile;

/// Why a file matchbox asks for cannot be used; matchbox logs it and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read: no such file, a directory, permissions, a NUL in the name.
    #[error("{message}")]
    Read {
        kind: io::ErrorKind,
        message: String,
    },
    /// The file is read but does not decode (matchbox skips it).
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

impl LoadError {
    fn read(err: &io::Error) -> LoadError {
        let message = match err.kind() {
            io::ErrorKind::NotFound => "no such file".to_owned(),
            io::ErrorKind::IsADirectory => "is a directory".to_owned(),
            _ => err.to_string(),
        };
        LoadError::Read {
            kind: err.kind(),
            message,
        }
    }

    /// matchbox found no file at all under that name.
    pub fn is_not_found(&self) -> bool {
        matches!(self, LoadError::Read { kind, .. } if *kind == io::ErrorKind::NotFound)
    }
}

/// The bytes of a file that was read, and whether they are JSON. The JSON itself is not
/// kept (lint holds every file of a data directory: trees would be several times the bytes);
/// [`Source::json`] reads it again for the few checks that walk it.
#[derive(Debug, Clone)]
pub struct Source {
    pub bytes: Vec<u8>,
    pub is_json: bool,
}

impl Source {
    /// The file's JSON (of repeated keys the last), when it is JSON.
    pub fn json(&self) -> Option<Value> {
        if !self.is_json {
            return None;
        }
        parse_go(&self.bytes).ok().map(|doc| doc.to_value())
    }
}

/// One file matchbox reads and what came of it.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The file read, under the data directory.
    pub path: PathBuf,
    /// What was read; `None` when reading failed.
    pub source: Option<Source>,
    pub result: Result<T, LoadError>,
}

impl<T> Loaded<T> {
    pub fn ok(&self) -> Option<&T> {
        self.result.as_ref().ok()
    }
}

/// One entry of `groups/` (or `profiles/`) and the file matchbox reads for it.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    /// The directory entry's name as listed.
    pub name: OsString,
    /// Whether the entry itself is a directory (following symlinks).
    pub is_dir: bool,
    /// The name with its extension stripped: the id matchbox reads `<stem>.json` for, shown
    /// lossily when it is not UTF-8 (the file read is `loaded.path`).
    pub stem: String,
    pub loaded: Loaded<T>,
}

impl<T> Entry<T> {
    /// Entries matchbox reads as intended: a `.json` file.
    pub fn is_json_file(&self) -> bool {
        !self.is_dir && go_ext(self.name.as_encoded_bytes()) == b".json"
    }
}

/// The kinds of config a profile names, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigKind {
    Ignition,
    Cloud,
    Generic,
}

impl ConfigKind {
    pub const ALL: [ConfigKind; 3] = [ConfigKind::Ignition, ConfigKind::Cloud, ConfigKind::Generic];

    pub fn dir_name(self) -> &'static str {
        match self {
            ConfigKind::Ignition => "ignition",
            ConfigKind::Cloud => "cloud",
            ConfigKind::Generic => "generic",
        }
    }

    /// The profile field that names a config of this kind.
    pub fn field(self) -> &'static str {
        match self {
            ConfigKind::Ignition => "ignition_id",
            ConfigKind::Cloud => "cloud_id",
            ConfigKind::Generic => "generic_id",
        }
    }

    /// The name the profile gives for this kind (empty when it names none).
    pub fn name_in(self, profile: &Profile) -> &str {
        match self {
            ConfigKind::Ignition => &profile.ignition_id,
            ConfigKind::Cloud => &profile.cloud_id,
            ConfigKind::Generic => &profile.generic_id,
        }
    }
}

/// matchbox's raw-Ignition rule: `.ign` and `.ignition` are served as Ignition JSON, any other
/// name is a template.
pub fn is_raw_ignition(name: &str) -> bool {
    name.ends_with(".ign") || name.ends_with(".ignition")
}

/// A matchbox data directory, read as the server reads it.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file matchbox opens for `<dir>/<name>`, or why it refuses the name.
    pub fn resolve(&self, dir: &str, name: &str) -> Result<PathBuf, LoadError> {
        self.resolve_os(dir, OsStr::new(name))
    }

    /// [`Store::resolve`] for a name of any bytes.
    pub fn resolve_os(&self, dir: &str, name: &OsStr) -> Result<PathBuf, LoadError> {
        if name.as_bytes().contains(&0) {
            return Err(LoadError::Read {
                kind: io::ErrorKind::InvalidInput,
                message: "invalid character in file path".into(),
            });
        }
        let mut full = format!("/{dir}/").into_bytes();
        full.extend_from_slice(name.as_bytes());
        let cleaned = go_clean_bytes(&full);
        let relative = cleaned.strip_prefix(b"/").unwrap_or(&cleaned);
        Ok(self.root.join(OsStr::from_bytes(relative)))
    }

    /// Every group as `GroupList` loads them, in listing order. An unreadable `groups/` is
    /// an error (matchbox then answers 404 to every request).
    pub fn groups(&self) -> io::Result<Vec<Entry<Group>>> {
        self.entries("groups", |store, stem| store.group_os(stem))
    }

    /// The groups matchbox loads, in listing order, with the file each was read from; with only
    /// what selection needs decoded (the selector and profile, as [`Store::group_heads`]) and
    /// without the files' bytes: a 100,000-group directory would otherwise be held whole in
    /// memory, and decoding every field is most of the time spent reading it.
    pub fn group_list(&self) -> io::Result<Vec<(PathBuf, Group)>> {
        let listed = list_dir(&self.root.join("groups"))?;
        let loaded = par_map(listed, |(name, _)| {
            let stem = strip_go_ext(name.as_encoded_bytes());
            let loaded = self.group_head_os(OsStr::from_bytes(stem));
            Some((loaded.path, loaded.result.ok()?))
        });
        Ok(loaded.into_iter().flatten().collect())
    }

    /// Every group as `GroupList` loads them, in listing order, with only what selection needs
    /// decoded: each entry's group has its selector and profile, and no other field (see
    /// [`super::head`]); no file's bytes are kept. [`Store::group_os`] reads one whole.
    pub fn group_heads(&self) -> io::Result<Vec<Entry<Group>>> {
        self.entries("groups", |store, stem| store.group_head_os(stem))
    }

    /// The [`Store::group_heads`] entry of one listed name of `groups/`.
    pub fn group_head_entry(&self, name: OsString, is_dir: bool) -> Entry<Group> {
        entry(name, is_dir, |stem| self.group_head_os(stem))
    }

    /// The [`Store::group_heads`] entry of one listed name whose group is already known (read
    /// from `path` earlier: [`super::group_index`]).
    pub fn group_head_entry_from(
        &self,
        name: OsString,
        is_dir: bool,
        path: PathBuf,
        group: Group,
    ) -> Entry<Group> {
        entry(name, is_dir, |_| Loaded {
            path,
            source: None,
            result: Ok(group),
        })
    }

    /// [`Store::group_os`] with only the selector and profile decoded, and without the bytes
    /// (each file is read into the same buffer).
    fn group_head_os(&self, id: &OsStr) -> Loaded<Group> {
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(8192));
        }
        let name = json_name(id);
        let path = match self.resolve_os("groups", &name) {
            Ok(path) => path,
            Err(err) => {
                return Loaded {
                    path: self.root.join("groups").join(&name),
                    source: None,
                    result: Err(err),
                };
            }
        };
        let result = BUFFER.with_borrow_mut(|bytes| {
            bytes.clear();
            read_unsized(&path, bytes).map_err(|err| LoadError::read(&err))?;
            match super::head::group_head(bytes) {
                Some(head) => Ok(head),
                None => Ok(Group::parse(bytes)?),
            }
        });
        Loaded {
            path,
            source: None,
            result,
        }
    }

    /// The whole group in `path`, a file [`Store::group_heads`] read.
    pub fn group_file(&self, path: &Path) -> Result<Group, LoadError> {
        let bytes = read_small(path).map_err(|err| LoadError::read(&err))?;
        Ok(Group::parse(&bytes)?)
    }

    /// Every entry of `profiles/`, loaded as `ProfileList` would (lint checks them all).
    pub fn profiles(&self) -> io::Result<Vec<Entry<Profile>>> {
        self.entries("profiles", |store, stem| store.profile_os(stem))
    }

    /// `GroupGet(id)`: reads `groups/<id>.json`.
    pub fn group(&self, id: &str) -> Loaded<Group> {
        self.group_os(OsStr::new(id))
    }

    /// [`Store::group`] for an id of any bytes (a listed file name's stem).
    pub fn group_os(&self, id: &OsStr) -> Loaded<Group> {
        self.load(&json_name(id), "groups", Group::from_doc)
    }

    /// `ProfileGet(id)`: reads `profiles/<id>.json`; the profile must have an id.
    pub fn profile(&self, id: &str) -> Loaded<Profile> {
        self.profile_os(OsStr::new(id))
    }

    /// [`Store::profile`] for an id of any bytes.
    pub fn profile_os(&self, id: &OsStr) -> Loaded<Profile> {
        self.load(&json_name(id), "profiles", Profile::from_doc)
    }

    /// [`Store::profile`]'s result, with the file read into `bytes` (cleared first) instead
    /// of a buffer of its own: for a caller that reads many profiles and keeps no bytes.
    pub fn profile_in(&self, id: &str, bytes: &mut Vec<u8>) -> Result<Profile, LoadError> {
        let path = self.resolve_os("profiles", &json_name(OsStr::new(id)))?;
        bytes.clear();
        read_unsized(&path, bytes).map_err(|err| LoadError::read(&err))?;
        Ok(Profile::parse(bytes)?)
    }

    /// [`Store::config`] into `bytes` (cleared first) instead of a buffer of its own.
    pub fn config_in(
        &self,
        kind: ConfigKind,
        name: &str,
        bytes: &mut Vec<u8>,
    ) -> Result<(), LoadError> {
        let path = self.resolve(kind.dir_name(), name)?;
        bytes.clear();
        read_unsized(&path, bytes).map_err(|err| LoadError::read(&err))
    }

    /// Reads `<kind dir>/<name>` as matchbox's `IgnitionGet`/`CloudGet`/`GenericGet` do.
    pub fn config(&self, kind: ConfigKind, name: &str) -> Result<(PathBuf, Vec<u8>), LoadError> {
        let path = self.resolve(kind.dir_name(), name)?;
        match read_small(&path) {
            Ok(bytes) => Ok((path, bytes)),
            Err(err) => Err(LoadError::read(&err)),
        }
    }

    fn load<T>(
        &self,
        name: &OsStr,
        dir: &str,
        decode: impl Fn(&GoJson) -> Result<T, DecodeError>,
    ) -> Loaded<T> {
        let (path, bytes) = match self.read_named(name, dir) {
            Ok(read) => read,
            Err((path, err)) => {
                return Loaded {
                    path,
                    source: None,
                    result: Err(err),
                };
            }
        };
        let (is_json, result) = match parse_go(&bytes) {
            Ok(doc) => (true, decode(&doc).map_err(LoadError::from)),
            Err(err) => (false, Err(LoadError::from(err))),
        };
        Loaded {
            path,
            source: Some(Source { bytes, is_json }),
            result,
        }
    }

    /// Reads `<dir>/<name>` as matchbox opens it: the file and its bytes, or the file and why
    /// it cannot be read.
    fn read_named(
        &self,
        name: &OsStr,
        dir: &str,
    ) -> Result<(PathBuf, Vec<u8>), (PathBuf, LoadError)> {
        let path = match self.resolve_os(dir, name) {
            Ok(path) => path,
            Err(err) => return Err((self.root.join(dir).join(name), err)),
        };
        match read_small(&path) {
            Ok(bytes) => Ok((path, bytes)),
            Err(err) => Err((path, LoadError::read(&err))),
        }
    }

    fn entries<T: Send>(
        &self,
        dir: &str,
        load: impl Fn(&Store, &OsStr) -> Loaded<T> + Sync,
    ) -> io::Result<Vec<Entry<T>>> {
        let listed = list_dir(&self.root.join(dir))?;
        Ok(par_map(listed, |(name, is_dir)| {
            entry(name, is_dir, |stem| load(self, stem))
        }))
    }
}

/// The entry of a listed `name`, its file loaded by `load` from the name's stem.
fn entry<T>(name: OsString, is_dir: bool, load: impl FnOnce(&OsStr) -> Loaded<T>) -> Entry<T> {
    let stem_bytes = strip_go_ext(name.as_encoded_bytes());
    let stem = String::from_utf8_lossy(stem_bytes).into_owned();
    let loaded = load(OsStr::from_bytes(stem_bytes));
    Entry {
        name,
        is_dir,
        stem,
        loaded,
    }
}

/// Reads a whole file, sized for the small files of a data directory: open, read until the
/// end, close (no `stat` for a size hint, which costs a system call per file). The buffer is
/// then cut to the file's size: lint keeps tens of thousands of these.
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(8192);
    read_unsized(path, &mut bytes)?;
    bytes.shrink_to_fit();
    Ok(bytes)
}

/// Appends the whole file to `bytes`: open, read until the end, close. Read through a `Take`
/// so that std does not ask the file's size first (a `statx` per file, 10,000 of them for one
/// `explain`).
fn read_unsized(path: &Path, bytes: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read as _;
    let file = fs::File::open(path)?;
    file.take(u64::MAX).read_to_end(bytes)?;
    Ok(())
}

/// The entries of `dir`, sorted by name bytes as Go's `ioutil.ReadDir` sorts them, with
/// whether each is a directory (following symlinks, as the later read does).
pub fn list_dir(dir: &Path) -> io::Result<Vec<(OsString, bool)>> {
    Ok(list_dir_noting_links(dir)?.0)
}

/// [`list_dir`], and whether any entry is a symbolic link.
pub fn list_dir_noting_links(dir: &Path) -> io::Result<(Vec<(OsString, bool)>, bool)> {
    let mut entries = Vec::new();
    let mut links = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_dir = match entry.file_type()? {
            kind if kind.is_symlink() => {
                links = true;
                fs::metadata(entry.path()).is_ok_and(|m| m.is_dir())
            }
            kind => kind.is_dir(),
        };
        entries.push((entry.file_name(), is_dir));
    }
    entries.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    Ok((entries, links))
}

/// Maps `items` in order, on every core when there are enough of them to pay for threads.
pub fn par_map<I: Send, O: Send>(items: Vec<I>, f: impl Fn(I) -> O + Sync) -> Vec<O> {
    const MIN_PER_THREAD: usize = 512;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len() / MIN_PER_THREAD)
        .max(1);
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let total = items.len();
    let chunk = total.div_ceil(threads);
    let mut chunks: Vec<Vec<I>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let next: Vec<I> = items.by_ref().take(chunk).collect();
        if next.is_empty() {
            break;
        }
        chunks.push(next);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<O>>()))
            .collect();
        // The calling thread maps the first chunk instead of waiting: one thread (and one
        // allocator arena to fault in) fewer.
        let mut out = Vec::with_capacity(total);
        out.extend(first.into_iter().map(f));
        for handle in handles {
            out.extend(
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        out
    })
}

/// Go's `filepath.Ext`: the suffix from the last `.` of the name, or nothing.
pub fn go_ext(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'.' || b == b'/') {
        Some(i) if name[i] == b'.' => &name[i..],
        _ => &[],
    }
}

/// The name without its Go extension (`strings.TrimSuffix(name, filepath.Ext(name))`).
pub fn strip_go_ext(name: &[u8]) -> &[u8] {
    &name[..name.len() - go_ext(name).len()]
}

/// `<id>.json`, for an id of any bytes.
fn json_name(id: &OsStr) -> OsString {
    let mut name = id.to_owned();
    name.push(".json");
    name
}

/// Go's `path.Clean` for slash-separated paths.
pub fn go_clean(path: &str) -> String {
    String::from_utf8(go_clean_bytes(path.as_bytes()))
        .expect("cleaning splits only at '/', so UTF-8 stays UTF-8")
}

/// Go's `path.Clean` on bytes (Go strings need not be UTF-8).
pub fn go_clean_bytes(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path.starts_with(b"/");
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|last| *last != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(b"..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join(&b'/');
    match (rooted, joined.is_empty()) {
        (true, _) => [b"/".as_slice(), &joined].concat(),
        (false, true) => b".".to_vec(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_and_stem_follow_go() {
        assert_eq!(go_ext(b"node1.json"), b".json");
        assert_eq!(go_ext(b"a.b.json"), b".json");
        assert_eq!(go_ext(b"sub"), b"");
        assert_eq!(go_ext(b".hidden"), b".hidden");
        assert_eq!(go_ext(b"a.json~"), b".json~");
        assert_eq!(strip_go_ext(b"a.json.bak"), b"a.json");
        assert_eq!(strip_go_ext(b".hidden"), b"");
    }

    #[test]
    fn clean_follows_go_path_clean() {
        for (input, want) in [
            ("/profiles/x.json", "/profiles/x.json"),
            ("/profiles/../x.json", "/x.json"),
            ("/profiles/../../../etc/passwd.json", "/etc/passwd.json"),
            ("/ignition/", "/ignition"),
            ("/ignition/a//b/./c.ign", "/ignition/a/b/c.ign"),
            ("a/../..", ".."),
            ("", "."),
        ] {
            assert_eq!(go_clean(input), want, "{input}");
        }
    }

    #[test]
    fn names_cannot_leave_the_data_dir() {
        let store = Store::new("/data");
        assert_eq!(
            store.resolve("profiles", "../../etc/x.json").unwrap(),
            Path::new("/data/etc/x.json")
        );
        assert_eq!(
            store.resolve("ignition", "").unwrap(),
            Path::new("/data/ignition")
        );
        assert!(store.resolve("ignition", "a\0b").is_err());
    }

    #[test]
    fn groups_are_listed_as_matchbox_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let groups = dir.path().join("groups");
        fs::create_dir_all(groups.join("sub")).unwrap();
        fs::write(
            groups.join("sub/inner.json"),
            br#"{"profile": "never read"}"#,
        )
        .unwrap();
        fs::write(groups.join("a.json"), br#"{"profile": "p"}"#).unwrap();
        fs::write(groups.join("a.yaml"), b"not json").unwrap();
        fs::write(groups.join("b.json.bak"), b"{}").unwrap();
        fs::write(
            groups.join("C.json"),
            br#"{"profile": "p", "selector": {"mac": "x"}}"#,
        )
        .unwrap();
        let entries = Store::new(dir.path()).groups().unwrap();
        let seen: Vec<(String, String, bool, bool)> = entries
            .iter()
            .map(|e| {
                (
                    e.name.to_string_lossy().into_owned(),
                    e.stem.clone(),
                    e.is_json_file(),
                    e.loaded.ok().is_some(),
                )
            })
            .collect();
        let row = |n: &str, s: &str, json: bool, ok: bool| (n.to_owned(), s.to_owned(), json, ok);
        assert_eq!(
            seen,
            vec![
                // Byte order: upper case first.
                row("C.json", "C", true, false),
                row("a.json", "a", true, true),
                // a.yaml reads a.json: the same group a second time.
                row("a.yaml", "a", false, true),
                // b.json.bak reads b.json.json, which does not exist.
                row("b.json.bak", "b.json", false, false),
                // A subdirectory reads sub.json; nothing inside is read.
                row("sub", "sub", false, false),
            ]
        );
        assert!(
            entries[3]
                .loaded
                .result
                .as_ref()
                .unwrap_err()
                .is_not_found()
        );
        assert!(matches!(
            entries[0].loaded.result,
            Err(LoadError::Decode(DecodeError::Invalid(_)))
        ));
    }

    #[test]
    fn names_that_are_not_utf8_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let groups = dir.path().join("groups");
        fs::create_dir_all(&groups).unwrap();
        fs::write(
            groups.join(OsStr::from_bytes(b"caf\xe9.json")),
            br#"{"profile": "p"}"#,
        )
        .unwrap();
        let entries = Store::new(dir.path()).groups().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].stem, "caf\u{fffd}");
        assert!(entries[0].is_json_file());
        assert_eq!(entries[0].loaded.ok().unwrap().profile, "p");
        assert_eq!(go_clean_bytes(b"/groups/../\xff/./x"), b"/\xff/x");
    }

    #[test]
    fn par_map_keeps_order() {
        let items: Vec<usize> = (0..5000).collect();
        let out = par_map(items, |i| i * 2);
        assert_eq!(out.len(), 5000);
        assert!(out.iter().enumerate().all(|(i, &v)| v == i * 2));
    }
}
