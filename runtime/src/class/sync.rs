//! The registry as storage holds it, and keeping this node's copy in step with it.
//!
//! [`Stored::load`] reads every class record, the worker and the settings documents, and
//! compiles what is new (a class or worker whose record equals the live one keeps its code):
//! `Classes::open` starts from it. In a cluster other nodes change the same registry, so a node
//! reloads it every second (`Classes::refresh`, installing only what changed), and every change
//! of this node (`begin_change`) runs under a cluster-wide lock after a reload: two nodes never
//! decide from different registries (two creations of one class, two incarnations).

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    Assets, Bindings, ClassError, ClassName, ClassRecord, Classes, Engine, IdSecret, LoadedClass,
    META_ASSETS, META_ASSETS_DIGEST, META_BINDINGS, META_MIGRATIONS, META_OUTBOUND, META_VARS,
    META_WORKER, Outbound, Vars, Worker, WorkerInfo, compile, compile_worker, read_meta,
    storage_error,
};
use crate::storage::Store;
use crate::storage::schema::Table;

/// Everything of the registry that storage holds, loaded.
pub(super) struct Stored {
    pub live: HashMap<ClassName, Arc<LoadedClass>>,
    pub bindings: Bindings,
    pub worker: Option<Arc<Worker>>,
    pub outbound: Outbound,
    pub vars: Vars,
    pub assets: Option<Arc<Assets>>,
    pub applied: Vec<String>,
}

impl Stored {
    /// Reads the registry; what equals `current`'s (a refresh) is reused, the rest compiled.
    pub async fn load(
        db: &Store,
        engine: &Arc<Engine>,
        secret: &IdSecret,
        worker_slots: &Arc<tokio::sync::Semaphore>,
        current: Option<&Classes>,
    ) -> Result<Self, ClassError> {
        let records = db.scan(Table::Classes).map_err(storage_error)?;
        let mut live = HashMap::new();
        for (name, record) in records {
            let name = String::from_utf8_lossy(&name);
            let (Ok(name), Ok(record)) = (
                ClassName::parse(&name),
                serde_json::from_slice::<ClassRecord>(&record),
            ) else {
                tracing::error!(class = %name, "skipping an unreadable class record");
                continue;
            };
            if let Some(same) = current
                .and_then(|c| c.get(&name))
                .filter(|c| c.record == record)
            {
                live.insert(name, same);
                continue;
            }
            let bytes = db
                .get(Table::Components, record.digest.as_bytes())
                .map_err(storage_error)?
                .ok_or_else(|| ClassError::Storage(format!("component of {name} is missing")))?;
            let (code, _) = compile(engine, bytes, record.digest.clone()).await?;
            let class = LoadedClass::new(
                name.clone(),
                secret.class_ids(&name, record.id_label(&name)),
                code,
                record.incarnation,
                record,
            );
            live.insert(name, Arc::new(class));
        }
        let worker = match read_meta::<WorkerInfo>(db, META_WORKER, "worker record")? {
            Some(info) => match current.and_then(|c| c.worker()).filter(|w| w.info == info) {
                Some(same) => Some(same),
                None => {
                    let bytes = db
                        .get(Table::Components, info.sha256.as_bytes())
                        .map_err(storage_error)?
                        .ok_or_else(|| {
                            ClassError::Storage("the worker's component is missing".into())
                        })?;
                    let (code, _) = compile_worker(engine, bytes, info.sha256.clone()).await?;
                    Some(Arc::new(Worker::new(code, info, worker_slots.clone())))
                }
            },
            None => None,
        };
        let assets = match current.and_then(|c| c.assets()) {
            // The bundle is read only when its digest says it changed.
            Some(same)
                if read_meta::<String>(db, META_ASSETS_DIGEST, "assets digest")?.as_ref()
                    == Some(&same.digest) =>
            {
                Some(same)
            }
            _ => match db
                .get(Table::Meta, META_ASSETS.as_bytes())
                .map_err(storage_error)?
            {
                Some(bundle) => Some(Arc::new(
                    Assets::open(bundle).map_err(|e| ClassError::Storage(e.to_string()))?,
                )),
                None => None,
            },
        };
        Ok(Self {
            live,
            bindings: read_meta(db, META_BINDINGS, "bindings")?.unwrap_or_default(),
            worker,
            outbound: read_meta(db, META_OUTBOUND, "outbound policies")?.unwrap_or_default(),
            vars: read_meta(db, META_VARS, "vars")?.unwrap_or_default(),
            assets,
            applied: read_meta(db, META_MIGRATIONS, "migration tags")?.unwrap_or_default(),
        })
    }
}

/// Takes the cluster-wide lock on registry changes (`None` outside a cluster), off the async
/// threads: another node may hold it while it compiles.
pub(super) async fn lock_registry(store: &Store) -> Result<Option<Box<dyn Send>>, ClassError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.lock_registry())
        .await
        .map_err(storage_error)?
        .map_err(storage_error)
}

/// A change of the registry in progress: this node's change lock (with the applied migration
/// tags) and, in a cluster, the cluster-wide one.
pub(super) struct ChangeGuard<'a> {
    applied: tokio::sync::MutexGuard<'a, Vec<String>>,
    _cluster: Option<Box<dyn Send>>,
}

impl std::ops::Deref for ChangeGuard<'_> {
    type Target = Vec<String>;

    fn deref(&self) -> &Vec<String> {
        &self.applied
    }
}

impl std::ops::DerefMut for ChangeGuard<'_> {
    fn deref_mut(&mut self) -> &mut Vec<String> {
        &mut self.applied
    }
}

impl Classes {
    /// Starts a change of the registry: alone on this node and, in a cluster, in the whole
    /// cluster, from the registry as storage holds it now.
    pub(super) async fn begin_change(&self) -> Result<ChangeGuard<'_>, ClassError> {
        let mut applied = self.changes.lock().await;
        let cluster = lock_registry(&self.store).await?;
        if cluster.is_some() {
            self.reload(&mut applied).await?;
        }
        Ok(ChangeGuard {
            applied,
            _cluster: cluster,
        })
    }

    /// Installs what other nodes changed in the registry since this node last looked (cluster
    /// mode; outside one, only this node changes it).
    pub async fn refresh(&self) -> Result<(), ClassError> {
        let mut applied = self.changes.lock().await;
        self.reload(&mut applied).await
    }

    async fn reload(&self, applied: &mut Vec<String>) -> Result<(), ClassError> {
        let stored = Stored::load(
            &self.store,
            &self.engine,
            &self.secret,
            &self.worker_slots,
            Some(self),
        )
        .await?;
        let mut live = self.live.write().expect("class lock");
        let changed = live.len() != stored.live.len()
            || stored
                .live
                .iter()
                .any(|(name, class)| live.get(name).is_none_or(|c| !Arc::ptr_eq(c, class)));
        if changed {
            tracing::info!(
                classes = stored.live.len(),
                "installed the registry's changes from other nodes"
            );
            *live = stored.live;
        }
        drop(live);
        *self.bindings.write().expect("bindings lock") = stored.bindings;
        *self.worker.write().expect("worker lock") = stored.worker;
        *self.outbound.write().expect("outbound lock") = Arc::new(stored.outbound);
        *self.vars.write().expect("vars lock") = Arc::new(stored.vars);
        *self.assets.write().expect("assets lock") = stored.assets;
        *applied = stored.applied;
        Ok(())
    }
}
