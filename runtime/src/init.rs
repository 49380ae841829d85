//! `duro init`: a new class project from a template — a Cargo project that builds a component
//! (crate type, target and a size profile set), a class, a `duro.jsonc` for `duro dev` and
//! `duro deploy`, a test script, and a copy of the SDK with its WIT, so the project builds on its
//! own wherever it lives.

use std::path::Path;

use anyhow::{Context, bail};

use crate::ids::ClassName;

/// The project's files; `{crate}`, `{class}`, `{binding}` and `{file}` are filled in.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/rust/Cargo.toml.tmpl"),
    ),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("duro.jsonc", include_str!("../templates/rust/duro.jsonc")),
    ("test.sh", include_str!("../templates/rust/test.sh")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
];

/// The SDK crate, as this binary was built with it (copied as it is).
const SDK: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../guest-sdk/Cargo.toml")),
    ("src/lib.rs", include_str!("../../guest-sdk/src/lib.rs")),
    ("src/fetch.rs", include_str!("../../guest-sdk/src/fetch.rs")),
    ("src/http.rs", include_str!("../../guest-sdk/src/http.rs")),
    (
        "src/namespace.rs",
        include_str!("../../guest-sdk/src/namespace.rs"),
    ),
    (
        "src/storage.rs",
        include_str!("../../guest-sdk/src/storage.rs"),
    ),
    (
        "src/websocket.rs",
        include_str!("../../guest-sdk/src/websocket.rs"),
    ),
    (
        "src/worker.rs",
        include_str!("../../guest-sdk/src/worker.rs"),
    ),
    (
        "wit/world.wit",
        include_str!("../../guest-sdk/wit/world.wit"),
    ),
];

/// What a new project is called.
pub struct Names {
    /// The Cargo package (the folder's name): `my-counter`.
    pub krate: String,
    /// The class: `MyCounter` (or `--class`).
    pub class: ClassName,
}

impl Names {
    /// Names from the folder's name, or a refusal that says what is allowed.
    pub fn new(dir: &Path, class: Option<&str>) -> anyhow::Result<Self> {
        let folder = dir
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable folder name", dir.display()))?;
        let krate = folder.to_ascii_lowercase().replace('_', "-");
        let valid = krate.starts_with(|c: char| c.is_ascii_lowercase())
            && krate.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            bail!(
                "the folder's name {folder:?} cannot name a Cargo package: a letter first, then \
                 letters, digits, '-' or '_'"
            );
        }
        let class = match class {
            Some(class) => class.to_string(),
            None => krate
                .split('-')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or(String::new(), |first| {
                        first.to_ascii_uppercase().to_string() + chars.as_str()
                    })
                })
                .collect(),
        };
        Ok(Self {
            class: ClassName::parse(&class)?,
            krate,
        })
    }

    /// The binding name: `MyCounter` -> `MY_COUNTER`.
    fn binding(&self) -> String {
        let mut binding = String::new();
        for (i, c) in self.class.as_str().chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                binding.push('_');
            }
            binding.push(if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            });
        }
        binding
    }

    fn fill(&self, text: &str) -> String {
        text.replace("{crate}", &self.krate)
            .replace("{class}", self.class.as_str())
            .replace("{binding}", &self.binding())
            .replace("{file}", &self.krate.replace('-', "_"))
    }
}

/// Writes a new Rust class project into `dir` (which must not exist, or be empty).
pub fn rust(dir: &Path, names: &Names) -> anyhow::Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} exists and is not empty", dir.display());
    }
    let files = TEMPLATE
        .iter()
        .map(|(path, text)| (dir.join(path), names.fill(text)))
        .chain(
            SDK.iter()
                .map(|(path, text)| (dir.join("duro-sdk").join(path), text.to_string())),
        );
    for (path, text) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_folder() {
        let names = Names::new(Path::new("/tmp/my-rate_limiter"), None).unwrap();
        assert_eq!(names.krate, "my-rate-limiter");
        assert_eq!(names.class.as_str(), "MyRateLimiter");
        assert_eq!(names.binding(), "MY_RATE_LIMITER");
        let named = Names::new(Path::new("x"), Some("Lock")).unwrap();
        assert_eq!(
            (named.class.as_str(), named.binding().as_str()),
            ("Lock", "LOCK")
        );
        assert!(Names::new(Path::new("9lives"), None).is_err());
        assert!(Names::new(Path::new("caf\u{e9}"), None).is_err());
    }
}
