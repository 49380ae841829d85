//! The `duro:object/sql` host functions: WIT values to the object's SQL database and back
//! (`storage::sql` does the work).

use std::time::Instant;

use super::ObjectState;
use super::generated::duro::object::sql;
use crate::storage::ObjectStorage;
use crate::storage::sql::{Cursor, SqlBudget, SqlError, Value};

impl sql::Host for ObjectState {
    /// Runs the statements within the event's CPU time left (the time they take is charged to
    /// it); one that runs past it, or past the runtime's stop, fails the event as a guest
    /// running past it does (a trap, the instance reset).
    fn exec(
        &mut self,
        query: String,
        bindings: Vec<sql::Value>,
    ) -> wasmtime::Result<Result<sql::Cursor, String>> {
        let bindings: Vec<Value> = bindings.into_iter().map(from_wit).collect();
        let halt = self.meter.halt.clone();
        let waited = std::cell::Cell::new(std::time::Duration::ZERO);
        let budget = SqlBudget {
            cpu: self.meter.cpu_left(),
            halt: Some(&halt),
            waited: Some(&waited),
        };
        let started = Instant::now();
        let outcome = match self.storage() {
            Ok(storage) => storage.sql_exec(&query, &bindings, budget),
            Err(e) => return Ok(Err(format!("{e:?}"))),
        };
        // The time spent waiting for a place to run a long statement is not the event's.
        let spent = started.elapsed().saturating_sub(waited.get());
        self.meter.charge(spent);
        match outcome {
            Ok(cursor) => Ok(Ok(to_wit(cursor))),
            Err(SqlError::CpuLimit) => {
                self.meter.cpu_exhausted = true;
                Err(wasmtime::Error::msg(SqlError::CpuLimit.to_string()))
            }
            Err(SqlError::Halted) => {
                self.meter.halted = true;
                Err(wasmtime::Error::msg(SqlError::Halted.to_string()))
            }
            Err(other) => Ok(Err(other.to_string())),
        }
    }

    fn database_size(&mut self) -> Result<u64, String> {
        self.sql(ObjectStorage::sql_database_size)
    }
}

impl ObjectState {
    /// Runs `f` on the mounted object's storage, its error as the guest's message.
    fn sql<T>(
        &mut self,
        f: impl FnOnce(&mut ObjectStorage) -> Result<T, SqlError>,
    ) -> Result<T, String> {
        let storage = self.storage().map_err(|e| format!("{e:?}"))?;
        f(storage).map_err(|e| e.to_string())
    }
}

fn from_wit(value: sql::Value) -> Value {
    match value {
        sql::Value::Null => Value::Null,
        sql::Value::Integer(n) => Value::Integer(n),
        sql::Value::Real(x) => Value::Real(x),
        sql::Value::Text(s) => Value::Text(s),
        sql::Value::Blob(b) => Value::Blob(b),
    }
}

fn to_wit(cursor: Cursor) -> sql::Cursor {
    let value = |v| match v {
        Value::Null => sql::Value::Null,
        Value::Integer(n) => sql::Value::Integer(n),
        Value::Real(x) => sql::Value::Real(x),
        Value::Text(s) => sql::Value::Text(s),
        Value::Blob(b) => sql::Value::Blob(b),
    };
    sql::Cursor {
        columns: cursor.columns,
        rows: cursor
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(value).collect())
            .collect(),
        rows_read: cursor.rows_read,
        rows_written: cursor.rows_written,
    }
}
