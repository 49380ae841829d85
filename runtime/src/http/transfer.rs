//! Export and import of one object as JSON lines (`storage::export` has the format):
//! `GET .../objects/{id}/export` streams it from one snapshot of storage, outside any event;
//! `POST .../objects/{id}/import[?replace=true]` reads a body in that format and puts it into
//! the object as events of the object, a part (at most [`PART_BYTES`]) per event.

use bytes::{Bytes, BytesMut};
use http::{StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::admin::{AdminBody, AdminState};
use super::error::{ApiError, Body, json};
use super::inspect::find_object;
use super::route::{self, ObjectRef};
use crate::ids::ClassName;
use crate::object::{Edit, ImportBatch};
use crate::storage::export::{self, Header, Line};

/// The most entry bytes one import event puts: well under the event's write limit, so a part
/// never fails on it.
const PART_BYTES: usize = 4 * 1024 * 1024;
/// The longest line an import accepts (a value at the value limit, hex-encoded, and its key).
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// `GET .../export`: the object as JSON lines, streamed as it is read.
pub(super) async fn export(
    state: &AdminState,
    class: &ClassName,
    object: ObjectRef,
) -> Result<http::Response<AdminBody>, ApiError> {
    let (loaded, id, _) = find_object(state, class, object)?;
    let db = state.db.clone();
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

/// `POST .../import`: puts the exported object in the body into this one; answers with what it
/// put. Refused (409) when the object stores something, unless `?replace=true`.
pub(super) async fn import(
    state: &AdminState,
    class: &ClassName,
    object: ObjectRef,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    let replace = route::query_value(request.uri().query(), "replace")
        .map_err(|_| ApiError::BadRequest("bad replace".into()))?
        .is_some_and(|v| v == "true" || v == "1");
    let (loaded, id, name) = find_object(state, class, object)?;
    let target = Target {
        state,
        loaded,
        id,
        name,
        replace,
    };
    let mut body = request.into_body();
    let mut pending = BytesMut::new();
    let mut header: Option<Header> = None;
    let mut part = Vec::new();
    let mut part_bytes = 0;
    let (mut parts, mut entries, mut line_no) = (0u64, 0u64, 0u64);
    let mut ended = false;
    while !ended {
        let frame = tokio::time::timeout(state.body_timeout, body.frame())
            .await
            .map_err(|_| ApiError::RequestTimeout("the import body stalled".into()))?;
        match frame {
            Some(frame) => {
                let frame =
                    frame.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    pending.extend_from_slice(&data);
                }
            }
            None => ended = true,
        }
        // Every complete line (and, at the end, the last one without its newline).
        loop {
            let line = match pending.iter().position(|b| *b == b'\n') {
                Some(at) => pending.split_to(at + 1),
                None if ended && !pending.is_empty() => pending.split(),
                None if pending.len() > MAX_LINE_BYTES => {
                    return Err(ApiError::BadRequest(format!(
                        "line {} is longer than {MAX_LINE_BYTES} bytes",
                        line_no + 1
                    )));
                }
                None => break,
            };
            line_no += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let bad = |e: String| ApiError::BadRequest(format!("line {line_no}: {e}"));
            match (export::read_line(text).map_err(bad)?, &header) {
                (Line::Header(h), None) => header = Some(h),
                (Line::Header(_), Some(_)) => return Err(bad("a second header".into())),
                (Line::Entry(_), None) => {
                    return Err(bad("not a duro export: the header line comes first".into()));
                }
                (Line::Entry(entry), Some(_)) => {
                    part_bytes += entry.key.len() + entry.value.len();
                    part.push(entry);
                    entries += 1;
                }
            }
            if let Some(header) = &header
                && part_bytes >= PART_BYTES
            {
                part_bytes = 0;
                target.put(header, std::mem::take(&mut part), parts).await?;
                parts += 1;
            }
        }
    }
    let Some(header) = header else {
        return Err(ApiError::BadRequest(
            "not a duro export: no header line".into(),
        ));
    };
    if !part.is_empty() || parts == 0 {
        target.put(&header, part, parts).await?;
        parts += 1;
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "id": id.to_hex(), "entries": entries, "parts": parts }),
    ))
}

/// The object an import puts its parts into.
struct Target<'a> {
    state: &'a AdminState,
    loaded: std::sync::Arc<crate::class::LoadedClass>,
    id: crate::ids::ObjectId,
    name: Option<String>,
    replace: bool,
}

impl Target<'_> {
    /// Puts one part as an event of the object (the first also sets the header's alarm). A
    /// failure after the first part leaves the parts before it in place; the error says so.
    async fn put(
        &self,
        header: &Header,
        entries: Vec<export::Entry>,
        done: u64,
    ) -> Result<(), ApiError> {
        let batch = ImportBatch {
            entries,
            alarm_ms: header.alarm_ms,
            first: done == 0,
            replace: self.replace,
        };
        let edit = Edit::Import(batch);
        let put = (self.state.directory)
            .edit(self.loaded.clone(), self.id, self.name.clone(), edit)
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(error) if done == 0 => Err(error.into()),
            Err(error) => Err(ApiError::Internal(format!(
                "the import stopped after {done} parts, which the object keeps ({}); import \
                 again with replace=true",
                ApiError::from(error)
            ))),
        }
    }
}
