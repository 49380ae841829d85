//! The deploy config, `duro.jsonc` (the seed's `wrangler.jsonc`): which component each class runs
//! (`durable_objects.bindings`) and the `migrations` that create, rename and delete classes.
//!
//! Applying a config (`duro serve --config`, in-process; `duro deploy --config`, through the
//! admin API) runs its migrations in order — the server skips the tags it applied before — and
//! then uploads every binding's component (create, or replace the code; storage is kept).
//! Component paths are relative to the config file.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::class::Migration;
use crate::ids::ClassName;

/// A parsed, checked deploy config. Keys other than these (a wrangler file's `name`,
/// `compatibility_date`, ...) are ignored.
#[derive(Debug, Deserialize)]
pub struct DeployConfig {
    #[serde(default)]
    pub durable_objects: DurableObjects,
    #[serde(default)]
    pub migrations: Vec<Migration>,
    /// A stateless worker in front of the objects: not supported yet, refused with a clear error.
    #[serde(default)]
    worker: Option<serde_json::Value>,
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
    /// The name a worker would use for the namespace.
    pub name: String,
    pub class_name: String,
    /// The component's `.wasm` file; relative to the config file.
    #[serde(alias = "path", alias = "wasm", alias = "component_path")]
    pub component: PathBuf,
}

/// Where a config is applied: the class registry itself, or a running server's admin API.
pub trait Target {
    /// Applies one migration; `Ok(false)` if its tag was applied before.
    fn migrate(&self, migration: &Migration) -> impl Future<Output = anyhow::Result<bool>>;
    /// Creates or replaces a class; `Ok(true)` if it was created.
    fn upload(
        &self,
        class: &ClassName,
        component: Vec<u8>,
    ) -> impl Future<Output = anyhow::Result<bool>>;
}

impl Target for crate::class::Classes {
    async fn migrate(&self, migration: &Migration) -> anyhow::Result<bool> {
        Ok(crate::class::Classes::migrate(self, migration).await?)
    }

    async fn upload(&self, class: &ClassName, component: Vec<u8>) -> anyhow::Result<bool> {
        Ok(self.put(class.clone(), component.into()).await?.1)
    }
}

impl DeployConfig {
    /// Reads, parses (JSON with comments and trailing commas) and checks a config file; resolves
    /// component paths against its folder.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut config = Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("invalid deploy config {}: {e}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        for binding in &mut config.durable_objects.bindings {
            binding.component = folder.join(&binding.component);
        }
        Ok(config)
    }

    /// Parses and checks a config's text (paths stay as written).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let options = jsonc_parser::ParseOptions::default();
        let value: Option<serde_json::Value> = jsonc_parser::parse_to_serde_value(text, &options)?;
        let value = value.ok_or_else(|| anyhow::anyhow!("the file is empty"))?;
        let config: Self = serde_json::from_value(value)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.worker.is_some() {
            anyhow::bail!(
                "a stateless `worker` is not supported yet: deploy the classes alone \
                 (durable_objects.bindings) and call them on their object routes"
            );
        }
        let mut names = HashSet::new();
        let mut classes = HashSet::new();
        for binding in &self.durable_objects.bindings {
            ClassName::parse(&binding.class_name)
                .map_err(|e| anyhow::anyhow!("binding {:?}: {e}", binding.name))?;
            if !names.insert(&binding.name) {
                anyhow::bail!("two bindings are named {:?}", binding.name);
            }
            if !classes.insert(&binding.class_name) {
                anyhow::bail!("two bindings have class_name {:?}", binding.class_name);
            }
        }
        let mut tags = HashSet::new();
        for migration in &self.migrations {
            if !tags.insert(&migration.tag) {
                anyhow::bail!("two migrations have the tag {:?}", migration.tag);
            }
        }
        Ok(())
    }

    /// Applies the migrations in order, then uploads every binding's component. Returns one
    /// line per step, for the operator.
    pub async fn apply(&self, target: &impl Target) -> anyhow::Result<Vec<String>> {
        let mut report = Vec::new();
        for migration in &self.migrations {
            let applied = target.migrate(migration).await?;
            report.push(format!(
                "migration {}: {}",
                migration.tag,
                if applied { "applied" } else { "applied before" }
            ));
        }
        for binding in &self.durable_objects.bindings {
            let class = ClassName::parse(&binding.class_name)?;
            let component = std::fs::read(&binding.component).map_err(|e| {
                anyhow::anyhow!(
                    "binding {}: cannot read {}: {e}",
                    binding.name,
                    binding.component.display()
                )
            })?;
            let created = target
                .upload(&class, component)
                .await
                .map_err(|e| anyhow::anyhow!("binding {}: {e:#}", binding.name))?;
            report.push(format!(
                "class {class} (binding {}): {}",
                binding.name,
                if created { "created" } else { "code replaced" }
            ));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrangler_style_config_parses() {
        let config = DeployConfig::parse(
            r#"{
              // the seed's shape
              "name": "counter-app",
              "durable_objects": {
                "bindings": [
                  { "name": "COUNTER", "class_name": "Counter", "component": "counter.wasm" },
                ],
              },
              /* applied once each, in order */
              "migrations": [
                { "tag": "v1", "new_sqlite_classes": ["Counter"] },
                { "tag": "v2", "renamed_classes": [{ "from": "Counter", "to": "Tally" }],
                  "deleted_classes": ["Old"] },
              ],
            }"#,
        )
        .unwrap();
        assert_eq!(config.durable_objects.bindings[0].class_name, "Counter");
        assert_eq!(config.migrations.len(), 2);
        assert_eq!(config.migrations[0].new_classes, ["Counter"]);
        assert_eq!(config.migrations[1].renamed_classes[0].to, "Tally");
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("{", ""),
            (
                r#"{"worker": {"component": "w.wasm"}}"#,
                "not supported yet",
            ),
            (
                r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "1x", "component": "a.wasm"}]}}"#,
                "invalid class name",
            ),
            (
                r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "X"}]}}"#,
                "component",
            ),
            (
                r#"{"migrations": [{"tag": "v1"}, {"tag": "v1"}]}"#,
                "two migrations",
            ),
            (
                r#"{"migrations": [{"tag": "v1", "renamed_classes": ["A"]}]}"#,
                "",
            ),
            (
                r#"{"migrations": [{"tag": "v1", "new_class": ["A"]}]}"#,
                "unknown field",
            ),
        ] {
            let error = DeployConfig::parse(text).expect_err(text).to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
