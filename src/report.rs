//! The report: one CSV row per recipient, appended and flushed as outcomes arrive.
//!
//! The report is also the journal that resume reads: a recipient with a row has an outcome
//! and is never sent again. Rows are flushed to the OS after every batch of outcomes (a
//! killed process loses nothing already written) and synced to disk in groups
//! ([`appendfile::GroupSync`]). A half-written last line (power loss) is cut off before
//! appending.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::appendfile::{self, GroupSync};
use crate::outcome::{self, Outcome, Status};
use crate::recipients::key;
use crate::timezone::UtcOffset;

/// The columns every report starts with; later columns are extra.
pub const COLUMNS: [&str; 9] = [
    "openid",
    "status",
    "errcode",
    "errmsg",
    "msgid",
    "attempts",
    "sent_at",
    "latency_ms",
    "row",
];
/// The extra column of a dry run: the exact JSON body that would be POSTed.
pub const PAYLOAD: &str = "payload";
/// A report starts with a UTF-8 byte-order mark: without it, Excel reads UTF-8 as the
/// system's code page (Chinese errmsgs and openids garbled). Every CSV reader skips it.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Sync to disk after this many rows even within [`appendfile::SYNC_EVERY`]: at high rates
/// a power cut then loses at most this many outcomes.
const SYNC_ROWS: usize = 1000;
/// Rows are buffered up to this many bytes between flushes.
const BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("report {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("report {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Appends outcome rows to a report file.
pub struct Writer {
    path: PathBuf,
    csv: csv::Writer<BufWriter<File>>,
    payload: bool,
    offset: UtcOffset,
    sync: GroupSync,
    tally: Tally,
}

/// Counts of one run, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub by_status: BTreeMap<Status, u64>,
    /// Failed and unknown rows by errcode (`None`: no errcode, e.g. a network error), with
    /// the first errmsg seen.
    pub problems: BTreeMap<Option<i64>, (u64, String)>,
    /// Requests made for the rows written (retries included).
    pub attempts: u64,
    /// `failed` rows that `--retry-failed` sends again ([`retryable`]).
    pub retryable: u64,
}

impl Tally {
    pub fn count(&self, s: Status) -> u64 {
        self.by_status.get(&s).copied().unwrap_or(0)
    }

    /// Recipients given an outcome (sent, failed or unknown): what a `--limit` counts.
    pub fn outcomes(&self) -> u64 {
        self.count(Status::Sent) + self.count(Status::Failed) + self.count(Status::Unknown)
    }
}

impl Writer {
    /// Starts a new report at `path` (parent directories created), replacing any file there.
    /// Times are written at `offset`.
    pub fn create(path: &Path, payload: bool, offset: UtcOffset) -> Result<Self, Error> {
        let io_err = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = File::create(path).map_err(io_err)?;
        // Into the buffer, so that the BOM and the header reach the file in one write.
        let mut buffered = BufWriter::with_capacity(BUFFER, file);
        io::Write::write_all(&mut buffered, BOM).map_err(io_err)?;
        let mut w = Self::over(path, buffered, payload, offset);
        let mut header: Vec<&str> = COLUMNS.to_vec();
        if payload {
            header.push(PAYLOAD);
        }
        w.csv.write_record(&header).map_err(|e| w.csv_err(e))?;
        w.flush()?;
        Ok(w)
    }

    /// Continues the report at `path`, which [`read`] has checked.
    pub fn append(path: &Path, offset: UtcOffset) -> Result<Self, Error> {
        let file = appendfile::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::over(
            path,
            BufWriter::with_capacity(BUFFER, file),
            false,
            offset,
        ))
    }

    fn over(path: &Path, file: BufWriter<File>, payload: bool, offset: UtcOffset) -> Self {
        Writer {
            path: path.to_owned(),
            csv: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(file),
            payload,
            offset,
            sync: GroupSync::new(SYNC_ROWS),
            tally: Tally::default(),
        }
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Buffers one row; [`Writer::flush`] makes it durable.
    pub fn write(&mut self, o: &Outcome) -> Result<(), Error> {
        let errcode = o.errcode.map(|c| c.to_string()).unwrap_or_default();
        let msgid = o.msgid.map(as_text).unwrap_or_default();
        let attempts = o.attempts.to_string();
        let sent_at = o
            .sent_at
            .map(|t| self.offset.rfc3339_millis(t))
            .unwrap_or_default();
        let latency = o
            .latency
            .map(|l| l.as_millis().to_string())
            .unwrap_or_default();
        let row = o.row.to_string();
        let errmsg = one_line(&o.report_errmsg());
        let mut fields: Vec<&str> = vec![
            &o.openid,
            o.status.as_str(),
            &errcode,
            &errmsg,
            &msgid,
            &attempts,
            &sent_at,
            &latency,
            &row,
        ];
        let payload;
        if self.payload {
            payload = o
                .payload
                .as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            fields.push(&payload);
        }
        self.csv
            .write_record(&fields)
            .map_err(|e| self.csv_err(e))?;
        self.sync.wrote();
        *self.tally.by_status.entry(o.status).or_default() += 1;
        self.tally.attempts += u64::from(o.attempts);
        let refused_for_the_campaign = o
            .errcode
            .is_some_and(crate::wechat::errcode::suspicious_when_repeated);
        self.tally.retryable +=
            u64::from(o.status == Status::Failed && (o.gave_up || refused_for_the_campaign));
        if matches!(o.status, Status::Failed | Status::Unknown) {
            let entry = self
                .tally
                .problems
                .entry(o.errcode)
                .or_insert_with(|| (0, errmsg));
            entry.0 += 1;
        }
        Ok(())
    }

    /// Hands buffered rows to the OS, and syncs them to disk if the group is due.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.csv.flush().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        if self.sync.due() {
            self.sync()?;
        }
        Ok(())
    }

    /// Flushes and syncs everything written so far.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.csv.flush().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        self.sync()
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.csv
            .get_ref()
            .get_ref()
            .sync_data()
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.sync.synced();
        Ok(())
    }

    fn csv_err(&self, e: csv::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        }
    }
}

/// Report cells are one line each, so a report opens cleanly in a spreadsheet.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A msgid as a spreadsheet's text: `="3717005636572528642"`. Written as a bare number,
/// Excel shows 3.71701E+18 and keeps 15 of its 19 digits.
fn as_text(msgid: u64) -> String {
    format!("=\"{msgid}\"")
}

/// The msgid in a cell that [`as_text`] wrote (or a bare one, as older reports have it).
fn from_text(cell: &str) -> &str {
    cell.strip_prefix("=\"")
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(cell)
}

/// A report row named by its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRef {
    pub openid: String,
    pub row: u64,
}

/// What an existing report says is done.
#[derive(Debug, Default)]
pub struct Done {
    /// Openids with an outcome (sent, failed or unknown).
    openids: HashSet<u128>,
    /// Rows already reported `skipped` (repeated openids).
    skipped_rows: HashSet<u64>,
    /// Rows in the report.
    pub rows: u64,
    pub by_status: BTreeMap<Status, u64>,
    /// Rows recorded `unknown`: their message may have been delivered.
    pub unknown: Vec<RowRef>,
    /// `failed` rows that `--retry-failed` sends again ([`retryable`]).
    pub retryable: Vec<RowRef>,
}

impl Done {
    pub fn has_openid(&self, openid: &str) -> bool {
        self.openids.contains(&key(openid))
    }
    /// Counts `openid` as done (its outcome is about to be written).
    pub fn insert(&mut self, openid: &str) {
        self.openids.insert(key(openid));
    }
    /// Counts `openid` as not done (its row is about to be dropped).
    pub fn remove(&mut self, openid: &str) {
        self.openids.remove(&key(openid));
    }
    pub fn has_skipped_row(&self, row: u64) -> bool {
        self.skipped_rows.contains(&row)
    }

    /// Counts one row of the report.
    pub fn add(&mut self, at: RowRef, status: Status, retryable: bool) {
        match status {
            Status::Skipped => {
                self.skipped_rows.insert(at.row);
            }
            Status::Sent | Status::Failed | Status::Unknown => {
                self.openids.insert(key(&at.openid));
            }
            Status::DryRun => {}
        }
        if status == Status::Unknown {
            self.unknown.push(at);
        } else if status == Status::Failed && retryable {
            self.retryable.push(at);
        }
        self.rows += 1;
        *self.by_status.entry(status).or_default() += 1;
    }
}

/// Which rows [`drop_rows`] removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropRows {
    /// Rows recorded `unknown`.
    pub unknown: bool,
    /// `failed` rows that `--retry-failed` sends again ([`retryable`]).
    pub retryable: bool,
}

impl DropRows {
    fn drops(self, status: Option<Status>, errcode: &str, errmsg: &str) -> bool {
        match status {
            Some(Status::Unknown) => self.unknown,
            Some(Status::Failed) => self.retryable && retryable(errcode, errmsg),
            _ => false,
        }
    }
}

/// Whether a `failed` row (its `errcode` and `errmsg` columns) is worth sending again: its
/// retries ran out (WeChat busy, the network down), or WeChat refused it for a reason that
/// may be the campaign's, fixed since (47003 data, 50002; see
/// [`crate::wechat::errcode::suspicious_when_repeated`]). Either way every attempt was answered and none
/// delivered: a `failed` row is never one whose answer was lost (that is `unknown`).
pub fn retryable(errcode: &str, errmsg: &str) -> bool {
    outcome::is_gave_up(errmsg)
        || errcode
            .parse()
            .is_ok_and(crate::wechat::errcode::suspicious_when_repeated)
}

/// Removes rows of the report at `path` (so those recipients are sent again), by writing
/// the rest to a temporary file that then replaces it. Returns how many.
pub fn drop_rows(path: &Path, which: DropRows) -> Result<u64, Error> {
    let io_err = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let csv_err = |e: csv::Error| Error::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let tmp = path.with_extension("csv.tmp");
    // Whole lines only: a torn last line is no row (`read`), and is not made one here.
    let mut file = File::open(path).map_err(io_err)?;
    let whole = appendfile::whole_lines_len(&mut file).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut head = [0; 3];
    let had_bom = file.read_exact(&mut head).is_ok() && head == BOM;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    // The reader skips the BOM; the rewritten report keeps it.
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(file.take(whole));
    let mut out = BufWriter::new(File::create(&tmp).map_err(io_err)?);
    if had_bom {
        io::Write::write_all(&mut out, BOM).map_err(io_err)?;
    }
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
    let mut dropped = 0;
    let mut rec = csv::StringRecord::new();
    let mut first = true;
    while rdr.read_record(&mut rec).map_err(csv_err)? {
        let status = rec.get(1).and_then(Status::parse);
        let (errcode, errmsg) = (rec.get(2).unwrap_or(""), rec.get(3).unwrap_or(""));
        if !std::mem::take(&mut first) && which.drops(status, errcode, errmsg) {
            dropped += 1;
            continue;
        }
        w.write_record(&rec)
            .map_err(|e| io_err(io::Error::other(e)))?;
    }
    let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .sync_data()
        .map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    Ok(dropped)
}

/// Whether the file at `path` is a dry-run report (its header has the payload column).
pub fn is_dry_run(path: &Path) -> bool {
    csv::Reader::from_path(path)
        .and_then(|mut r| r.headers().map(|h| h.iter().any(|c| c == PAYLOAD)))
        .unwrap_or(false)
}

/// One whole row of a report, as read back.
#[derive(Debug)]
pub struct RowView<'a> {
    pub openid: &'a str,
    pub status: Status,
    /// As written: empty when there was no WeChat answer.
    pub errcode: &'a str,
    pub errmsg: &'a str,
    /// The digits alone.
    pub msgid: &'a str,
    pub attempts: u64,
    /// RFC 3339 (at the campaign's offset; UTC in older reports); empty when nothing was
    /// sent. See [`crate::timezone::parse`].
    pub sent_at: &'a str,
    /// The recipient's data row in the recipients CSV.
    pub row: u64,
}

/// Reads the report at `path` for resuming.
pub fn read(path: &Path) -> Result<Done, Error> {
    let mut done = Done::default();
    rows(path, false, |r| {
        let at = RowRef {
            openid: r.openid.to_owned(),
            row: r.row,
        };
        done.add(at, r.status, retryable(r.errcode, r.errmsg));
    })?;
    Ok(done)
}

/// Calls `each` with every whole row of the report at `path` (a dry-run report only if
/// `dry_run_too`). A last line without its newline was cut short by a crash: skipped.
pub fn rows(
    path: &Path,
    dry_run_too: bool,
    mut each: impl FnMut(RowView<'_>),
) -> Result<(), Error> {
    let invalid = |message: String| Error::Invalid {
        path: path.to_owned(),
        message,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| invalid(e.to_string()))?;
    let headers = rdr.headers().map_err(|e| invalid(e.to_string()))?.clone();
    if headers.iter().take(COLUMNS.len()).ne(COLUMNS) {
        return Err(invalid(format!(
            "is not a wxpush report (its header should start with {})",
            COLUMNS.join(",")
        )));
    }
    if !dry_run_too && headers.iter().any(|h| h == PAYLOAD) {
        return Err(invalid(
            "is a dry-run report; a real send cannot resume from it".into(),
        ));
    }
    // A last line without its newline was cut short by a crash (and `append` cuts it):
    // whatever it holds, it is not an outcome.
    let whole = File::open(path)
        .and_then(|mut f| appendfile::whole_lines_len(&mut f))
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(invalid(e.to_string())),
        }
        let torn = record.position().is_some_and(|p| p.byte() >= whole);
        if torn || record.len() < COLUMNS.len() {
            continue;
        }
        let line = record.position().map_or(0, |p| p.line());
        let status = Status::parse(&record[1])
            .ok_or_else(|| invalid(format!("line {line}: unknown status `{}`", &record[1])))?;
        let row: u64 = record[8]
            .parse()
            .map_err(|_| invalid(format!("line {line}: bad row number `{}`", &record[8])))?;
        each(RowView {
            openid: &record[0],
            status,
            errcode: &record[2],
            errmsg: &record[3],
            msgid: from_text(&record[4]),
            attempts: record[5].parse().unwrap_or(0),
            sent_at: &record[6],
            row,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(openid: &str, row: u64, status: Status) -> Outcome {
        Outcome::unsent(row, openid.into(), status, "multi\nline".into())
    }

    #[test]
    fn written_rows_are_read_back_as_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/r.csv");
        let mut w = Writer::create(&path, false, UtcOffset::CHINA).unwrap();
        w.write(&outcome("a", 1, Status::Sent)).unwrap();
        w.write(&outcome("b", 2, Status::Failed)).unwrap();
        w.write(&outcome("a", 3, Status::Skipped)).unwrap();
        w.finish().unwrap();
        let done = read(&path).unwrap();
        assert_eq!(done.rows, 3);
        assert!(done.has_openid("a") && done.has_openid("b") && !done.has_openid("c"));
        assert!(done.has_skipped_row(3) && !done.has_skipped_row(1));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(
            "\u{feff}openid,status,errcode,errmsg,msgid,attempts,sent_at,latency_ms,row\n"
        ));
        assert!(text.contains("multi line"), "{text}");
    }

    #[test]
    fn a_spreadsheet_keeps_the_msgid_and_sees_local_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut w = Writer::create(&path, false, UtcOffset::parse("+09:00").unwrap()).unwrap();
        let mut o = outcome("a", 1, Status::Sent);
        o.msgid = Some(3717005636572528642);
        o.sent_at = Some(humantime::parse_rfc3339("2026-12-02T03:38:23.042Z").unwrap());
        w.write(&o).unwrap();
        w.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(",\"=\"\"3717005636572528642\"\"\",0,2026-12-02T12:38:23.042+09:00,"),
            "{text}"
        );
        let mut seen = Vec::new();
        rows(&path, false, |r| {
            seen.push((r.msgid.to_owned(), r.sent_at.to_owned()))
        })
        .unwrap();
        assert_eq!(
            seen,
            [(
                "3717005636572528642".to_owned(),
                "2026-12-02T12:38:23.042+09:00".to_owned()
            )]
        );
    }

    #[test]
    fn a_partial_last_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut w = Writer::create(&path, false, UtcOffset::CHINA).unwrap();
        w.write(&outcome("a", 1, Status::Sent)).unwrap();
        w.finish().unwrap();
        drop(w);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("b,se");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read(&path).unwrap().rows, 1);
        // Torn after its last field, before its newline: still not an outcome.
        std::fs::write(&path, format!("{text}nt,,,,1,,,2")).unwrap();
        assert!(!read(&path).unwrap().has_openid("b"));
        assert_eq!(read(&path).unwrap().rows, 1);
        let mut w = Writer::append(&path, UtcOffset::CHINA).unwrap();
        w.write(&outcome("c", 3, Status::Sent)).unwrap();
        w.finish().unwrap();
        let done = read(&path).unwrap();
        assert_eq!(done.rows, 2);
        assert!(done.has_openid("c") && !done.has_openid("b"));
    }

    #[test]
    fn unknown_rows_can_be_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut w = Writer::create(&path, false, UtcOffset::CHINA).unwrap();
        w.write(&outcome("a", 1, Status::Sent)).unwrap();
        w.write(&outcome("b", 2, Status::Unknown)).unwrap();
        w.finish().unwrap();
        let only_unknown = DropRows {
            unknown: true,
            retryable: false,
        };
        // A torn last row stays out of the rewritten report.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("c,sent,,,,1,,,3");
        std::fs::write(&path, text).unwrap();
        assert_eq!(drop_rows(&path, only_unknown).unwrap(), 1);
        let done = read(&path).unwrap();
        assert_eq!(done.rows, 1);
        assert!(!done.has_openid("b") && !done.has_openid("c"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with('\n') && text.starts_with("\u{feff}openid,"),
            "{text}"
        );
    }

    #[test]
    fn dry_run_reports_are_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut w = Writer::create(&path, true, UtcOffset::CHINA).unwrap();
        w.finish().unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("dry-run"));
    }
}
