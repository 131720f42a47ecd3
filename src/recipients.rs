//! Recipients: the CSV of openids and per-user variables, streamed row by row.
//!
//! This module owns reading the file (UTF-8, UTF-8 with BOM, or GB18030 as Excel writes it),
//! the header (an `openid` column is required, names must be unique), and de-duplication: a
//! repeated openid comes out as [`Row::Duplicate`]. Memory stays flat in the number of rows
//! except for the set of seen openids, kept as 128-bit hashes (16 bytes per recipient).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::StringRecord;

/// Bytes read ahead to decide the file's encoding.
const SNIFF_BYTES: usize = 64 * 1024;

/// One data row of the CSV.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// 1-based data row number (the header is row 0), as a spreadsheet user counts rows below it.
    pub row: u64,
    /// 1-based line in the file where the row starts.
    pub line: u64,
    pub openid: String,
    pub record: StringRecord,
}

/// What the stream yields for each data row.
#[derive(Debug)]
pub enum Row {
    /// The first row with this openid.
    New(Recipient),
    /// A later row with an openid seen before: it is reported `skipped`, never sent.
    Duplicate(Recipient),
}

/// A problem with the recipients file, naming the file and the row.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Header { path: PathBuf, message: String },
    #[error("{}: row {row} (line {line}): {message}", path.display())]
    Row {
        path: PathBuf,
        row: u64,
        line: u64,
        message: String,
    },
}

/// The text encoding found for the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Gb18030,
}

/// A streaming reader over the recipients file.
pub struct Recipients {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    headers: Arc<[String]>,
    openid: usize,
    encoding: Encoding,
    record: StringRecord,
    row: u64,
    seen: HashSet<u128>,
    /// Added to the csv crate's line numbers: 1 for a file with CRLF line ends (Excel on
    /// Windows), where csv 1.4 counts each record's line one short (the position it reports
    /// is the LF of the previous CRLF).
    line_offset: u64,
}

/// The key the de-duplication sets store for an openid: xxh3-128, so a million recipients
/// cost ~50 MB instead of ~120 MB for the strings (perf-notes.md), and a collision that would
/// silently skip a real recipient is out of reach (p ≈ n²/2¹²⁹).
pub fn key(openid: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(openid.as_bytes())
}

impl Recipients {
    /// Opens `path`, detects its encoding and reads the header. Every name in `required` must
    /// be a column.
    pub fn open(path: &Path, required: &[&str]) -> Result<Self, Error> {
        let io_err = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut file)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(io_err)?;
        let first_line_end = head.iter().position(|&b| b == b'\n');
        let crlf = first_line_end.is_some_and(|i| i > 0 && head[i - 1] == b'\r');
        let encoding = sniff(&head).ok_or_else(|| Error::Header {
            path: path.to_owned(),
            message: "is neither UTF-8 nor GB18030 text; save it as \"CSV UTF-8\"".into(),
        })?;
        let body: Box<dyn Read + Send> = match encoding {
            Encoding::Utf8 => Box::new(io::Cursor::new(head).chain(file)),
            Encoding::Utf8Bom => Box::new(io::Cursor::new(head.split_off(3)).chain(file)),
            Encoding::Gb18030 => Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(encoding_rs::GB18030))
                    .utf8_passthru(false)
                    .build(io::Cursor::new(head).chain(file)),
            ),
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::Headers)
            .buffer_capacity(64 * 1024)
            .from_reader(body);
        let header_err = |message: String| Error::Header {
            path: path.to_owned(),
            message,
        };
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| header_err(format!("cannot read the header row: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        if headers.iter().all(|h| h.is_empty()) {
            return Err(header_err(
                "the file is empty; the first row must name the columns, one of them `openid`"
                    .into(),
            ));
        }
        for (i, h) in headers.iter().enumerate() {
            if h.is_empty() {
                return Err(header_err(format!("column {} has no name", i + 1)));
            }
            if headers[..i].contains(h) {
                return Err(header_err(format!(
                    "column `{h}` appears twice in the header"
                )));
            }
        }
        for want in required {
            if !headers.iter().any(|h| h == want) {
                let names: Vec<&str> = headers.iter().map(String::as_str).collect();
                let hint = crate::campaign::nearest(want, &names)
                    .map(|n| format!(" (is `{n}` meant to be `{want}`?)"))
                    .unwrap_or_default();
                return Err(header_err(format!(
                    "no `{want}` column{hint}; the header is: {}",
                    headers.join(",")
                )));
            }
        }
        let openid = headers
            .iter()
            .position(|h| h == "openid")
            .ok_or_else(|| header_err("no `openid` column".into()))?;
        Ok(Recipients {
            path: path.to_owned(),
            reader,
            headers: headers.into(),
            openid,
            encoding,
            record: StringRecord::new(),
            row: 0,
            seen: HashSet::new(),
            line_offset: u64::from(crlf),
        })
    }

    /// The column names, in file order.
    pub fn headers(&self) -> &Arc<[String]> {
        &self.headers
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Pre-sizes the de-duplication set, once the row count is known from the validation
    /// pass: growing it doubles the table while old and new coexist (perf-notes.md: −30 %).
    pub fn reserve(&mut self, rows: usize) {
        self.seen.reserve(rows);
    }

    /// The next data row, `None` at the end of the file.
    pub fn next_row(&mut self) -> Option<Result<Row, Error>> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => return None,
            Ok(true) => {}
            Err(e) => return Some(Err(self.csv_error(e))),
        }
        self.row += 1;
        let line = self.record.position().map_or(0, |p| p.line()) + self.line_offset;
        let openid = self.record.get(self.openid).unwrap_or("").trim();
        if openid.is_empty() {
            return Some(Err(self.row_error(line, "`openid` is empty".into())));
        }
        if openid.chars().any(char::is_whitespace) {
            return Some(Err(self.row_error(
                line,
                format!("`openid` {openid:?} contains whitespace"),
            )));
        }
        let recipient = Recipient {
            row: self.row,
            line,
            openid: openid.to_owned(),
            record: self.record.clone(),
        };
        Some(Ok(if self.seen.insert(key(openid)) {
            Row::New(recipient)
        } else {
            Row::Duplicate(recipient)
        }))
    }

    fn row_error(&self, line: u64, message: String) -> Error {
        Error::Row {
            path: self.path.clone(),
            row: self.row,
            line,
            message,
        }
    }

    fn csv_error(&mut self, e: csv::Error) -> Error {
        let line = e.position().map_or(0, |p| p.line()) + self.line_offset;
        let row = self.row + 1;
        let message = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("has {len} fields but the header has {expected_len}"),
            csv::ErrorKind::Utf8 { .. } => {
                "is not valid UTF-8 (the start of the file was); save the file as \"CSV UTF-8\""
                    .into()
            }
            csv::ErrorKind::Io(err) if err.kind() == io::ErrorKind::InvalidData => {
                "contains bytes that are not valid GB18030; save the file as \"CSV UTF-8\"".into()
            }
            _ => e.to_string(),
        };
        Error::Row {
            path: self.path.clone(),
            row,
            line,
            message,
        }
    }
}

/// Decides the encoding from the first bytes: a BOM, valid UTF-8 (a character cut at the end
/// of the sample is fine), or else GB18030 if it decodes without error.
fn sniff(head: &[u8]) -> Option<Encoding> {
    if head.starts_with(b"\xEF\xBB\xBF") {
        return Some(Encoding::Utf8Bom);
    }
    match std::str::from_utf8(head) {
        Ok(_) => return Some(Encoding::Utf8),
        Err(e) if e.error_len().is_none() && head.len() == SNIFF_BYTES => {
            return Some(Encoding::Utf8);
        }
        Err(_) => {}
    }
    let (_, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(head);
    // A GB18030 sample can also be cut mid-character at its end; only a full file counts then.
    (!had_errors || head.len() == SNIFF_BYTES).then_some(Encoding::Gb18030)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<Recipients, Error>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, bytes).unwrap();
        let r = Recipients::open(&path, &["openid"]);
        (dir, r)
    }

    fn openids(r: &mut Recipients) -> Vec<String> {
        let mut out = vec![];
        while let Some(row) = r.next_row() {
            match row.unwrap() {
                Row::New(r) => out.push(r.openid),
                Row::Duplicate(r) => out.push(format!("dup:{}", r.openid)),
            }
        }
        out
    }

    #[test]
    fn duplicates_are_flagged_after_the_first() {
        let (_d, r) = open_bytes(b"openid,name\na,1\nb,2\na,3\n");
        assert_eq!(openids(&mut r.unwrap()), ["a", "b", "dup:a"]);
    }

    #[test]
    fn bom_and_gb18030_are_decoded() {
        let (_d, r) = open_bytes("\u{feff}openid,name\no1,石头\n".as_bytes());
        let mut r = r.unwrap();
        assert_eq!(r.encoding(), Encoding::Utf8Bom);
        assert_eq!(r.headers()[0], "openid");
        let Some(Ok(Row::New(rec))) = r.next_row() else {
            panic!()
        };
        assert_eq!(&rec.record[1], "石头");

        // (A short GB18030 text can happen to be valid UTF-8: "石头" alone is "ʯͷ".)
        let (gbk, _, _) = encoding_rs::GB18030.encode("openid,name\no1,提醒您背单词\n");
        let (_d, r) = open_bytes(&gbk);
        let mut r = r.unwrap();
        assert_eq!(r.encoding(), Encoding::Gb18030);
        let Some(Ok(Row::New(rec))) = r.next_row() else {
            panic!()
        };
        assert_eq!(&rec.record[1], "提醒您背单词");
    }

    #[test]
    fn missing_openid_column_and_empty_openid_are_errors() {
        let (_d, r) = open_bytes(b"open_id,name\na,1\n");
        let e = r.err().unwrap().to_string();
        assert!(e.contains("no `openid` column"), "{e}");
        assert!(e.contains("open_id"), "{e}");

        let (_d, r) = open_bytes(b"openid,name\na,1\n,2\n");
        let mut r = r.unwrap();
        assert!(r.next_row().unwrap().is_ok());
        let e = r.next_row().unwrap().unwrap_err().to_string();
        assert!(e.contains("row 2 (line 3): `openid` is empty"), "{e}");
    }

    #[test]
    fn crlf_files_name_the_right_line() {
        for (ends, what) in [("\n", "LF"), ("\r\n", "CRLF")] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.csv");
            let text = ["openid,name", "o_1,a", ",b", "o_3,c,extra"].join(ends) + ends;
            std::fs::write(&path, text).unwrap();
            let mut r = Recipients::open(&path, &[]).unwrap();
            let Some(Ok(Row::New(first))) = r.next_row() else {
                panic!("{what}: row 1")
            };
            assert_eq!(first.line, 2, "{what}");
            let e = r.next_row().unwrap().unwrap_err().to_string();
            assert!(e.contains("row 2 (line 3)"), "{what}: {e}");
            let e = r.next_row().unwrap().unwrap_err().to_string();
            assert!(e.contains("row 3 (line 4)"), "{what}: {e}");
        }
    }

    #[test]
    fn ragged_row_names_row_and_line() {
        let (_d, r) = open_bytes(b"openid,name\na,1\nb,2,3\n");
        let mut r = r.unwrap();
        assert!(r.next_row().unwrap().is_ok());
        let e = r.next_row().unwrap().unwrap_err().to_string();
        assert!(e.contains("row 2 (line 3)"), "{e}");
        assert!(e.contains("has 3 fields but the header has 2"), "{e}");
    }
}
