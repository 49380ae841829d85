//! The wasmtime engine: configuration (pooling allocator, epoch interruption, async), the epoch
//! ticker, and compiling uploaded components into `ClassCode`, with the compiled artifact cached
//! in the data dir so a restart does not recompile.
//!
//! Compiling is CPU-heavy and blocking (up to seconds for JS or Python guests): callers run
//! `Engine::load` on a blocking thread, never on an async worker.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use wasmtime::component::{Component, Linker};
use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::abi::worker::{WorkerCode, WorkerState};
use crate::abi::{self, ClassCode, EPOCH_TICK, ObjectState};
use crate::config::{GUARD_BYTES, Limits, MEMORIES_PER_SLOT};
use crate::metrics::Metrics;

/// Core instances one component may hold (Rust guests use ~20, Python ~65).
const CORE_INSTANCES_PER_COMPONENT: u32 = 128;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("could not configure wasmtime: {0}")]
    Config(String),
    #[error("could not prepare the compiled-component cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why an upload cannot become a class. The text is the caller-facing reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct InvalidComponent(pub String);

/// One engine per runtime; shared by every class and object.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<ObjectState>,
    worker_linker: Linker<WorkerState>,
    cache_dir: PathBuf,
    metrics: Arc<Metrics>,
    _ticker: EpochTicker,
}

/// How a load went, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    Compiled,
    Cache,
}

impl Engine {
    /// An engine whose compiled components are cached in `cache_dir` (created if missing).
    pub fn new(
        cache_dir: &Path,
        limits: &Limits,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        // Zero (decommit) an object's fiber stack when its instance is dropped: an evicted object
        // then keeps no stack pages resident, and no stack contents pass to the next guest.
        config.async_stack_zeroing(true);
        // Reserve only what an instance may use, not wasmtime's default 4 GiB per memory: with
        // thousands of pooled slots the default would exhaust the address space.
        let memory = limits.instance_memory_bytes as u64;
        config.memory_reservation(memory);
        config.memory_guard_size(GUARD_BYTES);
        config.memory_reservation_for_growth(0);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(limits)));
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let linker = abi::linker(&engine).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let worker_linker =
            abi::worker::linker(&engine).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let cache_dir = cache_dir.to_path_buf();
        std::fs::create_dir_all(&cache_dir).map_err(|source| EngineError::Cache {
            path: cache_dir.clone(),
            source,
        })?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            linker,
            worker_linker,
            cache_dir,
            metrics,
            _ticker: ticker,
        })
    }

    /// Turns component bytes into runnable class code: from the cache when this engine compiled
    /// the same bytes before, otherwise by compiling (and caching) them. Blocking.
    pub fn load(
        &self,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(ClassCode, LoadSource), InvalidComponent> {
        self.load_as(bytes, digest, "duro:object", |component| {
            ClassCode::new(&self.linker, component)
        })
    }

    /// Like [`Engine::load`], for a worker (the `worker` world).
    pub fn load_worker(
        &self,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(WorkerCode, LoadSource), InvalidComponent> {
        self.load_as(bytes, digest, "duro:object worker", |component| {
            WorkerCode::new(&self.worker_linker, component)
        })
    }

    fn load_as<C>(
        &self,
        bytes: &[u8],
        digest: &str,
        world: &str,
        link: impl FnOnce(&Component) -> Result<C, String>,
    ) -> Result<(C, LoadSource), InvalidComponent> {
        let started = Instant::now();
        let cached = self.cache_path(digest);
        let (component, source) = match self.deserialize(&cached) {
            Some(component) => (component, LoadSource::Cache),
            None => {
                tracing::info!(
                    digest,
                    mib = format!("{:.1}", bytes.len() as f64 / 1_048_576.0),
                    "compiling a new component"
                );
                let component = compile(&self.engine, bytes)?;
                self.store_in_cache(&component, &cached);
                (component, LoadSource::Compiled)
            }
        };
        let code = link(&component).map_err(|reason| {
            InvalidComponent(format!(
                "the component does not implement the {world} world: {reason}"
            ))
        })?;
        match source {
            LoadSource::Compiled => self.metrics.compilations.inc(),
            LoadSource::Cache => self.metrics.cache_loads.inc(),
        };
        tracing::info!(
            digest,
            source = ?source,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "component loaded"
        );
        Ok((code, source))
    }

    fn cache_path(&self, digest: &str) -> PathBuf {
        let mut hasher = std::hash::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let engine = hasher.finish();
        self.cache_dir.join(format!("{digest}-{engine:016x}.cwasm"))
    }

    fn deserialize(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store_in_cache` from `Component::serialize` of this
        // engine configuration (the name carries its compatibility hash), in our own data dir.
        match unsafe { Component::deserialize_file(&self.engine, path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "ignoring unusable compiled cache entry");
                None
            }
        }
    }

    fn store_in_cache(&self, component: &Component, path: &Path) {
        let write = || -> Result<(), String> {
            let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
            // A name of its own: servers sharing the cache may write the same entry at once.
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, path).map_err(|e| e.to_string())
        };
        if let Err(error) = write() {
            tracing::warn!(path = %path.display(), %error, "could not cache a compiled component");
        }
    }
}

/// Compiles on threads of its own that end with the compilation. Cranelift's scratch memory is
/// freed on the threads that used it; if those were long-lived (tokio's blocking pool, rayon's
/// global pool) the allocator would keep tens of MiB of it resident for the life of the process
/// (measured: ~60 MiB of RSS after deploying the Counter). Threads that exit hand it back.
fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<Component, InvalidComponent> {
    let compile = || {
        let run = || Component::new(engine, bytes);
        match rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("duro-compile-{i}"))
            .build()
        {
            Ok(threads) => threads.install(run),
            Err(_) => run(),
        }
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("duro-compile".into())
            .spawn_scoped(scope, compile)
            .map_err(|e| InvalidComponent(format!("could not start compiling: {e}")))?
            .join()
            .map_err(|_| InvalidComponent("the compiler panicked".into()))?
            .map_err(|e| InvalidComponent(format!("not a valid component: {e:#}")))
    })
}

fn pool(limits: &Limits) -> PoolingAllocationConfig {
    let live = u32::try_from(limits.instance_slots())
        .unwrap_or(u32::MAX / CORE_INSTANCES_PER_COMPONENT)
        .max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(live)
        .total_core_instances(
            live.saturating_mul(24)
                .max(CORE_INSTANCES_PER_COMPONENT * 8),
        )
        .total_memories(live.saturating_mul(MEMORIES_PER_SLOT))
        .total_tables(live.saturating_mul(4))
        .total_stacks(live) // each live store keeps its async fiber stack
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memory_size(limits.instance_memory_bytes);
    pool
}

/// Advances the engine's epoch every `EPOCH_TICK` on its own thread; stops and joins on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("duro-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
