//! The deployment's settings the registry keeps beside the classes: the bindings (the names
//! workers and objects call classes by), the outbound policies, the vars and secrets, and the
//! static assets. Each is one META entry, made durable through the group committer before it
//! becomes current.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{
    Change, ClassError, Classes, META_ASSETS, META_ASSETS_DIGEST, META_BINDINGS, META_OUTBOUND,
    META_VARS, created_or_replaced, put_meta,
};
use crate::assets::Assets;
use crate::ids::ClassName;
use crate::outbound::{Caller, Outbound, Policy};
use crate::storage::{WriteOp, schema::Table};

/// Binding name (`COUNTER`) -> class name (`Counter`).
pub type Bindings = std::collections::BTreeMap<String, ClassName>;

/// The deploy config's `vars` and secrets, as the `env` import gives them to guests. Secrets are
/// kept in the database like the rest, and never shown: not by the admin API, not in logs (this
/// type has no `Debug`).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Vars {
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, String>,
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<&String> {
        self.secrets.get(name).or_else(|| self.vars.get(name))
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.vars.iter().chain(&self.secrets)
    }

    /// What may be shown: the vars, and only the names of the secrets.
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({
            "vars": self.vars,
            "secrets": self.secrets.keys().collect::<Vec<_>>(),
        })
    }

    /// A name in both, or a name that is not an identifier-like word, is refused.
    pub fn check(&self) -> Result<(), String> {
        for name in self.vars.keys().chain(self.secrets.keys()) {
            let valid = !name.is_empty()
                && name.len() <= 128
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "{name:?} is not a var name: 1 to 128 letters, digits or '_'"
                ));
            }
        }
        if let Some(both) = self.vars.keys().find(|k| self.secrets.contains_key(*k)) {
            return Err(format!("{both:?} is both a var and a secret"));
        }
        Ok(())
    }
}

impl Classes {
    /// The class a binding names, if there is such a binding.
    pub fn binding(&self, name: &str) -> Option<ClassName> {
        self.bindings
            .read()
            .expect("bindings lock")
            .get(name)
            .cloned()
    }

    pub fn bindings(&self) -> Bindings {
        self.bindings.read().expect("bindings lock").clone()
    }

    /// Replaces the bindings (durably). A binding may name a class not deployed yet; calls
    /// through it fail until it is.
    pub async fn set_bindings(&self, bindings: Bindings) -> Result<(), ClassError> {
        self.set_meta(META_BINDINGS, &bindings, |b| {
            *self.bindings.write().expect("bindings lock") = b.clone()
        })
        .await
    }

    /// Makes a settings document durable under `key`, then installs it (under the change lock:
    /// settings become current in the order they became durable).
    async fn set_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        install: impl FnOnce(&T),
    ) -> Result<(), ClassError> {
        let _change = self.begin_change().await?;
        let op = put_meta(key, value);
        self.committer.submit(vec![op]).await.wait().await?;
        install(value);
        Ok(())
    }

    /// Every outbound policy (the admin API's `/outbound` document).
    pub fn outbound(&self) -> Arc<Outbound> {
        self.outbound.read().expect("outbound lock").clone()
    }

    /// What `caller` may fetch: its policy, or none.
    pub fn outbound_policy(&self, caller: &Caller) -> Policy {
        let outbound = self.outbound();
        let policy = match caller {
            Caller::Class(class) => outbound.classes.get(class),
            Caller::Worker => outbound.worker.as_ref(),
        };
        policy.cloned().unwrap_or_default()
    }

    /// Replaces every outbound policy (durably); they apply to the next request.
    pub async fn set_outbound(&self, outbound: Outbound) -> Result<(), ClassError> {
        outbound.validate().map_err(ClassError::Outbound)?;
        self.set_meta(META_OUTBOUND, &outbound, |o| {
            *self.outbound.write().expect("outbound lock") = Arc::new(o.clone())
        })
        .await
    }

    /// The vars and secrets guests see through `env`.
    pub fn vars(&self) -> Arc<Vars> {
        self.vars.read().expect("vars lock").clone()
    }

    /// Replaces the vars and secrets (durably); guests see them from their next call on.
    pub async fn set_vars(&self, vars: Vars) -> Result<(), ClassError> {
        vars.check().map_err(ClassError::Vars)?;
        self.set_meta(META_VARS, &vars, |v| {
            *self.vars.write().expect("vars lock") = Arc::new(v.clone())
        })
        .await
    }

    /// The deployed static assets, if any.
    pub fn assets(&self) -> Option<Arc<Assets>> {
        self.assets.read().expect("assets lock").clone()
    }

    /// Replaces the static assets with `bundle` (durably), or removes them (`None`). Returns
    /// whether anything changed (the same bundle again changes nothing).
    pub async fn set_assets(&self, bundle: Option<Bytes>) -> Result<Change, ClassError> {
        let _change = self.begin_change().await?;
        let previous = self.assets();
        let (ops, assets) = match bundle {
            Some(bundle) => {
                let assets =
                    Assets::open(bundle.clone()).map_err(|e| ClassError::Assets(e.to_string()))?;
                if previous.as_ref().is_some_and(|p| p.digest == assets.digest) {
                    return Ok(Change::Unchanged);
                }
                let ops = vec![
                    WriteOp::Put {
                        table: Table::Meta,
                        key: META_ASSETS.as_bytes().to_vec(),
                        value: bundle,
                    },
                    put_meta(META_ASSETS_DIGEST, &assets.digest),
                ];
                (ops, Some(Arc::new(assets)))
            }
            None if previous.is_none() => return Ok(Change::Unchanged),
            None => {
                let delete = |key: &str| WriteOp::Delete {
                    table: Table::Meta,
                    key: key.as_bytes().to_vec(),
                };
                (vec![delete(META_ASSETS), delete(META_ASSETS_DIGEST)], None)
            }
        };
        self.committer.submit(ops).await.wait().await?;
        *self.assets.write().expect("assets lock") = assets;
        Ok(created_or_replaced(previous.is_none()))
    }
}
