//! The ABI's one handle on the layers above it: what a guest's host calls need from the
//! deployment (bindings, vars, assets, outbound policies) and the way to deliver a call to
//! another object. The object directory implements it (`object::reach`); the ABI imports nothing
//! above itself, so it stays below the objects, the classes and the worker that use it.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Request, Response};
use crate::assets::Assets;
use crate::ids::{ClassIds, ClassName, ObjectKey};
use crate::outbound::{Caller, Policy};

/// Where a guest's calls, vars and bindings go (see the module's header).
pub trait Reach: Send + Sync + 'static {
    /// The class the deploy config's binding `binding` names now.
    fn namespace(&self, binding: &str) -> Result<Namespace, Unreached>;
    /// The deploy config's binding names, as they are now.
    fn bindings(&self) -> Vec<String>;
    /// One of the deploy config's vars or secrets, as it is now.
    fn var(&self, name: &str) -> Option<String>;
    /// All the deploy config's vars and secrets, as they are now.
    fn vars(&self) -> Vec<(String, String)>;
    /// The deploy config's static assets, as they are now.
    fn assets(&self) -> Option<Arc<Assets>>;
    /// Which hosts `caller` may fetch, as the deploy config says now.
    fn outbound_policy(&self, caller: &Caller) -> Policy;
    /// Delivers `request` to `callee` as one of its events and waits for its gated answer
    /// (the caller applies its call timeout).
    fn deliver(
        &self,
        callee: Callee,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, Unreached>>;
}

/// The class a binding names.
#[derive(Clone)]
pub struct Namespace {
    pub class: ClassName,
    /// The class's storage incarnation (part of its objects' keys).
    pub incarnation: u64,
    pub ids: ClassIds,
}

/// The object a call goes to.
pub struct Callee {
    pub class: ClassName,
    pub key: ObjectKey,
    /// The name its id came from, when the caller made it with `idFromName`.
    pub name: Option<String>,
}

/// Why a call reached no object, or got no answer.
#[derive(Debug, Clone)]
pub enum Unreached {
    /// No binding of that name.
    UnknownBinding(String),
    /// The callee, or the runtime, is too busy now; retry later.
    Overloaded(String),
    /// Anything else, said for the caller.
    Failed(String),
}
