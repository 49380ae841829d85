//! Guest stdout/stderr: each line a guest prints becomes a tracing event tagged with its class
//! and object (its name when it was addressed by one, and its id). Partial lines wait for their
//! newline (or the instance's end).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::ids::ClassName;

/// Longest line kept before it is logged anyway; guards host memory against a guest that prints
/// without newlines.
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Bytes accepted per write: the WASI permit size.
const WRITE_PERMIT_BYTES: usize = 64 * 1024;

/// The object an instance runs now, as its log lines name it (a shared instance changes it per
/// event; a worker has none).
pub type ObjectLabel = Arc<Mutex<Option<Label>>>;

/// Who prints: an object's id and, once known, its name.
#[derive(Debug, Clone)]
pub struct Label {
    pub id: crate::ids::ObjectId,
    pub name: Option<String>,
}

/// Makes the per-instance streams; given to the WASI context as stdout and as stderr.
#[derive(Clone)]
pub struct GuestLog {
    stream: &'static str,
    class: ClassName,
    object: ObjectLabel,
}

impl GuestLog {
    /// The stdout and stderr of an instance of `class`.
    pub fn streams(class: ClassName, object: ObjectLabel) -> (GuestLog, GuestLog) {
        let log = |stream| GuestLog {
            stream,
            class: class.clone(),
            object: object.clone(),
        };
        (log("stdout"), log("stderr"))
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            log: self.clone(),
            line: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASI p2 guests are supported; p3 output is discarded.
        Box::new(tokio::io::sink())
    }
}

struct LineWriter {
    log: GuestLog,
    line: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches(['\n', '\r']);
        let (class, stream) = (&self.log.class, self.log.stream);
        let label = crate::lock(&self.log.object);
        crate::tail::publish(|| {
            let mut event = crate::tail::TailEvent::new("log");
            event.class = Some(class.to_string());
            if let Some(label) = &*label {
                event.id = Some(label.id.to_hex());
                event.object = Some(label.name.clone().unwrap_or_else(|| label.id.to_hex()));
            }
            event.what = Some(stream.to_string());
            event.message = Some(text.to_string());
            event
        });
        match &*label {
            Some(Label {
                id,
                name: Some(name),
            }) => {
                tracing::info!(target: "duro::guest", %class, object = %name, %id, stream, "{text}")
            }
            Some(Label { id, name: None }) => {
                tracing::info!(target: "duro::guest", %class, object = %id, stream, "{text}")
            }
            None => tracing::info!(target: "duro::guest", %class, stream, "{text}"),
        }
        self.line.clear();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        for &byte in bytes.iter() {
            self.line.push(byte);
            if byte == b'\n' || self.line.len() >= MAX_LINE_BYTES {
                self.emit();
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT_BYTES)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit();
    }
}
