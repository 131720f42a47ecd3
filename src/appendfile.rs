//! Append-only line files (the report and the journal): open for appending after cutting a
//! line a crash left half-written, and sync to disk in groups. A leaf module.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

/// Opens a line-oriented file to append to, positioned at its end, after dropping a
/// partial last line (one a crash cut short).
pub fn open(path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    cut_partial_line(&mut file)?;
    file.seek(SeekFrom::End(0))?;
    Ok(file)
}

/// If the file does not end with a newline, drops the partial last line.
pub fn cut_partial_line(file: &mut File) -> io::Result<()> {
    let end = whole_lines_len(file)?;
    if end != file.metadata()?.len() {
        file.set_len(end)?;
    }
    Ok(())
}

/// The length of the file's whole lines: up to and including its last newline.
pub fn whole_lines_len(file: &mut File) -> io::Result<u64> {
    let mut pos = file.metadata()?.len();
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let n = (pos as usize).min(buf.len());
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(pos + i as u64 + 1);
        }
    }
    Ok(0)
}

/// Syncs a directory, so that a file just created or renamed in it keeps its name after a
/// power cut. Best effort, as SQLite does it: some file systems (FUSE, network shares)
/// refuse to open or sync a directory, and that must not stop a run whose files are
/// already in place.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Sync to disk at least this often while lines arrive: a power cut loses at most about a
/// second of outcomes, and one `fsync` per second costs nothing at any rate we send.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// When the next group sync is due: every [`SYNC_EVERY`], or after `max_lines` lines.
#[derive(Debug)]
pub struct GroupSync {
    last: Instant,
    unsynced: usize,
    max_lines: usize,
}

impl GroupSync {
    pub fn new(max_lines: usize) -> Self {
        GroupSync {
            last: Instant::now(),
            unsynced: 0,
            max_lines,
        }
    }

    /// One more line written to the OS.
    pub fn wrote(&mut self) {
        self.unsynced += 1;
    }

    /// Whether unsynced lines are waiting.
    pub fn dirty(&self) -> bool {
        self.unsynced > 0
    }

    /// Whether the group is due for a sync.
    pub fn due(&self) -> bool {
        self.unsynced >= self.max_lines || (self.dirty() && self.last.elapsed() >= SYNC_EVERY)
    }

    /// The lines written so far are on disk.
    pub fn synced(&mut self) {
        self.unsynced = 0;
        self.last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_torn_last_line_is_cut_and_a_whole_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for (before, after) in [
            ("a\nb\n", "a\nb\n"),
            ("a\nb", "a\n"),
            ("torn", ""),
            ("", ""),
        ] {
            std::fs::write(&path, before).unwrap();
            let mut f = open(&path).unwrap();
            f.write_all(b"").unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), after, "{before:?}");
        }
    }

    #[test]
    fn a_group_is_due_after_max_lines() {
        let mut g = GroupSync::new(2);
        assert!(!g.due());
        g.wrote();
        assert!(!g.due());
        g.wrote();
        assert!(g.due());
        g.synced();
        assert!(!g.due() && !g.dirty());
    }
}
