//! Building a wrangler project's `main` (a JavaScript or TypeScript module) into components, as
//! duro runs it: the worker from the module's default export, the classes from its exported
//! `DurableObject` classes — with the JS SDK this binary carries, no build script of the
//! project's. The SDK is written once per SDK version into a cache folder and its build tools
//! installed there with npm (`DURO_JS_SDK` names an SDK folder to use instead, its packages
//! installed); a project whose `package.json` has `dependencies` and no `node_modules` gets
//! `npm install --omit=dev` first (its devDependencies — wrangler, typescript — are not needed).
//! The outputs go to `.duro/build/` beside the config.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::init::{Lang, sdk_files};

/// A wrangler module rule: imports of files matching `globs` give their text (`Text`) or bytes
/// (`Data`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub globs: Vec<String>,
    #[serde(default)]
    pub fallthrough: bool,
}

/// What a build of `main` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The classes' component (asked for when a binding has no component of its own).
    pub objects: Option<PathBuf>,
    /// The worker's component: the module has a default export.
    pub worker: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Manifest {
    worker: bool,
    objects: bool,
}

/// The file extensions `main` may have.
const SOURCES: &[&str] = &["js", "mjs", "ts", "mts", "jsx", "tsx"];

/// The project's wrangler `compatibility_date` and `compatibility_flags`: the build resolves
/// `node:*` modules under `nodejs_compat`, and the SDK's dated behaviours follow them.
#[derive(Debug, Clone, Default)]
pub struct Compatibility<'a> {
    pub date: Option<&'a str>,
    pub flags: &'a [String],
}

/// Builds `main` into `folder/.duro/build/` (the classes only if `objects`).
pub async fn build(
    main: &Path,
    folder: &Path,
    rules: &[Rule],
    objects: bool,
    compatibility: Compatibility<'_>,
) -> anyhow::Result<Built> {
    // node runs in `folder`: paths relative to duro's own working directory would not resolve.
    let (main, folder) = (&std::path::absolute(main)?, &std::path::absolute(folder)?);
    let extension = main
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if !SOURCES.contains(&extension) {
        bail!(
            "main {}: duro builds JavaScript and TypeScript entries (.{}); build other languages \
             into components and name them in the bindings' `component`",
            main.display(),
            SOURCES.join(", .")
        );
    }
    if !main.is_file() {
        bail!("main {} does not exist", main.display());
    }
    let sdk = sdk_folder().await?;
    if needs_install(folder) {
        npm_install(folder, &["--omit=dev"]).await?;
    }
    let out = folder.join(".duro").join("build");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(sdk.join("build.mjs"))
        .arg("--project")
        .arg(&out)
        .arg("--rules")
        .arg(serde_json::to_string(rules)?);
    if objects {
        command.arg("--objects");
    }
    if let Some(date) = compatibility.date {
        command.arg("--compatibility-date").arg(date);
    }
    for flag in compatibility.flags {
        command.arg("--compatibility-flag").arg(flag);
    }
    let status = command
        .arg(main)
        .current_dir(folder)
        .kill_on_drop(true)
        .status()
        .await
        .context("cannot run node (Node.js 20+ builds JavaScript and TypeScript)")?;
    if !status.success() {
        bail!(
            "building {} failed ({status}; its output is above)",
            main.display()
        );
    }
    let manifest = out.join("manifest.json");
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest)?)
        .with_context(|| format!("reading {}", manifest.display()))?;
    Ok(Built {
        objects: manifest.objects.then(|| out.join("objects.wasm")),
        worker: manifest.worker.then(|| out.join("worker.wasm")),
    })
}

/// The JS SDK to build with, its packages installed.
async fn sdk_folder() -> anyhow::Result<PathBuf> {
    if let Some(folder) = std::env::var_os("DURO_JS_SDK") {
        return Ok(PathBuf::from(folder));
    }
    let mut digest = sha2::Sha256::default();
    for (path, text) in sdk_files(Lang::Js) {
        sha2::Digest::update(&mut digest, path.as_bytes());
        sha2::Digest::update(&mut digest, text.as_bytes());
    }
    let digest = hex::encode(sha2::Digest::finalize(digest));
    let folder = cache_home()
        .join("duro")
        .join(format!("js-sdk-{}", &digest[..16]));
    if folder.join("node_modules").join(".duro-installed").exists() {
        return Ok(folder);
    }
    for (path, text) in sdk_files(Lang::Js) {
        let path = folder.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the SDK folder"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    npm_install(&folder, &[]).await?;
    std::fs::write(folder.join("node_modules").join(".duro-installed"), b"")?;
    Ok(folder)
}

fn cache_home() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

/// Whether the project has runtime dependencies and no `node_modules`.
fn needs_install(folder: &Path) -> bool {
    if folder.join("node_modules").exists() {
        return false;
    }
    let Ok(text) = std::fs::read(folder.join("package.json")) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|package| {
            package
                .get("dependencies")?
                .as_object()
                .map(|d| !d.is_empty())
        })
        .unwrap_or(false)
}

async fn npm_install(folder: &Path, extra: &[&str]) -> anyhow::Result<()> {
    println!(
        "installing npm packages in {} (first build)",
        folder.display()
    );
    let status = tokio::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .args(extra)
        .current_dir(folder)
        .kill_on_drop(true)
        .status()
        .await
        .context("cannot run npm (Node.js 20+ with npm builds JavaScript and TypeScript)")?;
    if !status.success() {
        bail!("npm install in {} failed ({status})", folder.display());
    }
    Ok(())
}
