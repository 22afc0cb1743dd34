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
//! **When the listing is used.** Listing `groups/` costs as much as stating its files, and is
//! skipped when `groups/` itself has the device, inode, modification and change times recorded
//! with the listing: creating, removing or renaming an entry changes a directory's times (git's
//! untracked cache trusts directories the same way). The same [`RACY`] rule applies to the
//! directory, and a listing with a symbolic link in it is never reused (its target can become
//! a directory while `groups/` stays as it was).
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
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::group::{Group, Selector};
use super::store::{Entry, Store, list_dir, list_dir_noting_links, par_map, strip_go_ext};

/// Below this many entries in `groups/`, no index is kept.
pub const MIN_GROUPS: usize = 256;

/// How old a file's ctime must be, when the index is built, for the file to be indexed: more
/// than any file system's timestamp tick (ext4 and tmpfs: a scheduler tick; FAT: 2 s).
pub const RACY: Duration = Duration::from_secs(3);

/// The index file's layout and the head decoding it caches: bump it when either changes, so
/// that an index written by another caas is rebuilt, not misread.
const FORMAT: u32 = 3;

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
    /// Whether the listed entry is a directory (a name without an extension can be one, with
    /// `<name>.json` beside it).
    is_dir: bool,
    /// The file read for it, as it was when read.
    key: StatKey,
    selector: Selector,
    profile: String,
}

/// The start of the index file: what it indexes, and what says whether its listing holds.
#[derive(Debug, Serialize, Deserialize)]
struct IndexHead {
    format: u32,
    /// The canonical data directory it indexes (its digest names the file; this guards
    /// against a collision).
    root: Vec<u8>,
    /// `groups/` as it was when listed, when its listing can be reused (see the module doc).
    groups_dir: Option<StatKey>,
}

/// The rest of the index file, decoded only once the head was checked.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexBody {
    /// The listed names without a record (files matchbox cannot load, or that had not
    /// settled, and directories), sorted, with whether each is a directory.
    unindexed: Vec<(Vec<u8>, bool)>,
    /// Sorted by name.
    entries: Vec<Indexed>,
}

impl IndexBody {
    /// `groups/` as it was listed: every name, sorted, with whether it is a directory.
    fn listing(&self) -> Vec<(OsString, bool)> {
        let mut listed: Vec<(OsString, bool)> = (self.entries.iter())
            .map(|e| (&e.name, e.is_dir))
            .chain(self.unindexed.iter().map(|(name, is_dir)| (name, *is_dir)))
            .map(|(name, is_dir)| (OsString::from_vec(name.clone()), is_dir))
            .collect();
        listed.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        listed
    }
}

/// What the index did for one listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexUse {
    /// Entries answered from the index.
    pub indexed: usize,
    /// Entries whose file was read.
    pub read: usize,
    /// Whether `groups/` was listed (not: the index's listing still held).
    pub listed: bool,
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
    let groups = store.root().join("groups");
    let index = cache.and_then(|cache| index_path(cache, store.root()));
    let (Some((index_file, root)), Ok(groups_dir)) = (index, open_dir(&groups)) else {
        return Ok(read_all(store, list_dir(&groups)?));
    };
    // Taken before any listing, so that a change made while it runs shows next time.
    let dir_key = rustix::fs::fstat(&groups_dir)
        .ok()
        .map(|stat| StatKey::of(&stat));
    let bytes = read_index(&index_file);
    let index_head = bytes.as_deref().and_then(|bytes| decode_head(bytes, &root));
    let old_dir_key = index_head.as_ref().and_then(|(head, _)| head.groups_dir);
    let reuse_listing = old_dir_key.is_some() && old_dir_key == dir_key;
    // Listing groups/ and decoding the index's records take about as long, and neither needs
    // the other: they run at the same time.
    let (listing, body) = std::thread::scope(|scope| {
        let listing = (!reuse_listing).then(|| scope.spawn(|| list_dir_noting_links(&groups)));
        let body = index_head.and_then(|(_, rest)| decode_body(rest));
        let listing = listing.map(|listing| listing.join().expect("the groups/ lister panicked"));
        (listing, body)
    });
    let listed_now = listing.is_some() || body.is_none();
    let (listed, links) = match (listing, &body) {
        (Some(listing), _) => listing?,
        (None, Some(body)) => (body.listing(), false),
        (None, None) => list_dir_noting_links(&groups)?,
    };
    let loaded = body.unwrap_or_default();
    if listed.len() < MIN_GROUPS {
        return Ok(read_all(store, listed));
    }
    let positions = positions(&listed, &loaded.entries);
    let probes: Vec<Probe> = par_map(
        listed.into_iter().zip(positions).collect(),
        |((name, is_dir), at)| {
            let dir = GroupsDir {
                store,
                groups: &groups,
                fd: &groups_dir,
            };
            probe(
                dir,
                at.map(|at| (at, &loaded.entries[at])),
                name,
                is_dir,
                now,
            )
        },
    );
    let indexed = (probes.iter())
        .filter(|probe| matches!(probe, Probe::Indexed { .. }))
        .count();
    let fresh = (probes.iter())
        .filter(|probe| matches!(probe, Probe::Read(read) if read.1.is_some()))
        .count();
    let new_dir_key = dir_key.filter(|key| key.settled(now) && !links);
    // The names without a record complete the listing, which only a directory key lets a
    // later run reuse: without one they are not kept (nor written for nothing).
    let unindexed: Vec<(Vec<u8>, bool)> = (probes.iter())
        .filter(|_| new_dir_key.is_some())
        .filter_map(|probe| match probe {
            Probe::Read(read) if read.1.is_none() => {
                Some((read.0.name.as_bytes().to_vec(), read.0.is_dir))
            }
            _ => None,
        })
        .collect();
    // Rewritten when it gained an entry or lost one (a file changed, went, or settled), or
    // when what it records of the listing changed.
    let rewrite = fresh > 0
        || indexed != loaded.entries.len()
        || new_dir_key != old_dir_key
        || unindexed != loaded.unindexed;
    let mut usage = IndexUse {
        indexed,
        read: probes.len() - indexed,
        listed: listed_now,
        written: false,
    };
    let mut loaded = loaded.entries;
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
                    // As listed now: the entry may have been replaced by a directory of the
                    // same name while the file it reads stayed.
                    records.push(Indexed { is_dir, ..indexed });
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
        let index_head = IndexHead {
            format: FORMAT,
            root: root.into_encoded_bytes(),
            groups_dir: new_dir_key,
        };
        let body = IndexBody {
            unindexed,
            entries: records,
        };
        usage.written = store_index(&index_file, &index_head, &body);
    }
    tracing::debug!(
        index = %index_file.display(),
        indexed = usage.indexed,
        read = usage.read,
        listed = usage.listed,
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
            is_dir: entry.is_dir,
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

/// The index file's bytes; none when it is missing, unreadable or implausibly large.
fn read_index(path: &Path) -> Option<Vec<u8>> {
    if fs::metadata(path).ok()?.len() > MAX_INDEX_BYTES {
        return None;
    }
    fs::read(path).ok()
}

/// The index's head and the bytes of its body; none when the file is corrupt, of another
/// format, or for another directory.
fn decode_head<'a>(bytes: &'a [u8], root: &OsStr) -> Option<(IndexHead, &'a [u8])> {
    let (head, rest) = postcard::take_from_bytes::<IndexHead>(bytes).ok()?;
    (head.format == FORMAT && head.root == root.as_bytes()).then_some((head, rest))
}

/// The index's body; none when it is corrupt or not sorted.
fn decode_body(bytes: &[u8]) -> Option<IndexBody> {
    let body = postcard::from_bytes::<IndexBody>(bytes).ok()?;
    let sorted = body.entries.is_sorted_by(|a, b| a.name < b.name)
        && body.unindexed.is_sorted_by(|a, b| a.0 < b.0);
    sorted.then_some(body)
}

/// Writes the index (atomically, as every file caas writes); whether it was written. A cache
/// that cannot be written only costs the next run its speed, so the failure is logged, not
/// returned.
fn store_index(path: &Path, head: &IndexHead, body: &IndexBody) -> bool {
    let bytes = match postcard::to_stdvec(head).and_then(|bytes| postcard::to_extend(body, bytes)) {
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

    /// What explain sees of one entry: its name, whether it is a directory, the file read, and
    /// the group's selector and profile when it loaded.
    type Seen = (OsString, bool, PathBuf, Option<(Selector, String)>);

    fn seen(entries: &[Entry<Group>]) -> Vec<Seen> {
        entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.is_dir,
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

    /// Waits until the clock has moved past `dir`'s last change (a file written now gets a
    /// later change time), so that the next change to `dir` cannot share its tick.
    fn wait_for_tick(dir: &Path) {
        let ctime = |path: &Path| StatKey::of(&rustix::fs::stat(path).unwrap()).ctime;
        let probe = dir.parent().unwrap().join("tick");
        loop {
            fs::write(&probe, "").unwrap();
            if ctime(&probe) > ctime(dir) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_unchanged_groups_dir_is_not_listed_again() {
        let dir = lab(MIN_GROUPS);
        let groups = dir.path().join("groups");
        // A file matchbox cannot load (read every time), and a directory (whose name reads
        // `m0001.json`: indexed, as a directory).
        fs::write(groups.join("broken.json"), "{").unwrap();
        fs::create_dir(groups.join("m0001")).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (cold, usage) = heads_later(&store, cache.path());
        assert!(usage.listed && usage.written, "{usage:?}");
        let (warm, usage) = heads_later(&store, cache.path());
        let expected = IndexUse {
            indexed: MIN_GROUPS + 1,
            read: 1,
            listed: false,
            written: false,
        };
        assert_eq!(usage, expected);
        assert_eq!(seen(&warm), seen(&cold));
        assert_eq!(seen(&warm), seen(&store.group_heads().unwrap()));

        // An entry added (after the clock moved past groups/'s last change): listed again,
        // then trusted again.
        wait_for_tick(&groups);
        group_file(&groups, 5000, "s");
        let (after, usage) = heads_later(&store, cache.path());
        assert!(usage.listed && usage.written, "{usage:?}");
        assert_eq!(seen(&after), seen(&store.group_heads().unwrap()));
        assert!(after.iter().any(|e| e.name == "m5000.json"));
        let (_, usage) = heads_later(&store, cache.path());
        assert!(!usage.listed, "{usage:?}");

        // Removed: the same.
        wait_for_tick(&groups);
        fs::remove_file(groups.join("m0002.json")).unwrap();
        let (after, usage) = heads_later(&store, cache.path());
        assert!(usage.listed, "{usage:?}");
        assert_eq!(seen(&after), seen(&store.group_heads().unwrap()));

        // An entry that reads another file (`m0004` reads `m0004.json`) replaced by a
        // directory of the same name: the reused listing says so too.
        wait_for_tick(&groups);
        fs::write(groups.join("m0004"), "").unwrap();
        heads_later(&store, cache.path());
        wait_for_tick(&groups);
        fs::remove_file(groups.join("m0004")).unwrap();
        fs::create_dir(groups.join("m0004")).unwrap();
        for listed in [true, false] {
            let (entries, usage) = heads_later(&store, cache.path());
            assert_eq!(usage.listed, listed, "{usage:?}");
            assert_eq!(seen(&entries), seen(&store.group_heads().unwrap()));
        }

        // With a symbolic link among the entries, groups/ is listed every time.
        wait_for_tick(&groups);
        std::os::unix::fs::symlink("m0003.json", groups.join("link.json")).unwrap();
        for _ in 0..2 {
            let (entries, usage) = heads_later(&store, cache.path());
            assert!(usage.listed, "{usage:?}");
            assert_eq!(seen(&entries), seen(&store.group_heads().unwrap()));
        }
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
