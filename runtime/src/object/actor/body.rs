//! An actor's body: the object's own instance, its place in a shared one for the event, or
//! (between events, without an instance) the parts that outlive both — its storage view, its
//! sockets and its inbox. How the actor brings it to life, runs the guest on it (`in_guest`),
//! and drops what the guest kept in memory.

use std::sync::Arc;
use std::time::Instant;

use super::Actor;
use crate::abi::inbox::Inbox;
use crate::abi::{GuestError, Identity, Instance, ObjectParts};
use crate::class::LoadedClass;
use crate::class::shared::{SharedPool, Visit};
use crate::ids::ObjectKey;
use crate::object::ObjectError;
use crate::object::directory::Shared;
use crate::storage::{ObjectStorage, schema};
use crate::websocket::Sockets;

/// The object's instance, or just what outlives it while no instance is live. Not boxed: an
/// actor holds one, and boxing the parts would cost an allocation at every hibernation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Body {
    Cold(ObjectParts),
    Live(Instance),
    /// During an event of a shared class: the shared instance, with this object mounted.
    Visiting(Visit),
}

impl Actor {
    /// The instance the running event holds (its own, or the shared one it visits).
    pub(super) fn running(&mut self) -> &mut Instance {
        held(&mut self.body).expect("an event holds an instance")
    }

    /// Runs `call`, one of the event's guest calls, on the instance the event holds; the
    /// object's requests that arrive meanwhile may run beside it in the guest (`mail::beside`).
    pub(super) async fn in_guest<T>(&mut self, call: impl AsyncFnOnce(&mut Instance) -> T) -> T {
        let gated_messages = self.gate.next_release().is_some();
        let instance = held(&mut self.body).expect("an event holds an instance");
        match &self.inbox {
            Some(inbox) => {
                inbox.begin(gated_messages);
                self.mail.beside(inbox, call(instance)).await
            }
            None => call(instance).await,
        }
    }

    /// Whether nothing of the object is in memory: no instance of its own, no place in a shared
    /// one.
    pub(super) fn is_cold(&self) -> bool {
        matches!(self.body, Some(Body::Cold(_))) && self.tenancy.is_none()
    }

    /// Follows the class's registry entry: new code after an upload, or a new name after a
    /// rename (same storage; the instance restarts on it). Fails if the class is gone: deleted,
    /// or deleted and created again (a new incarnation, whose objects are other actors).
    pub(super) fn follow_class(&mut self) -> Result<(), ObjectError> {
        if self.shared.classes.is_current(&self.class) {
            return Ok(());
        }
        let current = self
            .shared
            .classes
            .by_incarnation(self.key.incarnation)
            .ok_or_else(|| ObjectError::UnknownClass(self.class.name.clone()))?;
        self.forget();
        self.class = current;
        Ok(())
    }

    /// The live instance, instantiating it if needed.
    pub(super) async fn instance(&mut self) -> Result<&mut Instance, ObjectError> {
        if let Some(pool) = self.class.shared.clone() {
            return self.visit(&pool).await;
        }
        if let Some(Body::Cold(_)) = self.body {
            let Some(Body::Cold(parts)) = self.body.take() else {
                unreachable!("checked: the body is cold")
            };
            match self.instantiate(parts).await {
                Ok(instance) => {
                    self.shared.metrics.activations.inc();
                    self.body = Some(Body::Live(instance));
                }
                Err((parts, error)) => {
                    self.body = Some(Body::Cold(parts));
                    return Err(error);
                }
            }
        }
        match self.body.as_mut() {
            Some(Body::Live(instance)) => {
                if let Some(name) = &self.name {
                    instance.learn_name(name);
                }
                Ok(instance)
            }
            _ => unreachable!("the body was made live above"),
        }
    }

    /// Enters the object's shared instance for one event (lodging or moving the object first if
    /// needed) and mounts the object there. The instance forgets departed objects first.
    pub(super) async fn visit(
        &mut self,
        pool: &Arc<SharedPool>,
    ) -> Result<&mut Instance, ObjectError> {
        let mut visit = loop {
            let tenancy = self.tenancy.get_or_insert_with(|| {
                // In memory anew: an activation, though the instance may exist already.
                self.shared.metrics.activations.inc();
                pool.lodge(self.key.id, self.shared.limits.mate_wait)
            });
            match tenancy.enter(self.shared.limits.mate_wait).await {
                Some(visit) => break visit,
                // Its guest waits on a call, or a mate's event holds it past the bound: move
                // rather than queue behind it.
                None => {
                    self.tenancy = None;
                    self.memory_lost();
                }
            }
        };
        for id in visit.departed() {
            let Some(instance) = visit.instance() else {
                break;
            };
            if let Err(error) = instance.evict(id).await {
                tracing::warn!(class = %self.class.name, object = %id, %error, "evict failed; shared instance reset");
                self.shared.metrics.traps.inc();
                visit.reset();
            }
        }
        let Some(Body::Cold(parts)) = self.body.take() else {
            unreachable!("between events the body is cold")
        };
        match visit.instance() {
            Some(instance) => instance.mount(self.identity(), parts),
            None => match self.instantiate(parts).await {
                Ok(instance) => {
                    visit.install(instance);
                }
                Err((parts, error)) => {
                    self.body = Some(Body::Cold(parts));
                    return Err(error);
                }
            },
        }
        self.body = Some(Body::Visiting(visit));
        match self.body.as_mut() {
            Some(Body::Visiting(visit)) => Ok(visit.mounted()),
            _ => unreachable!("the body was made visiting above"),
        }
    }

    /// Instantiates the class with the object's parts mounted; on failure they come back.
    pub(super) async fn instantiate(
        &mut self,
        parts: ObjectParts,
    ) -> Result<Instance, (ObjectParts, ObjectError)> {
        let limits = crate::object::Directory::of(self.shared.clone()).instance_env();
        let started = Instant::now();
        match Instance::new(&self.class.code, self.identity(), Some(parts), limits).await {
            Ok(instance) => {
                self.shared
                    .metrics
                    .instantiate_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(instance)
            }
            Err((parts, error)) => Err((parts.expect("given back"), error.into())),
        }
    }

    pub(super) fn identity(&self) -> Identity {
        Identity {
            class: self.class.name.clone(),
            id: self.key.id,
            name: self.name.clone(),
        }
    }

    /// Ends an event in a shared instance: the object's parts come back, the instance is free.
    pub(super) fn leave(&mut self) {
        if let Some(Body::Visiting(_)) = self.body {
            let Some(Body::Visiting(mut visit)) = self.body.take() else {
                unreachable!("checked: visiting")
            };
            self.body = Some(Body::Cold(visit.unmount()));
        }
    }

    /// Drops everything of the object in memory: its instance, or its place in a shared one.
    pub(super) fn forget(&mut self) {
        self.drop_instance();
        if self.tenancy.take().is_some() {
            self.memory_lost();
        }
    }

    /// What the object kept in its guest's memory is gone: its timers, and the handlers of the
    /// sockets that needed them (those close).
    pub(super) fn memory_lost(&mut self) {
        self.wake_at = None;
        self.sockets().close_held();
        if let Some(inbox) = &self.inbox {
            let reset =
                "the Durable Object was reset before it answered (its instance was dropped)";
            inbox.fail_taken(&GuestError::Trap(reset.into()));
        }
    }

    pub(super) fn drop_instance(&mut self) {
        let mut parts = match self.body.take() {
            Some(Body::Live(instance)) => instance.into_parts().expect("its object is mounted"),
            // What the shared instance holds of its other objects cannot be trusted either.
            Some(Body::Visiting(mut visit)) => {
                let parts = visit.unmount();
                visit.reset();
                parts
            }
            // Already cold (hibernated, evicted, reset): nothing to drop.
            cold => {
                self.body = cold;
                return;
            }
        };
        parts.storage.abort_event();
        parts.sockets.abort_event();
        let poisoned = parts.storage.is_poisoned();
        self.body = Some(Body::Cold(parts));
        self.memory_lost();
        if poisoned {
            // A commit made mid-event (before a call) failed: the view's cache cannot be
            // trusted. Start over from what is durable; the old commits are ignored.
            self.fresh_storage_view();
        }
    }

    /// Drops the instance and replaces the storage view with a fresh one that reads what is
    /// durable; the sockets stay (the connections are fine). Outputs no longer wait on the old
    /// view's commits, whose outcomes are ignored from now on (the gate's reset).
    pub(super) fn fresh_storage_view(&mut self) {
        let sockets = match self.body.take() {
            Some(Body::Cold(parts)) => parts.sockets,
            Some(Body::Live(instance)) => instance.into_parts().expect("mounted").sockets,
            Some(Body::Visiting(mut visit)) => {
                let parts = visit.unmount();
                visit.reset();
                parts.sockets
            }
            None => Sockets::new(self.shared.socket_limits),
        };
        let mut storage = new_parts(&self.shared, &self.class, &self.key, None).storage;
        if let Some(name) = &self.name {
            storage.learn_name(name);
        }
        let inbox = self.inbox.clone();
        self.body = Some(Body::Cold(ObjectParts {
            storage,
            sockets,
            inbox,
        }));
        self.gate.reset();
        self.committing_since.clear();
    }

    pub(super) fn storage(&mut self) -> &mut ObjectStorage {
        match self
            .body
            .as_mut()
            .expect("the body is present between events")
        {
            Body::Cold(parts) => &mut parts.storage,
            Body::Live(instance) => instance.storage(),
            Body::Visiting(visit) => visit.mounted().storage(),
        }
    }

    pub(super) fn sockets(&mut self) -> &mut Sockets {
        match self
            .body
            .as_mut()
            .expect("the body is present between events")
        {
            Body::Cold(parts) => &mut parts.sockets,
            Body::Live(instance) => instance.sockets(),
            Body::Visiting(visit) => visit.mounted().sockets(),
        }
    }
}

/// The instance a body holds (its own, or the shared one it visits), if any.
pub(super) fn held(body: &mut Option<Body>) -> Option<&mut Instance> {
    match body.as_mut() {
        Some(Body::Live(instance)) => Some(instance),
        Some(Body::Visiting(visit)) => Some(visit.mounted()),
        _ => None,
    }
}

pub(super) fn new_parts(
    shared: &Shared,
    class: &LoadedClass,
    key: &ObjectKey,
    inbox: Option<Arc<Inbox>>,
) -> ObjectParts {
    ObjectParts {
        inbox,
        storage: ObjectStorage::new(
            shared.db.clone(),
            schema::object_prefix(class.incarnation, &key.id),
            &shared.limits,
        )
        .with_memory(shared.memory.clone()),
        sockets: Sockets::new(shared.socket_limits),
    }
}
