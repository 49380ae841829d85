//! How a group's write ops are encoded in a log record: a tag byte per op, then its fields (byte
//! strings length-prefixed with a u32 LE, tables as one byte, times as i64 LE).

use bytes::Bytes;

use crate::storage::ops::WriteOp;
use crate::storage::schema::{self, Table};

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_DATA_PREFIX: u8 = 3;
const OP_SET_ALARM: u8 = 4;
const OP_DELETE_ALARM: u8 = 5;
const OP_CLEAR_ALARM_IF: u8 = 6;
const OP_DELETE_ALARMS_PREFIX: u8 = 7;
const OP_RECORD_ALARM_RETRY: u8 = 8;
/// A prefix delete in any table; the data table's used `OP_DELETE_DATA_PREFIX` (still read).
const OP_DELETE_PREFIX: u8 = 9;

/// Appends one op: a tag byte, then its fields (byte strings length-prefixed with a u32 LE,
/// tables as one byte, times as i64 LE).
pub(super) fn encode_op(op: &WriteOp, out: &mut Vec<u8>) {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    match op {
        WriteOp::Put { table, key, value } => {
            out.extend_from_slice(&[OP_PUT, table_tag(*table)]);
            bytes(out, key);
            bytes(out, value);
        }
        WriteOp::Delete { table, key } => {
            out.extend_from_slice(&[OP_DELETE, table_tag(*table)]);
            bytes(out, key);
        }
        WriteOp::DeletePrefix { table, prefix } => {
            out.extend_from_slice(&[OP_DELETE_PREFIX, table_tag(*table)]);
            bytes(out, prefix);
        }
        WriteOp::SetAlarm {
            object,
            at_ms: Some(at),
        } => {
            out.push(OP_SET_ALARM);
            bytes(out, object);
            out.extend_from_slice(&at.to_le_bytes());
        }
        WriteOp::SetAlarm {
            object,
            at_ms: None,
        } => {
            out.push(OP_DELETE_ALARM);
            bytes(out, object);
        }
        WriteOp::ClearAlarmIf { object, at_ms } => {
            out.push(OP_CLEAR_ALARM_IF);
            bytes(out, object);
            out.extend_from_slice(&at_ms.to_le_bytes());
        }
        WriteOp::DeleteAlarmsPrefix { prefix } => {
            out.push(OP_DELETE_ALARMS_PREFIX);
            bytes(out, prefix);
        }
        WriteOp::RecordAlarmRetry { object, retry } => {
            out.push(OP_RECORD_ALARM_RETRY);
            bytes(out, object);
            out.extend_from_slice(&retry.encode());
        }
    }
}

/// Decodes a payload written by [`encode_op`] calls, appending to `out`.
pub(super) fn decode_ops(mut input: &[u8], out: &mut Vec<WriteOp>) -> Result<(), &'static str> {
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
        let (head, rest) = input.split_at_checked(n).ok_or("truncated op")?;
        *input = rest;
        Ok(head)
    }
    fn bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
        let len = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
        take(input, len as usize)
    }
    fn time(input: &mut &[u8]) -> Result<i64, &'static str> {
        Ok(i64::from_le_bytes(
            take(input, 8)?.try_into().expect("8 bytes"),
        ))
    }
    fn table(input: &mut &[u8]) -> Result<Table, &'static str> {
        match take(input, 1)?[0] {
            0 => Ok(Table::Data),
            1 => Ok(Table::Classes),
            2 => Ok(Table::Components),
            3 => Ok(Table::Meta),
            4 => Ok(Table::Names),
            _ => Err("unknown table"),
        }
    }
    while !input.is_empty() {
        let tag = take(&mut input, 1)?[0];
        out.push(match tag {
            OP_PUT => WriteOp::Put {
                table: table(&mut input)?,
                key: bytes(&mut input)?.to_vec(),
                value: Bytes::copy_from_slice(bytes(&mut input)?),
            },
            OP_DELETE => WriteOp::Delete {
                table: table(&mut input)?,
                key: bytes(&mut input)?.to_vec(),
            },
            OP_DELETE_DATA_PREFIX => WriteOp::DeletePrefix {
                table: Table::Data,
                prefix: bytes(&mut input)?.to_vec(),
            },
            OP_DELETE_PREFIX => WriteOp::DeletePrefix {
                table: table(&mut input)?,
                prefix: bytes(&mut input)?.to_vec(),
            },
            OP_SET_ALARM => WriteOp::SetAlarm {
                object: bytes(&mut input)?.to_vec(),
                at_ms: Some(time(&mut input)?),
            },
            OP_DELETE_ALARM => WriteOp::SetAlarm {
                object: bytes(&mut input)?.to_vec(),
                at_ms: None,
            },
            OP_CLEAR_ALARM_IF => WriteOp::ClearAlarmIf {
                object: bytes(&mut input)?.to_vec(),
                at_ms: time(&mut input)?,
            },
            OP_DELETE_ALARMS_PREFIX => WriteOp::DeleteAlarmsPrefix {
                prefix: bytes(&mut input)?.to_vec(),
            },
            OP_RECORD_ALARM_RETRY => WriteOp::RecordAlarmRetry {
                object: bytes(&mut input)?.to_vec(),
                retry: schema::AlarmRetry::decode(take(&mut input, 20)?).ok_or("bad retry")?,
            },
            _ => return Err("unknown op"),
        });
    }
    Ok(())
}

fn table_tag(table: Table) -> u8 {
    match table {
        Table::Data => 0,
        Table::Classes => 1,
        Table::Components => 2,
        Table::Meta => 3,
        Table::Names => 4,
    }
}
