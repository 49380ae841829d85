//! `duro init`: a new class project from a template, in Rust, JavaScript (TypeScript) or Python —
//! a class, what builds it into a component, a `duro.jsonc` for `duro dev` and `duro deploy`, a
//! test script, and a copy of the language's SDK with its WIT, so the project builds on its own
//! wherever it lives.

use std::path::Path;

use anyhow::{Context, bail};

use crate::ids::ClassName;

/// Files as `(path, text)`, embedded at build time from `$root/$path`.
macro_rules! embed {
    ($root:literal: $($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!($root, "/", $path)))),*]
    };
}

type Files = &'static [(&'static str, &'static str)];

/// The languages a project can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the `duro-sdk` crate.
    Rust,
    /// JavaScript or TypeScript, with the JS SDK (Cloudflare's `DurableObject` API).
    Js,
    /// Python, with the Python SDK.
    Python,
}

/// The test script every template shares (the classes answer alike).
const TEST_SCRIPT: (&str, &str) = ("test.sh", include_str!("../templates/test.sh"));

impl Lang {
    /// The template's files; `{crate}`, `{class}`, `{binding}` and `{file}` are filled in, a
    /// `.tmpl` suffix dropped and `gitignore` dotted.
    fn template(self) -> Files {
        match self {
            Self::Rust => {
                embed!("../templates/rust": "Cargo.toml.tmpl", "src/lib.rs", "duro.jsonc", "gitignore")
            }
            Self::Js => embed!("../templates/js": "src/index.ts", "duro.jsonc", "gitignore"),
            Self::Python => {
                embed!("../templates/python": "src/objects.py", "build.sh", "duro.jsonc", "gitignore")
            }
        }
    }

    /// The SDK as this binary was built with it, copied as it is into `duro-sdk/` (its WIT into
    /// `duro-sdk/wit/`).
    fn sdk(self) -> Files {
        match self {
            Self::Rust => {
                embed!("../../guest-sdk": "Cargo.toml", "src/lib.rs", "src/fetch.rs", "src/http.rs", "src/namespace.rs", "src/rpc.rs", "src/sql.rs", "src/storage.rs", "src/websocket.rs", "src/worker.rs")
            }
            Self::Js => {
                embed!("../../guest-sdk/js": "package.json", "build.mjs", "src/abort.js", "src/clone.js", "src/compat.js", "src/cryptokey.js", "src/email.js", "src/errors.js", "src/formdata.js", "src/http.js", "src/inbox.js", "src/index.js", "src/inflight.js", "src/namespaces.js", "src/node/assert.js", "src/node/async_hooks.js", "src/node/crypto.js", "src/node/events.js", "src/node/globals.js", "src/node/process.js", "src/node/stream.js", "src/node/stream_promises.js", "src/node/string_decoder.js", "src/object.js", "src/prelude.js", "src/rpc.js", "src/scheduler.js", "src/sql.js", "src/storage.js", "src/timers.js", "src/webcrypto.js", "src/webcrypto_curves.js", "src/websockets.js", "src/worker.js", "src/workflows.js")
            }
            Self::Python => {
                embed!("../../guest-sdk/python": "requirements.txt", "build.py", "duro/__init__.py", "duro/errors.py", "duro/http.py", "duro/namespaces.py", "duro/object.py", "duro/rpc.py", "duro/sql.py", "duro/storage.py", "duro/websockets.py")
            }
        }
    }

    /// How the language is called to a person.
    fn title(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::Js => "TypeScript",
            Self::Python => "Python",
        }
    }

    /// What building needs, for the closing words.
    fn needs(self) -> &'static str {
        match self {
            Self::Rust => {
                "building needs the wasm32-wasip2 target: rustup target add wasm32-wasip2"
            }
            Self::Js => "building needs Node.js 20+ and npm; the first build runs npm install",
            Self::Python => {
                "building needs python3 (3.10+); the first build installs componentize-py into .venv"
            }
        }
    }
}

/// The WIT every SDK is built against.
const WIT: (&str, &str) = (
    "wit/world.wit",
    include_str!("../../guest-sdk/wit/world.wit"),
);

/// What a new project is called.
pub struct Names {
    /// The package (Cargo's, npm's; the folder's name): `my-counter`.
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
                "the folder's name {folder:?} cannot name a package: a letter first, then \
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

/// The SDK of `lang` as this binary was built with it, its WIT included: `(path, text)` with paths
/// relative to the SDK's folder.
pub fn sdk_files(lang: Lang) -> impl Iterator<Item = (&'static str, &'static str)> {
    lang.sdk().iter().chain([&WIT]).copied()
}

/// Writes a new class project in `lang` into `dir` (which must not exist, or be empty).
pub fn create(dir: &Path, lang: Lang, names: &Names) -> anyhow::Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} exists and is not empty", dir.display());
    }
    let mut files: Vec<(String, String)> = lang
        .template()
        .iter()
        .chain([&TEST_SCRIPT])
        .map(|(path, text)| {
            let path = path.strip_suffix(".tmpl").unwrap_or(path);
            let path = if path == "gitignore" {
                ".gitignore"
            } else {
                path
            };
            (path.to_string(), names.fill(text))
        })
        .collect();
    files
        .extend(sdk_files(lang).map(|(path, text)| (format!("duro-sdk/{path}"), text.to_string())));
    if lang == Lang::Js {
        files.push(("package.json".into(), package_json(names)?));
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A JS project's package.json: its build script and the SDK's own dependencies (one list of
/// versions, the SDK's).
fn package_json(names: &Names) -> anyhow::Result<String> {
    let sdk: serde_json::Value =
        serde_json::from_str(include_str!("../../guest-sdk/js/package.json"))?;
    let package = serde_json::json!({
        "name": names.krate,
        "private": true,
        "type": "module",
        "scripts": {
            "build": names.fill("node duro-sdk/build.mjs --out build/{file}.wasm src/index.ts"),
        },
        "dependencies": sdk["dependencies"],
    });
    Ok(serde_json::to_string_pretty(&package)? + "\n")
}

/// The closing words: what was made and the commands to go on with.
pub fn announce(dir: &Path, lang: Lang, names: &Names) {
    let class = &names.class;
    println!(
        "created {}: the {} class {class}",
        dir.display(),
        lang.title()
    );
    println!();
    println!("  cd {}", dir.display());
    println!("  duro dev        # builds, serves on http://127.0.0.1:8787, reloads on change");
    println!("  sh test.sh      # in another terminal: calls {class} and checks its answers");
    println!();
    println!("then: curl -X POST http://127.0.0.1:8787/objects/{class}/hello/increment");
    println!("({})", lang.needs());
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

    /// Every SDK source file is in the copy `duro init` makes (a new file must be listed).
    #[test]
    fn every_sdk_file_is_copied() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
        for (lang, dir, extension) in [
            (Lang::Rust, "src", "rs"),
            (Lang::Js, "js/src", "js"),
            (Lang::Python, "python/duro", "py"),
        ] {
            let copied: Vec<_> = lang.sdk().iter().map(|(path, _)| *path).collect();
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == extension) {
                    let name = path.file_name().unwrap().to_str().unwrap();
                    let listed = format!(
                        "{}/{name}",
                        Path::new(dir).file_name().unwrap().to_str().unwrap()
                    );
                    assert!(
                        copied.contains(&listed.as_str()),
                        "{lang:?}: {listed} is not copied"
                    );
                }
            }
        }
    }
}
