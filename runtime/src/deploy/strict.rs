//! Strict reading of a deploy config: JSON with comments and trailing commas and nothing looser
//! (a missing comma is an error), every key known — a misspelled one is an error with its line,
//! column and the key it probably meant —, and type errors placed at their line and column with
//! their path (`durable_objects.bindings[1].class_name`). A `wrangler.toml` is read as the same
//! document. Keys of a wrangler file that change nothing on duro (`name`, `account_id`, …)
//! are accepted; wrangler's keys for what duro does not implement (`kv_namespaces`,
//! `observability`, `routes`, …) are accepted and named, for one warning at start. Environments
//! (`env.NAME` sections) are checked like the top level and applied as wrangler's `--env` does.

use jsonc_parser::ast::{ObjectPropName, Value};
use serde::de::DeserializeOwned;

/// Keys of a wrangler file that change nothing on duro: accepted in silence.
const WRANGLER_KEYS: &[&str] = &[
    "$schema",
    "name",
    "account_id",
    "workers_dev",
    "preview_urls",
    "minify",
    "keep_names",
    "no_bundle",
    "upload_source_maps",
    "send_metrics",
    "keep_vars",
    "tsconfig",
    "base_dir",
    "preserve_file_names",
    "find_additional_modules",
    "jsx_factory",
    "jsx_fragment",
    "node_compat",
    // Environments: checked key by key like the top level, applied with `--env`.
    "env",
];

/// wrangler's other bindings (and binding-like keys): not implemented by duro, and not inherited
/// by an environment from the top level.
const OTHER_BINDINGS: &[&str] = &[
    "define",
    "tail_consumers",
    "kv_namespaces",
    "r2_buckets",
    "d1_databases",
    "queues",
    "services",
    "analytics_engine_datasets",
    "ai",
    "vectorize",
    "hyperdrive",
    "browser",
    "mtls_certificates",
    "send_email",
    "dispatch_namespaces",
    "pipelines",
    "workflows",
    "version_metadata",
    "images",
    "secrets_store_secrets",
    "unsafe",
];

/// Keys of a wrangler file for what duro does not implement (routing, Cloudflare services; with
/// [`OTHER_BINDINGS`]): accepted, and named in one warning at start.
const UNSUPPORTED_KEYS: &[&str] = &[
    "route",
    "routes",
    "observability",
    "placement",
    "limits",
    "triggers",
    "logpush",
    "usage_model",
    "dev",
    "site",
    "containers",
    "wasm_modules",
    "text_blobs",
    "data_blobs",
    "python_modules",
];

fn unsupported(key: &str) -> bool {
    UNSUPPORTED_KEYS.contains(&key) || OTHER_BINDINGS.contains(&key)
}

/// What keys an object at some place in the config may have.
#[derive(Clone, Copy)]
enum Shape {
    /// An object with these keys (each with its own shape); other values are left to serde.
    Object(&'static [(&'static str, Shape)]),
    /// An array whose elements have this shape.
    Each(&'static Shape),
    /// Anything (checked by serde).
    Any,
}

use Shape::{Any, Each, Object};

const COMPONENT_KEYS: [(&str, Shape); 4] = [
    ("component", Any),
    ("path", Any),
    ("wasm", Any),
    ("component_path", Any),
];
const OUTBOUND: Shape = Object(&[
    ("allowed_hosts", Any),
    ("timeout_ms", Any),
    ("max_response_bytes", Any),
]);
const BINDING: Shape = Object(&[
    ("name", Any),
    ("class_name", Any),
    ("script_name", Any),
    ("environment", Any),
    COMPONENT_KEYS[0],
    COMPONENT_KEYS[1],
    COMPONENT_KEYS[2],
    COMPONENT_KEYS[3],
    ("outbound", OUTBOUND),
]);
const MIGRATION: Shape = Object(&[
    ("tag", Any),
    ("new_classes", Any),
    ("new_sqlite_classes", Any),
    (
        "renamed_classes",
        Each(&Object(&[("from", Any), ("to", Any)])),
    ),
    ("deleted_classes", Any),
]);
const TOP: Shape = Object(&[
    ("durable_objects", Object(&[("bindings", Each(&BINDING))])),
    ("migrations", Each(&MIGRATION)),
    ("exports", Any),
    (
        "worker",
        Object(&[
            COMPONENT_KEYS[0],
            COMPONENT_KEYS[1],
            COMPONENT_KEYS[2],
            COMPONENT_KEYS[3],
            ("outbound", OUTBOUND),
        ]),
    ),
    ("object_routes", Any),
    ("compatibility_date", Any),
    ("compatibility_flags", Any),
    ("main", Any),
    (
        "rules",
        Each(&Object(&[
            ("type", Any),
            ("globs", Any),
            ("fallthrough", Any),
        ])),
    ),
    (
        "assets",
        Object(&[
            ("directory", Any),
            ("binding", Any),
            ("html_handling", Any),
            ("not_found_handling", Any),
            ("run_worker_first", Any),
        ]),
    ),
    ("vars", Any),
    ("secrets", Any),
    (
        "build",
        Object(&[("command", Any), ("cwd", Any), ("watch_dir", Any)]),
    ),
]);

/// Whether an environment inherits `key` from the top level (wrangler's non-inheritable keys:
/// the bindings and vars must be given in each environment).
fn inherited(key: &str) -> bool {
    !["vars", "durable_objects"].contains(&key) && !OTHER_BINDINGS.contains(&key)
}

/// The config as environment `env` sees it: the top level without its `env` sections and, for a
/// named environment, without the keys environments do not inherit, with that environment's keys
/// over it (as wrangler's `--env` does).
fn select(mut value: serde_json::Value, env: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let Some(top) = value.as_object_mut() else {
        return Ok(value);
    };
    let sections = top.remove("env");
    let Some(name) = env else {
        return Ok(value);
    };
    let section = sections
        .as_ref()
        .and_then(|s| s.get(name))
        .and_then(|s| s.as_object())
        .ok_or_else(|| {
            let known: Vec<&String> = sections
                .as_ref()
                .and_then(|s| s.as_object())
                .map(|s| s.keys().collect())
                .unwrap_or_default();
            match known.as_slice() {
                [] => anyhow::anyhow!("no environment {name:?}: the config has no `env` sections"),
                known => anyhow::anyhow!(
                    "no environment {name:?} in the config's `env` (it has {})",
                    known
                        .iter()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        })?;
    top.retain(|key, _| inherited(key));
    for (key, inner) in section {
        top.insert(key.clone(), inner.clone());
    }
    Ok(value)
}

/// Parses `text` into `T`, strictly (see the module docs), as environment `env` sees it (`None`:
/// the top level), with the wrangler keys it carries that duro does not implement.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    env: Option<&str>,
) -> anyhow::Result<(T, Vec<String>)> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &options)?;
    let root = parsed
        .value
        .ok_or_else(|| anyhow::anyhow!("the file is empty"))?;
    let mut unsupported = Vec::new();
    check_keys(text, &root, &TOP, "", Some(&mut unsupported))?;
    // Each environment is checked as a top level of its own.
    if let Value::Object(object) = &root
        && let Some(sections) = object.properties.iter().find(|p| p.name.as_str() == "env")
        && let Value::Object(sections) = &sections.value
    {
        for section in &sections.properties {
            let path = format!("env.{}", section.name.as_str());
            check_keys(text, &section.value, &TOP, &path, Some(&mut unsupported))?;
        }
    }
    let value = jsonc_parser::parse_to_serde_value::<Option<serde_json::Value>>(text, &options)?
        .ok_or_else(|| anyhow::anyhow!("the file is empty"))?;
    let value = select(value, env)?;
    let parsed = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let at = locate(&root, error.path())
            .map(|offset| format!("line {}: ", position(text, offset)))
            .unwrap_or_default();
        anyhow::anyhow!("{at}{path}: {}", error.inner())
    })?;
    Ok((parsed, unsupported))
}

/// Parses a `wrangler.toml` as [`parse`] does its JSON form (positions then refer to that form).
pub fn parse_toml<T: DeserializeOwned>(
    text: &str,
    env: Option<&str>,
) -> anyhow::Result<(T, Vec<String>)> {
    let value: serde_json::Value = toml::from_str(text)?;
    parse(&serde_json::to_string_pretty(&value)?, env)
}

/// Refuses a key `shape` does not know, where it is, with the closest known key.
fn check_keys(
    text: &str,
    value: &Value,
    shape: &Shape,
    path: &str,
    mut top: Option<&mut Vec<String>>,
) -> anyhow::Result<()> {
    match (value, shape) {
        (Value::Object(object), Object(keys)) => {
            for prop in &object.properties {
                let name = prop.name.as_str();
                let inner = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                match keys.iter().find(|(key, _)| *key == name) {
                    Some((_, inner_shape)) => {
                        check_keys(text, &prop.value, inner_shape, &inner, None)?
                    }
                    None if top.is_some() && WRANGLER_KEYS.contains(&name) => {}
                    None if top.is_some() && unsupported(name) => {
                        if let Some(unsupported) = top.as_deref_mut()
                            && !unsupported.iter().any(|k| k == name)
                        {
                            unsupported.push(name.to_string());
                        }
                    }
                    None => {
                        let start = match &prop.name {
                            ObjectPropName::String(lit) => lit.range.start,
                            ObjectPropName::Word(lit) => lit.range.start,
                        };
                        let known = keys.iter().map(|(key, _)| *key);
                        let hint = closest(name, known)
                            .map(|key| format!(" (did you mean {key:?}?)"))
                            .unwrap_or_default();
                        anyhow::bail!(
                            "line {}: unknown key {inner:?}{hint}",
                            position(text, start)
                        );
                    }
                }
            }
            Ok(())
        }
        (Value::Array(array), Each(element)) => {
            for (index, item) in array.elements.iter().enumerate() {
                check_keys(text, item, element, &format!("{path}[{index}]"), None)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The known key nearest to a misspelled one, if any is near enough.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|key| (strsim::levenshtein(name, key), key))
        .filter(|(distance, key)| *distance <= (key.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

/// The byte offset of the value at `path`, as far as the path goes.
fn locate(root: &Value, path: &serde_path_to_error::Path) -> Option<usize> {
    use serde_path_to_error::Segment;
    let mut value = root;
    let mut offset = None;
    for segment in path.iter() {
        match (segment, value) {
            (Segment::Map { key }, Value::Object(object)) => {
                let prop = object.properties.iter().find(|p| p.name.as_str() == key)?;
                offset = Some(prop.range.start);
                value = &prop.value;
            }
            (Segment::Seq { index }, Value::Array(array)) => {
                value = array.elements.get(*index)?;
                offset = Some(range_of(value));
            }
            _ => break,
        }
    }
    offset
}

fn range_of(value: &Value) -> usize {
    match value {
        Value::StringLit(v) => v.range.start,
        Value::NumberLit(v) => v.range.start,
        Value::BooleanLit(v) => v.range.start,
        Value::Object(v) => v.range.start,
        Value::Array(v) => v.range.start,
        Value::NullKeyword(v) => v.range.start,
    }
}

/// `line L column C` (both from 1) of a byte offset.
fn position(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line} column {column}")
}
