//! The `duro` command line: `serve` runs the runtime, `dev` builds, serves and watches a deploy
//! config (see `dev`); `deploy`, `classes` and `delete` talk to a running runtime's admin API over
//! HTTP. A deploy config (`duro.jsonc`, see `deploy`) is applied
//! by `serve --config` in-process and by `deploy --config` over HTTP.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::deploy::DeployConfig;
use crate::init::Lang;
use tables::{classes_table, entries_table, objects_table, print_imported, shell_word, top_table};

mod client;
mod dev;
mod progress;
mod serve;
mod tables;
mod tail;
mod transfer;
use client::change_of;
use serve::{ServeArgs, parse_deploy, serve, server_config};

#[derive(Parser)]
#[command(
    name = "duro",
    version,
    about = "A Durable Objects runtime for WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines look on stderr: `text` for people, `json` (one object per line) for
    /// machines. Which lines: `RUST_LOG` filters (default `info`).
    #[arg(long, global = true, env = "DURO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Read deploy configs as this environment (a wrangler `env.NAME` section: its keys over the
    /// top level's; bindings and vars are not inherited; secrets from `.dev.vars.NAME` if it
    /// exists). Default: the top level.
    #[arg(
        long = "env",
        short = 'e',
        global = true,
        env = "CLOUDFLARE_ENV",
        value_name = "NAME"
    )]
    environment: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the runtime: the ingress and admin listeners over one data dir.
    Serve(Box<ServeArgs>),
    /// Build, serve and watch a deploy config: on a change to its sources, rebuild (its
    /// `build.command`) and replace the changed classes in place, storage kept. Takes every
    /// `serve` flag; the access log is on.
    Dev(Box<DevArgs>),
    /// Create a class project: `duro init my-counter` writes a project (Rust, or `--lang js` /
    /// `--lang python`) with a class, a `duro.jsonc` for `duro dev`, a test script and a copy of
    /// the SDK.
    Init {
        /// The folder to create (its name names the package and, by default, the class).
        dir: PathBuf,
        /// The class's language.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// The class name (default: the folder's name in PascalCase).
        #[arg(long)]
        class: Option<String>,
    },
    /// Upload components as classes: `duro deploy Counter=counter.wasm ...`, or apply a deploy
    /// config: `duro deploy --config duro.jsonc` (also `duro deploy duro.jsonc`; with no argument,
    /// `./duro.jsonc`).
    Deploy {
        /// `CLASS=FILE.wasm` pairs, or one deploy config file.
        classes: Vec<String>,
        /// A deploy config: migrations, then the bindings' components.
        #[arg(long, value_name = "FILE", conflicts_with = "classes")]
        config: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List the deployed classes.
    Classes {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List a class's stored objects (those with a key or an alarm): name, id, keys, bytes,
    /// whether it is active (in memory, or holding hibernated sockets), its sockets, alarm.
    Objects {
        class: String,
        /// Only the objects whose names start with this, in name order ("" for every named
        /// object).
        #[arg(long)]
        name_prefix: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this id, or this name with --name-prefix (the last of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one object's stored entries and its alarm: `duro object Counter ID`, or by the name
    /// it is addressed by: `duro object Counter --name alice`.
    Object {
        #[command(flatten)]
        object: ObjectArgs,
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many entries (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this key (the last one of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Delete one object's storage and alarm, between two of its events (its in-memory state
    /// goes too; its WebSockets stay): `duro wipe Counter ID`, or `--name alice`.
    Wipe {
        #[command(flatten)]
        object: ObjectArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Write one object (its entries, alarm and SQL database) as JSON lines: `duro export
    /// Counter --name alice -o alice.jsonl` (stdout without -o).
    Export {
        #[command(flatten)]
        object: ObjectArgs,
        /// Write here (through a temporary file, then renamed) instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Put an export into an object, of the same or another class: `duro import Counter --name
    /// bob -i alice.jsonl` (stdin without -i). Refused if the object stores something, unless
    /// --replace.
    Import {
        #[command(flatten)]
        object: ObjectArgs,
        /// Read the export from here instead of stdin.
        #[arg(long, short)]
        input: Option<PathBuf>,
        /// Wipe the object first if it stores something.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Copy one object into another (export, then import): `duro fork Counter --name alice
    /// --to-name alice-copy [--to-class Other]`.
    Fork {
        #[command(flatten)]
        object: ObjectArgs,
        /// The copy's name.
        #[arg(long)]
        to_name: String,
        /// The copy's class (default: the same).
        #[arg(long)]
        to_class: Option<String>,
        /// Wipe the copy first if it stores something.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The costliest objects since the server started — events, CPU, wall and gate-wait time,
    /// storage bytes read and written, peak memory — and each class's totals: `duro top --by
    /// storage`.
    Top {
        /// Rank by cpu, requests, storage or wall.
        #[arg(long, default_value = "cpu")]
        by: String,
        /// Only this class's objects.
        #[arg(long)]
        class: Option<String>,
        /// At most this many objects (1 to 1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Follow what happens, as it happens: ingress requests, each object's events (requests,
    /// RPC calls, alarms, socket messages) and its guest's log lines — all, one class's, or one
    /// object's (by name or id). `--json` prints the events as JSON lines.
    Tail {
        class: Option<String>,
        /// The object's name or id.
        object: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Delete a class and all of its objects' storage.
    Delete {
        class: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Check a data dir offline: every page's checksum, every entry readable, the write-ahead
    /// log as a start would see it, the tables' promises to each other. Exit 1 on damage.
    Check {
        #[arg(long, env = "DURO_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Copy a running server's database, consistently, into a new data dir: start `duro serve
    /// --data-dir DIR` on it to restore.
    Backup {
        /// The data dir to create (it must not hold a database yet).
        dir: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Args)]
struct DevArgs {
    /// The deploy config (default: ./duro.jsonc).
    #[arg(value_name = "CONFIG")]
    file: Option<PathBuf>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Which object a command is about: its class, and its id or the name it is addressed by.
#[derive(Args)]
struct ObjectArgs {
    class: String,
    /// The object's id (64 hex).
    #[arg(required_unless_present = "name", conflicts_with = "name")]
    id: Option<String>,
    /// The name the object is addressed by (`/objects/{class}/{name}`).
    #[arg(long)]
    name: Option<String>,
}

impl ObjectArgs {
    /// Its admin path: `/classes/{class}/objects/{id}` or `.../by-name/{name}`.
    fn path(&self) -> anyhow::Result<String> {
        object_path(&self.class, self.id.as_deref(), self.name.as_deref())
    }
}

#[derive(Args)]
struct AdminArgs {
    /// The admin API's base URL (`host:port` alone means `http://host:port`).
    #[arg(long, env = "DURO_ADMIN_URL", default_value = "http://127.0.0.1:8788")]
    admin_url: String,
    #[arg(long, env = "DURO_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Print the admin API's JSON instead of text for people.
    #[arg(long)]
    json: bool,
}

/// Log lines go to stderr, filtered by `RUST_LOG` (default `info`); the access log only with
/// `--access-log`, whatever `RUST_LOG` says (`RUST_LOG=info` must not flood a busy server's log).
fn init_logging(format: LogFormat, access_log: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let access = if access_log {
        "duro::access=info"
    } else {
        "duro::access=off"
    };
    let filter = filter.add_directive(access.parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let access_log = match &cli.command {
        Command::Serve(args) => args.access_log,
        Command::Dev(_) => true,
        _ => false,
    };
    init_logging(cli.log_format, access_log);
    crate::deploy::select_environment(cli.environment.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::memory::collect_on_park)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // An error may quote what a client or a guest chose (a name, a key).
            eprintln!("error: {}", tables::shown(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Init { dir, lang, class } => {
            let names = crate::init::Names::new(&dir, class.as_deref())?;
            crate::init::create(&dir, lang, &names)?;
            crate::init::announce(&dir, lang, &names);
            Ok(())
        }
        Command::Dev(args) => {
            let DevArgs { file, serve } = *args;
            let path = file
                .or(serve.config.clone())
                .or_else(|| DeployConfig::find(Path::new(".")))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            let mut config = server_config(&serve)?;
            if serve.client_location.is_none() {
                config.client_location = crate::config::ClientLocation::Placeholder;
            }
            dev::run(path, config).await
        }
        Command::Deploy {
            classes,
            config,
            admin,
        } => {
            let client = admin.client();
            if let Some(path) = config_path(config, &classes)? {
                let config = DeployConfig::open(&path).await?;
                let steps = config.apply(&client).await?;
                if admin.json {
                    println!("{}", serde_json::json!({ "steps": steps }));
                } else {
                    steps.iter().for_each(|line| println!("{line}"));
                }
                return Ok(());
            }
            for pair in classes {
                let (class, path) = parse_deploy(&pair)?;
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let (status, body) = client.put_class(&class, bytes).await?;
                if admin.json {
                    println!("{body}");
                } else {
                    println!("class {class}: {}", change_of((status, body)).as_str());
                }
            }
            Ok(())
        }
        Command::Classes { admin } => {
            let table = |classes: &Vec<crate::class::ClassInfo>| classes_table(classes);
            show(&admin, "/classes", table).await
        }
        Command::Objects {
            class,
            name_prefix,
            limit,
            after,
            admin,
        } => {
            let path = format!("/classes/{}/objects?limit={limit}", encode(&class));
            let path = with_query(path, &[("name_prefix", &name_prefix), ("after", &after)]);
            let more = match &name_prefix {
                Some(prefix) => {
                    format!("duro objects {class} --name-prefix {}", shell_word(prefix))
                }
                None => format!("duro objects {class}"),
            };
            show(&admin, &path, |page| objects_table(&more, page)).await
        }
        Command::Object {
            object,
            prefix,
            limit,
            after,
            admin,
        } => {
            let object = object.path()?;
            let path = format!("{object}?limit={limit}");
            let path = with_query(path, &[("prefix", &prefix), ("after", &after)]);
            show(&admin, &path, entries_table).await
        }
        Command::Wipe { object, admin } => {
            let path = object.path()?;
            admin
                .client()
                .send(reqwest::Method::DELETE, &path, Vec::new())
                .await?;
            if admin.json {
                println!("{}", serde_json::json!({ "wiped": true }));
            } else {
                let which = object.id.or(object.name).unwrap_or_default();
                let class = object.class;
                println!("object {which} of {class}: storage and alarm deleted");
            }
            Ok(())
        }
        Command::Tail {
            class,
            object,
            admin,
        } => tail::tail(&admin.client(), class, object, admin.json).await,
        Command::Top {
            by,
            class,
            limit,
            admin,
        } => {
            let path = format!("/top?by={}&limit={limit}", encode(&by));
            let path = with_query(path, &[("class", &class)]);
            show(&admin, &path, top_table).await
        }
        Command::Export {
            object,
            output,
            admin,
        } => transfer::export(&admin.client(), &object.path()?, output.as_deref()).await,
        Command::Import {
            object,
            input,
            replace,
            admin,
        } => {
            let object = object.path()?;
            let client = admin.client();
            let answer = transfer::import(&client, &object, input.as_deref(), replace).await?;
            print_imported(&admin, answer);
            Ok(())
        }
        Command::Fork {
            object,
            to_name,
            to_class,
            replace,
            admin,
        } => {
            let from = object.path()?;
            let to_class = to_class.unwrap_or(object.class);
            let to = object_path(&to_class, None, Some(&to_name))?;
            let answer = transfer::fork(&admin.client(), &from, &to, replace).await?;
            print_imported(&admin, answer);
            Ok(())
        }
        Command::Check { data_dir } => {
            let report = tokio::task::spawn_blocking(move || crate::storage::check(&data_dir))
                .await?
                .map_err(anyhow::Error::msg)?;
            for line in &report.checked {
                println!("ok: {}", tables::shown(line));
            }
            for line in &report.problems {
                println!("DAMAGED: {}", tables::shown(line));
            }
            if !report.problems.is_empty() {
                bail!(
                    "the data dir is damaged ({} problems)",
                    report.problems.len()
                );
            }
            println!("the data dir is healthy");
            Ok(())
        }
        Command::Backup { dir, admin } => {
            let bytes = admin.client().backup(&dir).await?;
            if admin.json {
                println!("{}", serde_json::json!({ "bytes": bytes, "dir": dir }));
            } else {
                println!("backed up {bytes} bytes into {}", dir.display());
            }
            Ok(())
        }
        Command::Delete { class, admin } => {
            admin
                .client()
                .send(
                    reqwest::Method::DELETE,
                    &format!("/classes/{class}"),
                    Vec::new(),
                )
                .await?;
            if admin.json {
                println!("{}", serde_json::json!({ "deleted": class }));
            } else {
                println!("deleted {class}");
            }
            Ok(())
        }
    }
}

/// The deploy config `duro deploy` applies when given no argument at all.
const DEFAULT_CONFIG: &str = "duro.jsonc";

/// The deploy config `duro deploy` was given: `--config FILE`, one `FILE.json[c]` or `.toml`
/// argument, or with no argument at all the one in the current folder (`duro.jsonc`,
/// `wrangler.json`, `wrangler.jsonc` or `wrangler.toml`).
fn config_path(config: Option<PathBuf>, classes: &[String]) -> anyhow::Result<Option<PathBuf>> {
    Ok(match classes {
        _ if config.is_some() => config,
        [] => Some(DeployConfig::find(Path::new(".")).ok_or_else(|| {
            anyhow::anyhow!(
                "nothing to deploy: give CLASS=FILE.wasm pairs or --config FILE (a {} in the \
                 current folder is used when there is one)",
                crate::deploy::CONFIG_NAMES.join(", ")
            )
        })?),
        [one]
            if !one.contains('=')
                && [".jsonc", ".json", ".toml"]
                    .iter()
                    .any(|e| one.ends_with(e)) =>
        {
            Some(PathBuf::from(one))
        }
        _ => None,
    })
}

/// A path segment or query value, percent-encoded.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// GETs `path` from the admin API and prints it: its JSON with `--json`, else `table` of it.
async fn show<T: serde::de::DeserializeOwned>(
    admin: &AdminArgs,
    path: &str,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let (_, body) = admin
        .client()
        .send(reqwest::Method::GET, path, Vec::new())
        .await?;
    if admin.json {
        println!("{body}");
    } else {
        let answer: T = serde_json::from_str(&body)
            .with_context(|| format!("unexpected answer from the admin API: {body}"))?;
        print!("{}", table(&answer));
    }
    Ok(())
}

/// `path` (which has a query already) with the given optional query values appended.
fn with_query(mut path: String, values: &[(&str, &Option<String>)]) -> String {
    for (key, value) in values {
        if let Some(value) = value {
            path += &format!("&{key}={}", encode(value));
        }
    }
    path
}

/// The admin path of an object, by id or by name.
fn object_path(class: &str, id: Option<&str>, name: Option<&str>) -> anyhow::Result<String> {
    let object = match (id, name) {
        (Some(id), _) => encode(id),
        (None, Some(name)) => format!("by-name/{}", encode(name)),
        (None, None) => bail!("give the object's id, or --name"),
    };
    Ok(format!("/classes/{}/objects/{object}", encode(class)))
}

/// Resolves at Ctrl-C or SIGTERM. SIGTERM's handler is installed when this is called, not when
/// the future is first polled: a server calls it before it says it is ready, so a SIGTERM right
/// after that stops it gracefully instead of killing it.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
