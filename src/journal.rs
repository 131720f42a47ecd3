//! The send journal beside the report: which campaign a report belongs to, every send that
//! started (written before its request leaves), and the lock that lets one run at a time
//! use the report.
//!
//! The report records outcomes; the journal records intentions. After a crash, a recipient
//! in the journal without a row in the report was in flight: its message may or may not have
//! reached WeChat, so resume records it `unknown` instead of sending it again (an Official
//! Account template message with `client_msg_id` still inside WeChat's de-duplication window is the
//! exception: re-sending it is safe). The first line is a JSON header that ties the journal,
//! and so the report, to one campaign, one recipient list and one run id.
//!
//! A run holds an exclusive OS lock ([`Lock`], `flock` on Unix) on the journal while it
//! sends, so a second run of the same report refuses at once instead of taking the first
//! one's live sends for a dead run's. A run resuming a report takes the lock before it reads
//! the report; a run starting one (fresh, or after `--restart`) claims it when it creates the
//! journal, which appears already locked, and a run that raced it to the same fresh start
//! finds it taken and stops before touching anything ([`Error::Claimed`]). The OS drops the
//! lock when the holder dies (kill -9, power cut): a crash never leaves a stale lock behind.
//!
//! Lines are written with one `write` each (a killed process loses nothing written) and
//! synced to disk in groups ([`appendfile::GroupSync`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::appendfile::{self, GroupSync};
use crate::dispatch::Ledger;
use crate::recipients::key;

/// The third field of a line that releases a recipient from doubt.
const RELEASED: &str = "released";

/// Where a run's messages go. The journal records it, so that a report is never resumed
/// against the other kind of API, and it picks the default report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    WeChat,
    /// A sandbox on this machine (`--sandbox`, or an API base on 127.0.0.1).
    Sandbox,
    DryRun,
}

impl RunKind {
    /// The name a journal records, so a report is never resumed against the other kind.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::WeChat => "wechat",
            RunKind::Sandbox => "sandbox",
            RunKind::DryRun => "dry-run",
        }
    }
}

/// What a report belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub wxpush_journal: u32,
    pub campaign: String,
    pub template_id: String,
    /// Fingerprint of the recipients file's bytes (xxh3-128, hex).
    pub recipients: String,
    /// Stable across resumes, new on `--restart`: part of every `client_msg_id`.
    pub run_id: String,
    /// `wechat` or `sandbox` ([`RunKind::as_str`]).
    pub api: String,
    /// The path of the send endpoint (`/cgi-bin/message/template/send`, …): a report of
    /// template messages is never resumed as subscribe notifications. Absent in journals
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl Header {
    pub fn new(
        campaign: &str,
        template_id: &str,
        recipients: String,
        api: &str,
        endpoint: &str,
    ) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Header {
            wxpush_journal: 1,
            campaign: campaign.to_owned(),
            template_id: template_id.to_owned(),
            recipients,
            run_id: format!("{:x}", now.as_micros()),
            api: api.to_owned(),
            endpoint: Some(endpoint.to_owned()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("journal {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("journal {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// Another run holds the journal's lock.
    #[error("another wxpush run{} is sending with {} right now", holder(*pid), path.display())]
    Locked { path: PathBuf, pid: Option<u32> },
    /// Another run created the journal after this one decided to start it.
    #[error("another wxpush run{} started {} while this one was getting ready; nothing was sent", holder(*pid), path.display())]
    Claimed { path: PathBuf, pid: Option<u32> },
}

fn holder(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (process {p})")).unwrap_or_default()
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The exclusive lock on an existing journal, held from before its report is read until
/// the run ends (or until `--restart` sets the journal aside and claims a new one).
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: File,
}

impl Lock {
    /// Locks the journal at `path`; `None` if there is none. Another run holding it is
    /// [`Error::Locked`], unless `wait`, which blocks until that run ends.
    ///
    /// The lock is on the file, the path is what runs share: a journal renamed while this
    /// run waited (another run's `--restart`) is not the journal any more, so the lock is
    /// taken again on whatever the path now names.
    pub fn acquire(path: &Path, wait: bool) -> Result<Option<Lock>, Error> {
        loop {
            let file = match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_at(path)(e)),
            };
            let locked = if wait {
                file.lock().map_err(TryLockError::Error)
            } else {
                file.try_lock()
            };
            match locked {
                Ok(()) if same_file(&file, path) => {
                    return Ok(Some(Lock {
                        path: path.to_owned(),
                        file,
                    }));
                }
                // Renamed or replaced while this run waited: look again.
                Ok(()) => continue,
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        path: path.to_owned(),
                        pid: lock_holder(&file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_at(path)(e)),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// The process holding a lock on `file`, where the OS tells (Linux: `/proc/locks`).
fn lock_holder(file: &File) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().ok()?;
        let dev = meta.dev();
        // Linux's encoding of a device number (major:minor), as /proc/locks prints it.
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        locks.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // `1: FLOCK  ADVISORY  WRITE 6779 fe:00:10010900 0 EOF`
            (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str()))
                .then(|| f.get(4)?.parse().ok())
                .flatten()
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// The journal path of a report: `reports/x.csv` → `reports/x.journal`.
pub fn path_for(report: &Path) -> PathBuf {
    report.with_extension("journal")
}

/// Fingerprint of a file's bytes, to notice a recipients list changed between runs.
pub fn fingerprint(path: &Path) -> io::Result<String> {
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    let mut file = BufReader::with_capacity(1 << 16, File::open(path)?);
    loop {
        let buf = file.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        hasher.update(buf);
        let n = buf.len();
        file.consume(n);
    }
    Ok(format!("{:032x}", hasher.digest128()))
}

/// A send the journal says started, for which the report has no outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDoubt {
    pub openid: String,
    pub row: u64,
    /// When its first request left.
    pub started: SystemTime,
}

fn header_line(path: &Path, header: &Header) -> Result<String, Error> {
    let json = serde_json::to_string(header).map_err(|e| Error::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(json + "\n")
}

/// What a journal's lines say before the sends are looked at: its header in force (the last
/// header line: the first line is one, `--resume-changed` appends another) and whether it
/// records any send. One pass over the file.
#[derive(Debug)]
pub struct Head {
    /// `None`: the journal holds no whole line, so a run stopped before its header was
    /// written (and so before any send).
    pub header: Option<Header>,
    pub records_sends: bool,
}

/// Reads the [`Head`] of the journal at `path`. A journal with whole lines but no valid
/// header is [`Error::Invalid`].
pub fn head(path: &Path) -> Result<Head, Error> {
    let io_err = io_at(path);
    let mut file = File::open(path).map_err(&io_err)?;
    let mut last = None;
    let mut records_sends = false;
    for line in BufReader::new(&mut file).lines() {
        let line = line.map_err(&io_err)?;
        if line.starts_with('{') {
            last = Some(line);
        } else if line.split('\t').count() == 3 {
            records_sends = true;
        }
    }
    let header = match serde_json::from_str(&last.unwrap_or_default()) {
        Ok(h) => Some(h),
        Err(_) if appendfile::whole_lines_len(&mut file).map_err(&io_err)? == 0 => None,
        Err(e) => {
            return Err(Error::Invalid {
                path: path.to_owned(),
                message: format!("has no valid header line ({e})"),
            });
        }
    };
    Ok(Head {
        header,
        records_sends,
    })
}

/// The sends in the journal at `path` for which `has_outcome` is false and that were not
/// released since they last started, each once, in journal order. A partial last line (a
/// crash mid-write) is ignored.
pub fn in_doubt(path: &Path, has_outcome: impl Fn(&str) -> bool) -> Result<Vec<InDoubt>, Error> {
    let io_err = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    // Only recipients without an outcome are kept: few, unless the report was lost.
    // key → (the send, released since it last started)
    let mut doubt: indexmap::IndexMap<u128, (InDoubt, bool)> = indexmap::IndexMap::new();
    let reader = BufReader::new(File::open(path).map_err(io_err)?);
    for line in reader.lines() {
        let line = line.map_err(io_err)?;
        let mut parts = line.split('\t');
        let (Some(openid), Some(row), Some(at), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if at == RELEASED {
            if let Some(d) = doubt.get_mut(&key(openid)) {
                d.1 = true;
            }
            continue;
        }
        let (Ok(row), Ok(at)) = (row.parse(), at.parse::<u64>()) else {
            continue;
        };
        if has_outcome(openid) {
            continue;
        }
        // The first start counts: the client_msg_id window opened then.
        let entry = doubt.entry(key(openid)).or_insert_with(|| {
            // A start in the future is a damaged line, or the clock was set back: when it
            // really was is unknown, so it counts as long ago (its client_msg_id window
            // closed, never a reason to send again).
            let at = UNIX_EPOCH + Duration::from_millis(at);
            let started = if at > SystemTime::now() {
                UNIX_EPOCH
            } else {
                at
            };
            (
                InDoubt {
                    openid: openid.to_owned(),
                    row,
                    started,
                },
                false,
            )
        });
        entry.1 = false;
    }
    Ok(doubt
        .into_values()
        .filter(|(_, released)| !released)
        .map(|(d, _)| d)
        .collect())
}

/// An open journal, appended to by every worker. It holds the run's lock until dropped.
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    sync: GroupSync,
}

impl Journal {
    /// Starts a journal with `header`: over the locked `lock` (a journal that records no
    /// send), or as a new file at `path`, which fails with [`Error::Claimed`] if another run
    /// created one since this run looked. A new journal appears at `path` whole and already
    /// locked: it is written and locked under a temporary name, then linked into place.
    pub fn create(path: &Path, lock: Option<Lock>, header: &Header) -> Result<Self, Error> {
        let io_err = io_at(path);
        let line = header_line(path, header)?;
        let file = match lock {
            Some(lock) => {
                let mut file = lock.file;
                file.set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
                    .and_then(|()| file.write_all(line.as_bytes()))
                    .and_then(|()| file.sync_data())
                    .map_err(&io_err)?;
                file
            }
            None => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                if let Some(dir) = dir {
                    std::fs::create_dir_all(dir).map_err(&io_err)?;
                }
                let file = Self::claim(path, &line)?;
                // The new name is on disk too, not only the file's bytes.
                appendfile::sync_dir(dir.unwrap_or(Path::new(".")));
                file
            }
        };
        Ok(Journal::over(path, file))
    }

    /// A new journal at `path` holding `line`, locked: written under a temporary name of
    /// this run's own, then linked into place, so that no other run ever sees it empty or
    /// unlocked. Where the file system has no hard links (exFAT, some network shares), it is
    /// created in place instead (a run that sees it before its header is written treats it
    /// as cut short, `resume::read`).
    fn claim(path: &Path, line: &str) -> Result<File, Error> {
        let io_err = io_at(path);
        let (tmp, file) = loop {
            let tmp = path.with_extension(format!("journal.{:016x}.tmp", rand::random::<u64>()));
            match Self::make_locked(&tmp, line) {
                Ok(file) => break (tmp, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(e)),
            }
        };
        let linked = std::fs::hard_link(&tmp, path);
        // Only the file this run created, whatever happened.
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(claimed(path)),
            Err(_) => {
                drop(file);
                Self::make_locked(path, line).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => claimed(path),
                    _ => io_err(e),
                })
            }
        }
    }

    /// A new file at `path` holding `line`, locked and synced.
    fn make_locked(path: &Path, line: &str) -> io::Result<File> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.try_lock().map_err(io::Error::other)?;
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        Ok(file)
    }

    /// Continues the locked journal, first cutting a partial last line. A `changed` header
    /// (the recipients changed, `--resume-changed`) is appended: the last header line is the
    /// one in force.
    pub fn append(lock: Lock, changed: Option<&Header>) -> Result<Self, Error> {
        let Lock { path, mut file } = lock;
        appendfile::cut_partial_line(&mut file)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
            .map_err(io_at(&path))?;
        let j = Journal::over(&path, file);
        if let Some(header) = changed {
            j.append_line(&header_line(&path, header)?)?;
        }
        Ok(j)
    }

    fn over(path: &Path, file: File) -> Self {
        Journal {
            path: path.to_owned(),
            inner: Mutex::new(Inner {
                file,
                // Lines are synced by time only: a send is journaled before it leaves, and
                // one fsync per second bounds what a power cut can lose.
                sync: GroupSync::new(usize::MAX),
            }),
        }
    }

    /// Records that the first request for `openid` is about to leave. Returns only once the
    /// line is written to the OS.
    pub fn started(&self, openid: &str, row: u64) -> Result<(), Error> {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.append_line(&format!("{openid}\t{row}\t{at}\n"))
    }

    /// Records that every request made for `openid` was answered and none delivered it: it
    /// is not in doubt, and the next run sends it (the run stopped while it waited to retry,
    /// or `--retry-failed` dropped its `failed` row).
    pub fn released(&self, openid: &str, row: u64) -> Result<(), Error> {
        self.append_line(&format!("{openid}\t{row}\t{RELEASED}\n"))
    }

    /// One `write` per line under a std `Mutex`, on the worker that sends next: deliberate,
    /// since the line must be with the OS before the request leaves; the write is a copy
    /// into the page cache, and the benchmarks keep up at 20,000/s (BENCHMARKS.md).
    fn append_line(&self, line: &str) -> Result<(), Error> {
        // A poisoned lock means another worker panicked mid-write; the file is still usable
        // (a partial line is ignored by `in_doubt`).
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let io_err = io_at(&self.path);
        inner.file.write_all(line.as_bytes()).map_err(&io_err)?;
        inner.sync.wrote();
        if inner.sync.due() {
            inner.file.sync_data().map_err(&io_err)?;
            inner.sync.synced();
        }
        Ok(())
    }

    /// Syncs what is written to disk.
    pub fn finish(&self) -> Result<(), Error> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.sync.dirty() {
            inner.file.sync_data().map_err(io_at(&self.path))?;
            inner.sync.synced();
        }
        Ok(())
    }
}

/// `path` exists although this run found no journal there: another run created it, unless
/// it is not a file at all (a dangling link, a directory), which is in the way.
fn claimed(path: &Path) -> Error {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Error::Claimed {
            path: path.to_owned(),
            pid: File::open(path).ok().and_then(|f| lock_holder(&f)),
        },
        _ => Error::Invalid {
            path: path.to_owned(),
            message: "is in the way: it is not a journal file (a dangling link?); move it away"
                .into(),
        },
    }
}

impl Ledger for Journal {
    fn started(&self, openid: &str, row: u64) -> io::Result<()> {
        Journal::started(self, openid, row).map_err(io::Error::other)
    }
    fn released(&self, openid: &str, row: u64) -> io::Result<()> {
        Journal::released(self, openid, row).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_sends_are_read_back_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        let header = Header::new("c", "T", "abc".into(), "wechat", "/e");
        let j = Journal::create(&path, None, &header).unwrap();
        j.started("o_1", 1).unwrap();
        j.started("o_2", 2).unwrap();
        j.finish().unwrap();
        drop(j);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("o_3\t3");
        std::fs::write(&path, text).unwrap();
        assert_eq!(head(&path).unwrap().header, Some(header.clone()));
        let doubt = in_doubt(&path, |o| o == "o_1").unwrap();
        assert_eq!(doubt.len(), 1);
        assert_eq!((doubt[0].openid.as_str(), doubt[0].row), ("o_2", 2));

        let lock = || Lock::acquire(&path, false).unwrap().unwrap();
        let j = Journal::append(lock(), None).unwrap();
        j.started("o_4", 4).unwrap();
        j.started("o_2", 2).unwrap();
        j.started("o_5", 5).unwrap();
        j.released("o_5", 5).unwrap();
        drop(j);
        let doubt: Vec<_> = in_doubt(&path, |_| false)
            .unwrap()
            .into_iter()
            .map(|d| d.openid)
            .collect();
        assert_eq!(doubt, ["o_1", "o_2", "o_4"]);

        // A start dated in the year 10000 (a damaged line) counts as long ago.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("o_6\t6\t253402300800000\n");
        std::fs::write(&path, text).unwrap();
        let late = in_doubt(&path, |o| o != "o_6").unwrap();
        assert_eq!(late[0].started, UNIX_EPOCH);

        // A changed header is appended and is then the one in force.
        let changed = Header {
            recipients: "def".into(),
            ..header
        };
        drop(Journal::append(lock(), Some(&changed)).unwrap());
        assert_eq!(head(&path).unwrap().header, Some(changed));
        assert_eq!(in_doubt(&path, |_| false).unwrap().len(), 4);
    }

    #[test]
    fn one_run_at_a_time_holds_a_journal_and_a_dead_run_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        assert!(
            Lock::acquire(&path, false).unwrap().is_none(),
            "no journal, no lock"
        );
        let header = Header::new("c", "T", "abc".into(), "wechat", "/e");
        let j = Journal::create(&path, None, &header).unwrap();
        match Lock::acquire(&path, false) {
            Err(Error::Locked { pid, .. }) => {
                if cfg!(target_os = "linux") {
                    assert_eq!(pid, Some(std::process::id()));
                }
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        // A second fresh start of the same report is refused too.
        assert!(matches!(
            Journal::create(&path, None, &header),
            Err(Error::Claimed { .. })
        ));
        drop(j);
        let lock = Lock::acquire(&path, false).unwrap().unwrap();
        assert!(!head(lock.path()).unwrap().records_sends);
        let j = Journal::create(&path, Some(lock), &header).unwrap();
        j.started("o_1", 1).unwrap();
        drop(j);
        assert!(head(&path).unwrap().records_sends);
        assert_eq!(head(&path).unwrap().header, Some(header.clone()));
    }

    #[test]
    fn fingerprints_differ_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "openid\no_1\n").unwrap();
        let fa = fingerprint(&a).unwrap();
        std::fs::write(&a, "openid\no_2\n").unwrap();
        assert_ne!(fa, fingerprint(&a).unwrap());
        assert_eq!(fa.len(), 32);
    }
}
