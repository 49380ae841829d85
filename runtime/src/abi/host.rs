//! The `duro:object` host functions: convert WIT values to domain calls and back. No logic here.

use bytes::Bytes;

use super::ObjectState;
use super::generated::duro::object::namespaces::CallError;
use super::generated::duro::object::{state, storage, timers, types, websockets};
use crate::storage::{ListOptions, ObjectStorage, StorageError};
use crate::websocket::{Message, SocketError, SocketId, Sockets};

type WitResult<T> = Result<T, storage::StorageError>;

impl types::Host for ObjectState {}

impl storage::Host for ObjectState {
    fn get(&mut self, key: String) -> WitResult<Option<Vec<u8>>> {
        let value = self.storage()?.get(&key).map_err(to_wit)?;
        Ok(value.map(Vec::from))
    }

    fn get_many(&mut self, keys: Vec<String>) -> WitResult<Vec<(String, Vec<u8>)>> {
        let found = self.storage()?.get_many(&keys).map_err(to_wit)?;
        Ok(found.into_iter().map(|(k, v)| (k, Vec::from(v))).collect())
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> WitResult<()> {
        self.storage()?
            .put(&key, Bytes::from(value))
            .map_err(to_wit)
    }

    fn put_many(&mut self, entries: Vec<(String, Vec<u8>)>) -> WitResult<()> {
        let entries = entries
            .into_iter()
            .map(|(k, v)| (k, Bytes::from(v)))
            .collect();
        self.storage()?.put_many(entries).map_err(to_wit)
    }

    fn delete(&mut self, key: String) -> WitResult<bool> {
        self.storage()?.delete(&key).map_err(to_wit)
    }

    fn delete_many(&mut self, keys: Vec<String>) -> WitResult<u32> {
        self.storage()?.delete_many(&keys).map_err(to_wit)
    }

    fn list(&mut self, options: storage::ListOptions) -> WitResult<Vec<(String, Vec<u8>)>> {
        let options = ListOptions {
            prefix: options.prefix,
            start: options.start,
            start_after: options.start_after,
            end: options.end,
            reverse: options.reverse,
            limit: options.limit,
        };
        let entries = self.storage()?.list(&options).map_err(to_wit)?;
        Ok(entries
            .into_iter()
            .map(|(k, v)| (k, Vec::from(v)))
            .collect())
    }

    fn delete_all(&mut self) -> WitResult<()> {
        self.storage()?.delete_all().map_err(to_wit)
    }

    fn get_alarm(&mut self) -> WitResult<Option<i64>> {
        self.storage()?.get_alarm().map_err(to_wit)
    }

    fn set_alarm(&mut self, epoch_ms: i64) -> WitResult<()> {
        if !self.has_alarm {
            return Err(storage::StorageError::InvalidArgument(
                "this class does not export `alarm`, so it cannot set an alarm".into(),
            ));
        }
        self.storage()?.set_alarm(epoch_ms).map_err(to_wit)
    }

    fn delete_alarm(&mut self) -> WitResult<()> {
        self.storage()?.delete_alarm().map_err(to_wit)
    }

    fn transaction_begin(&mut self) -> WitResult<()> {
        self.storage()?.transaction_begin().map_err(to_wit)
    }

    fn transaction_commit(&mut self) -> WitResult<()> {
        self.storage()?.transaction_commit().map_err(to_wit)
    }

    fn transaction_rollback(&mut self) -> WitResult<()> {
        self.storage()?.transaction_rollback().map_err(to_wit)
    }
}

type WsResult<T> = Result<T, websockets::WebsocketError>;

impl websockets::Host for ObjectState {
    fn accept(&mut self, tags: Vec<String>) -> WsResult<SocketId> {
        self.sockets()?.accept(tags).map_err(ws_to_wit)
    }

    fn get_websockets(&mut self, tag: Option<String>) -> Vec<SocketId> {
        match self.parts.as_mut() {
            Some(parts) => parts.sockets.list(tag.as_deref()),
            None => Vec::new(),
        }
    }

    fn send(&mut self, ws: SocketId, message: types::Message) -> WsResult<()> {
        let message = match message {
            types::Message::Text(text) => Message::Text(text),
            types::Message::Binary(bytes) => Message::Binary(Bytes::from(bytes)),
        };
        self.sockets()?.send(ws, message).map_err(ws_to_wit)
    }

    fn close(&mut self, ws: SocketId, code: u16, reason: String) -> WsResult<()> {
        self.sockets()?.close(ws, code, reason).map_err(ws_to_wit)
    }

    fn hold(&mut self, ws: SocketId) -> WsResult<()> {
        self.sockets()?.hold(ws).map_err(ws_to_wit)
    }

    fn get_tags(&mut self, ws: SocketId) -> WsResult<Vec<String>> {
        self.sockets()?.tags(ws).map_err(ws_to_wit)
    }

    fn serialize_attachment(&mut self, ws: SocketId, data: Vec<u8>) -> WsResult<()> {
        self.sockets()?
            .set_attachment(ws, Bytes::from(data))
            .map_err(ws_to_wit)
    }

    fn deserialize_attachment(&mut self, ws: SocketId) -> WsResult<Option<Vec<u8>>> {
        let attachment = self.sockets()?.attachment(ws).map_err(ws_to_wit)?;
        Ok(attachment.map(Vec::from))
    }

    fn set_auto_response(&mut self, pair: Option<(String, String)>) {
        if let Some(parts) = self.parts.as_mut() {
            parts.sockets.set_auto_response(pair);
        }
    }
}

impl ObjectState {
    /// The mounted object's storage. No object is mounted only while a shared instance is told
    /// to forget one (`evict`): storage calls then fail.
    pub(super) fn storage(&mut self) -> WitResult<&mut ObjectStorage> {
        match self.parts.as_mut() {
            Some(parts) => Ok(&mut parts.storage),
            None => Err(storage::StorageError::Internal(UNMOUNTED.into())),
        }
    }

    fn sockets(&mut self) -> WsResult<&mut Sockets> {
        match self.parts.as_mut() {
            Some(parts) => Ok(&mut parts.sockets),
            None => Err(websockets::WebsocketError::InvalidArgument(
                UNMOUNTED.into(),
            )),
        }
    }
}

const UNMOUNTED: &str = "no object is running in this instance (it is being told to evict one)";

fn ws_to_wit(error: SocketError) -> websockets::WebsocketError {
    use websockets::WebsocketError as Wit;
    match error {
        SocketError::NotAnUpgrade => Wit::NotAnUpgrade,
        SocketError::UnknownSocket => Wit::UnknownSocket,
        SocketError::TooLarge(limit) => Wit::TooLarge(limit),
        SocketError::InvalidArgument(reason) => Wit::InvalidArgument(reason),
    }
}

super::calls::namespaces_host!(ObjectState);
super::calls::env_host!(ObjectState);
super::calls::assets_host!(ObjectState);

impl super::calls::CallSite for ObjectState {
    fn calls(&mut self) -> (&mut super::Calls, &mut wasmtime::component::ResourceTable) {
        (&mut self.calls, &mut self.table)
    }

    /// The output gate: what this event wrote before the call is durable before it leaves.
    async fn before_call(&mut self) -> wasmtime::Result<Result<(), CallError>> {
        let Some(parts) = self.parts.as_mut() else {
            return Ok(Ok(())); // no object is mounted: nothing of its can be pending
        };
        match parts.storage.commit_so_far() {
            Err(error) => Ok(Err(CallError::Failed(error.to_string()))),
            Ok(None) => Ok(Ok(())),
            Ok(Some(writes)) => {
                let durable = self.committer.submit(writes.ops).await;
                let storage = &mut self.parts.as_mut().expect("mounted above").storage;
                if let Err(error) = durable.wait().await {
                    storage.poison();
                    return Err(wasmtime::Error::msg(format!(
                        "the writes made before a call could not be committed: {error}"
                    )));
                }
                storage.mark_durable(writes.seq);
                Ok(Ok(()))
            }
        }
    }
}

impl state::Host for ObjectState {
    fn id(&mut self) -> String {
        self.identity.id.to_hex()
    }

    /// The name the object was addressed by, or else the one it stored at its first write
    /// (an alarm, or an event addressed by id, still sees it, as on Cloudflare).
    fn name(&mut self) -> Option<String> {
        if self.identity.name.is_none()
            && let Some(parts) = self.parts.as_mut()
            && let Some(name) = parts.storage.name()
        {
            self.named(name.to_string());
        }
        self.identity.name.clone()
    }

    fn class_name(&mut self) -> String {
        self.identity.class.to_string()
    }
}

impl timers::Host for ObjectState {
    fn wake_after(&mut self, delay_ms: Option<u64>) {
        self.wake_request = Some(delay_ms.map(std::time::Duration::from_millis));
    }
}

fn to_wit(error: StorageError) -> storage::StorageError {
    use storage::{LimitExceeded, StorageError as Wit};
    let exceeded = |limit, actual| LimitExceeded { limit, actual };
    match error {
        StorageError::KeyTooLarge { limit, actual } => Wit::KeyTooLarge(exceeded(limit, actual)),
        StorageError::ValueTooLarge { limit, actual } => {
            Wit::ValueTooLarge(exceeded(limit, actual))
        }
        StorageError::TooManyKeys { limit, actual } => Wit::TooManyKeys(exceeded(limit, actual)),
        StorageError::ResultTooLarge { limit, actual } => {
            Wit::ResultTooLarge(exceeded(limit, actual))
        }
        StorageError::InvalidArgument(reason) => Wit::InvalidArgument(reason),
        StorageError::NoTransaction => Wit::NoTransaction,
        StorageError::Internal(reason) => Wit::Internal(reason),
    }
}
