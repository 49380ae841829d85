//! Export and import of one object as JSON lines (`storage::export` has the format):
//! `GET .../objects/{id}/export` streams it from one snapshot of storage, outside any event;
//! `POST .../objects/{id}/import[?replace=true]` reads a body in that format, checks it whole,
//! and puts it into the object as events of the object, a part (at most [`PART_BYTES`] or
//! [`PART_ENTRIES`]) per event, all or nothing.

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::admin::{AdminBody, AdminState, Staging};
use super::error::{ApiError, Body, json};
use super::inspect::find_object;
use super::route::{self, ObjectRef};
use crate::ids::ClassName;
use crate::object::{Edit, ImportBatch, ObjectError};
use crate::storage::export::{self, Header};
use crate::storage::import::{self, Checked, ImportLimits, MAX_LINE_BYTES, Parts};
use crate::storage::schema::Table;

/// `GET .../export`: the object as JSON lines, streamed as it is read.
pub(super) async fn export(
    state: &AdminState,
    class: &ClassName,
    object: ObjectRef,
) -> Result<http::Response<AdminBody>, ApiError> {
    let (loaded, id, _) = find_object(state, class, object)?;
    let db = state.db.clone();
    // Half an import is no export of the object.
    let marker = [
        crate::storage::schema::object_prefix(loaded.incarnation, &id).as_slice(),
        &crate::storage::schema::IMPORT_KEY,
    ]
    .concat();
    let reading = db.clone();
    let marked = tokio::task::spawn_blocking(move || reading.reader()?.get(Table::Data, &marker))
        .await
        .map_err(|e| ApiError::Internal(format!("reading the object: {e}")))?
        .map_err(|e| ApiError::Internal(format!("reading the object: {e}")))?;
    if marked.is_some() {
        return Err(crate::object::ObjectError::ImportIncomplete.into());
    }
    let header = Header {
        duro_export: export::FORMAT,
        class: class.to_string(),
        id: id.to_hex(),
        name: None,
        alarm_ms: None,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let incarnation = loaded.incarnation;
    tokio::task::spawn_blocking(move || {
        let written = db.reader().and_then(|reader| {
            export::write(reader.as_ref(), incarnation, &id, header, |chunk| {
                tx.blocking_send(Ok(chunk.into())).is_ok()
            })
        });
        if let Err(error) = written {
            // Mid-stream: the body ends with an error, which the client sees as a broken
            // transfer, never as a complete export.
            let _ = tx.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk.map(Frame::data), rx))
    });
    let mut response = http::Response::new(StreamBody::new(chunks).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// `POST .../import`: puts the exported object in the body into this one, whole or not at all;
/// answers with what it put. Refused (409) when the object stores something, unless
/// `?replace=true` (or an earlier import into it never finished).
///
/// 1. The body is spooled to a file as it comes, then checked whole (`storage::import`): a bad
///    line, a body cut short, an unknown internal entry or SQL pages that are no database are
///    a 400 and nothing was written.
/// 2. Then it is put in parts, each an event of the object, by a task of its own (a client that
///    goes away cannot stop it half-way). Between the first part and the last, the object is
///    marked as holding an unfinished import and refuses its events; a crash leaves the mark,
///    which the next import (or a wipe) clears.
pub(super) async fn import(
    state: &AdminState,
    class: &ClassName,
    object: ObjectRef,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    let replace = route::query_value(request.uri().query(), "replace")
        .map_err(|_| ApiError::BadRequest("bad replace".into()))?
        .is_some_and(|v| v == "true" || v == "1");
    let fault = injected_stall(&request);
    let (loaded, id, name) = find_object(state, class, object)?;
    let spool = Staging::new(&state.data_dir, "import", "jsonl");
    let nothing = |e: String| ApiError::BadRequest(format!("{e}; nothing was imported"));
    receive(state, request.into_body(), &spool.0)
        .await
        .map_err(|e| match e {
            ApiError::BadRequest(e) => nothing(e),
            other => other,
        })?;
    let limits = ImportLimits {
        max_key_bytes: state.limits.max_key_bytes,
        max_value_bytes: state.limits.max_value_bytes,
        part_bytes: PART_BYTES.min(state.limits.max_event_write_bytes / 2),
        part_entries: PART_ENTRIES,
    };
    let scratch = Staging::new(&state.data_dir, "import", "sqlite");
    let spooled = spool.0.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let checked = import::check(&spooled, &scratch.0, &limits);
        drop(scratch);
        checked
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the import check failed: {e}")))?
    .map_err(nothing)?;
    let target = Target {
        state: state.clone(),
        loaded,
        id,
        name,
        replace,
        token: Bytes::from(crate::ids::random_hex(8)),
        fault,
    };
    tokio::spawn(target.put_all(spool, checked, limits))
        .await
        .map_err(|e| ApiError::Internal(format!("the import task failed: {e}")))?
}

/// Entry bytes of one import event at most (or half the event write limit, if lower): its
/// commit stays a small record of the write-ahead log beside the other objects'.
const PART_BYTES: usize = 2 * 1024 * 1024;
/// Entries of one import event at most: a part of many tiny entries commits quickly too.
const PART_ENTRIES: usize = 8192;
/// How long a part is tried again while its object is only busy.
const BUSY_RETRIES: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes the request's body to `path` as it comes; a line over the limit, a body that fails
/// or stalls is an error.
async fn receive(
    state: &AdminState,
    mut body: Incoming,
    path: &std::path::Path,
) -> Result<(), ApiError> {
    use tokio::io::AsyncWriteExt;
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::Internal(format!("spooling the import: {e}")))?;
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let (mut line_bytes, mut line_no) = (0usize, 1u64);
    let (mut spooled, mut checked_at) = (0u64, 0u64);
    loop {
        // The spool (and, checked, the SQL scratch file) must leave the disk that holds the
        // database room for its commits.
        if spooled >= checked_at {
            check_room(path)?;
            checked_at = spooled + ROOM_CHECK_BYTES;
        }
        let frame = tokio::time::timeout(state.body_timeout, body.frame())
            .await
            .map_err(|_| {
                ApiError::RequestTimeout("the import body stalled; nothing was imported".into())
            })?;
        let Some(frame) = frame else {
            break;
        };
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for piece in data.split_inclusive(|b| *b == b'\n') {
            line_bytes += piece.len();
            if line_bytes > MAX_LINE_BYTES {
                return Err(ApiError::BadRequest(format!(
                    "line {line_no} is longer than {MAX_LINE_BYTES} bytes"
                )));
            }
            if piece.ends_with(b"\n") {
                (line_bytes, line_no) = (0, line_no + 1);
            }
        }
        out.write_all(&data)
            .await
            .map_err(|e| ApiError::Internal(format!("spooling the import: {e}")))?;
        spooled += data.len() as u64;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::Internal(format!("spooling the import: {e}")))
}

/// Free bytes an import leaves on the data dir's disk at least.
const ROOM_BYTES: u64 = 1 << 30;
/// Spooled bytes between two looks at the free space.
const ROOM_CHECK_BYTES: u64 = 64 << 20;

/// Refuses to go on spooling when the disk of `path` has less than [`ROOM_BYTES`] free.
fn check_room(path: &std::path::Path) -> Result<(), ApiError> {
    match crate::storage::free_bytes(path.parent().unwrap_or(path)) {
        Some(free) if free < ROOM_BYTES => Err(ApiError::InsufficientStorage(format!(
            "the data dir's disk has {} MiB free, under the {} MiB an import leaves to the \
             database; nothing was imported",
            free >> 20,
            ROOM_BYTES >> 20
        ))),
        _ => Ok(()),
    }
}

/// The object an import puts its parts into.
struct Target {
    state: AdminState,
    loaded: std::sync::Arc<crate::class::LoadedClass>,
    id: crate::ids::ObjectId,
    name: Option<String>,
    replace: bool,
    /// The import's mark on the object while it runs.
    token: Bytes,
    /// Tests: stall after this many parts (see `injected_stall`).
    fault: Option<u64>,
}

impl Target {
    /// Puts the checked export spooled at `spool`, a part per event; answers with what it put.
    async fn put_all(
        self,
        spool: Staging,
        checked: Checked,
        limits: ImportLimits,
    ) -> Result<http::Response<Body>, ApiError> {
        // The spool is read on a blocking thread, a part ahead of the events that put them.
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            let parts = Parts::new(&spool.0, limits);
            let mut parts = match parts {
                Ok(parts) => parts,
                Err(e) => return drop(tx.blocking_send(Err(e))),
            };
            loop {
                let part = parts.next_part().transpose();
                let Some(part) = part else { return };
                if tx.blocking_send(part).is_err() {
                    return;
                }
            }
        });
        let mut done = 0u64;
        while let Some(part) = rx.recv().await {
            let (entries, last) = part.map_err(ApiError::Internal)?;
            self.put(&checked.header, entries, done, last).await?;
            done += 1;
            if self.fault == Some(done) && !last {
                tracing::warn!(parts = done, "import stalled (fault injection)");
                std::future::pending::<()>().await;
            }
        }
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "id": self.id.to_hex(),
                "entries": checked.entries,
                "parts": done,
                "complete": true,
            }),
        ))
    }

    /// Puts one part as an event of the object. A failure after the first part leaves the
    /// object marked as holding an unfinished import (it refuses its events); the error says so.
    async fn put(
        &self,
        header: &Header,
        entries: Vec<export::Entry>,
        done: u64,
        last: bool,
    ) -> Result<(), ApiError> {
        let batch = ImportBatch {
            entries,
            alarm_ms: header.alarm_ms,
            first: done == 0,
            last,
            replace: self.replace,
            token: self.token.clone(),
        };
        // A part is put again while the object is only busy (its mailbox full, the runtime at
        // its live-object or memory bound): an import given up half-way would leave it marked.
        let mut pause = std::time::Duration::from_millis(100);
        let started = std::time::Instant::now();
        let put = loop {
            let edit = Edit::Import(batch.clone());
            let put = (self.state.directory)
                .edit(self.loaded.clone(), self.id, self.name.clone(), edit)
                .await;
            let busy = matches!(
                put,
                Err(ObjectError::Overloaded(_)
                    | ObjectError::TooManyLive(_)
                    | ObjectError::Guest(crate::abi::GuestError::MemoryBudget(_)))
            );
            if !busy || started.elapsed() > BUSY_RETRIES {
                break put;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        };
        match put {
            Ok(_) => Ok(()),
            Err(error) if done == 0 => Err(error.into()),
            Err(error) => Err(ApiError::Internal(format!(
                "the import stopped at part {} ({}); the object keeps the parts before and \
                 refuses its events until it is imported again or wiped",
                done + 1,
                ApiError::from(error)
            ))),
        }
    }
}

/// Fault injection for the crash test of imports, in debug builds only: with
/// `DURO_FAULT_INJECTION` set, an import carrying `x-duro-fault: stall-import-after-N` stops
/// for good after its N-th part (its object marked as holding an unfinished import).
fn injected_stall(request: &http::Request<Incoming>) -> Option<u64> {
    #[cfg(debug_assertions)]
    if std::env::var_os("DURO_FAULT_INJECTION").is_some() {
        let fault = request.headers().get("x-duro-fault")?.to_str().ok()?;
        return fault.strip_prefix("stall-import-after-")?.parse().ok();
    }
    let _ = request;
    None
}
