//! The deploy config, `duro.jsonc` (Cloudflare's example's `wrangler.jsonc`): which component each class runs
//! (`durable_objects.bindings`) and the `migrations` that create, rename and delete classes.
//!
//! Applying a config (`duro serve --config`, in-process; `duro deploy --config`, through the
//! admin API) first checks every component (each compiles and implements its world; the
//! compiled code is cached, so nothing compiles twice) — a bad one stops the deploy before
//! anything changed —, then runs its migrations in order (the server skips the tags it applied
//! before), uploads every binding's component (create, or replace the code; storage is kept),
//! sets the bindings (the names the worker and the objects call classes by) and the outbound
//! policies (which hosts each class and the worker may fetch), and uploads the `worker`, if any. Component paths are relative to the config file.

mod exports;
pub mod js;
mod strict;

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::class::{Bindings, Change, Migration, Vars};
use crate::ids::ClassName;
use crate::outbound::{Outbound, Policy};

/// A parsed, checked deploy config. A wrangler file's keys that duro does not use (`name`,
/// `account_id`, ...) are accepted and ignored; any other unknown key is an error.
#[derive(Debug, Deserialize)]
pub struct DeployConfig {
    #[serde(default)]
    pub durable_objects: DurableObjects,
    #[serde(default)]
    pub migrations: Vec<Migration>,
    /// wrangler's declarative alternative to `migrations` (see [`exports`]); applied as one
    /// migration, added to `migrations` when the config is read.
    #[serde(default)]
    exports: Option<std::collections::BTreeMap<String, exports::Export>>,
    /// The stateless worker in front of the objects: its component's `.wasm` file (relative to
    /// the config file), or `{"component": ..., "outbound": ...}`.
    #[serde(default)]
    pub worker: Option<WorkerEntry>,
    /// With a worker, whether the direct `/objects` and `/ids` routes still answer beside it.
    #[serde(default = "yes")]
    pub object_routes: bool,
    /// How `duro dev` builds the components (wrangler's `build`); other commands ignore it.
    #[serde(default)]
    pub build: Option<Build>,
    /// Plain values guests read through `env` (wrangler's `vars`); a non-string value is given
    /// as its JSON text.
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, serde_json::Value>,
    /// Names of secrets: their values come from the environment of whoever applies the config,
    /// or from `.dev.vars` beside it (wrangler's file), never from the config itself.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// wrangler's `main`: a JavaScript or TypeScript module that duro builds (relative to the
    /// config file): its default export is the worker, its classes the bindings' without a
    /// `component` (see [`js`]).
    #[serde(default)]
    pub main: Option<PathBuf>,
    /// wrangler's `compatibility_date` (`YYYY-MM-DD`): behaviours Cloudflare ties to a date follow
    /// it where duro has them (`deleteAll()` deletes the alarm from 2026-02-24).
    #[serde(default)]
    pub compatibility_date: Option<String>,
    /// wrangler's `compatibility_flags`: `nodejs_compat` (or `nodejs_compat_v2`) makes the build
    /// of `main` resolve `node:*` modules and give the `Buffer` and `process` globals; flags of
    /// dated behaviours turn them on or off as on Cloudflare.
    #[serde(default)]
    pub compatibility_flags: Vec<String>,
    /// wrangler's module rules for `main`'s imports (Text, Data).
    #[serde(default)]
    pub rules: Vec<js::Rule>,
    /// wrangler's static assets: a folder (relative to the config file) served before the
    /// worker, and the `env` binding that fetches from it.
    #[serde(default)]
    pub assets: Option<crate::assets::Options>,
    /// wrangler keys in the file that duro does not implement (named in a warning).
    #[serde(skip)]
    pub unsupported: Vec<String>,
    /// The config file's folder (set by `load`).
    #[serde(skip)]
    folder: PathBuf,
    /// The environment (`env.NAME` section) this config was read as.
    #[serde(skip)]
    environment: Option<String>,
}

/// The names a deploy config is found by in a folder, in order.
pub const CONFIG_NAMES: &[&str] = &[
    "duro.jsonc",
    "wrangler.json",
    "wrangler.jsonc",
    "wrangler.toml",
];

/// wrangler's local secrets file, beside the config: `NAME=value` lines.
const DEV_VARS: &str = ".dev.vars";

/// The environment every config file is read as (`--env`, or `CLOUDFLARE_ENV` as wrangler reads
/// it): one for the whole process, chosen at start.
static ENVIRONMENT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Chooses the environment config files are read as; `None`: their top level. Call once, at start.
pub fn select_environment(env: Option<String>) {
    let _ = ENVIRONMENT.set(env.filter(|e| !e.is_empty()));
}

fn environment() -> Option<&'static str> {
    ENVIRONMENT.get().and_then(Option::as_deref)
}

/// wrangler's `build`: a shell command, the folder it runs in and the files whose changes rerun
/// it. Paths are relative to the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub command: String,
    /// Where the command runs (default: the config file's folder).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Folders (or files) to watch; default: the components and the config file themselves.
    #[serde(default)]
    pub watch_dir: Option<OneOrMany>,
}

/// One path or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            Self::One(path) => std::slice::from_ref(path),
            Self::Many(paths) => paths,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableObjects {
    #[serde(default)]
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The name the worker and the objects call the class by (`env.COUNTER`).
    pub name: String,
    pub class_name: String,
    /// The component's `.wasm` file; relative to the config file. Without one, the class comes
    /// from the config's `main`.
    #[serde(default, alias = "path", alias = "wasm", alias = "component_path")]
    pub component: Option<PathBuf>,
    /// wrangler's class of another Worker: not supported (refused by `check`).
    #[serde(default)]
    pub script_name: Option<String>,
    /// wrangler's environment of that Worker: not supported (refused by `check`).
    #[serde(default)]
    pub environment: Option<String>,
    /// The hosts the class may fetch (none when absent), its timeout and response limit.
    #[serde(default)]
    pub outbound: Option<Policy>,
}

/// The `worker` entry: a path, or a path with the worker's outbound policy.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WorkerEntry {
    Path(PathBuf),
    Full(WorkerSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    #[serde(alias = "path", alias = "wasm", alias = "component_path")]
    pub component: PathBuf,
    #[serde(default)]
    pub outbound: Option<Policy>,
}

impl WorkerEntry {
    pub fn component(&self) -> &Path {
        match self {
            WorkerEntry::Path(path) => path,
            WorkerEntry::Full(spec) => &spec.component,
        }
    }

    fn component_mut(&mut self) -> &mut PathBuf {
        match self {
            WorkerEntry::Path(path) => path,
            WorkerEntry::Full(spec) => &mut spec.component,
        }
    }

    fn outbound(&self) -> Option<&Policy> {
        match self {
            WorkerEntry::Path(_) => None,
            WorkerEntry::Full(spec) => spec.outbound.as_ref(),
        }
    }
}

/// Where a config is applied: the class registry itself, or a running server's admin API.
pub trait Target {
    /// Checks that a component would deploy (as the worker, or a class), changing nothing.
    fn check(&self, component: Vec<u8>, worker: bool) -> impl Future<Output = anyhow::Result<()>>;
    /// Applies one migration; `Ok(false)` if its tag was applied before.
    fn migrate(&self, migration: &Migration) -> impl Future<Output = anyhow::Result<bool>>;
    /// Creates or replaces a class (or finds it unchanged).
    fn upload(
        &self,
        class: &ClassName,
        component: Vec<u8>,
    ) -> impl Future<Output = anyhow::Result<Change>>;
    /// Replaces the bindings.
    fn bind(&self, bindings: &Bindings) -> impl Future<Output = anyhow::Result<()>>;
    /// Replaces the outbound policies.
    fn set_outbound(&self, outbound: &Outbound) -> impl Future<Output = anyhow::Result<()>>;
    /// Replaces the vars and secrets.
    fn set_vars(&self, vars: &Vars) -> impl Future<Output = anyhow::Result<()>>;
    /// Creates or replaces the static assets (or finds them unchanged).
    fn set_assets(&self, bundle: Vec<u8>) -> impl Future<Output = anyhow::Result<Change>>;
    /// Creates or replaces the worker (or finds it unchanged).
    fn upload_worker(
        &self,
        component: Vec<u8>,
        object_routes: bool,
    ) -> impl Future<Output = anyhow::Result<Change>>;
}

impl Target for crate::class::Classes {
    async fn check(&self, component: Vec<u8>, worker: bool) -> anyhow::Result<()> {
        Ok(crate::class::Classes::check(self, component.into(), worker).await?)
    }

    async fn migrate(&self, migration: &Migration) -> anyhow::Result<bool> {
        Ok(crate::class::Classes::migrate(self, migration).await?)
    }

    async fn upload(&self, class: &ClassName, component: Vec<u8>) -> anyhow::Result<Change> {
        Ok(self.put(class.clone(), component.into()).await?.1)
    }

    async fn bind(&self, bindings: &Bindings) -> anyhow::Result<()> {
        Ok(self.set_bindings(bindings.clone()).await?)
    }

    async fn set_outbound(&self, outbound: &Outbound) -> anyhow::Result<()> {
        Ok(crate::class::Classes::set_outbound(self, outbound.clone()).await?)
    }

    async fn set_vars(&self, vars: &Vars) -> anyhow::Result<()> {
        Ok(crate::class::Classes::set_vars(self, vars.clone()).await?)
    }

    async fn set_assets(&self, bundle: Vec<u8>) -> anyhow::Result<Change> {
        Ok(crate::class::Classes::set_assets(self, Some(bundle.into())).await?)
    }

    async fn upload_worker(
        &self,
        component: Vec<u8>,
        object_routes: bool,
    ) -> anyhow::Result<Change> {
        Ok(self.put_worker(component.into(), object_routes).await?.1)
    }
}

impl DeployConfig {
    /// The deploy config in `folder`, as wrangler finds its own: `duro.jsonc`, `wrangler.json`,
    /// `wrangler.jsonc` or `wrangler.toml`, the first that exists.
    pub fn find(folder: &Path) -> Option<PathBuf> {
        CONFIG_NAMES
            .iter()
            .map(|name| folder.join(name))
            .find(|path| path.is_file())
    }

    /// Reads, parses (JSON with comments and trailing commas; TOML for a `.toml` file) and checks
    /// a config file; resolves component paths and `main` against its folder; warns about the
    /// wrangler keys in it that duro does not implement.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow::anyhow!("the deploy config {} does not exist", path.display())
            }
            _ => anyhow::anyhow!("cannot read the deploy config {}: {e}", path.display()),
        })?;
        let toml = path.extension().is_some_and(|e| e == "toml");
        let mut config = Self::parse_as(&text, toml, environment())
            .map_err(|e| anyhow::anyhow!("invalid deploy config {}: {e}", path.display()))?;
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for binding in &mut config.durable_objects.bindings {
            if let Some(component) = &mut binding.component {
                *component = folder.join(&*component);
            }
        }
        if let Some(worker) = &mut config.worker {
            let path = worker.component_mut();
            *path = folder.join(&*path);
        }
        if let Some(main) = &mut config.main {
            *main = folder.join(&*main);
        }
        if let Some(assets) = &mut config.assets {
            let directory = assets
                .directory
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("{}: assets needs a directory", path.display()))?;
            assets.directory = Some(folder.join(directory));
        }
        config.folder = folder.to_path_buf();
        if let Some(warning) = config.unsupported_warning() {
            tracing::warn!("{}: {warning}", path.display());
        }
        if let Some(build) = &mut config.build {
            build.cwd = Some(folder.join(build.cwd.take().unwrap_or_default()));
            build.watch_dir = build
                .watch_dir
                .take()
                .map(|dirs| OneOrMany::Many(dirs.paths().iter().map(|d| folder.join(d)).collect()));
        }
        Ok(config)
    }

    /// Loads a config file (see [`load`](Self::load)) and builds its `main` (see
    /// [`build_main`](Self::build_main)).
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let mut config = Self::load(path)?;
        config.build_main().await?;
        Ok(config)
    }

    /// Parses (strictly: see [`strict`]) and checks a config's text (paths stay as written).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Self::parse_as(text, false, None)
    }

    /// Parses as [`parse`](Self::parse) does, as environment `env` sees the config (wrangler's
    /// `--env`: its section's keys over the top level's, bindings and vars not inherited).
    pub fn parse_env(text: &str, env: Option<&str>) -> anyhow::Result<Self> {
        Self::parse_as(text, false, env)
    }

    fn parse_as(text: &str, toml: bool, env: Option<&str>) -> anyhow::Result<Self> {
        let (mut config, unsupported): (Self, _) = if toml {
            strict::parse_toml(text, env)?
        } else {
            strict::parse(text, env)?
        };
        config.unsupported = unsupported;
        config.environment = env.map(str::to_string);
        if let Some(map) = config.exports.take() {
            if !config.migrations.is_empty() {
                anyhow::bail!(
                    "exports and migrations are both set: use one (wrangler refuses both too)"
                );
            }
            config.migrations.push(exports::migration(&map)?);
        }
        config.check()?;
        Ok(config)
    }

    /// The warning for the wrangler keys duro does not implement, if the file has any.
    pub fn unsupported_warning(&self) -> Option<String> {
        (!self.unsupported.is_empty()).then(|| {
            format!(
                "the deploy config's {} not implemented by duro: ignored",
                match self.unsupported.as_slice() {
                    [one] => format!("key {one:?} is"),
                    many => format!("keys {} are", many.join(", ")),
                }
            )
        })
    }

    /// Builds `main`, if the config has one: the bindings without a component get its classes'
    /// component, and its default export (if any) is the worker unless the config names one.
    pub async fn build_main(&mut self) -> anyhow::Result<()> {
        let Some(main) = &self.main else {
            return Ok(());
        };
        let objects = self
            .durable_objects
            .bindings
            .iter()
            .any(|b| b.component.is_none());
        let compatibility = js::Compatibility {
            date: self.compatibility_date.as_deref(),
            flags: &self.compatibility_flags,
        };
        let built = js::build(main, &self.folder, &self.rules, objects, compatibility).await?;
        for binding in &mut self.durable_objects.bindings {
            if binding.component.is_none() {
                binding.component = built.objects.clone();
            }
        }
        if self.worker.is_none() {
            self.worker = built.worker.map(WorkerEntry::Path);
        }
        Ok(())
    }

    fn check(&self) -> anyhow::Result<()> {
        if let Some(date) = &self.compatibility_date {
            let shape = date.len() == 10
                && date.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if !shape {
                anyhow::bail!("compatibility_date {date:?} is not a date of the form YYYY-MM-DD");
            }
        }
        let mut names = HashSet::new();
        let mut classes = HashSet::new();
        let declared = self.declared_classes();
        for binding in &self.durable_objects.bindings {
            ClassName::parse(&binding.class_name)
                .map_err(|e| anyhow::anyhow!("binding {:?}: {e}", binding.name))?;
            if !names.insert(&binding.name) {
                anyhow::bail!("two bindings are named {:?}", binding.name);
            }
            if !classes.insert(&binding.class_name) {
                anyhow::bail!("two bindings have class_name {:?}", binding.class_name);
            }
            if binding.script_name.is_some() || binding.environment.is_some() {
                anyhow::bail!(
                    "binding {:?}: script_name and environment (a class of another Worker) are not \
                     supported: deploy that Worker's classes in this config",
                    binding.name
                );
            }
            if binding.component.is_none() && self.main.is_none() {
                anyhow::bail!(
                    "binding {:?}: no component: name the class's .wasm file in `component`, or \
                     give the config a `main` (a JavaScript or TypeScript module exporting the \
                     class)",
                    binding.name
                );
            }
            if !declared.contains(binding.class_name.as_str()) {
                anyhow::bail!(
                    "binding {:?}: class {:?} is not declared by any migration (add it to a \
                     migration's new_classes)",
                    binding.name,
                    binding.class_name
                );
            }
            if let Some(policy) = &binding.outbound {
                policy
                    .validate()
                    .map_err(|e| anyhow::anyhow!("binding {:?}: outbound: {e}", binding.name))?;
            }
        }
        if let Some(policy) = self.worker.as_ref().and_then(WorkerEntry::outbound) {
            policy
                .validate()
                .map_err(|e| anyhow::anyhow!("worker: outbound: {e}"))?;
        }
        let mut tags = HashSet::new();
        for migration in &self.migrations {
            if !tags.insert(&migration.tag) {
                anyhow::bail!("two migrations have the tag {:?}", migration.tag);
            }
        }
        Ok(())
    }

    /// The classes the migrations leave declared, applied in order: created, renamed to, and
    /// not deleted since.
    fn declared_classes(&self) -> HashSet<&str> {
        let mut declared = HashSet::new();
        for migration in &self.migrations {
            for deleted in &migration.deleted_classes {
                declared.remove(deleted.as_str());
            }
            for rename in &migration.renamed_classes {
                declared.remove(rename.from.as_str());
                declared.insert(rename.to.as_str());
            }
            declared.extend(migration.new_classes.iter().map(String::as_str));
            declared.extend(migration.new_sqlite_classes.iter().map(String::as_str));
        }
        declared
    }

    /// The bindings as the server keeps them.
    fn bindings(&self) -> anyhow::Result<Bindings> {
        self.durable_objects
            .bindings
            .iter()
            .map(|b| Ok((b.name.clone(), ClassName::parse(&b.class_name)?)))
            .collect()
    }

    /// The outbound policies as the server keeps them.
    fn outbound(&self) -> anyhow::Result<Outbound> {
        let mut outbound = Outbound {
            worker: self
                .worker
                .as_ref()
                .and_then(WorkerEntry::outbound)
                .cloned(),
            ..Outbound::default()
        };
        for binding in &self.durable_objects.bindings {
            if let Some(policy) = &binding.outbound {
                let class = ClassName::parse(&binding.class_name)?;
                outbound.classes.insert(class, policy.clone());
            }
        }
        Ok(outbound)
    }

    /// The vars, and the secrets' values from the environment or `.dev.vars` (the environment
    /// wins). A secret with no value is an error that names it.
    fn resolve_vars(&self) -> anyhow::Result<Vars> {
        let vars = self
            .vars
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (name.clone(), text)
            })
            .collect();
        // An environment's `.dev.vars.NAME` replaces `.dev.vars`, as with wrangler.
        let file = self
            .environment
            .as_ref()
            .map(|env| self.folder.join(format!("{DEV_VARS}.{env}")))
            .filter(|file| file.exists())
            .unwrap_or_else(|| self.folder.join(DEV_VARS));
        let dev_vars = match std::fs::read_to_string(&file) {
            Ok(text) => parse_dev_vars(&text),
            Err(_) => Default::default(),
        };
        let mut secrets = std::collections::BTreeMap::new();
        for name in &self.secrets {
            let value = std::env::var(name)
                .ok()
                .or_else(|| dev_vars.get(name).cloned())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "secret {name:?} has no value: set the environment variable {name} or \
                         put {name}=... in {}",
                        file.display()
                    )
                })?;
            secrets.insert(name.clone(), value);
        }
        let vars = Vars { vars, secrets };
        vars.check().map_err(anyhow::Error::msg)?;
        Ok(vars)
    }

    /// The components the config deploys: every binding's, and the worker's.
    pub fn components(&self) -> impl Iterator<Item = &Path> {
        let bindings = self.durable_objects.bindings.iter();
        let worker = self.worker.as_ref().map(WorkerEntry::component);
        bindings
            .filter_map(|b| b.component.as_deref())
            .chain(worker)
    }

    /// Checks every component, then applies the migrations in order, uploads every binding's
    /// component, sets the bindings and uploads the worker. Returns one line per step, for the
    /// operator.
    pub async fn apply(&self, target: &impl Target) -> anyhow::Result<Vec<String>> {
        let vars = self.resolve_vars()?;
        let read = |path: &Path, what: &str| {
            std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("{what}: cannot read {}: {e}", path.display()))
        };
        let mut components = Vec::new();
        for binding in &self.durable_objects.bindings {
            let what = format!("binding {}", binding.name);
            let path = binding.component.as_deref().ok_or_else(|| {
                anyhow::anyhow!("{what}: no component (the config's main is not built)")
            })?;
            let component = read(path, &what)?;
            target
                .check(component.clone(), false)
                .await
                .map_err(|e| anyhow::anyhow!("{what}: {e:#}"))?;
            components.push((binding, component));
        }
        let worker = match &self.worker {
            Some(entry) => {
                let component = read(entry.component(), "worker")?;
                target
                    .check(component.clone(), true)
                    .await
                    .map_err(|e| anyhow::anyhow!("worker: {e:#}"))?;
                Some(component)
            }
            None => None,
        };
        let mut report = Vec::new();
        for migration in &self.migrations {
            let applied = target.migrate(migration).await?;
            report.push(format!(
                "migration {}: {}",
                migration.tag,
                if applied { "applied" } else { "applied before" }
            ));
        }
        for (binding, component) in components {
            let class = ClassName::parse(&binding.class_name)?;
            let change = target
                .upload(&class, component)
                .await
                .map_err(|e| anyhow::anyhow!("binding {}: {e:#}", binding.name))?;
            report.push(format!(
                "class {class} (binding {}): {}",
                binding.name,
                change.as_str()
            ));
        }
        target.bind(&self.bindings()?).await?;
        target.set_outbound(&self.outbound()?).await?;
        target.set_vars(&vars).await?;
        if !vars.vars.is_empty() || !vars.secrets.is_empty() {
            let names = |map: &std::collections::BTreeMap<String, String>| {
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            report.push(format!(
                "vars: {} var(s) [{}], {} secret(s) [{}]",
                vars.vars.len(),
                names(&vars.vars),
                vars.secrets.len(),
                names(&vars.secrets)
            ));
        }
        if let Some(assets) = &self.assets {
            let folder = assets.directory.as_deref().expect("set by load");
            let (bundle, files) = crate::assets::Assets::bundle(folder, assets)?;
            let change = target.set_assets(bundle).await?;
            report.push(format!(
                "assets: {} ({files} files from {})",
                change.as_str(),
                folder.display()
            ));
        }
        if let Some(component) = worker {
            let change = target.upload_worker(component, self.object_routes).await?;
            report.push(format!(
                "worker: {}{}",
                change.as_str(),
                if self.object_routes {
                    ""
                } else {
                    " (direct object routes off)"
                }
            ));
        }
        Ok(report)
    }
}

/// `NAME=value` lines (blank lines and `#` comments skipped; a value may be quoted).
fn parse_dev_vars(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            (name.trim().to_string(), unquoted.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests;
