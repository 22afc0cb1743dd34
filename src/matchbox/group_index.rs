//! The group index: every group file's selector and profile, kept between runs so that one
//! question about a large data directory (`caas explain`) lists and stats `groups/` instead of
//! opening and reading every file in it.
//!
//! **When an indexed head is used.** Only when the file matchbox reads for that listed name
//! still has the device, inode, mode, size, modification time and change time recorded when it
//! was indexed, the way git trusts its index. Every write to a file, in place or by rename,
//! changes at least its inode or its change time (ctime), and no tool can set a ctime back. One
//! gap remains: a file written twice within one tick of the file system's clock keeps its
//! times, so a file whose ctime is less than [`RACY`] before the index was built is not
//! indexed; it is read every time until it is older than that.
//!
//! **Where it lives.** In the user's cache ([`crate::cache`]), one file per data directory
//! (named by the digest of its canonical path), never in the data directory, which a server
//! reads and an operator may keep read-only or under version control. It is only a cache: a
//! missing, unreadable or corrupt index, or one from another format, is rebuilt; when it cannot
//! be written, the answer is the same and the next run reads the files again.
//!
//! **When.** Directories with fewer than [`MIN_GROUPS`] entries are read whole: reading them
//! costs less than a file in the cache is worth.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::group::{Group, Selector};
use super::store::{Entry, Store, list_dir, par_map, strip_go_ext};

/// Below this many entries in `groups/`, no index is kept.
pub const MIN_GROUPS: usize = 256;

/// How old a file's ctime must be, when the index is built, for the file to be indexed: more
/// than any file system's timestamp tick (ext4 and tmpfs: a scheduler tick; FAT: 2 s).
pub const RACY: Duration = Duration::from_secs(3);

/// The index file's layout and the head decoding it caches: bump it when either changes, so
/// that an index written by another caas is rebuilt, not misread.
const FORMAT: u32 = 2;

/// The largest index file read (10,000 groups of one MAC selector take 0.75 MB).
const MAX_INDEX_BYTES: u64 = 1 << 30;

/// What identifies one version of a file without reading it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StatKey {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl StatKey {
    fn of(stat: &rustix::fs::Stat) -> StatKey {
        StatKey {
            dev: stat.st_dev,
            ino: stat.st_ino,
            mode: stat.st_mode,
            size: stat.st_size as u64,
            mtime: (stat.st_mtime, stat.st_mtime_nsec as i64),
            ctime: (stat.st_ctime, stat.st_ctime_nsec as i64),
        }
    }

    /// Whether the file last changed at least [`RACY`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let (secs, nanos) = self.ctime;
        let Ok(secs) = u64::try_from(secs) else {
            return true;
        };
        let changed = UNIX_EPOCH + Duration::new(secs, nanos.clamp(0, 999_999_999) as u32);
        changed + RACY <= now
    }
}

/// One indexed entry of `groups/`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Indexed {
    /// The listed name (the index is sorted by it, in listing order).
    name: Vec<u8>,
    /// The file read for it, as it was when read.
    key: StatKey,
    selector: Selector,
    profile: String,
}

/// The index file.
#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    format: u32,
    /// The canonical data directory it indexes (its digest names the file; this guards
    /// against a collision).
    root: Vec<u8>,
    entries: Vec<Indexed>,
}

/// What the index did for one listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexUse {
    /// Entries answered from the index.
    pub indexed: usize,
    /// Entries whose file was read.
    pub read: usize,
    /// Whether the index file was (re)written.
    pub written: bool,
}

/// [`Store::group_heads`] (the same entries, each group with its selector and profile), using
/// and refreshing the index kept in `cache` (see the module doc). With `cache` `None`, or a
/// small directory, every file is read.
pub fn group_heads(
    store: &Store,
    cache: Option<&Path>,
) -> std::io::Result<(Vec<Entry<Group>>, IndexUse)> {
    heads_at(store, cache, SystemTime::now())
}

/// [`group_heads`] with the clock read as `now`.
fn heads_at(
    store: &Store,
    cache: Option<&Path>,
    now: SystemTime,
) -> std::io::Result<(Vec<Entry<Group>>, IndexUse)> {
    let index_file = cache.and_then(|cache| index_path(cache, store.root()));
    // The listing and the index are read at the same time: neither needs the other.
    let (listed, loaded) = std::thread::scope(|scope| {
        let loading = index_file
            .as_ref()
            .map(|(file, root)| scope.spawn(|| load(file, root)));
        let listed = list_dir(&store.root().join("groups"));
        let loaded = loading.map(|loading| loading.join().expect("the index reader panicked"));
        (listed, loaded)
    });
    let listed = listed?;
    let (Some((index_file, root)), Some(loaded)) = (index_file, loaded) else {
        return Ok(read_all(store, listed));
    };
    if listed.len() < MIN_GROUPS {
        return Ok(read_all(store, listed));
    }
    let groups_dir = match open_dir(&store.root().join("groups")) {
        Ok(dir) => dir,
        Err(_) => return Ok(read_all(store, listed)),
    };
    let positions = positions(&listed, &loaded);
    let groups = store.root().join("groups");
    let probes: Vec<Probe> = par_map(
        listed.into_iter().zip(positions).collect(),
        |((name, is_dir), at)| {
            let dir = GroupsDir {
                store,
                groups: &groups,
                fd: &groups_dir,
            };
            probe(dir, at.map(|at| (at, &loaded[at])), name, is_dir, now)
        },
    );
    let indexed = (probes.iter())
        .filter(|probe| matches!(probe, Probe::Indexed { .. }))
        .count();
    let fresh = (probes.iter())
        .filter(|probe| matches!(probe, Probe::Read(read) if read.1.is_some()))
        .count();
    // Rewritten when it gained an entry or lost one (a file changed, went, or settled).
    let rewrite = fresh > 0 || indexed != loaded.len();
    let mut usage = IndexUse {
        indexed,
        read: probes.len() - indexed,
        written: false,
    };
    let mut loaded = loaded;
    let mut entries = Vec::with_capacity(probes.len());
    let mut records = Vec::with_capacity(if rewrite { indexed + fresh } else { 0 });
    for probe in probes {
        match probe {
            Probe::Indexed {
                name,
                is_dir,
                path,
                at,
            } => {
                // Each listed name has its own position: the record can be moved out.
                let indexed = std::mem::take(&mut loaded[at]);
                let group = if rewrite {
                    let group = head(indexed.selector.clone(), indexed.profile.clone());
                    records.push(indexed);
                    group
                } else {
                    head(indexed.selector, indexed.profile)
                };
                entries.push(store.group_head_entry_from(name, is_dir, path, group));
            }
            Probe::Read(read) => {
                let (entry, record) = *read;
                records.extend(record.filter(|_| rewrite));
                entries.push(entry);
            }
        }
    }
    if rewrite {
        let file = IndexFile {
            format: FORMAT,
            root: root.into_encoded_bytes(),
            entries: records,
        };
        usage.written = store_index(&index_file, &file);
    }
    tracing::debug!(
        index = %index_file.display(),
        indexed = usage.indexed,
        read = usage.read,
        written = usage.written,
        "group index"
    );
    Ok((entries, usage))
}

/// A group with only the selector and profile, as [`Store::group_heads`] reads it.
fn head(selector: Selector, profile: String) -> Group {
    Group {
        selector,
        profile,
        ..Group::default()
    }
}

/// Every listed entry read from its file.
fn read_all(store: &Store, listed: Vec<(OsString, bool)>) -> (Vec<Entry<Group>>, IndexUse) {
    let usage = IndexUse {
        read: listed.len(),
        ..IndexUse::default()
    };
    let entries = par_map(listed, |(name, is_dir)| {
        store.group_head_entry(name, is_dir)
    });
    (entries, usage)
}

/// `dir` opened for `statat` (no path walk per file).
fn open_dir(dir: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// One listed entry: answered by the index, or read.
enum Probe {
    /// The indexed record at `at` holds its head: the file read for it has not changed.
    Indexed {
        name: OsString,
        is_dir: bool,
        path: PathBuf,
        at: usize,
    },
    /// Its file was read; with the record to index, when the file can be indexed. Boxed: most
    /// entries are indexed, and a probe per group is kept until all are done.
    Read(Box<(Entry<Group>, Option<Indexed>)>),
}

/// `groups/`: the store it belongs to, its path, and a descriptor for `statat`.
#[derive(Clone, Copy)]
struct GroupsDir<'a> {
    store: &'a Store,
    groups: &'a Path,
    fd: &'a OwnedFd,
}

/// For each listed name, the position of its record in the index, if it has one: one walk
/// through both, as both are sorted by name.
fn positions(listed: &[(OsString, bool)], loaded: &[Indexed]) -> Vec<Option<usize>> {
    let mut at = 0;
    (listed.iter())
        .map(|(name, _)| {
            let name = name.as_bytes();
            while at < loaded.len() && loaded[at].name.as_slice() < name {
                at += 1;
            }
            (at < loaded.len() && loaded[at].name == name).then_some(at)
        })
        .collect()
}

fn probe(
    dir: GroupsDir,
    indexed: Option<(usize, &Indexed)>,
    name: OsString,
    is_dir: bool,
    now: SystemTime,
) -> Probe {
    // matchbox reads `groups/<stem>.json` for a listed name (which holds no `/`, so cleaning
    // the path leaves it in `groups/`).
    let mut file_name = strip_go_ext(name.as_bytes()).to_vec();
    file_name.extend_from_slice(b".json");
    let key = rustix::fs::statat(dir.fd, file_name.as_slice(), AtFlags::empty())
        .ok()
        .map(|stat| StatKey::of(&stat));
    if let (Some((at, indexed)), Some(key)) = (indexed, key)
        && indexed.key == key
        && key.settled(now)
    {
        // `groups/<stem>.json` (`groups` never ends in `/`).
        let file_name = OsStr::from_bytes(&file_name);
        let mut path = OsString::with_capacity(dir.groups.as_os_str().len() + 1 + file_name.len());
        path.push(dir.groups);
        path.push("/");
        path.push(file_name);
        return Probe::Indexed {
            name,
            is_dir,
            path: PathBuf::from(path),
            at,
        };
    }
    let entry = dir.store.group_head_entry(name, is_dir);
    let record = match (key, &entry.loaded.result) {
        (Some(key), Ok(group)) if key.settled(now) => Some(Indexed {
            name: entry.name.as_bytes().to_vec(),
            key,
            selector: group.selector.clone(),
            profile: group.profile.clone(),
        }),
        _ => None,
    };
    Probe::Read(Box::new((entry, record)))
}

/// The index file of data directory `root` in `cache`, and `root` made canonical; `None` when
/// `root` cannot be made canonical (then no index is kept).
fn index_path(cache: &Path, root: &Path) -> Option<(PathBuf, OsString)> {
    let root = fs::canonicalize(root).ok()?.into_os_string();
    let digest = crate::write::sha256_hex(root.as_bytes());
    Some((cache.join("group-index").join(&digest[..32]), root))
}

/// The index's entries, sorted by name; none when the file is missing, unreadable, corrupt, of
/// another format, or for another directory.
fn load(path: &Path, root: &OsStr) -> Vec<Indexed> {
    let Ok(meta) = fs::metadata(path) else {
        return Vec::new();
    };
    if meta.len() > MAX_INDEX_BYTES {
        return Vec::new();
    }
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    match postcard::from_bytes::<IndexFile>(&bytes) {
        Ok(file)
            if file.format == FORMAT
                && file.root == root.as_bytes()
                && file.entries.is_sorted_by(|a, b| a.name < b.name) =>
        {
            file.entries
        }
        _ => Vec::new(),
    }
}

/// Writes the index (atomically, as every file caas writes); whether it was written. A cache
/// that cannot be written only costs the next run its speed, so the failure is logged, not
/// returned.
fn store_index(path: &Path, file: &IndexFile) -> bool {
    let bytes = match postcard::to_stdvec(file) {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::debug!("group index not encoded: {err}");
            return false;
        }
    };
    match crate::write::apply(&[crate::write::FileWrite::new(path, bytes)]) {
        Ok(_) => true,
        Err(err) => {
            tracing::debug!("group index {} not written: {err:#}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_file(dir: &Path, i: usize, profile: &str) {
        fs::write(
            dir.join(format!("m{i:04}.json")),
            format!(
                "{{\"id\":\"m{i}\",\"profile\":\"{profile}\",\"selector\":{{\"mac\":\"52:54:00:00:{:02x}:{:02x}\"}}}}",
                i / 256,
                i % 256
            ),
        )
        .unwrap();
    }

    fn lab(groups: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("groups");
        fs::create_dir(&g).unwrap();
        for i in 0..groups {
            group_file(&g, i, "p");
        }
        dir
    }

    /// What explain sees of one entry: its name, the file read, and the group's selector and
    /// profile when it loaded.
    type Seen = (OsString, PathBuf, Option<(Selector, String)>);

    fn seen(entries: &[Entry<Group>]) -> Vec<Seen> {
        entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.loaded.path.clone(),
                    e.loaded
                        .ok()
                        .map(|g| (g.selector.clone(), g.profile.clone())),
                )
            })
            .collect()
    }

    /// The heads as a run `RACY` and more after now sees them: every file has settled.
    fn heads_later(store: &Store, cache: &Path) -> (Vec<Entry<Group>>, IndexUse) {
        let later = SystemTime::now() + RACY + Duration::from_secs(1);
        heads_at(store, Some(cache), later).unwrap()
    }

    #[test]
    fn small_directories_keep_no_index() {
        let dir = lab(MIN_GROUPS - 1);
        let cache = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (entries, usage) = group_heads(&store, Some(cache.path())).unwrap();
        assert_eq!(entries.len(), MIN_GROUPS - 1);
        assert_eq!(usage.read, MIN_GROUPS - 1);
        assert!(!cache.path().join("group-index").exists());
    }

    #[test]
    fn files_just_written_are_read_until_they_settle() {
        let dir = lab(MIN_GROUPS);
        let cache = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (first, usage) = group_heads(&store, Some(cache.path())).unwrap();
        assert_eq!(usage.indexed, 0);
        // Nothing settled: nothing to index, the (empty) index is not rewritten either.
        let (second, usage) = group_heads(&store, Some(cache.path())).unwrap();
        assert_eq!((usage.indexed, usage.read), (0, MIN_GROUPS));
        assert_eq!(seen(&first), seen(&second));
        assert_eq!(seen(&first), seen(&store.group_heads().unwrap()));
    }

    #[test]
    fn settled_files_are_answered_from_the_index_until_they_change() {
        let dir = lab(MIN_GROUPS + 4);
        let cache = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (cold, usage) = heads_later(&store, cache.path());
        assert_eq!(usage.read, MIN_GROUPS + 4);
        assert!(usage.written);
        let (warm, usage) = heads_later(&store, cache.path());
        assert_eq!((usage.indexed, usage.read), (MIN_GROUPS + 4, 0));
        assert_eq!(seen(&cold), seen(&warm));

        // An edit in place, the same size: a new ctime (the clock is read until it moved on,
        // so that the edit cannot share the first write's tick).
        let groups = dir.path().join("groups");
        let edited = groups.join("m0003.json");
        let before = StatKey::of(&rustix::fs::stat(&edited).unwrap());
        let text = fs::read_to_string(&edited)
            .unwrap()
            .replace("\"p\"", "\"q\"");
        loop {
            fs::write(&edited, &text).unwrap();
            if StatKey::of(&rustix::fs::stat(&edited).unwrap()).ctime != before.ctime {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // A file replaced by rename, one removed, one added, a directory entry.
        group_file(&groups, 9999, "r");
        fs::rename(groups.join("m9999.json"), groups.join("m0005.json")).unwrap();
        fs::remove_file(groups.join("m0007.json")).unwrap();
        group_file(&groups, 5000, "s");
        fs::create_dir(groups.join("sub")).unwrap();
        let (after, usage) = heads_later(&store, cache.path());
        // Read: the edited, the replaced, the added, and `sub` (which reads no file).
        assert_eq!(usage.read, 4, "{usage:?}");
        assert_eq!(seen(&after), seen(&store.group_heads().unwrap()));
        let profile = |name: &str| {
            let entry = after.iter().find(|e| e.name == name).unwrap();
            entry.loaded.ok().unwrap().profile.clone()
        };
        assert_eq!(profile("m0003.json"), "q");
        assert_eq!(profile("m0005.json"), "r");
        assert_eq!(profile("m5000.json"), "s");
        assert!(!after.iter().any(|e| e.name == "m0007.json"));
    }

    #[test]
    fn a_corrupt_or_foreign_index_is_rebuilt() {
        let dir = lab(MIN_GROUPS);
        let cache = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        heads_later(&store, cache.path());
        let (index_file, _) = index_path(cache.path(), dir.path()).unwrap();
        let mut bytes = fs::read(&index_file).unwrap();
        bytes.truncate(bytes.len() / 2);
        fs::write(&index_file, &bytes).unwrap();
        let (entries, usage) = heads_later(&store, cache.path());
        assert_eq!(usage.read, MIN_GROUPS);
        assert_eq!(seen(&entries), seen(&store.group_heads().unwrap()));

        // The same index copied to the file of another directory is not used there.
        let other = lab(MIN_GROUPS);
        let (other_file, _) = index_path(cache.path(), other.path()).unwrap();
        fs::copy(&index_file, &other_file).unwrap();
        let (_, usage) = heads_later(&Store::new(other.path()), cache.path());
        assert_eq!(usage.indexed, 0);
    }
}
