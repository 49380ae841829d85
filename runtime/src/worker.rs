//! The worker: the stateless front (Cloudflare's Worker, the seed's Hono app). When one is
//! deployed every ingress request goes to its `fetch` (the direct object routes stay, unless the
//! deploy config switches them off), and it reaches objects through the bindings.
//!
//! A worker keeps no state between requests that the runtime promises, so its instances are
//! pooled: a request takes an idle instance (or instantiates one), and gives it back afterwards
//! unless it trapped. Replacing the worker's code is a new [`Worker`]: requests in flight finish
//! on the old instances, new requests get the new code, nothing fails.

use std::sync::Mutex;

use serde::Serialize;

use crate::abi::worker::{WorkerCode, WorkerInstance};
use crate::abi::{GuestError, InstanceEnv};
use crate::object::{Request, Response};

/// Idle instances kept per worker; more are dropped after their request.
const MAX_IDLE: usize = 64;

/// What the admin API shows about the worker.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    pub sha256: String,
    pub size: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Whether the direct `/objects` and `/ids` routes still answer beside the worker.
    pub object_routes: bool,
}

/// A deployed worker's code and its pool of idle instances.
pub struct Worker {
    code: WorkerCode,
    pub info: WorkerInfo,
    idle: Mutex<Vec<WorkerInstance>>,
}

impl Worker {
    pub fn new(code: WorkerCode, info: WorkerInfo) -> Self {
        Self {
            code,
            info,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs one request on an instance of its own.
    pub async fn fetch(&self, env: InstanceEnv, request: Request) -> Result<Response, GuestError> {
        let idle = self.idle.lock().expect("worker pool lock").pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => WorkerInstance::new(&self.code, env).await?,
        };
        let response = instance.fetch(request).await?;
        let mut idle = self.idle.lock().expect("worker pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(instance);
        }
        Ok(response)
    }
}
