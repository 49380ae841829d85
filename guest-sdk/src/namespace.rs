//! Other objects, through the deploy config's bindings: ids and stubs.

use crate::wit::duro::object::namespaces::{self as raw, CallError};
use crate::{Request, Response, Result};

/// The objects of one binding's class (`COUNTER` in the deploy config), as Cloudflare's
/// `env.COUNTER`.
///
/// ```ignore
/// let counters = duro_sdk::Namespace::new("COUNTER");
/// let stub = counters.get(&counters.id_from_name("alice")?)?;
/// let response = stub.fetch(duro_sdk::Request::new("POST", "http://do/increment"))?;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    binding: String,
}

/// An object's id: 64 lowercase hex characters, checked against its class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId(String);

impl ObjectId {
    /// The id's text (64 hex).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Namespace {
    /// The binding named `binding` in the deploy config.
    pub fn new(binding: &str) -> Self {
        Self {
            binding: binding.to_string(),
        }
    }

    /// The id of `name` in this class (always the same for the same name).
    pub fn id_from_name(&self, name: &str) -> Result<ObjectId> {
        Ok(ObjectId(raw::id_from_name(&self.binding, name)?))
    }

    /// A new random id in this class.
    pub fn new_unique_id(&self) -> Result<ObjectId> {
        Ok(ObjectId(raw::new_unique_id(&self.binding)?))
    }

    /// Checks that `id` (64 hex) is an id of this class.
    pub fn id_from_string(&self, id: &str) -> Result<ObjectId> {
        Ok(ObjectId(raw::id_from_string(&self.binding, id)?))
    }

    /// A stub to call the object `id` (nothing is activated until the first call).
    pub fn get(&self, id: &ObjectId) -> Result<Stub> {
        Ok(Stub(raw::get(&self.binding, &id.0)?))
    }
}

/// One object of a binding's class: call its `fetch`.
#[derive(Debug)]
pub struct Stub(raw::Stub);

impl Stub {
    /// The object's id.
    pub fn id(&self) -> ObjectId {
        ObjectId(self.0.id())
    }

    /// Sends `request` to the object's `fetch` and returns its response. From an object, the
    /// writes it made before the call are made durable first; not allowed inside a
    /// [`transaction`](crate::Storage::transaction).
    pub fn fetch(&self, request: Request) -> Result<Response> {
        Ok(self.0.fetch(&request.into())?.into())
    }
}

/// Describes a [`CallError`] for humans.
pub(crate) fn describe(error: &CallError) -> String {
    match error {
        CallError::UnknownBinding(m) => format!("unknown binding: {m}"),
        CallError::BadId(m) => format!("bad id: {m}"),
        CallError::Overloaded(m) => format!("overloaded: {m}"),
        CallError::Timeout(m) => format!("timeout: {m}"),
        CallError::Cycle(m) => format!("cycle: {m}"),
        CallError::Failed(m) => format!("failed: {m}"),
    }
}
