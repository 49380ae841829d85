//! How the PostgreSQL engine makes a group durable: one transaction, sent as one pipeline (one
//! round trip and one WAL flush), that starts with the fence (`duro_fence`: this node's
//! incarnation still owns the shard of every object the group writes) and then applies the
//! writes, puts and deletes batched with `unnest`. A group that fails is rolled back whole. A
//! refused fence means another node took over: the lease is lost, every later group fails too,
//! and the node stops (see `lease`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt, join_all};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::lease::{Fence, shard_of};
use super::{Pg, describe, table_code};
use crate::storage::backend::{Sink, SinkError};
use crate::storage::ops::{WriteOp, key_ordered};
use crate::storage::schema;

/// The SQLSTATE `duro_fence` raises.
const FENCE_REFUSED: &str = "DU001";

/// See the module docs.
pub struct PgSink {
    pg: Arc<Pg>,
    client: Arc<Client>,
    /// Every statement a group may use, prepared once, by its text.
    prepared: Prepared,
    fence: Fence,
}

const FENCE: &str = "SELECT duro_fence($1, $2)";
const PUTS: &str = "INSERT INTO duro_entries (t, k, v) \
     SELECT * FROM unnest($1::int2[], $2::bytea[], $3::bytea[]) \
     ON CONFLICT (t, k) DO UPDATE SET v = excluded.v";
const DELETES: &str = "DELETE FROM duro_entries WHERE (t, k) IN \
     (SELECT * FROM unnest($1::int2[], $2::bytea[]))";
const DELETE_PREFIX: &str =
    "DELETE FROM duro_entries WHERE t = $3 AND k >= $1 AND ($2::bytea IS NULL OR k < $2)";
const SET_ALARM: &str = "INSERT INTO duro_alarms (object, at_ms, retry) VALUES ($1, $2, NULL) \
     ON CONFLICT (object) DO UPDATE SET at_ms = excluded.at_ms, retry = NULL";
const DELETE_ALARM: &str = "DELETE FROM duro_alarms WHERE object = $1";
const CLEAR_ALARM_IF: &str = "DELETE FROM duro_alarms WHERE object = $1 AND at_ms = $2";
const DELETE_ALARMS_PREFIX: &str =
    "DELETE FROM duro_alarms WHERE object >= $1 AND ($2::bytea IS NULL OR object < $2)";
const RECORD_RETRY: &str = "UPDATE duro_alarms SET retry = $2 WHERE object = $1 AND at_ms = $3";

impl PgSink {
    pub fn new(pg: Arc<Pg>, fence: Fence) -> Result<Self, crate::storage::BackendError> {
        let (client, prepared) = connect(&pg)?;
        Ok(Self {
            pg,
            client,
            prepared,
            fence,
        })
    }
}

type Prepared = Arc<HashMap<&'static str, tokio_postgres::Statement>>;

/// The writer's own connection, with its statements prepared.
fn connect(pg: &Pg) -> Result<(Arc<Client>, Prepared), crate::storage::BackendError> {
    let client = Arc::new(pg.dedicated()?);
    let prepared = pg
        .block({
            let client = client.clone();
            async move {
                let mut prepared = HashMap::new();
                for sql in [
                    FENCE,
                    PUTS,
                    DELETES,
                    DELETE_PREFIX,
                    SET_ALARM,
                    DELETE_ALARM,
                    CLEAR_ALARM_IF,
                    DELETE_ALARMS_PREFIX,
                    RECORD_RETRY,
                ] {
                    prepared.insert(sql, client.prepare(sql).await?);
                }
                Ok::<_, tokio_postgres::Error>(prepared)
            }
        })
        .map_err(|e| super::fail(describe(&e)))?;
    Ok((client, Arc::new(prepared)))
}

/// One statement of the pipeline: its text and parameters.
struct Statement {
    sql: &'static str,
    params: Vec<Box<dyn ToSql + Send + Sync>>,
}

fn statement(sql: &'static str, params: Vec<Box<dyn ToSql + Send + Sync>>) -> Statement {
    Statement { sql, params }
}

/// The statements that apply `ops` in order: runs of puts and deletes batched (last write of
/// each key wins), every other op on its own.
fn statements(ops: &[&WriteOp]) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut run: Vec<&WriteOp> = Vec::new();
    for op in ops {
        match op {
            WriteOp::Put { .. } | WriteOp::Delete { .. } => run.push(op),
            other => {
                flush_run(&mut run, &mut out);
                out.push(single(other));
            }
        }
    }
    flush_run(&mut run, &mut out);
    out
}

fn flush_run(run: &mut Vec<&WriteOp>, out: &mut Vec<Statement>) {
    if run.is_empty() {
        return;
    }
    let ordered = key_ordered(run.drain(..)).expect("a run holds only puts and deletes");
    let (mut put_t, mut put_k, mut put_v) = (Vec::new(), Vec::new(), Vec::new());
    let (mut del_t, mut del_k) = (Vec::new(), Vec::new());
    for op in ordered {
        match op {
            WriteOp::Put { table, key, value } => {
                put_t.push(table_code(*table));
                put_k.push(key.clone());
                put_v.push(value.to_vec());
            }
            WriteOp::Delete { table, key } => {
                del_t.push(table_code(*table));
                del_k.push(key.clone());
            }
            _ => unreachable!("a run holds only puts and deletes"),
        }
    }
    // The keys are distinct (one write per key), so the puts and the deletes commute.
    if !put_t.is_empty() {
        out.push(statement(
            PUTS,
            vec![Box::new(put_t), Box::new(put_k), Box::new(put_v)],
        ));
    }
    if !del_t.is_empty() {
        out.push(statement(DELETES, vec![Box::new(del_t), Box::new(del_k)]));
    }
}

/// A prefix as a range `[prefix, end)`; `end` is `None` when the prefix is all 0xFF.
fn prefix_params(prefix: &[u8]) -> Vec<Box<dyn ToSql + Send + Sync>> {
    vec![
        Box::new(prefix.to_vec()),
        Box::new(schema::prefix_end(prefix)),
    ]
}

fn single(op: &WriteOp) -> Statement {
    match op {
        WriteOp::DeletePrefix { table, prefix } => {
            let mut params = prefix_params(prefix);
            params.push(Box::new(table_code(*table)));
            statement(DELETE_PREFIX, params)
        }
        WriteOp::SetAlarm {
            object,
            at_ms: Some(at),
        } => statement(SET_ALARM, vec![Box::new(object.clone()), Box::new(*at)]),
        WriteOp::SetAlarm {
            object,
            at_ms: None,
        } => statement(DELETE_ALARM, vec![Box::new(object.clone())]),
        WriteOp::ClearAlarmIf { object, at_ms } => statement(
            CLEAR_ALARM_IF,
            vec![Box::new(object.clone()), Box::new(*at_ms)],
        ),
        WriteOp::DeleteAlarmsPrefix { prefix } => {
            statement(DELETE_ALARMS_PREFIX, prefix_params(prefix))
        }
        WriteOp::RecordAlarmRetry { object, retry } => statement(
            RECORD_RETRY,
            vec![
                Box::new(object.clone()),
                Box::new(retry.encode().to_vec()),
                Box::new(retry.at_ms),
            ],
        ),
        WriteOp::Put { .. } | WriteOp::Delete { .. } => {
            unreachable!("puts and deletes are batched")
        }
    }
}

/// The shards whose objects `ops` write: those of every op naming one object (a key or prefix
/// of at least an object prefix). Class-wide ops (a class deleted) and the registry's tables
/// name no shard.
fn shards(ops: &[&WriteOp]) -> Vec<i32> {
    let mut shards = BTreeSet::new();
    for op in ops {
        let object = match op {
            WriteOp::Put {
                table: schema::Table::Data,
                key,
                ..
            }
            | WriteOp::Delete {
                table: schema::Table::Data,
                key,
            } => Some(key.as_slice()),
            WriteOp::DeletePrefix {
                table: schema::Table::Data,
                prefix,
            }
            | WriteOp::DeleteAlarmsPrefix { prefix } => Some(prefix.as_slice()),
            WriteOp::SetAlarm { object, .. }
            | WriteOp::ClearAlarmIf { object, .. }
            | WriteOp::RecordAlarmRetry { object, .. } => Some(object.as_slice()),
            // Names go with their object's own entries, which the same group writes; a class's
            // names are deleted with the class.
            WriteOp::Put { .. } | WriteOp::Delete { .. } | WriteOp::DeletePrefix { .. } => None,
        };
        if let Some(shard) = object.and_then(shard_of) {
            shards.insert(shard);
        }
    }
    shards.into_iter().collect()
}

impl Sink for PgSink {
    fn write(&mut self, ops: &[&WriteOp]) -> Result<(), SinkError> {
        if let Some(reason) = self.fence.lost() {
            return Err(SinkError {
                message: reason,
                sticky: true,
            });
        }
        if self.client.is_closed() {
            // The connection dropped (PostgreSQL restarted, a network cut): a new one.
            let (client, prepared) = connect(&self.pg).map_err(|e| SinkError {
                message: e.to_string(),
                sticky: false,
            })?;
            (self.client, self.prepared) = (client, prepared);
        }
        let shards = shards(ops);
        let statements = statements(ops);
        let client = self.client.clone();
        let prepared = self.prepared.clone();
        let me = self.fence.incarnation().to_string();
        let outcome = self.pg.block(async move {
            // One pipeline, COMMIT included: every statement's result is checked, and a COMMIT
            // after a failed statement only rolls back.
            let fence_params: [&(dyn ToSql + Sync); 2] = [&shards, &me];
            let client = &*client;
            let mut steps: Vec<BoxFuture<'_, Result<u64, tokio_postgres::Error>>> = Vec::new();
            steps.push(client.batch_execute("BEGIN").map(|r| r.map(|()| 0)).boxed());
            if !shards.is_empty() {
                steps.push(client.execute(&prepared[FENCE], &fence_params).boxed());
            }
            for statement in &statements {
                let params: Vec<&(dyn ToSql + Sync)> = statement
                    .params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let prepared = &prepared[statement.sql];
                steps.push(async move { client.execute(prepared, &params).await }.boxed());
            }
            steps.push(
                client
                    .batch_execute("COMMIT")
                    .map(|r| r.map(|()| 0))
                    .boxed(),
            );
            join_all(steps)
                .await
                .into_iter()
                .find_map(Result::err)
                .map_or(Ok(()), Err)
        });
        match outcome {
            Ok(()) => Ok(()),
            Err(error) => {
                let fenced = error.code().map(|c| c.code()) == Some(FENCE_REFUSED);
                if fenced {
                    let reason = format!(
                        "another node took over a shard of this node's objects: {}",
                        describe(&error)
                    );
                    self.fence.lose(reason.clone());
                    return Err(SinkError {
                        message: reason,
                        sticky: true,
                    });
                }
                Err(SinkError {
                    message: format!("postgresql: {}", describe(&error)),
                    sticky: false,
                })
            }
        }
    }
}
