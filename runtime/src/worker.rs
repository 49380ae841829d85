//! The worker: the stateless front (Cloudflare's Worker, Cloudflare's example Hono app). When one is
//! deployed every ingress request goes to its `fetch` (the direct object routes stay, unless the
//! deploy config switches them off), and it reaches objects through the bindings.
//!
//! A worker keeps no state between requests that the runtime promises, so its instances are
//! pooled: a request takes an idle instance (or instantiates one), and gives it back afterwards
//! unless it trapped. Replacing the worker's code is a new [`Worker`]: requests in flight finish
//! on the old instances, new requests get the new code, nothing fails.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use serde::Serialize;

use crate::abi::worker::{WorkerCode, WorkerInstance};
use crate::abi::{GuestError, InstanceEnv, Request, Response};

/// Idle instances kept per worker; more are dropped after their request.
const MAX_IDLE: usize = 64;
/// How long a request waits for a worker instance before it is answered 503.
const INSTANCE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What the admin API shows about the worker.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// Idle instances, each with the slot it holds.
    idle: Mutex<Vec<(WorkerInstance, OwnedSemaphorePermit)>>,
    /// The slots all worker versions share ([`crate::config::worker_instances`]).
    slots: Arc<Semaphore>,
}

/// Why a worker request got no answer from the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error("every worker instance is busy; retry later")]
    Busy,
}

impl Worker {
    pub fn new(code: WorkerCode, info: WorkerInfo, slots: Arc<Semaphore>) -> Self {
        Self {
            code,
            info,
            idle: Mutex::new(Vec::new()),
            slots,
        }
    }

    /// Runs one request on an instance of its own. Work the request left behind
    /// (`ctx.waitUntil`) runs on that instance after the response, before it serves another.
    pub async fn fetch(
        self: &Arc<Self>,
        env: InstanceEnv,
        request: Request,
    ) -> Result<Response, WorkerError> {
        let idle = self.idle.lock().expect("worker pool lock").pop();
        let (mut instance, slot) = match idle {
            Some(idle) => idle,
            None => {
                let slot = tokio::time::timeout(INSTANCE_WAIT, self.slots.clone().acquire_owned())
                    .await
                    .map_err(|_| WorkerError::Busy)?
                    .map_err(|_| WorkerError::Busy)?;
                (WorkerInstance::new(&self.code, env).await?, slot)
            }
        };
        let response = instance.fetch(request).await?;
        if instance.has_background() {
            let worker = self.clone();
            tokio::spawn(async move {
                match instance.background().await {
                    Ok(()) => worker.give_back(instance, slot),
                    Err(error) => {
                        tracing::warn!(%error, "the worker's work after a response failed")
                    }
                }
            });
        } else {
            self.give_back(instance, slot);
        }
        Ok(response)
    }

    /// Keeps an instance that served a request for the next one (up to [`MAX_IDLE`]).
    fn give_back(&self, instance: WorkerInstance, slot: OwnedSemaphorePermit) {
        let mut idle = self.idle.lock().expect("worker pool lock");
        if idle.len() < MAX_IDLE {
            idle.push((instance, slot));
        }
    }

    /// Drops the idle instances (at shutdown: they hold the runtime's shared parts).
    pub fn drop_idle(&self) {
        self.idle.lock().expect("worker pool lock").clear();
    }
}
