//! Where the three threads of a send meet: a blocking producer reads and renders rows, the
//! async dispatcher sends, a blocking writer appends outcomes to the report. Bounded
//! channels between them keep memory flat.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::check;
use crate::Error;
use crate::campaign::Campaign;
use crate::dispatch::{self, Ledger, Settings, Stop, StopReason, Transport};
use crate::outcome::{Outcome, Status};
use crate::progress::Progress;
use crate::recipients::{Recipient, Row, key};
use crate::report::{self, Done, Tally};
use crate::resume::Start;
use crate::wechat::message::Outgoing;
use crate::wechat::token::Tokens;

/// Rendered messages queued between the producer and the dispatcher: enough to keep 1,024
/// requests in flight fed, small enough to be nothing in memory.
const INPUT_QUEUE: usize = 256;
/// Outcomes queued between the dispatcher and the report writer, which drains them in
/// batches (one flush per batch): a burst of answers never waits on the disk.
const OUTCOME_QUEUE: usize = 1024;

/// Where rendered messages go.
pub(super) enum Sink {
    Send(mpsc::Sender<Outgoing>),
    DryRun,
}

/// What a send goes through.
pub(super) struct Sending<T> {
    pub client: T,
    pub tokens: Arc<Tokens>,
    pub ledger: Arc<dyn Ledger>,
    pub settings: Settings,
    pub stop: Arc<Stop>,
    /// Recipients given an outcome so far (what `--limit` counts), for the Ctrl-C advice.
    pub recorded: Arc<AtomicU64>,
}

impl<T: Transport> Sending<T> {
    /// The report writer of this send, on a blocking thread, over `total` outcomes.
    fn writer(
        &self,
        writer: report::Writer,
        rx: mpsc::Receiver<Outcome>,
        total: u64,
    ) -> tokio::task::JoinHandle<Result<Tally, Error>> {
        spawn_writer(writer, rx, total, self.stop.clone(), self.recorded.clone())
    }

    /// Runs the dispatcher on `input` until it ends or the run stops, outcomes to `outcomes`.
    async fn dispatch(self, input: mpsc::Receiver<Outgoing>, outcomes: mpsc::Sender<Outcome>) {
        let deps = dispatch::Deps {
            client: self.client,
            tokens: self.tokens,
            ledger: self.ledger,
            outcomes,
            stop: self.stop,
        };
        dispatch::run(input, self.settings, deps).await;
    }
}

/// Sends every row of `c` not done in `start` (at most `limit`), writing outcomes through
/// `writer`; `total` rows are expected. Returns the run's tally, and how the producer ended
/// (reported after the summary: the rows written are still worth showing).
pub(super) async fn send<T: Transport>(
    c: &Campaign,
    start: Start,
    limit: u64,
    writer: report::Writer,
    total: u64,
    via: Sending<T>,
) -> Result<(Tally, Result<(), Error>), Error> {
    let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTCOME_QUEUE);
    let writer = via.writer(writer, out_rx, total);
    let producer = {
        let (c, out_tx) = (c.clone(), out_tx.clone());
        tokio::task::spawn_blocking(move || {
            produce(&c, &start, limit, Sink::Send(input_tx), &out_tx)
        })
    };
    via.dispatch(input_rx, out_tx).await;
    let produced = join(producer).await;
    let tally = join(writer).await?;
    Ok((tally, produced))
}

/// Sends the given `messages` (a test send: no rows read, no journal), writing outcomes
/// through `writer`.
pub(super) async fn send_these<T: Transport>(
    messages: Vec<Outgoing>,
    writer: report::Writer,
    via: Sending<T>,
) -> Result<Tally, Error> {
    let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTCOME_QUEUE);
    let total = messages.len() as u64;
    let writer = via.writer(writer, out_rx, total);
    let feed = tokio::spawn(async move {
        for m in messages {
            if input_tx.send(m).await.is_err() {
                break;
            }
        }
    });
    via.dispatch(input_rx, out_tx).await;
    let _ = feed.await;
    join(writer).await
}

/// Renders every row of `c` into the report as a `dry_run` row with its payload.
pub(super) async fn dry_run(
    c: &Campaign,
    start: Start,
    limit: u64,
    writer: report::Writer,
    total: u64,
) -> Result<Tally, Error> {
    let (out_tx, out_rx) = mpsc::channel(OUTCOME_QUEUE);
    let writer = spawn_writer(writer, out_rx, total, Arc::default(), Arc::default());
    let c = c.clone();
    let producer =
        tokio::task::spawn_blocking(move || produce(&c, &start, limit, Sink::DryRun, &out_tx));
    join(producer).await?;
    join(writer).await
}

/// The report row of a repeated openid.
fn skipped(r: Recipient) -> Outcome {
    let why = "repeated openid: sent once, for its first row".to_owned();
    Outcome::unsent(r.row, r.openid, Status::Skipped, why)
}

/// Reports the repeated openids not reported yet, when nothing is left to send.
pub(super) fn record_skipped(
    c: &Campaign,
    done: &Done,
    writer: &mut report::Writer,
) -> Result<(), Error> {
    let (mut rows, _) = check::open(c)?;
    while let Some(row) = rows.next_row() {
        if let Row::Duplicate(r) = row?
            && !done.has_skipped_row(r.row)
        {
            writer.write(&skipped(r))?;
        }
    }
    Ok(writer.finish()?)
}

/// Reads and renders every row not yet done: messages to the sink, `skipped` rows (and, in a
/// dry run, `dry_run` rows) straight to the report.
fn produce(
    c: &Campaign,
    start: &Start,
    limit: u64,
    sink: Sink,
    outcomes: &mpsc::Sender<Outcome>,
) -> Result<(), Error> {
    let (mut rows, renderer) = check::open(c)?;
    let renderer = renderer.with_run_id(&start.header.run_id);
    let done = &start.done;
    let mut produced = 0;
    while let Some(row) = rows.next_row() {
        // A closed channel means the run stopped: the rest waits for the next run.
        let outcome = match row? {
            Row::New(r) => {
                if done.has_openid(&r.openid) {
                    continue;
                }
                if produced == limit {
                    break;
                }
                produced += 1;
                let mut msg = renderer.render(&r)?;
                if let Some(again) = start.resend.get(&key(&r.openid)) {
                    msg.first_started = Some(again.started);
                    msg.only_in_window = again.only_in_window;
                }
                match &sink {
                    Sink::Send(tx) => {
                        if tx.blocking_send(msg).is_err() {
                            break;
                        }
                        continue;
                    }
                    Sink::DryRun => Outcome {
                        payload: Some(msg.body),
                        ..Outcome::unsent(r.row, r.openid, Status::DryRun, String::new())
                    },
                }
            }
            Row::Duplicate(r) if done.has_skipped_row(r.row) => continue,
            Row::Duplicate(r) => skipped(r),
        };
        if outcomes.blocking_send(outcome).is_err() {
            break;
        }
    }
    Ok(())
}

/// The report writer on a blocking thread of the runtime.
fn spawn_writer(
    writer: report::Writer,
    rx: mpsc::Receiver<Outcome>,
    total: u64,
    stop: Arc<Stop>,
    recorded: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Result<Tally, Error>> {
    tokio::task::spawn_blocking(move || write_outcomes(writer, rx, total, &stop, &recorded))
}

/// Appends outcomes as they arrive, flushing after each batch; stops the run if the report
/// cannot be written (an outcome that cannot be recorded must not be followed by more sends).
fn write_outcomes(
    mut writer: report::Writer,
    mut rx: mpsc::Receiver<Outcome>,
    total: u64,
    stop: &Stop,
    recorded: &AtomicU64,
) -> Result<Tally, Error> {
    let mut progress = Progress::new(total);
    let result = (|| {
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(o) = next {
                writer.write(&o)?;
                progress.record(o.status);
                next = rx.try_recv().ok();
            }
            writer.flush()?;
            recorded.store(writer.tally().outcomes(), Ordering::Relaxed);
        }
        writer.finish()
    })();
    progress.finish();
    if let Err(e) = result {
        stop.trigger(StopReason::Report(e.to_string()));
        return Err(e.into());
    }
    Ok(writer.tally().clone())
}

async fn join<T>(h: tokio::task::JoinHandle<Result<T, Error>>) -> Result<T, Error> {
    h.await
        .map_err(|e| Error::Aborted(format!("internal task failed: {e}")))?
}
