//! Other objects, through the deploy config's bindings: ids and stubs.

use crate::wit::duro::object::namespaces::{self as raw, CallError};
use crate::{Request, Response, Result};

/// The objects of one binding's class (`COUNTER` in the deploy config), as Cloudflare's
/// `env.COUNTER`.
///
/// ```no_run
/// let counters = duro_sdk::Namespace::new("COUNTER");
/// let stub = counters.get(&counters.id_from_name("alice")?)?;
/// let response = stub.fetch(duro_sdk::Request::new("POST", "http://do/increment"))?;
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    binding: String,
}

/// An object's id: 64 lowercase hex characters, checked against its class.
///
/// ```no_run
/// let counters = duro_sdk::Namespace::new("COUNTER");
/// let id = counters.id_from_name("alice")?;
/// assert_eq!(id.as_str().len(), 64);
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId(String);

impl ObjectId {
    /// The id's text (64 hex).
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// let id = counters.new_unique_id()?;
    /// let text = id.as_str().to_string(); // keep it, then `id_from_string(&text)`
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
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
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// let alice = counters.get(&counters.id_from_name("alice")?)?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn new(binding: &str) -> Self {
        Self {
            binding: binding.to_string(),
        }
    }

    /// The id of `name` in this class (always the same for the same name).
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// assert_eq!(counters.id_from_name("alice")?, counters.id_from_name("alice")?);
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn id_from_name(&self, name: &str) -> Result<ObjectId> {
        Ok(ObjectId(raw::id_from_name(&self.binding, name)?))
    }

    /// A new random id in this class.
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// let room = counters.new_unique_id()?;
    /// println!("share this id: {room}");
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn new_unique_id(&self) -> Result<ObjectId> {
        Ok(ObjectId(raw::new_unique_id(&self.binding)?))
    }

    /// Checks that `id` (64 hex) is an id of this class.
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// // An id from a client: refused (Error::Call(CallError::BadId)) unless it is one of this class.
    /// let id = counters.id_from_string("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn id_from_string(&self, id: &str) -> Result<ObjectId> {
        Ok(ObjectId(raw::id_from_string(&self.binding, id)?))
    }

    /// A stub to call the object `id` (nothing is activated until the first call).
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// let stub = counters.get(&counters.id_from_name("alice")?)?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn get(&self, id: &ObjectId) -> Result<Stub> {
        Ok(Stub(raw::get(&self.binding, &id.0)?))
    }
}

/// One object of a binding's class: call its `fetch`.
///
/// ```no_run
/// let counters = duro_sdk::Namespace::new("COUNTER");
/// let stub = counters.get(&counters.id_from_name("alice")?)?;
/// let count: serde_json::Value = stub.fetch(duro_sdk::Request::new("GET", "http://do/get"))?.json_body()?;
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug)]
pub struct Stub(raw::Stub);

impl Stub {
    /// The object's id.
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// let stub = counters.get(&counters.id_from_name("alice")?)?;
    /// assert_eq!(stub.id(), counters.id_from_name("alice")?);
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn id(&self) -> ObjectId {
        ObjectId(self.0.id())
    }

    /// Sends `request` to the object's `fetch` and returns its response. From an object, the
    /// writes it made before the call are made durable first; not allowed inside a
    /// [`transaction`](crate::Storage::transaction).
    ///
    /// ```no_run
    /// let counters = duro_sdk::Namespace::new("COUNTER");
    /// let stub = counters.get(&counters.id_from_name("alice")?)?;
    /// match stub.fetch(duro_sdk::Request::new("POST", "http://do/increment")) {
    ///     Ok(response) => println!("{}", response.status),
    ///     Err(duro_sdk::Error::Call(duro_sdk::CallError::Timeout(why))) => println!("slow: {why}"),
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn fetch(&self, request: Request) -> Result<Response> {
        Ok(self.0.fetch(&request.into())?.into())
    }

    /// Calls the object's method `method` (an RPC call, as JavaScript's `stub.method(...args)`):
    /// `args` and the result are JSON values in the [RPC encoding](crate::rpc); a method that
    /// threw gives [`Error::Thrown`](crate::Error::Thrown) with what it threw. From an object,
    /// the writes it made before the call are made durable first.
    ///
    /// ```no_run
    /// let greeters = duro_sdk::Namespace::new("GREETER");
    /// let stub = greeters.get(&greeters.id_from_name("world")?)?;
    /// let greeting = stub.call("sayHello", &[duro_sdk::json!("Ann")])?;
    /// assert_eq!(greeting, "Hello, Ann!");
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn call(&self, method: &str, args: &[serde_json::Value]) -> Result<serde_json::Value> {
        let args = serde_json::to_vec(args)?;
        crate::rpc::answer(self.0.call(method, &args)?)
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
