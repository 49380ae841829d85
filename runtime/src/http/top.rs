//! What objects cost (`object::meter`): `GET /top` ranks the objects, and `/metrics` gains
//! each class's totals (per class only, so its series stay few).

use std::fmt::Write;

use http::StatusCode;

use super::admin::AdminState;
use super::error::{ApiError, Body, json};
use super::inspect::{page_limit, query, read_db};
use crate::object::{Rank, Usage};

/// `GET /top?by=cpu|requests|storage|wall[&class=C][&limit=N]`: the costliest objects since
/// this node started, and every class's totals.
pub(super) async fn top(
    state: &AdminState,
    query_string: Option<&str>,
) -> Result<http::Response<Body>, ApiError> {
    let by: Rank = query(query_string, "by")?
        .as_deref()
        .unwrap_or("cpu")
        .parse()
        .map_err(ApiError::BadRequest)?;
    let limit = match query(query_string, "limit")? {
        None => 20,
        Some(_) => page_limit(query_string)?,
    };
    let only = match query(query_string, "class")? {
        None => None,
        Some(name) => {
            let name = crate::ids::ClassName::parse(&name)?;
            let class = (state.classes.get(&name))
                .ok_or_else(|| ApiError::NotFound(format!("no class named {name}")))?;
            Some(class.incarnation)
        }
    };
    let metered = state.directory.usage();
    let mut objects: Vec<_> = (metered.objects.into_iter())
        .filter(|(key, usage)| usage.events > 0 && only.is_none_or(|i| i == key.incarnation))
        .collect();
    objects.sort_by_key(|(_, usage)| std::cmp::Reverse(usage.rank(by)));
    objects.truncate(limit);
    // Their names, from storage (one read each).
    let keys: Vec<_> = objects.iter().map(|(key, _)| key.clone()).collect();
    let names = read_db(state, "reading the objects' names", move |db| {
        (keys.iter())
            .map(|key| crate::storage::inspect::stored_name(db, key.incarnation, &key.id))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let class_name =
        |incarnation: u64| (state.classes.by_incarnation(incarnation)).map(|c| c.name.to_string());
    let objects: Vec<_> = (objects.iter().zip(names))
        .map(|((key, usage), name)| {
            let mut shown = usage_json(usage);
            shown["class"] = class_name(key.incarnation).into();
            shown["id"] = key.id.to_hex().into();
            shown["name"] = name.into();
            shown["active"] = state.directory.live(key).is_some().into();
            shown
        })
        .collect();
    let classes = class_totals(state, &metered.classes);
    let classes: Vec<_> = (classes.into_iter())
        .map(|(name, usage)| {
            let mut shown = usage_json(&usage);
            shown["class"] = name.into();
            shown
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "by": query(query_string, "by")?.unwrap_or("cpu".into()),
                             "objects": objects, "classes": classes }),
    ))
}

/// Each deployed class's totals (classes with events only), by class name.
fn class_totals(
    state: &AdminState,
    classes: &std::collections::HashMap<u64, Usage>,
) -> Vec<(String, Usage)> {
    let mut classes: Vec<_> = (classes.iter())
        .filter(|(_, usage)| usage.events > 0)
        .filter_map(|(incarnation, usage)| {
            Some((
                state.classes.by_incarnation(*incarnation)?.name.to_string(),
                *usage,
            ))
        })
        .collect();
    classes.sort_by(|a, b| a.0.cmp(&b.0));
    classes
}

/// Totals as the API shows them (times in ms).
pub(super) fn usage_json(usage: &Usage) -> serde_json::Value {
    let ms = |ns: u64| ns as f64 / 1e6;
    serde_json::json!({
        "events": usage.events,
        "wall_ms": ms(usage.wall_ns),
        "cpu_ms": ms(usage.cpu_ns),
        "gate_ms": ms(usage.gate_ns),
        "read_bytes": usage.read_bytes,
        "written_bytes": usage.written_bytes,
        "peak_memory_bytes": usage.peak_memory_bytes,
    })
}

/// Each class's totals as OpenMetrics counter families, for `/metrics`.
pub(super) fn class_metrics(state: &AdminState) -> String {
    let classes = class_totals(state, &state.directory.usage().classes);
    type Family = (&'static str, &'static str, fn(&Usage) -> f64);
    let families: [Family; 6] = [
        (
            "duro_class_events",
            "Events from outside run by the class's objects.",
            |u| u.events as f64,
        ),
        (
            "duro_class_wall_seconds",
            "Wall time of the class's events.",
            |u| u.wall_ns as f64 / 1e9,
        ),
        (
            "duro_class_cpu_seconds",
            "CPU time of the class's events.",
            |u| u.cpu_ns as f64 / 1e9,
        ),
        (
            "duro_class_gate_wait_seconds",
            "Time the class's outputs waited for their commits.",
            |u| u.gate_ns as f64 / 1e9,
        ),
        (
            "duro_class_storage_read_bytes",
            "Bytes the class's guests read from storage.",
            |u| u.read_bytes as f64,
        ),
        (
            "duro_class_storage_written_bytes",
            "Bytes the class's events wrote to storage.",
            |u| u.written_bytes as f64,
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in families {
        let _ = writeln!(out, "# TYPE {name} counter\n# HELP {name} {help}");
        for (class, usage) in &classes {
            let _ = writeln!(out, "{name}_total{{class=\"{class}\"}} {}", value(usage));
        }
    }
    out
}
