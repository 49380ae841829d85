//! wrangler's declarative `exports` map, the newer alternative to `migrations`: each Durable
//! Object class by name with its lifecycle state (`created` by default, `deleted`, `renamed` with
//! `renamed_to`). duro applies it as the one migration it amounts to, under a tag derived from
//! its content: the same map applies once, a changed one applies its changes (a rename or delete
//! of a class that is no longer there is skipped, as in any migration).

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::class::{Migration, Rename};

/// One entry of `exports`. Keys duro does not use are accepted (serde ignores them).
#[derive(Debug, Deserialize)]
pub struct Export {
    #[serde(rename = "type")]
    pub kind: String,
    /// `sqlite` or `legacy-kv`: on duro both get the key-value storage API.
    #[serde(default)]
    pub storage: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub renamed_to: Option<String>,
}

/// The migration an `exports` map amounts to.
pub fn migration(exports: &BTreeMap<String, Export>) -> anyhow::Result<Migration> {
    let mut migration = Migration::default();
    for (class, export) in exports {
        if export.kind != "durable-object" {
            anyhow::bail!(
                "exports.{class}: type {:?} is not supported (only \"durable-object\")",
                export.kind
            );
        }
        match export.state.as_deref().unwrap_or("created") {
            "created" => match export.storage.as_deref() {
                Some("sqlite") => migration.new_sqlite_classes.push(class.clone()),
                None | Some("legacy-kv") => migration.new_classes.push(class.clone()),
                Some(other) => anyhow::bail!(
                    "exports.{class}: storage {other:?} is not \"sqlite\" or \"legacy-kv\""
                ),
            },
            "deleted" => migration.deleted_classes.push(class.clone()),
            "renamed" => {
                let to = export.renamed_to.clone().ok_or_else(|| {
                    anyhow::anyhow!("exports.{class}: state \"renamed\" needs renamed_to")
                })?;
                migration.renamed_classes.push(Rename {
                    from: class.clone(),
                    to,
                });
            }
            state @ ("transferred" | "expecting-transfer") => anyhow::bail!(
                "exports.{class}: state {state:?} (a class moving between Workers) is not \
                 supported: deploy both Workers' classes in this config"
            ),
            other => anyhow::bail!("exports.{class}: unknown state {other:?}"),
        }
    }
    let digest = Sha256::digest(serde_json::to_vec(&migration)?);
    migration.tag = format!("exports-{}", hex::encode(&digest[..8]));
    Ok(migration)
}
