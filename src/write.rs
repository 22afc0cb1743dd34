//! The one place that writes files.
//!
//! Every generated file goes through [`apply`]: bytes are compared with what is on disk, an
//! unchanged file is not touched (bytes and mtime stay), and a changed one is replaced
//! atomically: a temp file in the same directory, flushed to disk, renamed over the target, then
//! the directory flushed. A process killed at any instant leaves each file old or new, never
//! partial; temp files are hidden and never end in `.json`, so matchbox never reads one.
//!
//! Flushing a batch ([`Flush::CHOSEN`], measured by `cargo bench --bench write`): every new
//! file must be on disk before its rename is visible, and the directories after. One `syncfs`
//! per file system does that in one journal commit, but it also waits for every other
//! process's dirty data there: on a shared server, 2 GiB that a neighbour's copy left unwritten
//! turned a 9 ms flush of 100 files into 660 ms. An `fsync` per file waits only for ours, but
//! costs a journal commit and a disk cache flush each when done one after another (100 files:
//! 100 ms). So before writing, caas looks at the system's dirty data (`/proc/meminfo`): when
//! it is less than what the `fsync`s would cost, one `syncfs` at the end; otherwise each file's
//! writeback starts as soon as it is written (`sync_file_range`: the disk works while caas
//! writes the rest) and an `fsync` per file follows from several threads at once, which share
//! journal commits and whose cache flushes the block layer merges. Either way the guarantee is
//! the same: nothing is renamed before every file is durable.
//!
//! Directory-level publishing lives here too: [`publish_dir`] moves a fully written and flushed
//! directory into place with one rename (an existing one is swapped out atomically), and
//! [`replace_symlink`] repoints a symlink with a temp link renamed over it. A reader sees the
//! old tree or the new one, never a mix.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::invalid;

/// Mode of every generated data file: matchbox often runs as its own user and must read them.
pub const FILE_MODE: u32 = 0o644;

/// How [`apply`] makes the staged temp files durable before the first rename. Public so the
/// `write` bench can compare them; [`apply`] always uses [`Flush::CHOSEN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// `fsync` each temp file as soon as it is written: one journal commit per file.
    EachAtOnce,
    /// One `syncfs` per file system once every file is staged: also waits for every other
    /// process's dirty data on that file system.
    FileSystem,
    /// Start each file's writeback as it is written (`sync_file_range`), then `fsync` each once
    /// all are staged: most have reached the disk, and share journal commits, by then.
    StartedEarly,
    /// [`Flush::StartedEarly`] with the `fsync`s spread over this many threads: concurrent
    /// `fsync`s share journal commits, and the block layer merges their disk cache flushes.
    StartedEarlyInThreads(usize),
    /// Pick before writing, by the dirty data the system holds already: [`Flush::FileSystem`]
    /// when it is little (one `syncfs` then costs no more than our own files' writes),
    /// [`Flush::StartedEarlyInThreads`] with [`FSYNC_THREADS`] when it is more (see
    /// [`syncfs_is_cheap`]).
    Adaptive,
}

impl Flush {
    /// The strategy [`apply`] uses (see the module doc for why).
    pub const CHOSEN: Flush = Flush::Adaptive;

    /// All of them, for the bench.
    pub const ALL: [Flush; 7] = [
        Flush::EachAtOnce,
        Flush::FileSystem,
        Flush::StartedEarly,
        Flush::StartedEarlyInThreads(8),
        Flush::StartedEarlyInThreads(32),
        Flush::StartedEarlyInThreads(128),
        Flush::Adaptive,
    ];

    pub fn name(self) -> String {
        match self {
            Flush::EachAtOnce => "fsync each at once".to_owned(),
            Flush::FileSystem => "syncfs".to_owned(),
            Flush::StartedEarly => "started early, fsync each".to_owned(),
            Flush::StartedEarlyInThreads(threads) => {
                format!("started early, fsync in {threads} threads")
            }
            Flush::Adaptive => "adaptive".to_owned(),
        }
    }
}

/// JSON as caas writes it: struct fields in declaration order, maps sorted by key (serde_json's
/// map is a `BTreeMap`), 2-space indent, trailing newline.
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("caas types serialise to JSON");
    bytes.push(b'\n');
    bytes
}

/// A file to write: where, what, and with which mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileWrite {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

impl FileWrite {
    pub fn new(path: impl Into<PathBuf>, bytes: Vec<u8>) -> FileWrite {
        FileWrite {
            path: path.into(),
            bytes,
            mode: FILE_MODE,
        }
    }
}

/// What writing a file did (or, planned, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    /// The file was (or, planned, would be) removed: see [`apply_changes`].
    Removed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Removed => "removed",
        }
    }

    fn as_plan_str(self) -> &'static str {
        match self {
            Action::Created => "would create",
            Action::Updated => "would update",
            Action::Unchanged => "unchanged",
            Action::Removed => "would remove",
        }
    }

    /// The word a summary line starts with: what was done, or with `--dry-run` what would be.
    pub fn describe(self, dry_run: bool) -> &'static str {
        if dry_run {
            self.as_plan_str()
        } else {
            self.as_str()
        }
    }
}

/// The result for one file; `sha256` is of the bytes now (or, planned, then) in the file, and
/// empty (left out of JSON) for a removed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub path: PathBuf,
    pub action: Action,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

/// Compares each file with the disk and says what [`apply`] would do; writes nothing.
pub fn plan(files: &[FileWrite]) -> Result<Vec<Outcome>> {
    plan_changes(files, &[])
}

/// [`plan`], plus a `removed` outcome for each of `removals` that exists.
pub fn plan_changes(files: &[FileWrite], removals: &[PathBuf]) -> Result<Vec<Outcome>> {
    check_distinct(files, removals)?;
    let mut outcomes: Vec<Outcome> = files.iter().map(compare).collect::<Result<_>>()?;
    for path in removals {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(anyhow::anyhow!(
                    "{} is a directory, not a file",
                    path.display()
                ));
            }
            Ok(_) => outcomes.push(Outcome {
                path: path.clone(),
                action: Action::Removed,
                sha256: String::new(),
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(outcomes)
}

/// Writes every file whose bytes or mode differ from the disk, atomically, and leaves the
/// others untouched.
///
/// All temp files are written and flushed before the first rename, so an I/O error (a full
/// disk) before that point changes nothing.
pub fn apply(files: &[FileWrite]) -> Result<Vec<Outcome>> {
    apply_changes(files, &[])
}

/// [`apply`], then removes each of `removals` that exists (a file, never a directory).
///
/// Removals come after every write is in place, and each directory is flushed once at the
/// end: a process killed midway leaves each file old, new or removed, never partial. Callers
/// decide what may be removed; this only refuses a path that is also written.
pub fn apply_changes(files: &[FileWrite], removals: &[PathBuf]) -> Result<Vec<Outcome>> {
    apply_changes_flushed(files, removals, Flush::CHOSEN)
}

/// [`apply_changes`] with a given [`Flush`] strategy: for the `write` bench.
pub fn apply_changes_flushed(
    files: &[FileWrite],
    removals: &[PathBuf],
    flush: Flush,
) -> Result<Vec<Outcome>> {
    let outcomes = plan_changes(files, removals)?;
    let changed: Vec<&FileWrite> = files
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.action != Action::Unchanged)
        .map(|(file, _)| file)
        .collect();
    let removed: Vec<&Path> = outcomes[files.len()..]
        .iter()
        .map(|outcome| outcome.path.as_path())
        .collect();
    if changed.is_empty() && removed.is_empty() {
        return Ok(outcomes);
    }

    // Decided before anything is written: the dirty data then is other processes' alone, and
    // a batch that ends in one `syncfs` gains nothing from starting each file's writeback (it
    // cost 100,000 files 6.4 s instead of 3.5 s).
    let flush = match flush {
        Flush::Adaptive if syncfs_is_cheap(changed.len(), system_dirty_bytes()) => {
            Flush::FileSystem
        }
        Flush::Adaptive => Flush::StartedEarlyInThreads(FSYNC_THREADS),
        chosen => chosen,
    };
    // Temp files are closed once written (their paths kept), so any number of files can be
    // staged without running out of file descriptors.
    let mut staged = Vec::with_capacity(changed.len());
    for file in &changed {
        staged.push(stage(file, flush)?);
    }
    match flush {
        Flush::EachAtOnce => {}
        Flush::FileSystem => sync_file_systems(&changed)?,
        Flush::StartedEarly => fsync_each(&staged)?,
        Flush::StartedEarlyInThreads(threads) => fsync_in_threads(&staged, threads)?,
        Flush::Adaptive => unreachable!("decided above"),
    }

    let mut dirs = BTreeSet::new();
    for (temp, file) in staged.into_iter().zip(&changed) {
        temp.persist(&file.path)
            .map_err(|err| err.error)
            .with_context(|| format!("renaming a temp file to {}", file.path.display()))?;
        dirs.insert(parent_of(&file.path).to_owned());
    }
    for path in removed {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("removing {}", path.display())),
        }
        dirs.insert(parent_of(path).to_owned());
    }
    for dir in dirs {
        File::open(&dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("flushing directory {}", dir.display()))?;
    }
    Ok(outcomes)
}

fn check_distinct(files: &[FileWrite], removals: &[PathBuf]) -> Result<()> {
    let mut seen = HashSet::with_capacity(files.len());
    for file in files {
        if !seen.insert(file.path.as_path()) {
            return Err(invalid(format!(
                "two files would be written to {}",
                file.path.display()
            )));
        }
    }
    for path in removals {
        if seen.contains(path.as_path()) {
            return Err(invalid(format!(
                "{} would be both written and removed",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The sha256 of `bytes` in lower-case hex, as summaries and `SHA256SUMS` files show it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn compare(file: &FileWrite) -> Result<Outcome> {
    let action = match fs::symlink_metadata(&file.path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Action::Created,
        Err(err) => return Err(err).with_context(|| format!("reading {}", file.path.display())),
        Ok(meta) if meta.is_dir() => {
            return Err(anyhow::anyhow!(
                "{} is a directory, not a file",
                file.path.display()
            ));
        }
        Ok(meta) => {
            let same_mode = meta.file_type().is_file() && meta.mode() & 0o7777 == file.mode;
            let same_bytes = same_mode
                && meta.len() == file.bytes.len() as u64
                && fs::read(&file.path)
                    .with_context(|| format!("reading {}", file.path.display()))?
                    == file.bytes;
            if same_bytes {
                Action::Unchanged
            } else {
                Action::Updated
            }
        }
    };
    Ok(Outcome {
        path: file.path.clone(),
        action,
        sha256: sha256_hex(&file.bytes),
    })
}

fn stage(file: &FileWrite, flush: Flush) -> Result<tempfile::TempPath> {
    let dir = parent_of(&file.path);
    create_dirs(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".caas-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    temp.write_all(&file.bytes)
        .with_context(|| format!("writing a temp file for {}", file.path.display()))?;
    // Set explicitly: the mode given at creation would be narrowed by the umask.
    temp.as_file()
        .set_permissions(Permissions::from_mode(file.mode))
        .with_context(|| format!("setting the mode of {}", file.path.display()))?;
    match flush {
        Flush::EachAtOnce => temp
            .as_file()
            .sync_all()
            .with_context(|| format!("flushing {}", temp.path().display()))?,
        Flush::FileSystem => {}
        // Only a head start: the fsync or syncfs that follows is what makes the file durable,
        // so a file system that refuses the hint (EINVAL on some network or FUSE mounts) is fine.
        Flush::StartedEarly | Flush::StartedEarlyInThreads(_) | Flush::Adaptive => {
            let _ = start_writeback(temp.as_file());
        }
    }
    Ok(temp.into_temp_path())
}

/// Asks the kernel to start writing `file`'s dirty pages now, without waiting: the later
/// `fsync` finds them on disk (or on their way) instead of starting each write itself.
fn start_writeback(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: `sync_file_range` only reads its integer arguments; the descriptor is open for
    // as long as `file` is borrowed. Offset 0 with length 0 means the whole file.
    let status =
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What one `fsync` from the threads costs, in bytes of another process's dirty data that one
/// `syncfs` would write instead. It is a disk's `fsync` latency times its bandwidth, so it
/// differs between machines; two were measured (benches/write.rs, 100,000 files, 2 GiB of a
/// neighbour's dirty data): 60 µs a file at 300 MB/s, about 18 KB (threaded `fsync`s 33 s,
/// `syncfs` 42 to 75 s), and 100 µs a file at 2.5 GB/s, about 250 KB (threaded `fsync`s 22 s,
/// `syncfs` 4.6 s). 64 KiB, between the two, keeps the worse choice within about 2.5 times the
/// better on both, where either end would cost the other machine up to 5 times.
const FSYNC_COST_BYTES: u64 = 64 * 1024;

/// Whether one `syncfs` for `files` new files costs no more than an `fsync` each: `syncfs`
/// also writes every other process's dirty data (`dirty`, measured before ours is written;
/// `None` when unknown), which must not outweigh the `fsync`s it saves.
fn syncfs_is_cheap(files: usize, dirty: Option<u64>) -> bool {
    match dirty {
        Some(dirty) => dirty <= files as u64 * FSYNC_COST_BYTES,
        None => false,
    }
}

/// The system's dirty and under-writeback page cache (`/proc/meminfo`), in bytes.
fn system_dirty_bytes() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|line| line.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((kib("Dirty:")? + kib("Writeback:")?) * 1024)
}

/// `fsync`s each staged temp file (reopened by path: they were closed once written).
fn fsync_each(staged: &[tempfile::TempPath]) -> Result<()> {
    for path in staged {
        fsync_path(path)?;
    }
    Ok(())
}

/// Threads `fsync`ing at once: concurrent `fsync`s share one journal commit, where one after
/// another would wait a commit (and a disk cache flush) each.
const FSYNC_THREADS: usize = 8;

/// [`fsync_each`], spread over `threads` threads.
fn fsync_in_threads(staged: &[tempfile::TempPath], threads: usize) -> Result<()> {
    if staged.len() <= 1 || threads <= 1 {
        return fsync_each(staged);
    }
    let chunk = staged.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = staged
            .chunks(chunk)
            .map(|paths| scope.spawn(|| fsync_each(paths)))
            .collect();
        // The scope joins any worker left when one fails.
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().expect("an fsync thread panicked"))
    })
}

fn fsync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("flushing {}", path.display()))
}

/// Flushes every file system the staged files live on: one `syncfs` each.
fn sync_file_systems(files: &[&FileWrite]) -> Result<()> {
    let mut devices = HashSet::new();
    let dirs: BTreeSet<&Path> = files.iter().map(|file| parent_of(&file.path)).collect();
    for dir in dirs {
        let handle =
            File::open(dir).with_context(|| format!("opening directory {}", dir.display()))?;
        let dev = handle
            .metadata()
            .with_context(|| format!("reading {}", dir.display()))?
            .dev();
        if devices.insert(dev) {
            rustix::fs::syncfs(&handle)
                .with_context(|| format!("flushing the file system of {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents, flushing the parent of each directory it creates, so
/// a directory made for a new file survives a power loss as the file does.
fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut next = dir;
    while fs::symlink_metadata(next).is_err() {
        missing.push(next);
        match next.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => next = parent,
            _ => break,
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    for created in missing.iter().rev() {
        sync_dir(parent_of(created))?;
    }
    Ok(())
}

/// Flushes a directory's entries (created, renamed or removed names) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("flushing directory {}", dir.display()))
}

/// Moves the directory `staged` to `target`, which must be on the same file system.
///
/// The files in `staged` must already be flushed (as [`apply`] and a synced download leave
/// them); this flushes `staged` itself, renames, and flushes both parents. An existing `target`
/// directory is exchanged atomically (Linux `RENAME_EXCHANGE`) and the old tree removed
/// afterwards, so `target` never goes missing. Returns whether `target` existed before.
pub fn publish_dir(staged: &Path, target: &Path) -> Result<bool> {
    sync_dir(staged)?;
    let target_parent = parent_of(target);
    create_dirs(target_parent)?;
    let replaced = match fs::symlink_metadata(target) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::rename(staged, target).with_context(|| {
                format!("renaming {} to {}", staged.display(), target.display())
            })?;
            false
        }
        Err(err) => return Err(err).with_context(|| format!("reading {}", target.display())),
        Ok(meta) if !meta.is_dir() => {
            return Err(anyhow::anyhow!(
                "{} exists and is not a directory",
                target.display()
            ));
        }
        Ok(_) => {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                staged,
                rustix::fs::CWD,
                target,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .with_context(|| {
                format!("exchanging {} with {}", staged.display(), target.display())
            })?;
            true
        }
    };
    sync_dir(target_parent)?;
    sync_dir(parent_of(staged))?;
    if replaced && let Err(err) = fs::remove_dir_all(staged) {
        // `staged` now holds the previous tree; the new one is published either way.
        tracing::warn!(
            "the replaced tree {} is left behind: {err}",
            staged.display()
        );
    }
    Ok(replaced)
}

/// One entry of a tree built by [`build_linked_tree`]. Paths are relative to the tree.
#[derive(Clone, Debug)]
pub enum TreeEntry {
    /// A directory (and its missing parents).
    Dir(PathBuf),
    /// A hard link at the path to an existing, flushed file, `source` (relative to the
    /// `sources` directory [`build_linked_tree`] is given, or absolute): the tree shares its
    /// bytes, so an unchanged file is never rewritten.
    Link { path: PathBuf, source: PathBuf },
    /// A symlink at the path holding `target` as given.
    Symlink { path: PathBuf, target: PathBuf },
}

/// Entries one thread of [`build_linked_tree`] builds at least: below that a thread costs
/// more than it saves.
const TREE_ENTRIES_PER_THREAD: usize = 4096;

/// Builds a fresh directory `staged` (which must not exist) from `entries` and flushes it with
/// one `syncfs`, ready for [`publish_dir`]. On error the partial directory is removed. Links
/// and directories carry no data of their own, so one flush of the file system covers every
/// name created.
///
/// Every name is created relative to an open descriptor of `staged` (and links from one of
/// `sources`), so the kernel walks only the path inside the tree, not the whole path from `/`
/// (for a 100,000-machine tree, 600,000 names). A link's or symlink's missing parent
/// directories are created as a [`TreeEntry::Dir`]'s are, so entries may come in any order,
/// and large trees are built by several threads, each a contiguous share of `entries`.
pub fn build_linked_tree(staged: &Path, sources: &Path, entries: &[TreeEntry]) -> Result<()> {
    let built = (|| -> Result<()> {
        fs::create_dir(staged).with_context(|| format!("creating {}", staged.display()))?;
        let root = open_dir(staged)?;
        let sources_dir = open_dir(sources)?;
        let tree = Tree {
            root: &root,
            root_path: staged,
            sources: &sources_dir,
            sources_path: sources,
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(entries.len() / TREE_ENTRIES_PER_THREAD)
            .max(1);
        if threads == 1 {
            tree.build(entries)?;
        } else {
            let tree = &tree;
            std::thread::scope(|scope| {
                let workers: Vec<_> = entries
                    .chunks(entries.len().div_ceil(threads))
                    .map(|share| scope.spawn(move || tree.build(share)))
                    .collect();
                workers
                    .into_iter()
                    .try_for_each(|worker| worker.join().expect("a tree thread panicked"))
            })?;
        }
        rustix::fs::syncfs(&root)
            .with_context(|| format!("flushing the file system of {}", staged.display()))?;
        Ok(())
    })();
    if built.is_err() {
        let _ = fs::remove_dir_all(staged);
    }
    built
}

/// A directory opened for reading (a descriptor `syncfs` and the `*at` calls accept).
fn open_dir(dir: &Path) -> Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening directory {}", dir.display()))
}

/// The tree [`build_linked_tree`] builds, and where links come from; paths are kept for
/// error messages.
struct Tree<'a> {
    root: &'a std::os::fd::OwnedFd,
    root_path: &'a Path,
    sources: &'a std::os::fd::OwnedFd,
    sources_path: &'a Path,
}

impl Tree<'_> {
    fn build(&self, entries: &[TreeEntry]) -> Result<()> {
        for entry in entries {
            match entry {
                TreeEntry::Dir(dir) => self
                    .create_dirs(dir)
                    .with_context(|| format!("creating {}", self.root_path.join(dir).display()))?,
                TreeEntry::Link { path, source } => self
                    .in_parent(path, || {
                        rustix::fs::linkat(
                            self.sources,
                            source,
                            self.root,
                            path,
                            rustix::fs::AtFlags::empty(),
                        )
                    })
                    .with_context(|| {
                        format!(
                            "linking {} to {}",
                            self.root_path.join(path).display(),
                            self.sources_path.join(source).display()
                        )
                    })?,
                TreeEntry::Symlink { path, target } => self
                    .in_parent(path, || rustix::fs::symlinkat(target, self.root, path))
                    .with_context(|| {
                        format!("creating symlink {}", self.root_path.join(path).display())
                    })?,
            }
        }
        Ok(())
    }

    /// Runs `create` (which makes the name `path`), creating `path`'s parent directories first
    /// when they are missing.
    fn in_parent(
        &self,
        path: &Path,
        create: impl Fn() -> rustix::io::Result<()>,
    ) -> io::Result<()> {
        match create() {
            Err(rustix::io::Errno::NOENT) => match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => {
                    self.create_dirs(parent)?;
                    Ok(create()?)
                }
                _ => Err(rustix::io::Errno::NOENT.into()),
            },
            done => Ok(done?),
        }
    }

    /// `fs::create_dir_all` inside the tree: `dir` and its missing parents; an existing
    /// directory (one another thread made) is fine.
    fn create_dirs(&self, dir: &Path) -> io::Result<()> {
        use rustix::fs::{AtFlags, FileType, Mode};
        match rustix::fs::mkdirat(self.root, dir, Mode::from_raw_mode(0o777)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                let stat = rustix::fs::statat(self.root, dir, AtFlags::empty())?;
                if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                    Ok(())
                } else {
                    Err(rustix::io::Errno::EXIST.into())
                }
            }
            Err(rustix::io::Errno::NOENT) => match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => {
                    self.create_dirs(parent)?;
                    match rustix::fs::mkdirat(self.root, dir, Mode::from_raw_mode(0o777)) {
                        Err(rustix::io::Errno::EXIST) => self.create_dirs(dir),
                        done => Ok(done?),
                    }
                }
                _ => Err(rustix::io::Errno::NOENT.into()),
            },
            Err(err) => Err(err.into()),
        }
    }
}

/// Removes a published tree that nothing points at any more (a directory and all it holds).
pub fn remove_tree(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Points the symlink `link` at `target` (stored as given, typically relative), atomically: a
/// temp symlink in the same directory renamed over `link`. Refuses to replace anything but a
/// symlink. Returns [`Action::Unchanged`] when it already points there.
pub fn replace_symlink(link: &Path, target: &Path) -> Result<Action> {
    let action = match fs::symlink_metadata(link) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Action::Created,
        Err(err) => return Err(err).with_context(|| format!("reading {}", link.display())),
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(anyhow::anyhow!(
                "{} exists and is not a symlink; move it away first",
                link.display()
            ));
        }
        Ok(_) => {
            let old = fs::read_link(link).with_context(|| format!("reading {}", link.display()))?;
            if old == target {
                return Ok(Action::Unchanged);
            }
            Action::Updated
        }
    };
    let dir = parent_of(link);
    create_dirs(dir)?;
    let temp = tempfile::Builder::new()
        .prefix(".caas-")
        .suffix(".link")
        .make_in(dir, |path| std::os::unix::fs::symlink(target, path))
        .with_context(|| format!("creating a temp symlink in {}", dir.display()))?
        .into_temp_path();
    // On failure the guard removes the temp link; on success its name is gone already.
    fs::rename(&temp, link)
        .with_context(|| format!("renaming a temp symlink to {}", link.display()))?;
    let _ = temp.keep();
    sync_dir(dir)?;
    Ok(action)
}

/// The lock file every writer of a directory holds: at the data directory's root, which
/// matchbox never lists (it reads `groups/`, `profiles/`… by name), and hidden.
pub const LOCK_FILE: &str = ".caas.lock";

/// Whether [`DirLock::acquire`] waits for another holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockWait {
    /// Wait, saying so on stderr unless `quiet`.
    Wait { quiet: bool },
    /// Fail at once, naming the holder.
    NoWait,
}

/// One writer at a time on a directory: an exclusive `flock` on `<dir>/.caas.lock`, held for
/// the whole read-plan-write of a command, so two commands never plan from one state and
/// write over each other. The file names its holder (`pid N: caas gen cluster`) while held and
/// is removed on release; one left behind was held by a process that was killed, and the next
/// holder removes the temp files that process may have left (see [`DirLock::acquire`]).
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    /// The directories created to hold the lock file, deepest first.
    created_dirs: Vec<PathBuf>,
    _file: File,
}

impl DirLock {
    /// Locks `dir` for `holder` (`caas gen cluster`) with the lock file in `dir/<within>`
    /// (created if missing; `within` is empty for `dir` itself). When the previous holder was
    /// killed, removes the stale caas temp files under `dir` (not under the top-level entries
    /// `skip`, which another lock covers).
    pub fn acquire(
        dir: &Path,
        within: &str,
        holder: &str,
        wait: LockWait,
        skip: &[&str],
    ) -> Result<DirLock> {
        let lock_dir = dir.join(within);
        let path = lock_dir.join(LOCK_FILE);
        let mut said = false;
        loop {
            let mut created_dirs = Vec::new();
            let mut next = lock_dir.as_path();
            while !next.as_os_str().is_empty() && fs::symlink_metadata(next).is_err() {
                created_dirs.push(next.to_owned());
                next = parent_of(next);
            }
            create_dirs(&lock_dir)?;
            let (mut file, found) = match fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => (file, false),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    match fs::OpenOptions::new().read(true).write(true).open(&path) {
                        Ok(file) => (file, true),
                        Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                        Err(err) => {
                            return Err(err).with_context(|| format!("opening {}", path.display()));
                        }
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("creating {}", path.display()));
                }
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    let held_by = holder_of(&mut file);
                    match wait {
                        LockWait::NoWait => {
                            return Err(anyhow::anyhow!(
                                "{} is locked by {held_by}: another caas is writing {}; run again \
                                 when it is done, or without --no-wait to wait for it",
                                path.display(),
                                dir.display()
                            ));
                        }
                        LockWait::Wait { quiet } => {
                            if !quiet && !said {
                                eprintln!("waiting for {held_by} to release {} …", path.display());
                                said = true;
                            }
                            file.lock()
                                .with_context(|| format!("locking {}", path.display()))?;
                        }
                    }
                }
                Err(fs::TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("locking {}", path.display()));
                }
            }
            // The holder before may have removed the file we locked: lock the one at `path`.
            let ours = file.metadata()?;
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.dev() == ours.dev() && meta.ino() == ours.ino() => {}
                _ => continue,
            }
            // A lock file that was there unlocked (or was released without being removed)
            // belonged to a killed process: its temp files are stale now.
            if found {
                remove_stale_temps(dir, skip)?;
            }
            file.set_len(0)
                .and_then(|()| {
                    use std::io::{Seek as _, SeekFrom};
                    file.seek(SeekFrom::Start(0))?;
                    writeln!(file, "pid {}: {holder}", std::process::id())
                })
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok(DirLock {
                path,
                created_dirs,
                _file: file,
            });
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Removed while still locked: a waiter that opened it sees it gone and opens anew.
        let _ = fs::remove_file(&self.path);
        for dir in &self.created_dirs {
            if fs::remove_dir(dir).is_err() {
                break; // something was written into it
            }
        }
    }
}

fn holder_of(file: &mut File) -> String {
    use std::io::Read as _;
    let mut text = String::new();
    let _ = file.take(200).read_to_string(&mut text);
    match text.trim() {
        "" => "another caas process".to_owned(),
        holder => holder.to_owned(),
    }
}

/// Whether `name` is one of caas's own temp files (a file or symlink being written).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".caas-") && (name.ends_with(".tmp") || name.ends_with(".link"))
}

/// Removes caas temp files under `dir` (every level, not following symlinks, leaving out the
/// top-level entries named in `skip`). Only a holder of `dir`'s lock may call it: no other
/// writer is at work there.
fn remove_stale_temps(dir: &Path, skip: &[&str]) -> Result<()> {
    let mut stack = vec![dir.to_owned()];
    let mut touched = Vec::new();
    while let Some(current) = stack.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("listing {}", current.display())),
        };
        let mut removed = false;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", current.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if current == dir && skip.contains(&name.as_ref()) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if is_temp_name(&name) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed = true,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(err)
                            .with_context(|| format!("removing {}", entry.path().display()));
                    }
                }
            }
        }
        if removed {
            touched.push(current);
        }
    }
    for dir in touched {
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Whether a run changes the disk or only compares with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Compare only ([`plan_changes`]); nothing is written or removed.
    pub dry_run: bool,
}

/// [`apply_changes`], or with `dry_run` only [`plan_changes`].
pub fn write_changes(
    files: &[FileWrite],
    removals: &[PathBuf],
    options: WriteOptions,
) -> Result<Vec<Outcome>> {
    if options.dry_run {
        plan_changes(files, removals)
    } else {
        apply_changes(files, removals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn mtime(path: &Path) -> SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn creates_updates_and_leaves_unchanged_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups/a.json");
        let first = [FileWrite::new(&path, b"one\n".to_vec())];
        let out = apply(&first).unwrap();
        assert_eq!(out[0].action, Action::Created);
        assert_eq!(fs::read(&path).unwrap(), b"one\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(out[0].sha256, sha256_hex(b"one\n"));

        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(apply(&first).unwrap()[0].action, Action::Unchanged);
        assert_eq!(mtime(&path), old, "an unchanged file is not touched");

        let second = [FileWrite::new(&path, b"two\n".to_vec())];
        assert_eq!(plan(&second).unwrap()[0].action, Action::Updated);
        assert_eq!(fs::read(&path).unwrap(), b"one\n", "plan writes nothing");
        assert_eq!(apply(&second).unwrap()[0].action, Action::Updated);
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["a.json"]);
    }

    #[test]
    fn a_wrong_mode_counts_as_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let files = [FileWrite::new(&path, b"x".to_vec())];
        assert_eq!(apply(&files).unwrap()[0].action, Action::Updated);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
    }

    #[test]
    fn every_flush_strategy_writes_every_file() {
        for flush in Flush::ALL {
            let dir = tempfile::tempdir().unwrap();
            let files: Vec<_> = (0..50)
                .map(|i| FileWrite::new(dir.path().join(format!("g/{i}.json")), vec![b'x'; i]))
                .collect();
            let outcomes = apply_changes_flushed(&files, &[], flush).unwrap();
            assert!(
                outcomes.iter().all(|o| o.action == Action::Created),
                "{flush:?}"
            );
            for file in &files {
                assert_eq!(fs::read(&file.path).unwrap(), file.bytes, "{flush:?}");
            }
        }
    }

    #[test]
    fn syncfs_only_when_others_have_little_dirty_data() {
        let mib = 1024 * 1024;
        // 1,000 files may outweigh about 64 MiB of others' dirty data, not more.
        assert!(syncfs_is_cheap(1000, Some(0)));
        assert!(syncfs_is_cheap(1000, Some(62 * mib)));
        assert!(!syncfs_is_cheap(1000, Some(63 * mib)));
        assert!(!syncfs_is_cheap(1, Some(mib)));
        assert!(!syncfs_is_cheap(1000, None));
        assert!(system_dirty_bytes().is_some());
    }

    #[test]
    fn refuses_duplicate_targets_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let twice = [
            FileWrite::new(&path, b"1".to_vec()),
            FileWrite::new(&path, b"2".to_vec()),
        ];
        assert!(apply(&twice).is_err());
        assert!(!path.exists());
        fs::create_dir(&path).unwrap();
        assert!(apply(&[FileWrite::new(&path, b"1".to_vec())]).is_err());
    }

    #[test]
    fn removals_come_with_the_writes_and_spare_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("groups/old.json");
        let new = dir.path().join("groups/new.json");
        fs::create_dir_all(old.parent().unwrap()).unwrap();
        fs::write(&old, b"old").unwrap();
        let files = [FileWrite::new(&new, b"new".to_vec())];
        let removals = [old.clone(), dir.path().join("groups/absent.json")];

        let planned = plan_changes(&files, &removals).unwrap();
        assert_eq!(planned.len(), 2, "an absent file has nothing to remove");
        assert_eq!(planned[1].action, Action::Removed);
        assert!(old.exists() && !new.exists(), "plan changes nothing");

        let outcomes = apply_changes(&files, &removals).unwrap();
        assert_eq!(outcomes[0].action, Action::Created);
        assert_eq!(outcomes[1].action, Action::Removed);
        assert!(!old.exists());
        assert_eq!(fs::read(&new).unwrap(), b"new");
        assert!(apply_changes(&files, std::slice::from_ref(&new)).is_err());
        assert!(new.exists(), "a path both written and removed is refused");

        let json = String::from_utf8(canonical_json(&outcomes[1])).unwrap();
        assert!(!json.contains("sha256"), "{json}");
    }

    #[test]
    fn canonical_json_is_sorted_indented_and_newline_terminated() {
        let mut map = serde_json::Map::new();
        map.insert("b".into(), 1.into());
        map.insert("a".into(), serde_json::json!({"d": [], "c": {}}));
        let text = String::from_utf8(canonical_json(&map)).unwrap();
        assert_eq!(
            text,
            "{\n  \"a\": {\n    \"c\": {},\n    \"d\": []\n  },\n  \"b\": 1\n}\n"
        );
    }

    #[test]
    fn publish_dir_moves_a_tree_into_place_and_swaps_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join(".partial/1.0");
        let target = dir.path().join("os/1.0");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("kernel"), b"new").unwrap();
        assert!(!publish_dir(&staged, &target).unwrap());
        assert_eq!(fs::read(target.join("kernel")).unwrap(), b"new");
        assert!(!staged.exists());

        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("kernel"), b"newer").unwrap();
        assert!(publish_dir(&staged, &target).unwrap());
        assert_eq!(fs::read(target.join("kernel")).unwrap(), b"newer");
        assert!(!staged.exists(), "the replaced tree is removed");

        fs::create_dir_all(&staged).unwrap();
        let file = dir.path().join("os/file");
        fs::write(&file, b"x").unwrap();
        assert!(publish_dir(&staged, &file).is_err());
    }

    #[test]
    fn replace_symlink_repoints_atomically_and_only_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("current");
        assert_eq!(
            replace_symlink(&link, Path::new("1.0")).unwrap(),
            Action::Created
        );
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("1.0"));
        assert_eq!(
            replace_symlink(&link, Path::new("1.0")).unwrap(),
            Action::Unchanged
        );
        assert_eq!(
            replace_symlink(&link, Path::new("2.0")).unwrap(),
            Action::Updated
        );
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("2.0"));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["current"], "no temp link is left behind");

        let plain = dir.path().join("plain");
        fs::create_dir(&plain).unwrap();
        assert!(replace_symlink(&plain, Path::new("1.0")).is_err());
        assert!(plain.is_dir());
    }
}
