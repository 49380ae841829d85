//! The `duro:object/sql` host functions: WIT values to the object's SQL database and back
//! (`storage::sql` does the work).

use super::ObjectState;
use super::generated::duro::object::sql;
use crate::storage::ObjectStorage;
use crate::storage::sql::{Cursor, SqlError, Value};

impl sql::Host for ObjectState {
    fn exec(&mut self, query: String, bindings: Vec<sql::Value>) -> Result<sql::Cursor, String> {
        let bindings: Vec<Value> = bindings.into_iter().map(from_wit).collect();
        let cursor = self.sql(|s| s.sql_exec(&query, &bindings))?;
        Ok(to_wit(cursor))
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
        f(storage).map_err(|e| e.0)
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
