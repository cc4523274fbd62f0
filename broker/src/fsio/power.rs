//! Simulated power loss: a model of what a disk holds after the power goes,
//! fed by the hooks in [`super`] (compiled only with `cfg(test)` or the
//! `testing` feature; `skiff_broker::fsio::power` for integration tests).
//!
//! A test [`plug_in`]s a data directory before starting a broker on it; from
//! then on every completed sync under that directory is recorded:
//! - a file sync (`fdatasync`/`fsync`) records, for the file's inode, the
//!   length the file had when the sync started: those bytes are durable,
//!   as they were when it started;
//! - a positional write ([`super::write_all_at`]) that overwrites bytes
//!   inside that length first saves the bytes it replaces; the next
//!   completed sync that started after the write forgets them (a log
//!   segment with a pre-zeroed runway is written this way);
//! - a directory fsync records the directory's entries (name -> inode) that
//!   were there both before and after the call: those entries are durable.
//!
//! Every inode the model knows is hard-linked into a shadow directory, so a
//! file the broker removes or renames over is still there to be restored
//! if its removal was never made durable. [`cut`] then takes the model's one
//! lock (every hook takes it), marks the directory as powered off (every
//! later hooked sync under it fails with EIO, so the old broker can neither
//! acknowledge nor record anything more) and writes an image of what a disk
//! would hold, starting from the plugged-in directory:
//! - a directory holds exactly the entries of its last fsync (none if it was
//!   never fsynced): a file created or renamed since is gone, or back under
//!   its old name; a removed one is back;
//! - a file holds the bytes its last sync covered and then, per [`Tail`],
//!   nothing, all, any prefix of, or garbage in place of the bytes written
//!   after that sync; the same choice applies to every overwrite inside the
//!   synced length that no sync covered yet (its old bytes come back, its
//!   new ones stay, a prefix of the new ones stays, or garbage stands in).
//!
//! Assumed: writes and syncs of one file never overlap (the log's writer
//! lock serializes them), so a write recorded before a sync started was
//! done when it started.
//!
//! Not modelled: reordering inside the synced region (a completed sync is
//! trusted), a truncation below the synced length that was not synced yet
//! (through [`super::set_len`] the synced length shrinks to the cut at
//! once, so what is written there again counts as unsynced; the image
//! never shows the bytes the cut removed coming back), and the
//! memory-mapped index files' pages (they are flushed with msync, not
//! recorded, so an index is never "synced" and always shows an arbitrary
//! tail; recovery must rebuild it, which it does).
//! The plugged-in directory itself counts as durable with whatever it held
//! when plugged in.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// Directory nesting the image builder follows (a data directory is 4 deep).
const IMAGE_DEPTH_MAX: usize = 16;

/// What a power cut does to the bytes written after a file's last sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tail {
    /// They are gone (the most a disk can lose: deterministic tests).
    Drop,
    /// They all made it to the disk.
    Keep,
    /// As many bytes of garbage as were written stand in their place.
    Garbage,
    /// Per file, seeded: one of the above, or any prefix of the bytes.
    Random(u64),
}

/// What [`cut`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files in the image.
    pub files: u64,
    /// Directories in the image.
    pub dirs: u64,
    /// Bytes covered by a completed sync, kept.
    pub synced_bytes: u64,
    /// Bytes written after the last sync that the image kept.
    pub unsynced_kept: u64,
    /// Bytes written after the last sync that the image lost.
    pub unsynced_lost: u64,
    /// Garbage bytes standing in for unsynced ones.
    pub garbage_bytes: u64,
    /// Entries present in the live directories but not durable (not in the
    /// image under that name).
    pub entries_lost: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

type Entries = BTreeMap<OsString, (u64, Kind)>;

/// The durable state of one plugged-in directory tree.
struct Machine {
    root: PathBuf,
    shadow: PathBuf,
    root_ino: u64,
    /// Powered off: every later hook under `root` fails.
    cut: bool,
    /// Per known file inode (hard-linked into `shadow` as `<ino>`), the
    /// length its last completed sync covered.
    files: HashMap<u64, u64>,
    /// Per file inode, the overwrites inside its synced length that no
    /// completed sync covers yet, oldest first.
    overwrites: HashMap<u64, Vec<Overwrite>>,
    /// Per directory inode, its entries as of its last completed fsync.
    dirs: HashMap<u64, Entries>,
    /// Open handles on every directory seen, so no inode number the model
    /// holds is reused by a new directory.
    pins: HashMap<u64, File>,
    /// Per directory (as the broker names it), when the last completed sync
    /// of a file in it started: every byte written to those files before
    /// that instant is durable.
    last_sync_started: HashMap<PathBuf, Instant>,
}

/// Bytes a positional write replaced inside a file's synced length.
struct Overwrite {
    /// Where they start.
    pos: u64,
    /// What they were (the durable bytes until a sync covers the write).
    old: Vec<u8>,
    /// When the write was about to start: a sync that started later covers it.
    at: Instant,
}

static MACHINES: Mutex<Vec<Machine>> = Mutex::new(Vec::new());

fn lock() -> std::sync::MutexGuard<'static, Vec<Machine>> {
    crate::poison::lock(&MACHINES)
}

fn find<'a>(machines: &'a mut [Machine], path: &Path) -> Option<&'a mut Machine> {
    machines.iter_mut().find(|m| path.starts_with(&m.root))
}

fn powered_off() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

/// A file sync under way: what it will cover if it completes.
#[derive(Debug)]
pub(crate) struct FileSync {
    ino: u64,
    len: u64,
    started: Instant,
}

/// Before a file sync: fails once the power is cut; otherwise notes the
/// length the sync will cover (everything written before it starts).
pub(crate) fn before_file_sync(file: &File, path: &Path) -> io::Result<Option<FileSync>> {
    let mut machines = lock();
    let Some(m) = find(&mut machines, path) else {
        return Ok(None);
    };
    if m.cut {
        return Err(powered_off());
    }
    let meta = file.metadata()?;
    Ok(Some(FileSync {
        ino: meta.ino(),
        len: meta.len(),
        started: Instant::now(),
    }))
}

/// After a file sync returned: records it as durable, or fails if the power
/// was cut meanwhile (the caller then acknowledges nothing).
pub(crate) fn after_file_sync(file: &File, path: &Path, sync: Option<FileSync>) -> io::Result<()> {
    let Some(sync) = sync else {
        return Ok(());
    };
    let mut machines = lock();
    let Some(m) = find(&mut machines, path) else {
        return Ok(());
    };
    if m.cut {
        return Err(powered_off());
    }
    if !m.files.contains_key(&sync.ino) {
        use std::os::fd::AsRawFd;
        link_into(&m.shadow, &proc_fd_path(file.as_raw_fd()), sync.ino)?;
    }
    m.files.insert(sync.ino, sync.len);
    if let Some(list) = m.overwrites.get_mut(&sync.ino) {
        list.retain(|o| o.at >= sync.started);
    }
    if let Some(dir) = path.parent() {
        let at = m
            .last_sync_started
            .entry(dir.to_owned())
            .or_insert(sync.started);
        *at = (*at).max(sync.started);
    }
    Ok(())
}

/// Before a positional write of `len` bytes at `pos`: saves the bytes it
/// will replace inside the file's synced length (nothing for a file the
/// model does not know yet: none of its bytes is durable). Writes after a
/// cut go through unrecorded: the image is written already.
pub(crate) fn before_write(file: &File, path: &Path, pos: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut machines = lock();
    let Some(m) = find(&mut machines, path) else {
        return Ok(());
    };
    if m.cut {
        return Ok(());
    }
    let meta = file.metadata()?;
    let ino = meta.ino();
    let synced = m.files.get(&ino).copied().unwrap_or(0);
    // A file cut without `set_len` may be shorter than its synced length.
    let end = pos.saturating_add(len).min(synced).min(meta.len());
    if pos >= end {
        return Ok(());
    }
    let mut old = vec![0u8; usize::try_from(end - pos).map_err(io::Error::other)?];
    file.read_exact_at(&mut old, pos)?;
    m.overwrites.entry(ino).or_default().push(Overwrite {
        pos,
        old,
        at: Instant::now(),
    });
    Ok(())
}

/// After a file was cut to `len`: nothing past the cut is durable any
/// more (a later write there is unsynced), nor any overwrite recorded there.
pub(crate) fn after_set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    let mut machines = lock();
    let Some(m) = find(&mut machines, path) else {
        return Ok(());
    };
    if m.cut {
        return Ok(());
    }
    let ino = file.metadata()?.ino();
    if let Some(synced) = m.files.get_mut(&ino) {
        *synced = (*synced).min(len);
    }
    if let Some(list) = m.overwrites.get_mut(&ino) {
        list.retain(|o| o.pos < len);
        for o in list.iter_mut() {
            let keep = usize::try_from(len - o.pos).unwrap_or(usize::MAX);
            o.old.truncate(keep);
        }
    }
    Ok(())
}

fn proc_fd_path(fd: i32) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// Hard-links `from` (a path, or `/proc/self/fd/N`) as `<shadow>/<ino>`.
fn link_into(shadow: &Path, from: &Path, ino: u64) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let to = shadow.join(ino.to_string());
    let from_c = std::ffi::CString::new(from.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let to_c = std::ffi::CString::new(to.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: plain FFI call on two NUL-terminated strings that outlive it.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::AlreadyExists {
        Ok(())
    } else {
        Err(e)
    }
}

/// A directory's entries read before its fsync.
#[derive(Debug)]
pub(crate) struct DirSync {
    ino: u64,
    entries: Entries,
}

fn list(dir: &Path) -> io::Result<(u64, Entries)> {
    let ino = fs::metadata(dir)?.ino();
    let mut entries = Entries::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue; // removed meanwhile
        };
        let kind = if meta.is_dir() {
            Kind::Dir
        } else if meta.is_file() {
            Kind::File
        } else {
            continue;
        };
        entries.insert(entry.file_name(), (meta.ino(), kind));
    }
    Ok((ino, entries))
}

/// Before a directory fsync: fails once the power is cut; otherwise lists
/// the directory.
pub(crate) fn before_dir_sync(dir: &Path) -> io::Result<Option<DirSync>> {
    let mut machines = lock();
    let Some(m) = find(&mut machines, dir) else {
        return Ok(None);
    };
    if m.cut {
        return Err(powered_off());
    }
    let (ino, entries) = list(dir)?;
    Ok(Some(DirSync { ino, entries }))
}

/// After a directory fsync returned: the entries present both before and
/// after it are durable (one added or removed during the call may or may
/// not be; the model takes the lossier view of an addition).
pub(crate) fn after_dir_sync(dir: &Path, before: Option<DirSync>) -> io::Result<()> {
    let Some(before) = before else {
        return Ok(());
    };
    let mut machines = lock();
    let Some(m) = find(&mut machines, dir) else {
        return Ok(());
    };
    if m.cut {
        return Err(powered_off());
    }
    let (ino, after) = list(dir)?;
    if ino != before.ino {
        return Ok(()); // the directory itself was replaced meanwhile
    }
    let mut durable = Entries::new();
    for (name, entry) in before.entries {
        if after.get(&name) == Some(&entry) && m.track(&dir.join(&name), entry)? {
            durable.insert(name, entry);
        }
    }
    m.pin(dir, ino)?;
    m.dirs.insert(ino, durable);
    Ok(())
}

impl Machine {
    /// Keeps the inode of `path` reachable (false if it is gone already).
    fn track(&mut self, path: &Path, (ino, kind): (u64, Kind)) -> io::Result<bool> {
        match kind {
            Kind::File if !self.files.contains_key(&ino) => {
                match link_into(&self.shadow, path, ino) {
                    Ok(()) => {
                        self.files.insert(ino, 0);
                        Ok(true)
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Kind::File => Ok(true),
            Kind::Dir => match self.pin(path, ino) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    fn pin(&mut self, dir: &Path, ino: u64) -> io::Result<()> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.pins.entry(ino) {
            let f = File::open(dir)?;
            if f.metadata()?.ino() == ino {
                slot.insert(f);
            }
        }
        Ok(())
    }

    /// Records everything under `dir` as durable (at plug-in).
    fn adopt(&mut self, dir: &Path, depth: usize) -> io::Result<u64> {
        let (ino, entries) = list(dir)?;
        self.pin(dir, ino)?;
        for (name, &(child, kind)) in &entries {
            let path = dir.join(name);
            match kind {
                Kind::File => {
                    link_into(&self.shadow, &path, child)?;
                    self.files.insert(child, fs::metadata(&path)?.len());
                }
                Kind::Dir if depth < IMAGE_DEPTH_MAX => {
                    self.adopt(&path, depth + 1)?;
                }
                Kind::Dir => {}
            }
        }
        self.dirs.insert(ino, entries);
        Ok(ino)
    }
}

/// Starts recording the durable state of `root` (created if missing; what
/// it holds now counts as durable). `shadow` is an empty directory on the
/// same filesystem, for the hard links that keep removed files restorable;
/// the caller removes it. Plug in before starting a broker on `root`.
pub fn plug_in(root: &Path, shadow: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    fs::create_dir_all(shadow)?;
    let mut machines = lock();
    if machines
        .iter()
        .any(|m| root.starts_with(&m.root) || m.root.starts_with(root))
    {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} overlaps a plugged-in directory", root.display()),
        ));
    }
    let mut m = Machine {
        root: root.to_owned(),
        shadow: shadow.to_owned(),
        root_ino: 0,
        cut: false,
        files: HashMap::new(),
        overwrites: HashMap::new(),
        dirs: HashMap::new(),
        pins: HashMap::new(),
        last_sync_started: HashMap::new(),
    };
    m.root_ino = m.adopt(root, 0)?;
    machines.push(m);
    Ok(())
}

/// Forgets `root` (its image, if any, is not touched).
pub fn unplug(root: &Path) {
    lock().retain(|m| m.root != root);
}

/// When the last completed sync of a file directly in `dir` started: every
/// byte written to those files before that instant survives a cut made
/// after it. None if no file there was synced since plug-in.
pub fn last_sync_started(dir: &Path) -> Option<Instant> {
    let mut machines = lock();
    find(&mut machines, dir).and_then(|m| m.last_sync_started.get(dir).copied())
}

/// Cuts the power under `root`: from now on every hooked sync under it fails
/// with EIO, and `image` (which must not exist) receives what the disk would
/// hold, the unsynced tails treated per `tail`.
pub fn cut(root: &Path, image: &Path, tail: Tail) -> io::Result<CutReport> {
    let mut machines = lock();
    let m = machines
        .iter_mut()
        .find(|m| m.root == root)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not plugged in"))?;
    m.cut = true;
    let m: &Machine = m;
    let mut build = Build {
        m,
        rng: SplitMix(match tail {
            Tail::Random(seed) => seed,
            _ => 0,
        }),
        tail,
        report: CutReport::default(),
    };
    build.dir(build.m.root_ino, root, image, 0)?;
    Ok(build.report)
}

struct Build<'a> {
    m: &'a Machine,
    rng: SplitMix,
    tail: Tail,
    report: CutReport,
}

impl Build<'_> {
    fn dir(&mut self, ino: u64, live: &Path, out: &Path, depth: usize) -> io::Result<()> {
        fs::create_dir(out)?;
        self.report.dirs += 1;
        let empty = Entries::new();
        let entries = self.m.dirs.get(&ino).unwrap_or(&empty);
        // Entries the live directory has that the image will not.
        if let Ok((_, now)) = list(live) {
            let lost = now.iter().filter(|(n, e)| entries.get(*n) != Some(e));
            self.report.entries_lost += lost.count() as u64;
        }
        for (name, &(child, kind)) in entries {
            let (live, out) = (live.join(name), out.join(name));
            match kind {
                Kind::Dir if depth < IMAGE_DEPTH_MAX => self.dir(child, &live, &out, depth + 1)?,
                Kind::Dir => {}
                Kind::File => self.file(child, &out)?,
            }
        }
        Ok(())
    }

    fn file(&mut self, ino: u64, out: &Path) -> io::Result<()> {
        let src = self.m.shadow.join(ino.to_string());
        let content = fs::read(&src)?;
        let synced = self.m.files.get(&ino).copied().unwrap_or(0);
        let synced = usize::try_from(synced).map_or(content.len(), |s| s.min(content.len()));
        let (durable, unsynced) = content.split_at(synced);
        let mut bytes = durable.to_vec();
        let tail = match self.tail {
            Tail::Random(_) => match self.rng.below(4) {
                0 => Tail::Drop,
                1 => Tail::Keep,
                2 => Tail::Garbage,
                _ => Tail::Random(0),
            },
            t => t,
        };
        // Overwrites no sync covered, newest first, so the oldest bytes win.
        let no_overwrites = Vec::new();
        let overwrites = self.m.overwrites.get(&ino).unwrap_or(&no_overwrites);
        for o in overwrites.iter().rev() {
            let Ok(pos) = usize::try_from(o.pos) else {
                continue;
            };
            let end = (pos + o.old.len()).min(bytes.len());
            if pos >= end {
                continue; // cut off by a later truncation
            }
            let kept = self.unsynced(tail, &mut bytes[pos..end]);
            let n = end - pos;
            bytes[pos + kept..end].copy_from_slice(&o.old[kept..n]);
        }
        let start = bytes.len();
        bytes.extend_from_slice(unsynced);
        let kept = self.unsynced(tail, &mut bytes[start..]);
        bytes.truncate(start + kept);
        self.report.files += 1;
        self.report.synced_bytes += synced as u64;
        fs::write(out, &bytes)?;
        let mode = fs::metadata(&src)?.permissions().mode();
        fs::set_permissions(out, fs::Permissions::from_mode(mode))
    }

    /// Applies `tail` to `written`, bytes no completed sync covers: returns
    /// how many of them (a prefix) stay; the caller drops or restores the
    /// rest. Garbage is written over them in place, and stays.
    fn unsynced(&mut self, tail: Tail, written: &mut [u8]) -> usize {
        let n = written.len();
        let kept = match tail {
            Tail::Drop => 0,
            Tail::Keep => n,
            Tail::Garbage => {
                written.iter_mut().for_each(|b| *b = self.rng.next() as u8);
                self.report.garbage_bytes += n as u64;
                self.report.unsynced_lost += n as u64;
                return n;
            }
            Tail::Random(_) => self.rng.below(n as u64 + 1) as usize,
        };
        self.report.unsynced_kept += kept as u64;
        self.report.unsynced_lost += (n - kept) as u64;
        kept
    }
}

/// A small seeded generator (splitmix64): the image depends only on the
/// seed and the recorded state.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    /// A plugged-in directory in a temporary one, with a new file `seg`
    /// in it whose directory entry is durable: (temp dir, root, image path
    /// for a cut, the file, its path). Unplug `root` when done.
    fn plugged_file() -> (tempfile::TempDir, PathBuf, PathBuf, File, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (root, shadow, image) = (
            tmp.path().join("root"),
            tmp.path().join("shadow"),
            tmp.path().join("image"),
        );
        plug_in(&root, &shadow).expect("plug in");
        let path = root.join("seg");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        crate::fsio::sync_dir(&root).expect("sync dir");
        (tmp, root, image, file, path)
    }

    /// Writes `data` at `pos` through the hooked positional write.
    fn write_at(file: &File, path: &Path, pos: u64, data: &[u8]) {
        crate::fsio::write_all_at(file, path, &mut [IoSlice::new(data)], pos).expect("write");
    }

    /// A file in a plugged-in directory holding 8 synced zeros; then
    /// `abcdefgh` written at 2 (6 bytes over synced ones, 2 past them) and,
    /// if `sync_again`, a second sync. Returns what the image of a cut with
    /// `tail` holds, and the cut's report.
    fn image_after_overwrite(tail: Tail, sync_again: bool) -> (Vec<u8>, CutReport) {
        let (_tmp, root, image, file, path) = plugged_file();
        write_at(&file, &path, 0, &[0u8; 8]);
        crate::fsio::sync_data(&file, &path).expect("sync");
        write_at(&file, &path, 2, b"abcdefgh");
        if sync_again {
            crate::fsio::sync_data(&file, &path).expect("sync");
        }
        let report = cut(&root, &image, tail).expect("cut");
        unplug(&root);
        (fs::read(image.join("seg")).expect("image"), report)
    }

    #[test]
    fn an_unsynced_overwrite_inside_the_synced_length_is_lost_or_kept_per_tail() {
        let (dropped, report) = image_after_overwrite(Tail::Drop, false);
        // The 6 overwritten zeros come back; the 2 bytes past the synced
        // length are an ordinary unsynced tail.
        assert_eq!(dropped, vec![0u8; 8]);
        assert_eq!(report.unsynced_lost, 8);
        let (kept, report) = image_after_overwrite(Tail::Keep, false);
        assert_eq!(kept, b"\0\0abcdefgh");
        assert_eq!(report.unsynced_kept, 8);
        let (garbage, report) = image_after_overwrite(Tail::Garbage, false);
        assert_eq!(garbage.len(), 10);
        assert_eq!(report.garbage_bytes, 8);
        assert_ne!(&garbage[2..], b"abcdefgh");
    }

    #[test]
    fn a_sync_after_the_overwrite_makes_it_durable() {
        let (image, report) = image_after_overwrite(Tail::Drop, true);
        assert_eq!(image, b"\0\0abcdefgh");
        assert_eq!(report.unsynced_lost, 0);
    }

    #[test]
    fn a_cut_below_the_synced_length_makes_what_is_written_there_again_unsynced() {
        let (_tmp, root, image, file, path) = plugged_file();
        write_at(&file, &path, 0, b"durable!");
        crate::fsio::sync_data(&file, &path).expect("sync");
        // Overwritten (recorded), then cut below it and written again.
        write_at(&file, &path, 6, b"XY");
        crate::fsio::set_len(&file, &path, 4).expect("cut");
        write_at(&file, &path, 4, b"new!");
        let report = cut(&root, &image, Tail::Drop).expect("cut power");
        unplug(&root);
        assert_eq!(fs::read(image.join("seg")).expect("image"), b"dura");
        assert_eq!(report.unsynced_lost, 4);
    }

    #[test]
    fn the_oldest_bytes_of_two_unsynced_overwrites_come_back() {
        let (_tmp, root, image, file, path) = plugged_file();
        write_at(&file, &path, 0, b"abcdef");
        crate::fsio::sync_data(&file, &path).expect("sync");
        write_at(&file, &path, 1, b"XX");
        write_at(&file, &path, 2, b"YYY");
        cut(&root, &image, Tail::Drop).expect("cut power");
        unplug(&root);
        assert_eq!(fs::read(image.join("seg")).expect("image"), b"abcdef");
    }

    #[test]
    fn a_random_tail_keeps_a_prefix_of_each_overwrite() {
        for seed in 0..64 {
            let (image, _) = image_after_overwrite(Tail::Random(seed), false);
            assert!(image.len() >= 8 && image.len() <= 10, "seed {seed}");
            assert_eq!(&image[..2], b"\0\0", "seed {seed}");
            // Inside the synced length: a prefix of the new bytes, then the
            // old zeros (or garbage in place of all of them).
            let new = b"abcdef";
            let region = &image[2..8];
            let garbage = region.iter().zip(new).any(|(b, n)| *b != 0 && b != n);
            if !garbage {
                let kept = region.iter().take_while(|&&b| b != 0).count();
                assert_eq!(&region[..kept], &new[..kept], "seed {seed}");
                assert!(
                    region[kept..].iter().all(|&b| b == 0),
                    "seed {seed}: {image:?}"
                );
            }
        }
    }
}
