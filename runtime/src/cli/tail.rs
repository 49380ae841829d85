//! `duro tail [CLASS [NAME]]`: the admin API's live tail (`GET /tail`), printed as it comes —
//! one line per request, event or guest log line, or with `--json` the events as JSON lines.

use std::io::Write;

use anyhow::Context;

use super::client::AdminClient;
use super::tables::shown;

pub(super) async fn tail(
    client: &AdminClient,
    class: Option<String>,
    object: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let path = super::with_query(
        "/tail?".to_string(),
        &[("class", &class), ("object", &object)],
    );
    let mut response = client.get_streaming(&path).await?;
    let mut pending = String::new();
    while let Some(chunk) = response.chunk().await.context("receiving the tail")? {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let message: String = pending.drain(..end + 2).collect();
            if let Some(missed) = message.strip_prefix("event: missed\ndata: ") {
                eprintln!("(missed {} events: the tail fell behind)", missed.trim());
            } else if let Some(data) = message.strip_prefix("data: ") {
                let data = data.trim_end();
                let text = match json {
                    true => data.to_string(),
                    false => match serde_json::from_str::<serde_json::Value>(data) {
                        Ok(event) => line(&event),
                        Err(_) => continue,
                    },
                };
                // A reader that went away (`duro tail | head`) ends the tail quietly.
                if writeln!(std::io::stdout().lock(), "{text}").is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// `12:00:01.123  fetch    Counter/alice  0.41 ms`, `... request  POST /x  200`, `... log ...`.
fn line(event: &serde_json::Value) -> String {
    let ms = event["time_ms"]
        .as_i64()
        .unwrap_or(0)
        .rem_euclid(86_400_000);
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
    let text = |field: &str| shown(event[field].as_str().unwrap_or("")).into_owned();
    let who = match (event["class"].as_str(), event["object"].as_str()) {
        (Some(class), Some(object)) => format!("{class}/{object}"),
        (Some(class), None) => class.to_string(),
        (None, Some(objects)) => objects.to_string(),
        (None, None) => String::new(),
    };
    let mut out = format!("{time}  {:11}  {}", text("kind"), shown(&who));
    if let Some(what) = event["what"].as_str() {
        out += &format!("  {}", shown(what));
    }
    if let Some(status) = event["status"].as_u64() {
        out += &format!("  {status}");
    }
    if let Some(ms) = event["ms"].as_f64() {
        out += &format!("  {ms:.2} ms");
    }
    if let Some(message) = event["message"].as_str() {
        out += &format!(": {}", shown(message));
    }
    out
}
