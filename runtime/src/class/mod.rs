//! The class registry: uploaded components, persisted in redb, compiled once and kept ready.
//!
//! A class is a name bound to a component. Uploading replaces the code (live objects restart on
//! it at their next event; storage is untouched); deleting makes its objects unreachable and
//! deletes their storage. A migration (from a deploy config) deletes and renames classes in one
//! commit, once per tag; a renamed class keeps its incarnation, so its objects, storage and ids.
//! Changes are serialized and committed through the group committer like any other write, and
//! take effect in memory only once durable. The deployment's settings kept beside the classes
//! (bindings, outbound policies, vars and secrets, static assets) are in [`settings`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod settings;
pub mod shared;
mod sync;

use crate::abi::ClassCode;
use crate::abi::worker::WorkerCode;
use crate::assets::Assets;
use crate::engine::{Engine, InvalidComponent, LoadSource};
use crate::ids::{ClassIds, ClassName, IdSecret, ObjectId, ObjectKey};
use crate::outbound::Outbound;
use crate::storage::{CommitError, Committer, Store, WriteOp, schema, schema::Table};
use crate::worker::{Worker, WorkerInfo};
use sync::Stored;

/// What redb keeps about a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClassRecord {
    digest: String,
    size: u64,
    /// Storage-key prefix of this class's objects; see `storage::schema`.
    incarnation: u64,
    created_ms: u64,
    updated_ms: u64,
    /// What the class's id key is derived from, when not its name: the original name of a
    /// renamed class (its ids stay valid), or a unique label for a class created under a name
    /// that a renamed class still derives its ids from (so their ids differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_key: Option<String>,
}

impl ClassRecord {
    fn id_label<'a>(&'a self, name: &'a ClassName) -> &'a str {
        self.id_key.as_deref().unwrap_or(name.as_str())
    }
}

/// A class ready to serve: its code, its ids and where its objects' data lives.
pub struct LoadedClass {
    pub name: ClassName,
    pub ids: ClassIds,
    pub code: ClassCode,
    pub incarnation: u64,
    /// The instances its objects share, if the code is of the `shared-instance` world.
    pub shared: Option<Arc<shared::SharedPool>>,
    record: ClassRecord,
}

/// What an upload of a class's (or the worker's) code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Replaced,
    /// The same code (sha256) as deployed: nothing changed, live objects keep their instances.
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Replaced => "replaced",
            Self::Unchanged => "unchanged",
        }
    }
}

/// What the admin API shows about a class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassInfo {
    pub class: String,
    pub sha256: String,
    pub size: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassError {
    #[error("{0}")]
    Invalid(#[from] InvalidComponent),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the compiler thread failed: {0}")]
    Compiler(String),
    #[error("migration {tag:?} not applied: {reason}")]
    Migration { tag: String, reason: String },
    #[error("invalid outbound policies: {0}")]
    Outbound(String),
    #[error("vars not applied: {0}")]
    Vars(String),
    #[error("{0}")]
    Assets(String),
}

/// One entry of a deploy config's `migrations`, applied once per tag, all of it or nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub tag: String,
    /// Classes the config's bindings may create. Nothing to do here: an upload creates a class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_classes: Vec<String>,
    /// The same, from newer wrangler files (Cloudflare's SQLite-backed classes; on duro they have
    /// the key-value storage API until SQL storage lands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_sqlite_classes: Vec<String>,
    /// Classes that take a new name, keeping their objects, ids, storage and alarms (a missing
    /// one is skipped; renaming onto an existing class is refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed_classes: Vec<Rename>,
    /// Classes deleted with all of their objects' storage (a missing one is skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_classes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

/// See the module docs. Cheap to share behind an `Arc`.
pub struct Classes {
    engine: Arc<Engine>,
    committer: Committer,
    secret: IdSecret,
    /// The classes being served. A std lock: held only to clone or swap an `Arc`.
    live: RwLock<HashMap<ClassName, Arc<LoadedClass>>>,
    /// The deploy config's bindings: the names workers and objects call classes by.
    bindings: RwLock<Bindings>,
    /// The stateless worker in front of the objects, if one is deployed.
    worker: RwLock<Option<Arc<Worker>>>,
    /// Which hosts each class and the worker may fetch.
    outbound: RwLock<Arc<Outbound>>,
    /// The deploy config's vars and secrets.
    vars: RwLock<Arc<Vars>>,
    /// The deploy config's static assets, if any.
    assets: RwLock<Option<Arc<Assets>>>,
    /// The pooled slots all worker versions' instances share.
    worker_slots: Arc<tokio::sync::Semaphore>,
    /// Serializes uploads, deletes and migrations; holds the tags of the applied migrations.
    changes: tokio::sync::Mutex<Vec<String>>,
    /// Where the registry is kept; in a cluster, other nodes change it too (see `sync`).
    store: Store,
}

const META_ID_SECRET: &str = "id-secret";
const META_MIGRATIONS: &str = "migrations";
const META_BINDINGS: &str = "bindings";
const META_WORKER: &str = "worker";
const META_OUTBOUND: &str = "outbound";
const META_VARS: &str = "vars";
/// The assets bundle, as uploaded (not JSON).
const META_ASSETS: &str = "assets";
/// The sha256 of the assets bundle (compared by other cluster nodes without reading the bundle).
const META_ASSETS_DIGEST: &str = "assets-digest";

pub use settings::{Bindings, Vars};

/// Longest migration tag accepted.
const MAX_TAG_BYTES: usize = 128;

impl Classes {
    /// Loads every persisted class (from the compiled cache when possible), and sweeps the data of
    /// class incarnations that no longer exist.
    pub async fn open(
        db: &Store,
        engine: Arc<Engine>,
        committer: Committer,
        max_live_objects: usize,
    ) -> Result<Self, ClassError> {
        let secret = load_or_create_secret(db, &committer).await?;
        let worker_slots = Arc::new(tokio::sync::Semaphore::new(
            crate::config::worker_instances(max_live_objects),
        ));
        let stored = Stored::load(db, &engine, &secret, &worker_slots, None).await?;
        let classes = Self {
            engine,
            committer,
            secret,
            live: RwLock::new(stored.live),
            bindings: RwLock::new(stored.bindings),
            worker: RwLock::new(stored.worker),
            outbound: RwLock::new(Arc::new(stored.outbound)),
            vars: RwLock::new(Arc::new(stored.vars)),
            assets: RwLock::new(stored.assets),
            worker_slots,
            changes: tokio::sync::Mutex::new(stored.applied),
            store: db.clone(),
        };
        let change = classes.begin_change().await?;
        classes.sweep_orphans(db).await?;
        drop(change);
        Ok(classes)
    }

    pub fn get(&self, name: &ClassName) -> Option<Arc<LoadedClass>> {
        self.live.read().expect("class lock").get(name).cloned()
    }

    /// Whether `class` is still the code being served for its name.
    pub fn is_current(&self, class: &Arc<LoadedClass>) -> bool {
        self.get(&class.name)
            .is_some_and(|current| Arc::ptr_eq(&current, class))
    }

    /// The live class whose objects' storage starts with `incarnation`.
    pub fn by_incarnation(&self, incarnation: u64) -> Option<Arc<LoadedClass>> {
        let live = self.live.read().expect("class lock");
        live.values()
            .find(|c| c.incarnation == incarnation)
            .cloned()
    }

    pub fn list(&self) -> Vec<ClassInfo> {
        let live = self.live.read().expect("class lock");
        let mut infos: Vec<_> = live.values().map(|c| c.info()).collect();
        infos.sort_by(|a, b| a.class.cmp(&b.class));
        infos
    }

    /// Creates or replaces a class (code identical to the deployed code changes nothing).
    pub async fn put(
        &self,
        name: ClassName,
        bytes: Bytes,
    ) -> Result<(ClassInfo, Change), ClassError> {
        let _change = self.begin_change().await?;
        let digest = hex::encode(Sha256::digest(&bytes));
        if let Some(current) = self.get(&name).filter(|c| c.record.digest == digest) {
            return Ok((current.info(), Change::Unchanged));
        }
        let (code, source) = compile(&self.engine, bytes.clone(), digest.clone()).await?;
        tracing::info!(class = %name, %digest, ?source, "class code ready");
        let previous = self.get(&name);
        let now = now_ms();
        let incarnation = match &previous {
            Some(p) => p.incarnation,
            None => random_incarnation(),
        };
        let id_key = match &previous {
            Some(p) => p.record.id_key.clone(),
            // A renamed class may still derive its ids from this name: take other ones.
            None => self
                .live
                .read()
                .expect("class lock")
                .values()
                .any(|c| c.record.id_label(&c.name) == name.as_str())
                .then(|| format!("{name}#{incarnation:016x}")),
        };
        let record = ClassRecord {
            digest: digest.clone(),
            size: bytes.len() as u64,
            incarnation,
            created_ms: previous.as_ref().map_or(now, |p| p.record.created_ms),
            updated_ms: now,
            id_key,
        };
        let mut ops = vec![
            WriteOp::Put {
                table: Table::Components,
                key: digest.clone().into_bytes(),
                value: bytes,
            },
            put_record(&name, &record),
        ];
        if let Some(old) = previous.as_ref().filter(|p| p.record.digest != digest)
            && !self.digest_used_elsewhere(&old.record.digest, Some(&name))
        {
            ops.push(delete_component(&old.record.digest));
        }
        self.committer.submit(ops).await.wait().await?;
        let class = Arc::new(LoadedClass::new(
            name.clone(),
            self.secret.class_ids(&name, record.id_label(&name)),
            code,
            record.incarnation,
            record,
        ));
        let info = class.info();
        self.live.write().expect("class lock").insert(name, class);
        Ok((info, created_or_replaced(previous.is_none())))
    }

    /// Deletes a class and all of its objects' storage. `false` if there was no such class.
    pub async fn delete(&self, name: &ClassName) -> Result<bool, ClassError> {
        let _change = self.begin_change().await?;
        let Some(class) = self.get(name) else {
            return Ok(false);
        };
        // Unreachable at once; the storage goes with the commit below.
        self.live.write().expect("class lock").remove(name);
        let mut ops = deletion(&class);
        if !self.digest_used_elsewhere(&class.record.digest, Some(name)) {
            ops.push(delete_component(&class.record.digest));
        }
        self.committer.submit(ops).await.wait().await?;
        Ok(true)
    }

    /// The worker in front of the objects, if one is deployed.
    pub fn worker(&self) -> Option<Arc<Worker>> {
        self.worker.read().expect("worker lock").clone()
    }

    /// Creates or replaces the worker (`object_routes`: whether the direct object routes stay
    /// beside it). Requests in flight finish on the old code. Returns its info and whether it
    /// was created.
    pub async fn put_worker(
        &self,
        bytes: Bytes,
        object_routes: bool,
    ) -> Result<(WorkerInfo, Change), ClassError> {
        let _change = self.begin_change().await?;
        let digest = hex::encode(Sha256::digest(&bytes));
        if let Some(current) = self
            .worker()
            .filter(|w| w.info.sha256 == digest && w.info.object_routes == object_routes)
        {
            return Ok((current.info.clone(), Change::Unchanged));
        }
        let (code, source) = compile_worker(&self.engine, bytes.clone(), digest.clone()).await?;
        tracing::info!(%digest, ?source, "worker code ready");
        let previous = self.worker();
        let now = now_ms();
        let info = WorkerInfo {
            sha256: digest.clone(),
            size: bytes.len() as u64,
            created_ms: previous.as_ref().map_or(now, |w| w.info.created_ms),
            updated_ms: now,
            object_routes,
        };
        let mut ops = vec![
            WriteOp::Put {
                table: Table::Components,
                key: digest.clone().into_bytes(),
                value: bytes,
            },
            put_meta(META_WORKER, &info),
        ];
        if let Some(old) = previous.as_ref().filter(|w| w.info.sha256 != digest)
            && !self.digest_used_elsewhere(&old.info.sha256, None)
        {
            ops.push(delete_component(&old.info.sha256));
        }
        self.committer.submit(ops).await.wait().await?;
        let worker = Worker::new(code, info.clone(), self.worker_slots.clone());
        *self.worker.write().expect("worker lock") = Some(Arc::new(worker));
        Ok((info, created_or_replaced(previous.is_none())))
    }

    /// Removes the worker; ingress requests go to the object routes again. `false` if there was
    /// none.
    pub async fn delete_worker(&self) -> Result<bool, ClassError> {
        let _change = self.begin_change().await?;
        let Some(worker) = self.worker() else {
            return Ok(false);
        };
        let mut ops = vec![WriteOp::Delete {
            table: Table::Meta,
            key: META_WORKER.as_bytes().to_vec(),
        }];
        let digest = &worker.info.sha256;
        if !self
            .live
            .read()
            .expect("class lock")
            .values()
            .any(|c| &c.record.digest == digest)
        {
            ops.push(delete_component(digest));
        }
        self.committer.submit(ops).await.wait().await?;
        *self.worker.write().expect("worker lock") = None;
        Ok(true)
    }

    /// Checks that `bytes` would deploy (as a class, or as the worker) without changing
    /// anything. The compiled code is cached, so the deploy that follows does not compile again.
    pub async fn check(&self, bytes: Bytes, worker: bool) -> Result<(), ClassError> {
        let digest = hex::encode(Sha256::digest(&bytes));
        if worker {
            compile_worker(&self.engine, bytes, digest).await.map(drop)
        } else {
            compile(&self.engine, bytes, digest).await.map(drop)
        }
    }

    /// The tags of the migrations applied so far, in order.
    pub async fn migrations(&self) -> Vec<String> {
        self.changes.lock().await.clone()
    }

    /// Applies a migration unless its tag was applied before: its deletes, then its renames,
    /// each checked against the classes as the earlier steps leave them; then commits all of it,
    /// with its tag, at once. Returns whether it was applied now.
    pub async fn migrate(&self, migration: &Migration) -> Result<bool, ClassError> {
        let mut applied = self.begin_change().await?;
        let tag = &migration.tag;
        let refuse = |reason: String| ClassError::Migration {
            tag: tag.clone(),
            reason,
        };
        if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
            return Err(refuse(format!("a tag is 1 to {MAX_TAG_BYTES} bytes")));
        }
        if applied.contains(tag) {
            return Ok(false);
        }
        let parse = |name: &str| ClassName::parse(name).map_err(|e| refuse(e.to_string()));
        for name in &migration.new_classes {
            parse(name)?;
        }
        let mut classes = self.live.read().expect("class lock").clone();
        let mut ops = Vec::new();
        let mut deleted = Vec::new();
        for name in &migration.deleted_classes {
            if let Some(class) = classes.remove(&parse(name)?) {
                ops.extend(deletion(&class));
                deleted.push(class);
            }
        }
        for Rename { from, to } in &migration.renamed_classes {
            let (from, to) = (parse(from)?, parse(to)?);
            if !classes.contains_key(&from) {
                // Nothing to rename (e.g. a fresh server replaying a config's history: the
                // bindings create the class under its new name).
                continue;
            }
            if classes.contains_key(&to) {
                return Err(refuse(format!("cannot rename {from} to {to}: {to} exists")));
            }
            let old = classes.remove(&from).expect("checked above");
            let mut record = old.record.clone();
            record.id_key = Some(record.id_label(&from).to_owned());
            record.updated_ms = now_ms();
            ops.push(WriteOp::Delete {
                table: Table::Classes,
                key: from.as_str().as_bytes().to_vec(),
            });
            ops.push(put_record(&to, &record));
            let renamed = LoadedClass::new(
                to.clone(),
                self.secret.class_ids(&to, record.id_label(&to)),
                old.code.clone(),
                old.incarnation,
                record,
            );
            classes.insert(to, Arc::new(renamed));
        }
        for class in deleted {
            let digest = &class.record.digest;
            if !classes.values().any(|c| &c.record.digest == digest) {
                ops.push(delete_component(digest));
            }
        }
        let mut tags = applied.clone();
        tags.push(tag.clone());
        ops.push(put_meta(META_MIGRATIONS, &tags));
        self.committer.submit(ops).await.wait().await?;
        *self.live.write().expect("class lock") = classes;
        *applied = tags;
        tracing::info!(%tag, "migration applied");
        Ok(true)
    }

    /// Whether a class other than `except`, or the worker, runs the component `digest`.
    fn digest_used_elsewhere(&self, digest: &str, except: Option<&ClassName>) -> bool {
        let live = self.live.read().expect("class lock");
        let by_class = live
            .values()
            .any(|c| Some(&c.name) != except && c.record.digest == digest);
        by_class || (except.is_some() && self.worker().is_some_and(|w| w.info.sha256 == digest))
    }

    /// Deletes the data of class incarnations that have no class record (deleted classes whose
    /// late writes landed after the delete). One range probe per incarnation found.
    async fn sweep_orphans(&self, db: &Store) -> Result<(), ClassError> {
        use std::ops::Bound;
        let known: Vec<u64> = self
            .live
            .read()
            .expect("class lock")
            .values()
            .map(|c| c.incarnation)
            .collect();
        let mut orphans = Vec::new();
        {
            let reader = db.reader().map_err(storage_error)?;
            let mut from = Vec::new();
            loop {
                let next = reader
                    .range(
                        Table::Data,
                        (Bound::Included(from), Bound::Unbounded),
                        false,
                    )
                    .map_err(storage_error)?
                    .next();
                let Some(entry) = next else { break };
                let (key, _) = entry.map_err(storage_error)?;
                let Some(head) = key.get(..schema::CLASS_PREFIX_LEN) else {
                    break;
                };
                let incarnation = u64::from_be_bytes(head.try_into().expect("8 bytes"));
                if !known.contains(&incarnation) {
                    orphans.push(incarnation);
                }
                match incarnation.checked_add(1) {
                    Some(next) => from = schema::class_prefix(next),
                    None => break,
                }
            }
        }
        if orphans.is_empty() {
            return Ok(());
        }
        tracing::info!(count = orphans.len(), "deleting storage of deleted classes");
        let ops = orphans
            .into_iter()
            .flat_map(crate::storage::ops::delete_class_entries)
            .collect();
        self.committer.submit(ops).await.wait().await?;
        Ok(())
    }
}

impl LoadedClass {
    /// The key of its object `id`.
    pub fn key(&self, id: ObjectId) -> ObjectKey {
        ObjectKey {
            incarnation: self.incarnation,
            id,
        }
    }

    fn new(
        name: ClassName,
        ids: ClassIds,
        code: ClassCode,
        incarnation: u64,
        record: ClassRecord,
    ) -> Self {
        Self {
            shared: code.is_shared().then(shared::SharedPool::new),
            name,
            ids,
            code,
            incarnation,
            record,
        }
    }

    pub fn info(&self) -> ClassInfo {
        ClassInfo {
            class: self.name.to_string(),
            sha256: self.record.digest.clone(),
            size: self.record.size,
            created_ms: self.record.created_ms,
            updated_ms: self.record.updated_ms,
        }
    }
}

/// How the engine turns component bytes into code of one kind (a class's, the worker's).
type Loader<C> = fn(&Engine, &[u8], &str) -> Result<(C, LoadSource), InvalidComponent>;

/// Loads a component on a blocking thread with `load`.
async fn load_code<C: Send + 'static>(
    engine: &Arc<Engine>,
    bytes: Bytes,
    digest: String,
    load: Loader<C>,
) -> Result<(C, LoadSource), ClassError> {
    let engine = engine.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&engine, &bytes, &digest))
        .await
        .map_err(|e| ClassError::Compiler(e.to_string()))?;
    Ok(loaded?)
}

async fn compile(
    engine: &Arc<Engine>,
    bytes: Bytes,
    digest: String,
) -> Result<(ClassCode, LoadSource), ClassError> {
    load_code(engine, bytes, digest, Engine::load).await
}

async fn compile_worker(
    engine: &Arc<Engine>,
    bytes: Bytes,
    digest: String,
) -> Result<(WorkerCode, LoadSource), ClassError> {
    load_code(engine, bytes, digest, Engine::load_worker).await
}

async fn load_or_create_secret(db: &Store, committer: &Committer) -> Result<IdSecret, ClassError> {
    // In a cluster, the first node to start creates it; the others wait and read it.
    let _cluster = sync::lock_registry(db).await?;
    let stored = db
        .get(Table::Meta, META_ID_SECRET.as_bytes())
        .map_err(storage_error)?;
    if let Some(bytes) = stored {
        let bytes: [u8; 32] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| ClassError::Storage("the stored id secret is corrupt".into()))?;
        return Ok(IdSecret::from_bytes(bytes));
    }
    let secret = IdSecret::random();
    let op = WriteOp::Put {
        table: Table::Meta,
        key: META_ID_SECRET.as_bytes().to_vec(),
        value: Bytes::copy_from_slice(secret.as_bytes()),
    };
    committer.submit(vec![op]).await.wait().await?;
    Ok(secret)
}

fn put_record(name: &ClassName, record: &ClassRecord) -> WriteOp {
    WriteOp::Put {
        table: Table::Classes,
        key: name.as_str().as_bytes().to_vec(),
        value: serde_json::to_vec(record)
            .expect("a record serializes")
            .into(),
    }
}

/// Removes a class's record and every object's storage and alarm (not its component).
fn deletion(class: &LoadedClass) -> Vec<WriteOp> {
    let mut ops = vec![WriteOp::Delete {
        table: Table::Classes,
        key: class.name.as_str().as_bytes().to_vec(),
    }];
    ops.extend(crate::storage::ops::delete_class_entries(class.incarnation));
    ops.push(WriteOp::DeleteAlarmsPrefix {
        prefix: schema::class_prefix(class.incarnation),
    });
    ops
}

fn delete_component(digest: &str) -> WriteOp {
    WriteOp::Delete {
        table: Table::Components,
        key: digest.as_bytes().to_vec(),
    }
}

/// A JSON document of the META table (bindings, outbound policies, the worker record, migration
/// tags), if it was ever written.
fn read_meta<T: serde::de::DeserializeOwned>(
    db: &Store,
    key: &str,
    what: &str,
) -> Result<Option<T>, ClassError> {
    match db.get(Table::Meta, key.as_bytes()).map_err(storage_error)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClassError::Storage(format!("unreadable {what}: {e}"))),
        None => Ok(None),
    }
}

/// Writes a JSON document of the META table.
fn put_meta(key: &str, value: &impl Serialize) -> WriteOp {
    WriteOp::Put {
        table: Table::Meta,
        key: key.as_bytes().to_vec(),
        value: serde_json::to_vec(value)
            .expect("META documents serialize")
            .into(),
    }
}

fn storage_error(error: impl std::fmt::Display) -> ClassError {
    ClassError::Storage(error.to_string())
}

fn random_incarnation() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    u64::from_be_bytes(bytes)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn created_or_replaced(created: bool) -> Change {
    if created {
        Change::Created
    } else {
        Change::Replaced
    }
}
