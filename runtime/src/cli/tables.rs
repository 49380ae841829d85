//! How the admin commands print for people: the tables of `classes`, `objects`, `object` and
//! `top`, and the one-line answers of `import` and `fork` (`--json` prints the API's JSON
//! instead).

use std::borrow::Cow;
use std::time::Duration;

use super::AdminArgs;

/// `text` — a name, a key, a guest's log line: anything a client or a guest chose — safe to print
/// to a terminal: control characters (escape sequences, carriage returns, bells, newlines) and
/// the invisible marks that reorder text (bidirectional overrides and isolates) are shown as
/// `\u{..}` escapes, as the server's log shows them. `--json` output is never passed here.
pub(super) fn shown(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out += &format!("\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The classes as a table: name, digest (short), size, last change (UTC).
pub(super) fn classes_table(classes: &[crate::class::ClassInfo]) -> String {
    let width = classes
        .iter()
        .map(|c| c.class.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!(
        "{:width$}  {:12}  {:>9}  UPDATED\n",
        "CLASS", "SHA256", "SIZE"
    );
    for class in classes {
        let updated = std::time::UNIX_EPOCH + Duration::from_millis(class.updated_ms);
        let size = if class.size >= 1024 * 1024 {
            format!("{:.1} MiB", class.size as f64 / 1048576.0)
        } else {
            format!("{:.0} KiB", (class.size as f64 / 1024.0).ceil())
        };
        out += &format!(
            "{:width$}  {:12}  {size:>9}  {}\n",
            class.class,
            &class.sha256[..class.sha256.len().min(12)],
            httpdate::fmt_http_date(updated)
        );
    }
    if classes.is_empty() {
        out += "(no classes deployed)\n";
    }
    out
}

/// `duro top`: the ranked objects, then the classes' totals.
pub(super) fn top_table(top: &serde_json::Value) -> String {
    let row = |first: &str, second: &str, usage: &serde_json::Value| {
        let ms = |field: &str| format!("{:.1}", usage[field].as_f64().unwrap_or(0.0));
        let n = |field: &str| usage[field].to_string();
        format!(
            "{first:16}  {second:24}  {:>8}  {:>10}  {:>10}  {:>10}  {:>11}  {:>11}  {:>11}\n",
            n("events"),
            ms("cpu_ms"),
            ms("wall_ms"),
            ms("gate_ms"),
            n("read_bytes"),
            n("written_bytes"),
            n("peak_memory_bytes"),
        )
    };
    let mut out = format!(
        "top objects by {}\n{:16}  {:24}  {:>8}  {:>10}  {:>10}  {:>10}  {:>11}  {:>11}  {:>11}\n",
        top["by"].as_str().unwrap_or("cpu"),
        "CLASS",
        "NAME (or id)",
        "EVENTS",
        "CPU_MS",
        "WALL_MS",
        "GATE_MS",
        "READ_BYTES",
        "WRITTEN",
        "PEAK_MEMORY"
    );
    let objects = top["objects"].as_array().cloned().unwrap_or_default();
    for object in &objects {
        let id = object["id"].as_str().unwrap_or("?");
        let name = object["name"].as_str().map_or_else(
            || id[..16.min(id.len())].to_string(),
            |n| shown(n).into_owned(),
        );
        out += &row(object["class"].as_str().unwrap_or("?"), &name, object);
    }
    if objects.is_empty() {
        out += "(no events yet)\n";
    }
    out += "\nper class\n";
    for class in top["classes"].as_array().cloned().unwrap_or_default() {
        out += &row(class["class"].as_str().unwrap_or("?"), "", &class);
    }
    out
}

/// What an import put, as JSON or in words.
pub(super) fn print_imported(admin: &AdminArgs, answer: serde_json::Value) {
    if admin.json {
        println!("{answer}");
    } else {
        println!(
            "imported {} entries into object {} ({} events)",
            answer["entries"],
            answer["id"].as_str().unwrap_or("?"),
            answer["parts"]
        );
    }
}

/// An alarm time for people: its HTTP date, or `-`.
pub(super) fn alarm_text(alarm_ms: &serde_json::Value) -> String {
    match alarm_ms.as_i64().and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_millis(ms)),
        None => "-".to_string(),
    }
}

/// `word` as one shell word: as it is when that is safe, else single-quoted.
pub(super) fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,:/@%+=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `duro objects`: a table of a page of `GET /classes/{class}/objects`, and how to see the next
/// (`more` is the command that listed it).
pub(super) fn objects_table(more: &str, page: &serde_json::Value) -> String {
    let objects = page["objects"].as_array().cloned().unwrap_or_default();
    let width = objects
        .iter()
        .filter_map(|o| o["name"].as_str())
        .map(|name| shown(name).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 40);
    let mut out = format!(
        "{:width$}  {:64}  {:>6}  {:>9}  {:6}  {:>7}  ALARM\n",
        "NAME", "ID", "KEYS", "BYTES", "ACTIVE", "SOCKETS"
    );
    for object in &objects {
        out += &format!(
            "{:width$}  {:64}  {:>6}  {:>9}  {:6}  {:>7}  {}\n",
            shown(object["name"].as_str().unwrap_or("-")),
            object["id"].as_str().unwrap_or("?"),
            object["keys"].to_string(),
            object["bytes"].to_string(),
            if object["active"] == true {
                "yes"
            } else {
                "no"
            },
            object["websockets"].to_string(),
            alarm_text(&object["alarm_ms"])
        );
    }
    if objects.is_empty() {
        out += "(no stored objects)\n";
    }
    if let Some(next) = page["next"].as_str() {
        out += &format!("more: {more} --after {}\n", shown(&shell_word(next)));
    }
    out
}

/// `duro object`: an object's id, alarm and entries (values as compact JSON).
pub(super) fn entries_table(object: &serde_json::Value) -> String {
    let mut out = format!("id: {}\n", object["id"].as_str().unwrap_or("?"));
    if let Some(name) = object["name"].as_str() {
        out += &format!("name: {}\n", shown(name));
    }
    out += &format!("alarm: {}\n", alarm_text(&object["alarm_ms"]));
    let yes = |field: &str| if object[field] == true { "yes" } else { "no" };
    out += &format!(
        "active: {}, in memory: {}, websockets: {}\n",
        yes("active"),
        yes("in_memory"),
        object["websockets"]
    );
    let entries = object["entries"].as_array().cloned().unwrap_or_default();
    let width = entries
        .iter()
        .filter_map(|e| e["key"].as_str())
        .map(|key| shown(key).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(3, 40);
    out += &format!("{:width$}  VALUE\n", "KEY");
    for entry in &entries {
        let value = match entry.get("value") {
            Some(value) => value.to_string(),
            None => format!("(not JSON) hex {}", entry["hex"].as_str().unwrap_or("")),
        };
        let key = shown(entry["key"].as_str().unwrap_or("?"));
        out += &format!("{key:width$}  {value}\n");
    }
    if entries.is_empty() {
        out += "(no entries)\n";
    }
    if let Some(next) = object["next"].as_str() {
        out += &format!("more: add --after {}\n", shown(next));
    }
    out
}
