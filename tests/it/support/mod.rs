//! Test helpers: an in-process sandbox, a scratch directory with campaign files, and the
//! `wxpush` binary run with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod servers;

pub use wxpush::sandbox::{Knobs, Mode, Recorded, SANDBOX_SECRET, Stats};

/// A sandbox on 127.0.0.1:0, served by its own runtime; stopped on drop.
pub struct Sandbox {
    rt: tokio::runtime::Runtime,
    inner: Option<wxpush::sandbox::Sandbox>,
}

impl Sandbox {
    /// A strict sandbox (`Mode::Strict`): wxpush's own tests refuse any body field wxpush
    /// did not mean to send.
    pub fn start(knobs: Knobs) -> Self {
        Sandbox::start_as(Knobs {
            mode: Mode::Strict,
            ..knobs
        })
    }

    /// A sandbox with exactly `knobs` (tolerant unless they say otherwise).
    pub fn start_as(knobs: Knobs) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let inner = rt
            .block_on(wxpush::sandbox::Sandbox::start(
                "127.0.0.1:0".parse().unwrap(),
                knobs,
            ))
            .expect("sandbox binds 127.0.0.1:0");
        Sandbox {
            rt,
            inner: Some(inner),
        }
    }

    fn get(&self) -> &wxpush::sandbox::Sandbox {
        self.inner.as_ref().expect("running until drop")
    }

    pub fn url(&self) -> String {
        self.get().base_url()
    }

    /// A token of this sandbox, fetched as another service of the account would (stable
    /// API): what a company's token command or service hands out.
    pub fn mint_token(&self) -> String {
        let url = format!("{}/cgi-bin/stable_token", self.url());
        let body = serde_json::json!({"grant_type": "client_credential",
            "appid": "wx0123456789abcdef", "secret": SANDBOX_SECRET});
        self.rt.block_on(async {
            let r: serde_json::Value = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["access_token"].as_str().expect("a token").to_owned()
        })
    }

    pub fn stats(&self) -> Stats {
        self.get().stats()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.get().requests()
    }

    /// Starts a new "day" for the daily quota.
    pub fn next_day(&self) {
        self.get().next_day()
    }

    /// Answers this fraction of later sends -1 "system busy".
    pub fn set_busy(&self, ratio: f64) {
        self.get().set_busy(ratio)
    }

    /// Ends busy answers and per-openid failures (`Sandbox::heal`).
    pub fn heal(&self) {
        self.get().heal()
    }

    /// Stops holding requests (`Knobs::hold_from`).
    pub fn release(&self) {
        self.get().release()
    }

    /// Blocks until `n` send requests have arrived (30 s at most, then panics).
    pub fn wait_for_sends(&self, n: u64) {
        self.wait(self.get().wait_for_sends(n), n, "sends arrived");
    }

    /// Blocks until `n` requests are processed and held (`Knobs::hold_from`).
    pub fn wait_for_held(&self, n: u64) {
        self.wait(self.get().wait_for_held(n), n, "requests held");
    }

    fn wait(&self, event: impl std::future::Future<Output = ()>, n: u64, what: &str) {
        let limit = std::time::Duration::from_secs(30);
        let waited = self
            .rt
            .block_on(async { tokio::time::timeout(limit, event).await });
        assert!(waited.is_ok(), "never {n} {what}: {:?}", self.stats());
    }

    /// Bodies of accepted (errcode 0) requests to `openid`.
    pub fn accepted_bodies(&self, openid: &str) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.errcode == 0 && r.body["touser"] == openid)
            .map(|r| r.body)
            .collect()
    }

    /// No send and no token request reached the sandbox.
    pub fn expect_no_requests(&self) {
        let s = self.stats();
        assert_eq!(
            (s.send_requests, s.token_calls, s.stable_token_calls),
            (0, 0, 0),
            "expected no requests at all: {s:?}"
        );
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            self.rt.block_on(inner.shutdown());
        }
    }
}

/// A fresh directory holding a campaign's files.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A copy of the repository's `campaigns/` and `templates/`.
    pub fn with_examples() -> Self {
        let w = Workdir::new();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for sub in ["campaigns", "templates"] {
            std::fs::create_dir_all(w.path(sub)).unwrap();
            for e in std::fs::read_dir(root.join(sub)).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    std::fs::copy(e.path(), w.path(sub).join(e.file_name())).unwrap();
                }
            }
        }
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// The report's whole rows (a line that a kill cut short is not one), header excluded.
    pub fn whole_rows(&self, rel: &str) -> usize {
        self.read(rel).matches('\n').count().saturating_sub(1)
    }

    /// The report's rows as maps from column name to value.
    pub fn report(&self, rel: &str) -> Vec<std::collections::HashMap<String, String>> {
        let mut r = csv::Reader::from_path(self.path(rel)).unwrap();
        let headers = r.headers().unwrap().clone();
        r.records()
            .map(|rec| {
                let rec = rec.unwrap();
                headers
                    .iter()
                    .zip(rec.iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// `wxpush send c.yaml --yes EXTRA` against `sandbox`, run to its end.
    pub fn send(&self, sandbox: &Sandbox, extra: &[&str]) -> Run {
        let mut args = vec!["send", "c.yaml", "--yes"];
        args.extend_from_slice(extra);
        self.cmd(&args).against(sandbox).run()
    }

    /// Runs a command line that wxpush printed as advice, verbatim, in this directory: its
    /// leading `NAME=value` words are its environment, `wxpush` is this build. Like a user
    /// who exported the AppSecret, the environment also holds the sandbox's.
    pub fn run_advice(&self, line: &str) -> Run {
        self.advised(line, true)
    }

    /// [`Workdir::run_advice`] with no AppSecret in the environment: only the in-process
    /// sandbox can send (and nothing can leave this machine).
    pub fn run_advice_without_secret(&self, line: &str) -> Run {
        self.advised(line, false)
    }

    fn advised(&self, line: &str, secret: bool) -> Run {
        let words = shell_words::split(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let at = words
            .iter()
            .position(|w| !w.contains('=') || w.starts_with('-'))
            .unwrap_or(words.len());
        assert_eq!(
            words.get(at).map(String::as_str),
            Some("wxpush"),
            "{line:?}"
        );
        let args: Vec<&str> = words[at + 1..].iter().map(String::as_str).collect();
        let mut cmd = self.cmd(&args);
        if secret {
            cmd = cmd.env("WXPUSH_SECRET", SANDBOX_SECRET);
        }
        for assignment in &words[..at] {
            let (k, v) = assignment.split_once('=').unwrap();
            cmd = cmd.env(k, v);
        }
        cmd.run()
    }

    /// The report files, by name, with their contents.
    pub fn reports(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        let Ok(dir) = std::fs::read_dir(self.path("reports")) else {
            return Default::default();
        };
        dir.map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
    }

    /// `wxpush ARGS` in this directory, with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> WxCmd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxpush"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        WxCmd { cmd }
    }
}

pub struct WxCmd {
    cmd: Command,
}

impl WxCmd {
    /// Points the command at `sandbox`, with its AppSecret.
    pub fn against(mut self, sandbox: &Sandbox) -> Self {
        self.cmd
            .env("WXPUSH_API_BASE", sandbox.url())
            .env("WXPUSH_SECRET", SANDBOX_SECRET);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    /// Starts the command without waiting for it.
    pub fn spawn(mut self) -> Child {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let command = format!("{:?}", self.cmd);
        Child {
            child: self.cmd.spawn().expect("wxpush starts"),
            command,
            stderr_seen: Vec::new(),
        }
    }

    pub fn run(mut self) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.cmd.output().expect("wxpush runs");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            command: format!("{:?}", self.cmd),
        }
    }
}

/// A running `wxpush`.
pub struct Child {
    child: std::process::Child,
    command: String,
    /// What has been read of stderr so far (by `wait_for_stderr`).
    stderr_seen: Vec<u8>,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's standard output, to read as it comes.
    pub fn stdout(&mut self) -> &mut std::process::ChildStdout {
        self.child
            .stdout
            .as_mut()
            .expect("spawned with a piped stdout")
    }

    /// Closes the reading end of its standard output, as `head` does when it has enough.
    pub fn close_stdout(&mut self) {
        drop(self.child.stdout.take());
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill -INT runs");
        assert!(status.success());
    }

    /// Reads stdout until `needle` appears; returns what was read (panics if stdout closes
    /// first).
    pub fn read_stdout_until(&mut self, needle: &str) -> String {
        use std::io::Read;
        let out = self.stdout();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => panic!("no {needle:?} in {}", String::from_utf8_lossy(&seen)),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// Reads stderr until `needle` appears (true) or stderr closes (false).
    pub fn wait_for_stderr(&mut self, needle: &str) -> bool {
        use std::io::Read;
        let Some(err) = self.child.stderr.as_mut() else {
            return false;
        };
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&self.stderr_seen).contains(needle) {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.stderr_seen.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    pub fn wait(self) -> Run {
        let out = self.child.wait_with_output().expect("wxpush ends");
        let mut stderr = self.stderr_seen;
        stderr.extend_from_slice(&out.stderr);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            command: self.command,
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    command: String,
}

impl Run {
    /// The run as a snapshot shows it: exit code, stdout, stderr (like uv's).
    pub fn snapshot_text(&self) -> String {
        format!(
            "exit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code, printing everything on a mismatch.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "\ncommand: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.stdout, self.stderr
        );
        self
    }

    /// The command wxpush advised after `label` (e.g. `"resume with: "`), from stdout or
    /// stderr; `None` if it advised none.
    pub fn advice(&self, label: &str) -> Option<String> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .find_map(|l| l.split_once(label).map(|(_, cmd)| cmd.trim().to_owned()))
    }

    /// Like [`Run::advice`], but the advice must be there.
    pub fn expect_advice(&self, label: &str) -> String {
        self.advice(label).unwrap_or_else(|| {
            panic!(
                "no {label:?} advice\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}

/// A campaign over `n` generated recipients `o_test_00001`… with a `name` column.
/// `extra_yaml` may replace the target: `target: mini` makes it a subscribe campaign.
pub fn generated(w: &Workdir, n: usize, extra_yaml: &str) -> PathBuf {
    let target = if extra_yaml.contains("target: mini") {
        ""
    } else {
        "target: official\n"
    };
    let mut csv = String::from("openid,name\n");
    for i in 1..=n {
        csv.push_str(&format!("o_test_{i:05},用户{i}\n"));
    }
    w.write("people.csv", csv);
    w.write(
        "c.yaml",
        format!(
            "name: gen\n{target}appid: wx0123456789abcdef\ntemplate_id: TPL\n\
             recipients: people.csv\ndata:\n  thing1: \"{{{{ name }}}}你好\"\n{extra_yaml}"
        ),
    )
}

/// Every generated openid was accepted exactly once, and the report has one `sent` row each.
pub fn assert_all_sent_once(w: &Workdir, sb: &Sandbox, n: usize, report: &str) {
    let by_status = assert_exactly_once(w, sb, n, report);
    assert_eq!(by_status.get("sent"), Some(&n), "{by_status:?}");
}

/// The sandbox delivered every one of the `n` generated openids, none twice, and the report
/// has exactly one row per recipient (none lost, none repeated). Returns rows by status.
pub fn assert_exactly_once(
    w: &Workdir,
    sb: &Sandbox,
    n: usize,
    report: &str,
) -> std::collections::BTreeMap<String, usize> {
    let s = sb.stats();
    assert_eq!(s.accepted, n as u64, "every recipient delivered: {s:?}");
    assert_eq!(s.duplicate_deliveries, 0, "nobody twice: {s:?}");
    let rows = w.report(report);
    assert_eq!(rows.len(), n, "one report row per recipient");
    let mut seen = std::collections::HashSet::new();
    let mut by_status = std::collections::BTreeMap::new();
    for r in &rows {
        let first = seen.insert(r["openid"].clone());
        assert!(first, "two rows for {}", r["openid"]);
        *by_status.entry(r["status"].clone()).or_default() += 1;
    }
    by_status
}

/// Sends a generated campaign of `n` recipients to a sandbox with `knobs`, and asserts that
/// it completed with every recipient sent exactly once.
pub fn send_all(knobs: Knobs, n: usize, extra_yaml: &str) -> (Workdir, Sandbox, Run) {
    let w = Workdir::new();
    let sb = Sandbox::start(knobs);
    generated(&w, n, extra_yaml);
    let run = w
        .cmd(&["send", "c.yaml", "--yes"])
        .against(&sb)
        .run()
        .expect(0);
    assert_all_sent_once(&w, &sb, n, "reports/gen.sandbox.csv");
    (w, sb, run)
}

/// What changes from run to run in wxpush's output, masked for snapshots.
pub const SNAPSHOT_FILTERS: &[(&str, &str)] = &[
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
    (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
    (r"took \d+\.\d s", "took [TIME]"),
    // Shown only for runs of a second or more: how long a run takes is not pinned.
    (r", [\d.]+ msgs/s", ""),
    (r"rid: [0-9a-f-]+", "rid: [RID]"),
    (r"process \d+", "process [PID]"),
    // How a broken connection surfaces (closed, reset, cut mid-body) depends on timing.
    (
        r#"\(e\.g\. "no answer: [^"\n]*"\)"#,
        r#"(e.g. "no answer: [TRANSPORT ERROR]")"#,
    ),
    (r"\d{8}T\d{6}(-\d+)?", "[STAMP]"),
];

/// For runs whose retries wait a random backoff: plain progress lines come every few seconds,
/// so whether such a run shows one is not pinned.
pub const RANDOM_DURATION: &[(&str, &str)] = &[(r"(?m)^progress: .*\n", "")];

/// `wxpush ARGS` on a terminal (`script` gives it one) against `base`, stopped at its
/// confirmation question.
pub struct Prompted {
    child: std::process::Child,
    seen: Vec<u8>,
}

impl Prompted {
    pub fn start(w: &Workdir, base: &str, args: &[&str]) -> Prompted {
        Prompted::start_with(
            w,
            &[("WXPUSH_API_BASE", base), ("WXPUSH_SECRET", SANDBOX_SECRET)],
            args,
        )
    }

    /// `wxpush ARGS` on a terminal with only `env` (and PATH) in its environment.
    pub fn start_with(w: &Workdir, env: &[(&str, &str)], args: &[&str]) -> Prompted {
        let mut line = vec![env!("CARGO_BIN_EXE_wxpush")];
        line.extend_from_slice(args);
        // Bounded: a run that never asks (or never ends) is killed, and the test fails on
        // what it showed, instead of hanging the suite.
        let mut cmd = Command::new("timeout");
        let script = shell_words::join(line);
        cmd.args(["-s", "KILL", "120", "script", "-qec", &script, "/dev/null"])
            .current_dir(w.path(""))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("script runs");
        let mut p = Prompted {
            child,
            seen: Vec::new(),
        };
        p.read_until("[y/N]");
        p
    }

    fn read_until(&mut self, needle: &str) {
        use std::io::Read;
        let out = self.child.stdout.as_mut().unwrap();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => {
                    panic!("no {needle:?} in {}", String::from_utf8_lossy(&self.seen))
                }
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Answers the question; returns the exit code and everything the terminal showed.
    pub fn answer(mut self, answer: &str) -> (i32, String) {
        let mut stdin = self.child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, answer.as_bytes()).unwrap();
        let out = self.child.wait_with_output().unwrap();
        self.seen.extend_from_slice(&out.stdout);
        let shown = String::from_utf8_lossy(&self.seen).into_owned();
        (out.status.code().unwrap_or(-1), shown)
    }
}

/// Snapshots a [`Run`]'s exit code, stdout and stderr, with [`SNAPSHOT_FILTERS`].
#[macro_export]
macro_rules! wx_snapshot {
    (text: $name:expr, $text:expr $(, also: $extra:expr)?) => {{
        let mut settings = insta::Settings::clone_current();
        for (re, with) in $crate::support::SNAPSHOT_FILTERS {
            settings.add_filter(re, *with);
        }
        $(
            for (re, with) in $extra {
                settings.add_filter(re, *with);
            }
        )?
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!($name, $text));
    }};
    ($name:expr, $run:expr $(, also: $extra:expr)?) => {
        $crate::wx_snapshot!(text: $name, $run.snapshot_text() $(, also: $extra)?)
    };
}

/// Starts `wxpush send c.yaml --yes` on `n` generated recipients (4 in flight at most, at
/// 1000/s; `extra_yaml` as for [`generated`]) against a sandbox that holds every request
/// from the `hold_from`-th on open, processed but unanswered; returns once 4 are held.
pub fn send_until_held(
    w: &Workdir,
    n: usize,
    extra_yaml: &str,
    hold_from: u64,
) -> (Sandbox, Child) {
    let sb = Sandbox::start(Knobs {
        hold_from: Some(hold_from),
        ..Knobs::default()
    });
    generated(w, n, &format!("rate: 1000\nconcurrency: 4\n{extra_yaml}"));
    let child = w.cmd(&["send", "c.yaml", "--yes"]).against(&sb).spawn();
    sb.wait_for_held(4);
    (sb, child)
}
