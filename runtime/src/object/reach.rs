//! The directory as the ABI's [`Reach`] handle: how guests' calls to other objects, their vars
//! and bindings, reach the layers above the ABI without the ABI importing them.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Directory, ObjectError};
use crate::abi::{Callee, GuestError, Namespace, Reach, Request, Response, Unreached};
use crate::assets::Assets;
use crate::outbound::{Caller, Policy};

impl Reach for Directory {
    fn namespace(&self, binding: &str) -> Result<Namespace, Unreached> {
        let classes = self.classes();
        let class = classes
            .binding(binding)
            .ok_or_else(|| Unreached::UnknownBinding(format!("no binding named {binding:?}")))?;
        let loaded = classes.get(&class).ok_or_else(|| {
            Unreached::Failed(format!(
                "binding {binding:?} names class {class}, which is not deployed"
            ))
        })?;
        Ok(Namespace {
            class,
            incarnation: loaded.incarnation,
            ids: loaded.ids.clone(),
        })
    }

    fn bindings(&self) -> Vec<String> {
        self.classes().bindings().into_keys().collect()
    }

    fn var(&self, name: &str) -> Option<String> {
        self.classes().vars().get(name).cloned()
    }

    fn vars(&self) -> Vec<(String, String)> {
        let vars = self.classes().vars();
        vars.all().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn assets(&self) -> Option<Arc<Assets>> {
        self.classes().assets()
    }

    fn outbound_policy(&self, caller: &Caller) -> Policy {
        self.classes().outbound_policy(caller)
    }

    fn deliver(
        &self,
        callee: Callee,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, Unreached>> {
        let directory = self.clone();
        Box::pin(async move {
            // The class as deployed now; not the one of that name if it was deleted and created
            // again since the stub was made (its objects are others).
            let class = directory
                .classes()
                .get(&callee.class)
                .filter(|class| class.incarnation == callee.key.incarnation)
                .ok_or_else(|| {
                    Unreached::Failed(format!("class {} is not deployed", callee.class))
                })?;
            directory
                .fetch(class, callee.key.id, callee.name, request)
                .await
                .map_err(unreached)
        })
    }
}

/// What the caller of a failed call is told: the callee's overload as such; a trap's text, which
/// carries the callee's wasm backtrace, only in the log, under an id.
fn unreached(error: ObjectError) -> Unreached {
    let text = error.to_string();
    match error {
        ObjectError::Overloaded(_) | ObjectError::TooManyLive(_) => Unreached::Overloaded(text),
        ObjectError::Guest(GuestError::MemoryBudget(_)) => Unreached::Overloaded(text),
        ObjectError::Guest(GuestError::Trap(_) | GuestError::Instantiate(_))
        | ObjectError::Internal(_) => {
            let id = crate::ids::random_hex(6);
            tracing::warn!(error_id = %id, error = %text, "a call's callee failed");
            Unreached::Failed(format!(
                "the callee failed (error id {id}; the runtime's log has the details)"
            ))
        }
        _ => Unreached::Failed(text),
    }
}
