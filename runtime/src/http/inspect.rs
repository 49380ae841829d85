//! The object inspector's admin routes: a class's stored objects, one object's entries and its
//! SQL tables and rows — all read from storage outside any event, so looking never
//! activates an object nor waits on one.

use std::sync::Arc;

use http::StatusCode;

use super::admin::AdminState;
use super::error::{ApiError, Body, json};
use super::route;
use crate::ids::ObjectId;

/// Objects, entries or rows one page lists by default, and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Largest SQL database a snapshot copies into memory to be read.
const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;

/// The deployed class `class`, or 404.
fn loaded_class(
    state: &AdminState,
    class: &crate::ids::ClassName,
) -> Result<Arc<crate::class::LoadedClass>, ApiError> {
    state
        .classes
        .get(class)
        .ok_or_else(|| ApiError::NotFound(format!("no class named {class}")))
}

/// The class and id an admin route names an object by (a malformed or foreign id: 400), and its
/// name when it was named by it.
pub(super) fn find_object(
    state: &AdminState,
    class: &crate::ids::ClassName,
    object: route::ObjectRef,
) -> Result<(Arc<crate::class::LoadedClass>, ObjectId, Option<String>), ApiError> {
    let loaded = loaded_class(state, class)?;
    Ok(match object {
        route::ObjectRef::Id(id) => {
            let id = loaded.ids.from_string(&id)?;
            (loaded, id, None)
        }
        route::ObjectRef::Name(name) => {
            let id = loaded.ids.from_name(&name);
            (loaded, id, Some(name))
        }
    })
}

/// Runs a blocking read of the database off the async threads; a failure is an internal error
/// that says `what` was being done.
pub(super) async fn read_db<T: Send + 'static>(
    state: &AdminState,
    what: &str,
    read: impl FnOnce(&dyn crate::storage::Reader) -> Result<T, crate::storage::BackendError>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    let db = state.db.clone();
    let failed = |e: &dyn std::fmt::Display| ApiError::Internal(format!("{what}: {e}"));
    tokio::task::spawn_blocking(move || read(db.reader()?.as_ref()))
        .await
        .map_err(|e| failed(&e))?
        .map_err(|e| failed(&e))
}

/// A query value, or a bad request that names it.
pub(super) fn query(query: Option<&str>, key: &str) -> Result<Option<String>, ApiError> {
    route::query_value(query, key)
        .map_err(|_| ApiError::BadRequest(format!("the query value {key} is not valid UTF-8")))
}

/// `?limit=` (1 to [`MAX_PAGE`], default [`PAGE`]).
pub(super) fn page_limit(query_string: Option<&str>) -> Result<usize, ApiError> {
    match query(query_string, "limit")? {
        None => Ok(PAGE),
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a number from 1 to {MAX_PAGE}"))
            }),
    }
}

/// `GET /classes/{class}/objects`: the class's stored objects (with a key or an alarm), in id
/// order, a page at a time (`?limit=`, `?after=` the last id of the previous page); with
/// `?name_prefix=`, the objects whose names start with it, in name order, from the class's name
/// index (`?after=` the last name of the previous page).
pub(super) async fn objects(
    state: &AdminState,
    class: &crate::ids::ClassName,
    query_string: Option<&str>,
) -> Result<http::Response<Body>, ApiError> {
    let loaded = loaded_class(state, class)?;
    let limit = page_limit(query_string)?;
    let incarnation = loaded.incarnation;
    let after = query(query_string, "after")?;
    let page = match query(query_string, "name_prefix")? {
        Some(prefix) => {
            read_db(state, "listing objects by name", move |db| {
                crate::storage::inspect::named_objects(
                    db,
                    incarnation,
                    &prefix,
                    after.as_deref(),
                    limit,
                )
            })
            .await?
        }
        None => {
            let after = after.map(|id| loaded.ids.from_string(&id)).transpose()?;
            read_db(state, "listing objects", move |db| {
                crate::storage::inspect::objects(db, incarnation, after.as_ref(), limit)
            })
            .await?
        }
    };
    let objects: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|object| {
            let live = state.directory.live(&loaded.key(object.id));
            serde_json::json!({
                "id": object.id.to_hex(),
                "name": object.name,
                "keys": object.keys,
                "bytes": object.bytes,
                "alarm_ms": object.alarm_ms,
                "sql_bytes": object.sql_bytes,
                "active": live.is_some(),
                "websockets": live.map_or(0, |l| l.websockets),
                "last_event_ms": live.and_then(|l| l.last_event_ms),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "class": class, "objects": objects, "next": page.next }),
    ))
}

/// `GET /classes/{class}/objects/{id}` (or `/by-name/{name}`): the object's stored entries in key
/// order (`?prefix=`, `?limit=`, `?after=` the last key of the previous page) and its alarm. A
/// value is shown as the JSON it is (`"value"`), or as `"hex"` when it is not JSON.
pub(super) async fn object_entries(
    state: &AdminState,
    class: &crate::ids::ClassName,
    object: route::ObjectRef,
    query_string: Option<&str>,
) -> Result<http::Response<Body>, ApiError> {
    let (loaded, id, name) = find_object(state, class, object)?;
    let view = state.directory.view(loaded.clone(), id).await;
    let limit = page_limit(query_string)?;
    let prefix = query(query_string, "prefix")?.unwrap_or_default();
    let after = query(query_string, "after")?;
    let incarnation = loaded.incarnation;
    let object = read_db(state, "reading the object", move |db| {
        crate::storage::inspect::entries(db, incarnation, &id, &prefix, after.as_deref(), limit)
    })
    .await?;
    let entries: Vec<serde_json::Value> = object
        .entries
        .items
        .into_iter()
        .map(|(key, bytes)| shown(&key, &bytes))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "class": class,
            "id": id.to_hex(),
            "name": name.or(object.name),
            "alarm_ms": object.alarm_ms,
            "active": view.is_some(),
            "in_memory": view.as_ref().is_some_and(|v| v.in_memory),
            "websockets": view.as_ref().map_or(0, |v| v.websockets.len()),
            "sockets": view.as_ref().map_or(Vec::new(), |v| v.websockets.iter()
                .map(|(id, tags)| serde_json::json!({ "id": id, "tags": tags }))
                .collect()),
            "last_event_ms": state.directory.live(&loaded.key(id)).and_then(|l| l.last_event_ms),
            "usage": state.directory.usage_of(&loaded.key(id)).as_ref().map(super::top::usage_json),
            "next": object.entries.next,
            "entries": entries,
        }),
    ))
}

/// A stored value as JSON: `"value"` when it is JSON, `"hex"` when not.
fn shown(key: &str, bytes: &[u8]) -> serde_json::Value {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => serde_json::json!({ "key": key, "value": value }),
        Err(_) => serde_json::json!({ "key": key, "hex": hex::encode(bytes) }),
    }
}

/// `GET .../objects/{id}/entries/{key}`: one stored entry (as [`object_entries`] shows it), or
/// 404.
pub(super) async fn object_entry(
    state: &AdminState,
    class: &crate::ids::ClassName,
    object: route::ObjectRef,
    key: String,
) -> Result<http::Response<Body>, ApiError> {
    let (loaded, id, _) = find_object(state, class, object)?;
    let full = [
        crate::storage::schema::object_prefix(loaded.incarnation, &id).as_slice(),
        key.as_bytes(),
    ]
    .concat();
    let value = read_db(state, "reading the entry", move |db| {
        db.get(crate::storage::schema::Table::Data, &full)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no key {key:?}")))?;
    Ok(json(StatusCode::OK, &shown(&key, &value)))
}

/// `GET .../objects/{id}/alarm`: `{"alarm_ms": ...}` (`null`: none).
pub(super) async fn object_alarm(
    state: &AdminState,
    class: &crate::ids::ClassName,
    object: route::ObjectRef,
) -> Result<http::Response<Body>, ApiError> {
    let (loaded, id, _) = find_object(state, class, object)?;
    let object = crate::storage::schema::object_prefix(loaded.incarnation, &id);
    let alarm_ms = read_db(state, "reading the alarm", move |db| db.alarm(&object)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "alarm_ms": alarm_ms }),
    ))
}

/// `GET .../objects/{id}/sql`: the object's SQL tables (name, `CREATE` statement, row count) and
/// the database's size; with `?table=`, that table's rows (`?offset=`, `?limit=`) with their
/// column names. Values are JSON: numbers, strings, `null`, a blob as `{"hex": ...}`.
pub(super) async fn object_sql(
    state: &AdminState,
    class: &crate::ids::ClassName,
    object: route::ObjectRef,
    query_string: Option<&str>,
) -> Result<http::Response<Body>, ApiError> {
    use crate::storage::sql::{Value, snapshot::Snapshot};
    let (loaded, id, name) = find_object(state, class, object)?;
    let table = query(query_string, "table")?;
    let limit = page_limit(query_string)? as u64;
    let offset = match query(query_string, "offset")? {
        None => 0,
        Some(n) => n
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest("offset must be a number".into()))?,
    };
    let prefix = crate::storage::schema::object_prefix(loaded.incarnation, &id);
    let db = state.db.clone();
    let answer = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, ApiError> {
        let reader = db
            .reader()
            .map_err(|e| ApiError::Internal(format!("reading the object: {e}")))?;
        let Some(snapshot) = Snapshot::read(reader.as_ref(), &prefix, MAX_SNAPSHOT_BYTES)
            .map_err(|e| ApiError::Internal(e.to_string()))?
        else {
            return Ok(serde_json::json!({ "size": 0, "tables": [] }));
        };
        let value = |v: Value| match v {
            Value::Null => serde_json::Value::Null,
            Value::Integer(n) => n.into(),
            Value::Real(x) => x.into(),
            Value::Text(s) => s.into(),
            Value::Blob(b) => serde_json::json!({ "hex": hex::encode(b) }),
        };
        Ok(match table {
            None => {
                let tables = snapshot.tables().map_err(|e| ApiError::Internal(e.to_string()))?;
                let tables: Vec<_> = tables
                    .into_iter()
                    .map(|t| serde_json::json!({ "name": t.name, "sql": t.sql, "rows": t.rows }))
                    .collect();
                serde_json::json!({ "size": snapshot.size, "tables": tables })
            }
            Some(table) => {
                let page = snapshot
                    .rows(&table, offset, limit)
                    .map_err(|e| ApiError::NotFound(e.to_string()))?;
                let rows: Vec<Vec<serde_json::Value>> = page
                    .rows
                    .into_iter()
                    .map(|row| row.into_iter().map(value).collect())
                    .collect();
                serde_json::json!({ "table": table, "offset": offset, "columns": page.columns, "rows": rows })
            }
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("reading the object: {e}")))?;
    let mut answer = answer?;
    answer["class"] = serde_json::json!(class);
    answer["id"] = id.to_hex().into();
    answer["name"] = serde_json::json!(name);
    Ok(json(StatusCode::OK, &answer))
}
