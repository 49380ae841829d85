//! Progress on stderr for the CLI's long operations: a transfer's bytes ([`Progress`]), a body
//! sent in chunks that report as they go ([`chunked`]), and a component upload's two phases —
//! its bytes going out, then the server's compile — once a second ([`upload`]).

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Clears the rest of a terminal's line (what a longer line before left there).
const CLEAR: &str = "\x1b[K";

/// How often a long operation reports on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Reports a transfer's bytes on stderr once it has run for a while, then at most every
/// [`PROGRESS_EVERY`].
pub(super) struct Progress {
    what: &'static str,
    started: Instant,
    last: Instant,
    pub bytes: u64,
    shown: bool,
}

impl Progress {
    pub fn new(what: &'static str) -> Self {
        let now = Instant::now();
        Self {
            what,
            started: now,
            last: now,
            bytes: 0,
            shown: false,
        }
    }

    pub fn add(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            self.shown = true;
            eprint!("\r{}: {:.1} MiB...", self.what, mib(self.bytes as usize));
        }
    }

    /// Ends the report line, if one was shown.
    pub fn done(&self) {
        if self.shown {
            eprintln!(
                "\r{}: {:.1} MiB in {:.1} s",
                self.what,
                mib(self.bytes as usize),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// `bytes` as a stream of `chunk`-sized pieces; `sent(n, last)` is called as each is handed
/// to the connection.
pub(super) fn chunked(
    bytes: Bytes,
    chunk: usize,
    mut sent: impl FnMut(usize, bool) + Send + 'static,
) -> reqwest::Body {
    let total = bytes.len();
    let pieces = futures_util::stream::iter((0..total).step_by(chunk).map(move |at| {
        let end = (at + chunk).min(total);
        sent(end - at, end == total);
        Ok::<_, std::io::Error>(bytes.slice(at..end))
    }));
    reqwest::Body::wrap_stream(pieces)
}

/// Sends a component with `send` (given the body to send) and shows, once a second, how much
/// of it is out and then how long the server has been working on it (compiling it, when
/// `compiles`); the total time at the end.
pub(super) async fn upload<F, T>(
    what: &str,
    compiles: bool,
    component: Vec<u8>,
    send: impl FnOnce(reqwest::Body) -> F,
) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let total = component.len();
    let out = Arc::new(AtomicUsize::new(0));
    let counter = out.clone();
    let body = chunked(Bytes::from(component), 64 * 1024, move |n, _| {
        counter.fetch_add(n, Ordering::Relaxed);
    });
    let started = Instant::now();
    // On a terminal the line is redrawn every second; in a log, each phase gets one line.
    let redraw = std::io::stderr().is_terminal();
    let mut uploaded = false;
    let answer = send(body);
    tokio::pin!(answer);
    let first = tokio::time::Instant::now() + PROGRESS_EVERY;
    let mut tick = tokio::time::interval_at(first, PROGRESS_EVERY);
    let step = match compiles {
        true => "the server is compiling it",
        false => "the server is storing it",
    };
    let answer = loop {
        tokio::select! {
            answer = &mut answer => break answer,
            _ = tick.tick() => {
                let sent = out.load(Ordering::Relaxed);
                let seconds = started.elapsed().as_secs_f64();
                if sent < total && redraw {
                    let percent = 100.0 * sent as f64 / total as f64;
                    let size = mib(total);
                    eprint!("\r{what}: uploading, {percent:.0}% of {size:.1} MiB ({seconds:.0} s)...{CLEAR}");
                } else if sent == total && (redraw || !uploaded) {
                    let (start, end) = if redraw { ("\r", CLEAR) } else { ("", "\n") };
                    eprint!("{start}{what}: uploaded; {step} ({seconds:.0} s)...{end}");
                    uploaded = true;
                }
            }
        }
    };
    let result = if answer.is_ok() { "done" } else { "failed" };
    let seconds = started.elapsed().as_secs_f64();
    match redraw {
        true => eprintln!("\r{what}: {result} in {seconds:.1} s{CLEAR}"),
        false => eprintln!("{what}: {result} in {seconds:.1} s"),
    }
    answer
}
