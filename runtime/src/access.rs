//! The access log (`duro serve --access-log`, target `duro::access`): one line per ingress
//! request with its method, path, status, duration and the objects it reached — directly, or
//! through the worker's stub calls, which run in the request's task.

use std::cell::RefCell;
use std::future::Future;
use std::time::Instant;

use http::Method;

use crate::ids::{ClassName, ObjectId};

tokio::task_local! {
    /// The objects the current ingress request reached, as `Class/name` (or `Class/id`).
    static REACHED: RefCell<Vec<String>>;
}

/// Whether access lines are wanted, in the log or by a live tail (then requests are timed and
/// their objects noted).
pub fn enabled() -> bool {
    tracing::enabled!(target: "duro::access", tracing::Level::INFO) || crate::tail::listening()
}

/// Runs `handle` noting the objects it reaches, and logs its line with `status(&output)`.
pub async fn logged<T>(
    method: Method,
    path: String,
    handle: impl Future<Output = T>,
    status: impl FnOnce(&T) -> u16,
) -> T {
    let started = Instant::now();
    let (output, reached) = REACHED
        .scope(RefCell::new(Vec::new()), async {
            let output = handle.await;
            (output, REACHED.with(|r| r.take()))
        })
        .await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let status = status(&output);
    let object = reached.join(",");
    crate::tail::publish(|| {
        let mut event = crate::tail::TailEvent::new("request");
        event.what = Some(format!("{method} {path}"));
        event.status = Some(status);
        event.ms = Some(ms);
        event.object = (!object.is_empty()).then(|| object.clone());
        event
    });
    tracing::info!(
        target: "duro::access",
        %method, %path, status, ms = format_args!("{ms:.2}"), object, "request"
    );
    output
}

/// Notes that the current ingress request reached an object (nothing outside one, or with the
/// access log off).
pub fn reached(class: &ClassName, name: Option<&str>, id: ObjectId) {
    let _ = REACHED.try_with(|objects| {
        let label = match name {
            Some(name) => format!("{class}/{name}"),
            None => format!("{class}/{id}"),
        };
        let mut objects = objects.borrow_mut();
        if !objects.contains(&label) {
            objects.push(label);
        }
    });
}
