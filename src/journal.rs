//! The send journal beside the report: which campaign a report belongs to, and every send
//! that started, written before its request leaves.
//!
//! The report records outcomes; the journal records intentions. After a crash, a recipient
//! in the journal without a row in the report was in flight: its message may or may not have
//! reached WeChat, so resume records it `unknown` instead of sending it again (an Official
//! Account message with `client_msg_id` still inside WeChat's de-duplication window is the
//! exception: re-sending it is safe). The first line is a JSON header that ties the journal,
//! and so the report, to one campaign, one recipient list and one run id.
//!
//! Lines are written with one `write` each (a killed process loses nothing written) and
//! synced to disk in groups (`SYNC_EVERY`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::recipients::key;

/// The third field of a line that releases a recipient from doubt.
const RELEASED: &str = "released";
/// Sync the journal to disk at most this often (a group commit).
const SYNC_EVERY: Duration = Duration::from_secs(1);

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
    /// `wechat` or `sandbox` ([`crate::campaign::RunKind::as_str`]).
    pub api: String,
}

impl Header {
    pub fn new(campaign: &str, template_id: &str, recipients: String, api: &str) -> Self {
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("journal {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("journal {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
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
#[derive(Debug, Clone)]
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

/// The header in force in the journal at `path`: its last header line (the first line is
/// one; `--resume-changed` appends another).
pub fn header(path: &Path) -> Result<Header, Error> {
    let io_err = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut last = None;
    for line in BufReader::new(File::open(path).map_err(io_err)?).lines() {
        let line = line.map_err(io_err)?;
        if line.starts_with('{') {
            last = Some(line);
        }
    }
    let line = last.unwrap_or_default();
    serde_json::from_str(&line).map_err(|e| Error::Invalid {
        path: path.to_owned(),
        message: format!("has no valid header line ({e})"),
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
            let started = UNIX_EPOCH + Duration::from_millis(at);
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

/// An open journal, appended to by every worker.
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    last_sync: Instant,
    dirty: bool,
}

impl Journal {
    /// Starts a journal with `header`, replacing any file at `path`.
    pub fn create(path: &Path, header: &Header) -> Result<Self, Error> {
        let mut file = File::create(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let line = header_line(path, header)?;
        let j = Journal::over(
            path,
            file.try_clone().map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?,
        );
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(j)
    }

    /// Continues the journal at `path`, first cutting a partial last line. A `changed`
    /// header (the recipients changed, `--resume-changed`) is appended: the last header line
    /// is the one in force.
    pub fn append(path: &Path, changed: Option<&Header>) -> Result<Self, Error> {
        let file = crate::report::open_append(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let j = Journal::over(path, file);
        if let Some(header) = changed {
            j.append_line(&header_line(path, header)?)?;
        }
        Ok(j)
    }

    fn over(path: &Path, file: File) -> Self {
        Journal {
            path: path.to_owned(),
            inner: Mutex::new(Inner {
                file,
                last_sync: Instant::now(),
                dirty: false,
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

    fn append_line(&self, line: &str) -> Result<(), Error> {
        // A poisoned lock means another worker panicked mid-write; the file is still usable
        // (a partial line is ignored by `in_doubt`).
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let io_err = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        inner.file.write_all(line.as_bytes()).map_err(io_err)?;
        inner.dirty = true;
        if inner.last_sync.elapsed() >= SYNC_EVERY {
            inner.file.sync_data().map_err(io_err)?;
            inner.last_sync = Instant::now();
            inner.dirty = false;
        }
        Ok(())
    }

    /// Records that every request made for `openid` was answered and none delivered it (the
    /// run stopped while it waited to retry): it is not in doubt, and the next run sends it.
    pub fn released(&self, openid: &str, row: u64) -> Result<(), Error> {
        self.append_line(&format!("{openid}\t{row}\t{RELEASED}\n"))
    }

    /// Syncs what is written to disk.
    pub fn finish(&self) -> Result<(), Error> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.dirty {
            inner.file.sync_data().map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
            inner.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_sends_are_read_back_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        let header = Header::new("c", "T", "abc".into(), "wechat");
        let j = Journal::create(&path, &header).unwrap();
        j.started("o_1", 1).unwrap();
        j.started("o_2", 2).unwrap();
        j.finish().unwrap();
        drop(j);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("o_3\t3");
        std::fs::write(&path, text).unwrap();
        assert_eq!(self::header(&path).unwrap(), header);
        let doubt = in_doubt(&path, |o| o == "o_1").unwrap();
        assert_eq!(doubt.len(), 1);
        assert_eq!((doubt[0].openid.as_str(), doubt[0].row), ("o_2", 2));

        let j = Journal::append(&path, None).unwrap();
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

        // A changed header is appended and is then the one in force.
        let changed = Header {
            recipients: "def".into(),
            ..header
        };
        drop(Journal::append(&path, Some(&changed)).unwrap());
        assert_eq!(self::header(&path).unwrap(), changed);
        assert_eq!(in_doubt(&path, |_| false).unwrap().len(), 3);
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
