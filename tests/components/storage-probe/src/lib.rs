//! storage-probe: a test class that runs a script of raw storage calls in one event and reports
//! each call's result, so tests can drive every storage call, list option, transaction and limit
//! through HTTP and see the exact typed error.
//!
//! `POST /script` with a JSON array of ops, e.g.
//! `[{"op":"put","key":"a","value":"1"},{"op":"get","key":"a"}]` answers
//! `{"results":[{},{"value":"1"}]}`. Values are UTF-8 strings. `{"op":"trap"}` panics (the event's
//! writes must then be discarded). `GET /state` reports the object's identity. `POST /sql` runs
//! SQL statements through the SDK's typed API (see [`SqlScript`]).

use duro_sdk::wit::duro::object::storage::{self as raw, LimitExceeded, ListOptions, StorageError};
use duro_sdk::{DurableObject, Request, Response, Result, SqlValue, State, json};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Op {
    Get {
        key: String,
    },
    GetMany {
        keys: Vec<String>,
    },
    Put {
        key: String,
        value: String,
    },
    /// Puts `size` bytes of 'x' (to reach the value limit without a huge request).
    PutSized {
        key: String,
        size: usize,
    },
    PutMany {
        entries: Vec<(String, String)>,
    },
    /// Puts `count` generated keys in one put-many.
    PutGenerated {
        prefix: String,
        count: usize,
    },
    Delete {
        key: String,
    },
    DeleteMany {
        keys: Vec<String>,
    },
    List {
        prefix: Option<String>,
        start: Option<String>,
        #[serde(rename = "startAfter")]
        start_after: Option<String>,
        end: Option<String>,
        #[serde(default)]
        reverse: bool,
        limit: Option<u32>,
    },
    DeleteAll,
    Begin,
    Commit,
    Rollback,
    Trap,
    State,
}

struct Probe {
    state: State,
}

impl DurableObject for Probe {
    fn new(state: State) -> Self {
        Probe { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        match request.path() {
            "/script" => {
                let ops: Vec<Op> = request.json()?;
                let results: Vec<Value> = ops.into_iter().map(|op| self.run(op)).collect();
                Response::json(&json!({ "results": results }))
            }
            "/state" => Response::json(&self.identity()),
            "/sql" => self.sql(request.json()?),
            _ => Ok(Response::text(404, "not found")),
        }
    }
}

/// `POST /sql`: statements run in order in one event, through the SDK's typed SQL API.
#[derive(Deserialize)]
struct SqlScript {
    statements: Vec<(String, Vec<Value>)>,
    /// Panic after the statements (the event's SQL writes must then be discarded).
    #[serde(default)]
    trap: bool,
}

impl Probe {
    /// Each statement's rows (as JSON objects) and writes, or its error message.
    fn sql(&self, script: SqlScript) -> Result<Response> {
        let sql = self.state.storage().sql();
        let results: Vec<Value> = script
            .statements
            .into_iter()
            .map(|(query, bindings)| {
                let bindings: Vec<SqlValue> = bindings.into_iter().map(binding).collect();
                match sql.exec(&query, &bindings) {
                    Ok(cursor) => {
                        let written = cursor.rows_written();
                        let columns = cursor.column_names().to_vec();
                        match cursor.to_array::<Value>() {
                            Ok(rows) => {
                                json!({ "rows": rows, "columns": columns, "written": written })
                            }
                            Err(e) => json!({ "error": e.to_string() }),
                        }
                    }
                    Err(e) => json!({ "error": e.to_string() }),
                }
            })
            .collect();
        assert!(!script.trap, "trap requested after the SQL");
        Response::json(&json!({ "results": results, "size": sql.database_size()? }))
    }

    fn identity(&self) -> Value {
        json!({
            "id": self.state.id(),
            "name": self.state.name(),
            "class": self.state.class_name(),
        })
    }

    fn run(&self, op: Op) -> Value {
        let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
        let entries = |e: Vec<(String, Vec<u8>)>| -> Value {
            e.into_iter().map(|(k, v)| json!([k, text(v)])).collect()
        };
        let outcome: Result<Value, StorageError> = match op {
            Op::Get { key } => raw::get(&key).map(|v| json!({ "value": v.map(text) })),
            Op::GetMany { keys } => raw::get_many(&keys).map(|e| json!({ "entries": entries(e) })),
            Op::Put { key, value } => raw::put(&key, value.as_bytes()).map(|()| json!({})),
            Op::PutSized { key, size } => raw::put(&key, &vec![b'x'; size]).map(|()| json!({})),
            Op::PutMany { entries } => {
                let entries: Vec<(String, Vec<u8>)> = entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                raw::put_many(&entries).map(|()| json!({}))
            }
            Op::PutGenerated { prefix, count } => {
                let entries: Vec<(String, Vec<u8>)> = (0..count)
                    .map(|i| (format!("{prefix}{i:05}"), b"1".to_vec()))
                    .collect();
                raw::put_many(&entries).map(|()| json!({}))
            }
            Op::Delete { key } => raw::delete(&key).map(|e| json!({ "existed": e })),
            Op::DeleteMany { keys } => raw::delete_many(&keys).map(|n| json!({ "count": n })),
            Op::List {
                prefix,
                start,
                start_after,
                end,
                reverse,
                limit,
            } => raw::list(&ListOptions {
                prefix,
                start,
                start_after,
                end,
                reverse,
                limit,
            })
            .map(|e| json!({ "entries": entries(e) })),
            Op::DeleteAll => raw::delete_all().map(|()| json!({})),
            Op::Begin => raw::transaction_begin().map(|()| json!({})),
            Op::Commit => raw::transaction_commit().map(|()| json!({})),
            Op::Rollback => raw::transaction_rollback().map(|()| json!({})),
            Op::Trap => panic!("trap requested by the script"),
            Op::State => Ok(self.identity()),
        };
        outcome.unwrap_or_else(|e| json!({ "error": describe(e) }))
    }
}

fn describe(error: StorageError) -> Value {
    let limit =
        |kind: &str, l: LimitExceeded| json!({"kind": kind, "limit": l.limit, "actual": l.actual});
    match error {
        StorageError::KeyTooLarge(l) => limit("key-too-large", l),
        StorageError::ValueTooLarge(l) => limit("value-too-large", l),
        StorageError::TooManyKeys(l) => limit("too-many-keys", l),
        StorageError::ResultTooLarge(l) => limit("result-too-large", l),
        StorageError::InvalidArgument(reason) => {
            json!({"kind": "invalid-argument", "reason": reason})
        }
        StorageError::NoTransaction => json!({"kind": "no-transaction"}),
        StorageError::Internal(reason) => json!({"kind": "internal", "reason": reason}),
    }
}

duro_sdk::export!(Probe);

/// A JSON binding as an SQL value: integers, reals, strings, `null`; an array of bytes a blob.
fn binding(value: Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => b.into(),
        Value::Number(n) => n
            .as_i64()
            .map_or(SqlValue::Real(n.as_f64().unwrap_or(0.0)), Into::into),
        Value::String(s) => s.into(),
        Value::Array(bytes) => bytes
            .iter()
            .map(|b| b.as_u64().unwrap_or(0) as u8)
            .collect::<Vec<u8>>()
            .into(),
        Value::Object(_) => SqlValue::Text(value.to_string()),
    }
}
