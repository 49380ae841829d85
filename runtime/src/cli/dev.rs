//! `duro dev`: the developer loop. Builds the components of a deploy config (its `build.command`),
//! serves them with the access log on, watches the sources, and on a change rebuilds and applies
//! the config again: changed classes are replaced in place (their objects move to the new code at
//! their next event, storage kept), unchanged ones are left alone. A failed build is reported and
//! the previous version keeps serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::deploy::DeployConfig;

/// How often the watched files are looked at (a poll: no inotify limits, works on every file
/// system, and a few hundred files cost microseconds).
const POLL: Duration = Duration::from_millis(250);

/// Folders never watched: build outputs and tool state, whose changes the build itself makes.
const SKIPPED: &[&str] = &["target", "node_modules", "__pycache__", "data"];

/// Builds, serves and watches `config_path` until SIGTERM or Ctrl-C.
pub async fn run(config_path: PathBuf, server_config: Config) -> anyhow::Result<()> {
    let deploy = match prepare(&config_path).await {
        Ok(deploy) => deploy,
        Err(error) => bail!("{error}"),
    };
    let server = crate::start_closed(server_config).await?;
    if let Err(error) = apply(&server, &deploy).await {
        server.shutdown().await;
        return Err(error);
    }
    let stop = super::shutdown_signal();
    server.open_ingress();
    // Machine-readable, as `duro serve` prints them.
    println!("ingress: http://{}", server.ingress_addr());
    println!("admin: http://{}", server.admin_addr());
    let mut watched = Watched::new(&config_path, &deploy);
    println!("watching {} (Ctrl-C stops)", watched.describe());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(POLL) => {}
        }
        if !watched.changed() {
            continue;
        }
        // Let a burst of saves (an editor, a formatter) settle before building, then take the
        // sources as they are now: a save made while the build runs is a change after it.
        tokio::time::sleep(POLL).await;
        watched.changed();
        let started = Instant::now();
        let deploy = prepare(&config_path).await;
        let rebuilt = match &deploy {
            Err(error) => Err(error.clone()),
            Ok(deploy) => apply(&server, deploy).await.map_err(|e| format!("{e:#}")),
        };
        match rebuilt {
            Ok(()) => println!("reloaded in {:.1} s", started.elapsed().as_secs_f64()),
            Err(error) => println!("{error}\nthe previous version keeps serving"),
        }
        if let Ok(deploy) = &deploy {
            watched.follow(&config_path, deploy);
        }
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Loads the config, runs its build command, then builds its `main` (as wrangler runs a custom
/// build before bundling); the reason when any step fails.
async fn prepare(config_path: &Path) -> Result<DeployConfig, String> {
    let mut deploy = DeployConfig::load(config_path).map_err(|e| format!("{e:#}"))?;
    if let Some(error) = build(&deploy).await {
        return Err(error);
    }
    deploy.build_main().await.map_err(|e| format!("{e:#}"))?;
    Ok(deploy)
}

/// Runs the config's build command, if it has one; `Some(reason)` when it fails.
async fn build(deploy: &DeployConfig) -> Option<String> {
    let build = deploy.build.as_ref()?;
    println!("building: {}", build.command);
    let started = Instant::now();
    let cwd = build.cwd.as_deref().unwrap_or(Path::new("."));
    let mut command = tokio::process::Command::new("sh");
    if let Some(path) = path_with_package_bins(cwd) {
        command.env("PATH", path);
    }
    let status = command
        .arg("-c")
        .arg(&build.command)
        .current_dir(cwd)
        .kill_on_drop(true)
        .status()
        .await;
    match status {
        Ok(status) if status.success() => {
            println!("built in {:.1} s", started.elapsed().as_secs_f64());
            None
        }
        Ok(status) => Some(format!(
            "build failed ({status}): {} (its output is above)",
            build.command
        )),
        Err(error) => Some(format!("build failed: cannot run sh: {error}")),
    }
}

/// `PATH` with the `node_modules/.bin` folders of `dir` and its parents first, as npm runs a
/// package's scripts (a build command that calls `esbuild` finds the project's).
fn path_with_package_bins(dir: &Path) -> Option<std::ffi::OsString> {
    let dir = std::path::absolute(dir).ok()?;
    let bins = dir
        .ancestors()
        .map(|d| d.join("node_modules").join(".bin"))
        .filter(|bin| bin.is_dir());
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(bins.chain(std::env::split_paths(&inherited))).ok()
}

/// Applies the config in-process and prints what changed.
async fn apply(server: &crate::Server, deploy: &DeployConfig) -> anyhow::Result<()> {
    let report = deploy
        .apply(server.classes().as_ref())
        .await
        .context("applying the deploy config")?;
    let changed: Vec<_> = report
        .iter()
        .filter(|line| !line.ends_with(": unchanged") && !line.ends_with(": applied before"))
        .collect();
    if changed.is_empty() {
        println!("nothing changed");
    }
    for line in changed {
        println!("{line}");
    }
    Ok(())
}

/// The files `duro dev` watches and what they looked like when last seen.
struct Watched {
    roots: Vec<PathBuf>,
    outputs: Vec<PathBuf>,
    seen: BTreeMap<PathBuf, (SystemTime, u64)>,
}

impl Watched {
    /// The build's `watch_dir`s, or (without one) `main`'s folder and the components; and the
    /// config.
    fn new(config_path: &Path, deploy: &DeployConfig) -> Self {
        let (roots, outputs) = Self::roots(config_path, deploy);
        let mut watched = Self {
            roots,
            outputs,
            seen: BTreeMap::new(),
        };
        watched.seen = watched.scan();
        watched
    }

    /// What to watch, and what never to (the components, when they are built inside a
    /// watched folder: the build writing them is not a change to react to).
    fn roots(config_path: &Path, deploy: &DeployConfig) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut roots = vec![config_path.to_path_buf()];
        // The static assets: a change there is applied like any other (wrangler reloads them).
        roots.extend(deploy.assets.as_ref().and_then(|a| a.directory.clone()));
        let components = deploy.components().map(Path::to_path_buf);
        match deploy.build.as_ref().and_then(|b| b.watch_dir.as_ref()) {
            Some(dirs) => {
                roots.extend(dirs.paths().iter().cloned());
                (roots, components.collect())
            }
            None => {
                // wrangler watches `main`'s folder (its `./src` default); what duro builds from it
                // lands in `.duro/`, which is never watched.
                let main = deploy
                    .main
                    .as_ref()
                    .and_then(|m| m.parent())
                    .map(Path::to_path_buf);
                roots.extend(main);
                roots.extend(
                    components.filter(|c| !c.components().any(|p| p.as_os_str() == ".duro")),
                );
                (roots, Vec::new())
            }
        }
    }

    /// After a rebuild: watching sources, the state taken before the build stays (a save during
    /// the build is still a change); watching the components themselves (no `watch_dir`), what
    /// the build wrote is taken as seen. A config naming other files is watched afresh.
    fn follow(&mut self, config_path: &Path, deploy: &DeployConfig) {
        let (roots, outputs) = Self::roots(config_path, deploy);
        if roots != self.roots || outputs.is_empty() {
            *self = Self::new(config_path, deploy);
        } else {
            self.outputs = outputs;
        }
    }

    fn describe(&self) -> String {
        let roots: Vec<_> = self.roots.iter().map(|r| r.display().to_string()).collect();
        format!("{} files under {}", self.seen.len(), roots.join(", "))
    }

    /// Whether a file appeared, disappeared or changed since the last call.
    fn changed(&mut self) -> bool {
        let now = self.scan();
        let changed = now != self.seen;
        self.seen = now;
        changed
    }

    fn scan(&self) -> BTreeMap<PathBuf, (SystemTime, u64)> {
        let mut files = BTreeMap::new();
        for root in &self.roots {
            visit(root, &mut files);
        }
        for output in &self.outputs {
            files.remove(output);
        }
        files
    }
}

fn visit(path: &Path, files: &mut BTreeMap<PathBuf, (SystemTime, u64)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return; // gone, or not there yet: its absence is the state
    };
    if meta.is_file() {
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        files.insert(path.to_path_buf(), (modified, meta.len()));
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || SKIPPED.contains(&name.as_ref()) {
            continue;
        }
        visit(&entry.path(), files);
    }
}
