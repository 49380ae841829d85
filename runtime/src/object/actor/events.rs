//! What each kind of event does to the object: a request or RPC call (`fetch`), an alarm, a
//! socket's message or close, a wake for its timers, an operator's edit. The actor (`mod.rs`)
//! owns the lifecycle around them: the mailbox, the instance, the commits and the output gate.

use super::{Actor, CallChain};
use crate::abi::{Request, Response};
use crate::object::{AlarmOutcome, Edit, ImportBatch, ObjectError};
use crate::storage::{ObjectStorage, StorageError};
use crate::websocket::{Outgoing, SocketEvent, SocketId};

/// How a part of an import went.
enum Imported {
    Done,
    /// Its first part found the object storing something, and may not replace it.
    NotEmpty,
    /// A later part found another import's mark, or none: a wipe or another import overtook it.
    Overtaken,
}

/// Applies one part of an import to the running event's write set. The first part wipes the
/// object (asked to, or when an earlier import into it never finished) and, unless it is also
/// the last, marks the object as holding an unfinished import; the last removes the mark and
/// sets the alarm. So the object's events never see half an import, even after a crash.
fn import(storage: &mut ObjectStorage, batch: ImportBatch) -> Result<Imported, StorageError> {
    let marker = storage.import_marker()?;
    if batch.first {
        if batch.replace || marker.is_some() {
            storage.delete_all()?;
        } else if !storage.stores_nothing()? {
            return Ok(Imported::NotEmpty);
        }
        storage.delete_alarm()?;
        if !batch.last {
            storage.set_import_marker(Some(batch.token.clone()))?;
        }
    } else if marker.as_ref() != Some(&batch.token) {
        return Ok(Imported::Overtaken);
    }
    for entry in batch.entries {
        storage.put_entry(&entry.key, entry.value)?;
    }
    if batch.last {
        if !batch.first {
            storage.set_import_marker(None)?;
        }
        if let Some(at_ms) = batch.alarm_ms {
            storage.set_alarm(at_ms)?;
        }
    }
    Ok(Imported::Done)
}

impl Actor {
    /// Runs `websocket-message` / `websocket-close` as an event of the object.
    pub(super) async fn socket_event(&mut self, id: SocketId, event: SocketEvent) {
        if self.follow_class().is_err() {
            // The class is gone: nothing can handle this socket any more.
            return self.turn_away(id, &event, 1001, "the object's class was deleted");
        }
        if self.refuse_during_import().is_err() {
            // Its guest would see half an import. The client may come back (1013: try again).
            let reason = "an import into the object has not finished";
            return self.turn_away(id, &event, 1013, reason);
        }
        let closed = matches!(event, SocketEvent::Closed { .. });
        self.background_event(Some((id, event))).await;
        if closed {
            self.sockets().remove(id);
        }
    }

    /// A socket event the object cannot run: a socket that closed just goes, another is closed
    /// by the runtime with `code` and `reason`.
    fn turn_away(&mut self, id: SocketId, event: &SocketEvent, code: u16, reason: &str) {
        if let SocketEvent::Closed { .. } = event {
            self.sockets().remove(id);
        } else {
            let reason = reason.to_string();
            self.sockets()
                .deliver(vec![(id, Outgoing::Close { code, reason })]);
        }
    }

    /// Runs an event no caller waits on — a socket's message, error or close, or (with no
    /// socket event) a `wake` for the object's timers — then commits it and queues its messages.
    /// A trap drops the instance.
    pub(super) async fn background_event(&mut self, socket: Option<(SocketId, SocketEvent)>) {
        let chain = self.chain(&CallChain::default());
        let Ok(instance) = self.instance().await else {
            return;
        };
        instance.storage().begin_event();
        instance.sockets().begin_event(false);
        instance.calls().begin_event(chain);
        let outcome = self
            .in_guest(async move |instance| match socket {
                Some((id, SocketEvent::Message(message))) => {
                    instance.websocket_message(id, message).await
                }
                Some((id, SocketEvent::Error(error))) => instance.websocket_error(id, error).await,
                Some((
                    id,
                    SocketEvent::Closed {
                        code,
                        reason,
                        was_clean,
                    },
                )) => instance.websocket_close(id, code, reason, was_clean).await,
                None => instance.wake().await,
            })
            .await;
        match outcome {
            Ok(()) => {
                let (_, messages) = self.running().sockets().finish_event(false);
                self.commit_event().await;
                self.queue_release(messages);
            }
            Err(error) => {
                tracing::warn!(class = %self.class.name, object = %self.key.id, %error, "event failed; instance reset");
                self.shared.metrics.traps.inc();
                self.drop_instance();
            }
        }
    }

    /// Runs the alarm set for `at_ms` if it is still the object's alarm. The alarm is cleared in
    /// the same write set as the handler's writes, so a crash before that commit fires it again.
    /// A failed attempt keeps the alarm for its retry, unless it was the last attempt.
    pub(super) async fn alarm(
        &mut self,
        at_ms: i64,
        retry_count: u32,
        last_attempt: bool,
    ) -> AlarmOutcome {
        if self.follow_class().is_err() {
            return AlarmOutcome::Stale;
        }
        match self.storage().get_alarm() {
            Ok(Some(current)) if current == at_ms => {}
            Ok(_) => return AlarmOutcome::Stale,
            Err(error) => return AlarmOutcome::Failed(error.to_string()),
        }
        let chain = self.chain(&CallChain::default());
        let instance = match self.instance().await {
            Ok(instance) => instance,
            Err(error) => return AlarmOutcome::Failed(error.to_string()),
        };
        instance.calls().begin_event(chain);
        instance.sockets().begin_event(false);
        let storage = instance.storage();
        storage.begin_event();
        storage.alarm_runs();
        if let Err(error) = storage.delete_alarm() {
            storage.abort_event();
            return AlarmOutcome::Failed(error.to_string());
        }
        // What the handler sent to its sockets leaves, as any event's, once its writes are
        // durable (an alarm whose handler returned an error keeps its writes, and its messages).
        let outcome = self
            .in_guest(async |instance| instance.alarm(retry_count).await)
            .await;
        match outcome {
            Ok(Ok(())) => {
                let (_, messages) = self.running().sockets().finish_event(false);
                self.commit_event().await;
                self.queue_release(messages);
                AlarmOutcome::Done
            }
            Ok(Err(error)) => {
                let instance = self.running();
                let (_, messages) = instance.sockets().finish_event(false);
                let storage = instance.storage();
                storage.discard_alarm_change();
                if last_attempt {
                    let _ = storage.delete_alarm();
                }
                self.commit_event().await;
                self.queue_release(messages);
                AlarmOutcome::Failed(error)
            }
            Err(error) => {
                tracing::warn!(class = %self.class.name, object = %self.key.id, %error, "alarm trapped; instance reset");
                self.shared.metrics.traps.inc();
                self.drop_instance();
                if last_attempt {
                    let storage = self.storage();
                    storage.begin_event();
                    let _ = storage.delete_alarm();
                    self.commit_event().await;
                }
                AlarmOutcome::Failed(error.to_string())
            }
        }
    }

    /// An operator's edit, as one event of its own (so it lands between two of the object's
    /// events, never inside one). A storage edit forgets what the object keeps in memory: its
    /// next event starts from what is stored. A wipe keeps its WebSockets open. Answers whether
    /// what the edit names was there.
    pub(super) async fn edit(&mut self, edit: Edit) -> Result<bool, ObjectError> {
        self.follow_class()?;
        if let Edit::CloseSocket(id) = edit {
            let sockets = self.sockets();
            let open = sockets.list(None).contains(&id);
            if open {
                sockets.close_one(id, 1000, "closed by an operator");
            }
            return Ok(open);
        }
        let sets_alarm = match &edit {
            Edit::Alarm(at_ms) => at_ms.is_some(),
            Edit::Import(batch) => batch.alarm_ms.is_some(),
            _ => false,
        };
        if sets_alarm && !self.class.code.has_alarm() {
            return Err(ObjectError::BadEdit(format!(
                "class {} has no alarm handler",
                self.class.name
            )));
        }
        if !matches!(edit, Edit::Wipe | Edit::Import(_)) {
            self.refuse_during_import()?;
        }
        self.forget();
        let storage = self.storage();
        storage.begin_event();
        let outcome = match edit {
            Edit::Wipe => (storage.delete_all())
                .and_then(|()| storage.delete_alarm())
                .and_then(|()| storage.set_import_marker(None))
                .map(|()| Ok(true)),
            Edit::Put { key, value } => storage.put(&key, value).map(|()| Ok(true)),
            Edit::Delete { key } => storage.delete(&key).map(Ok),
            Edit::Alarm(Some(at_ms)) => storage.set_alarm(at_ms).map(|()| Ok(true)),
            Edit::Alarm(None) => (storage.get_alarm())
                .and_then(|was| storage.delete_alarm().map(|()| Ok(was.is_some()))),
            Edit::Import(batch) => import(storage, batch).map(|imported| match imported {
                Imported::Done => Ok(true),
                Imported::NotEmpty => Err(ObjectError::NotEmpty(
                    "the object stores something already; import with replace to wipe it first"
                        .into(),
                )),
                Imported::Overtaken => Err(ObjectError::NotEmpty(
                    "a wipe or another import into the object overtook this import; nothing \
                     more of it was put"
                        .into(),
                )),
            }),
            Edit::CloseSocket(_) => unreachable!("handled above"),
        };
        let outcome = match outcome {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(refused)) => {
                self.storage().abort_event();
                return Err(refused);
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(found) => {
                self.commit_event().await;
                Ok(found)
            }
            Err(error) => {
                self.storage().abort_event();
                Err(match error {
                    StorageError::Internal(_) => ObjectError::Internal(error.to_string()),
                    _ => ObjectError::BadEdit(error.to_string()),
                })
            }
        }
    }

    /// Refuses an event while the object holds an import that has not finished (its guest
    /// would see half of it).
    pub(super) fn refuse_during_import(&mut self) -> Result<(), ObjectError> {
        match self.storage().import_marker() {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(ObjectError::ImportIncomplete),
            Err(error) => Err(ObjectError::Internal(error.to_string())),
        }
    }

    /// Runs a request (or an RPC call, see [`crate::abi::rpc`]) as an event of the object.
    pub(super) async fn fetch(&mut self, mut request: Request) -> Result<Response, ObjectError> {
        self.follow_class()?;
        self.refuse_during_import()?;
        let upgrade = request.is_upgrade();
        let max_response = self.shared.limits.max_response_body_bytes;
        let chain = self.chain(&request.callers);
        let instance = self.instance().await?;
        instance.storage().begin_event();
        instance.sockets().begin_event(upgrade);
        instance.calls().begin_event(chain);
        let outcome = match request.rpc.take() {
            Some(method) => {
                let args = request.body.into();
                (self.in_guest(async |instance| instance.rpc(method, args).await)).await
            }
            None => (self.in_guest(async |instance| instance.fetch(request).await)).await,
        };
        let instance = self.running();
        // A socket a callee accepted for an upgrade this object forwarded to it.
        let mut forwarded = instance.calls().forwarded.take();
        let result = match outcome {
            Ok(response) if response.body.len() > max_response => {
                // Undeliverable: the event fails as a trap does (writes dropped, instance reset,
                // so its memory agrees with storage again).
                let actual = response.body.len();
                tracing::warn!(class = %self.class.name, object = %self.key.id, actual, "response body over the limit; instance reset");
                self.drop_instance();
                Err(ObjectError::ResponseTooLarge {
                    limit: max_response,
                    actual,
                })
            }
            Ok(mut response) => {
                let switching = response.status == 101;
                let (accepted, messages) = instance.sockets().finish_event(switching);
                let auto_response = instance.sockets().auto_response();
                response.websocket = match accepted {
                    Some(id) => Some(crate::abi::Accepted {
                        id,
                        auto_response,
                        holder: crate::abi::Holder::Here(
                            crate::object::Directory::of(self.shared.clone())
                                .socket_owner(self.class.clone(), self.key.id),
                        ),
                    }),
                    None if switching => forwarded.take(),
                    None => None,
                };
                if switching && response.websocket.is_none() {
                    self.storage().abort_event();
                    Err(ObjectError::BadUpgrade)
                } else {
                    self.commit_event().await;
                    self.queue_release(messages);
                    Ok(response)
                }
            }
            Err(error) => {
                tracing::warn!(class = %self.class.name, object = %self.key.id, %error, "event failed; instance reset");
                self.shared.metrics.traps.inc();
                self.drop_instance();
                Err(error.into())
            }
        };
        if let Some(unused) = forwarded {
            unused.never_opened().await;
        }
        result
    }

    /// The chain of objects waiting on an event that `callers` sent: they and this object.
    pub(super) fn chain(&self, callers: &CallChain) -> CallChain {
        callers
            .iter()
            .cloned()
            .chain(std::iter::once(self.key.clone()))
            .collect()
    }
}
