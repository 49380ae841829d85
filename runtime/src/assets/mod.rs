//! Static assets (wrangler's `assets`): a folder's files, packed into one bundle when a deploy
//! config is applied, kept by the class registry beside the worker, served by the ingress before
//! the worker and through the assets binding (`env.ASSETS.fetch`).
//!
//! The bundle is the unit that moves: `duro deploy` uploads it (`PUT /assets`), the server keeps
//! it durable in its store and holds its files in memory, so serving never touches the file
//! system (a path cannot reach outside the folder: only the bundle's own paths exist). How a
//! request finds its file (html handling, not-found handling, routing beside a worker) is in
//! [`serve`].

mod rules;
mod serve;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use serve::{Answer, AssetRequest};

/// Most files in a bundle (Cloudflare's limit).
pub const MAX_FILES: usize = 100_000;
/// Largest file (Cloudflare's limit).
pub const MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// Files of the folder never served: wrangler's own (`.assetsignore`, and `_headers` /
/// `_redirects`, which are rules: see `rules`).
const NOT_ASSETS: &[&str] = &[".assetsignore", "_headers", "_redirects"];
/// The bundle's first bytes.
const MAGIC: &[u8] = b"duro-assets/1\n";

/// wrangler's `assets` section: the folder, and how its files are served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The folder, relative to the config file (only in the config; not part of a bundle).
    #[serde(default, skip_serializing)]
    pub directory: Option<PathBuf>,
    /// The name the worker and the objects see the assets as in `env` (e.g. `ASSETS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(default)]
    pub html_handling: HtmlHandling,
    #[serde(default)]
    pub not_found_handling: NotFoundHandling,
    #[serde(default)]
    pub run_worker_first: RunWorkerFirst,
}

/// How `/page`, `/page/` and `/page.html` find `page.html` or `page/index.html`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HtmlHandling {
    #[default]
    AutoTrailingSlash,
    ForceTrailingSlash,
    DropTrailingSlash,
    None,
}

/// What a request for no file gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotFoundHandling {
    /// `/index.html`, status 200.
    SinglePageApplication,
    /// The nearest `404.html` up the path, status 404.
    #[serde(rename = "404-page")]
    NotFoundPage,
    /// A plain 404 (or, beside a worker, the worker).
    #[default]
    None,
}

/// Whether a request goes to the worker before the assets: always, never, or by path rules
/// (`/api/*` to the worker, `!/api/docs/*` to the assets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunWorkerFirst {
    Always(bool),
    Rules(Vec<String>),
}

impl Default for RunWorkerFirst {
    fn default() -> Self {
        Self::Always(false)
    }
}

impl Options {
    /// Refuses what Cloudflare refuses: a bad binding name, bad `run_worker_first` rules.
    pub fn check(&self) -> Result<(), String> {
        if let Some(binding) = &self.binding {
            let valid = !binding.is_empty()
                && binding.len() <= 128
                && binding
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "assets.binding {binding:?}: 1 to 128 letters, digits or '_'"
                ));
            }
        }
        if let RunWorkerFirst::Rules(rules) = &self.run_worker_first {
            serve::check_rules(rules)?;
        }
        Ok(())
    }
}

/// Why a folder or a bundle is refused.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("assets: {0}")]
    Invalid(String),
    #[error("assets: cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// One file of a bundle, as the bundle's index lists it.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    path: String,
    size: u64,
}

/// The bundle's header: the options, the folder's `_redirects` and `_headers` files, and the
/// index of the files that follow it, in order.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    options: Options,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redirects: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<String>,
    files: Vec<Entry>,
}

/// One file, ready to serve.
struct Asset {
    body: Bytes,
    /// Strong, quoted: `"<32 hex of the content's sha256>"`.
    etag: String,
    content_type: Option<String>,
}

/// A deployed bundle: its options and its files by path (`/index.html`), in memory.
pub struct Assets {
    pub options: Options,
    files: HashMap<String, Asset>,
    /// `_redirects`: tried before the files.
    redirects: rules::Redirects,
    /// `_headers`: applied to every answer.
    custom_headers: rules::CustomHeaders,
    /// The bundle's sha256 (what a redeploy of the same folder compares).
    pub digest: String,
    pub bytes: u64,
}

impl Assets {
    /// Packs `folder`'s files (symlinks skipped, `.assetsignore` patterns honoured) with
    /// `options` into a bundle; also says how many files it holds.
    pub fn bundle(folder: &Path, options: &Options) -> Result<(Vec<u8>, usize), AssetsError> {
        options.check().map_err(AssetsError::Invalid)?;
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |error| AssetsError::Read { path, error }
        };
        let ignore = match std::fs::read_to_string(folder.join(".assetsignore")) {
            Ok(text) => Ignore::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(read_err(&folder.join(".assetsignore"))(e)),
        };
        let mut files = Vec::new();
        let mut folders = vec![(folder.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = folders.pop() {
            for entry in std::fs::read_dir(&dir).map_err(read_err(&dir))? {
                let entry = entry.map_err(read_err(&dir))?;
                let kind = entry.file_type().map_err(read_err(&entry.path()))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    return Err(AssetsError::Invalid(format!(
                        "{} is not a UTF-8 file name",
                        entry.path().display()
                    )));
                };
                let path = format!("{prefix}/{name}");
                if ignore.matches(&path) || (prefix.is_empty() && NOT_ASSETS.contains(&&*name)) {
                    continue;
                }
                if kind.is_dir() {
                    folders.push((entry.path(), path));
                } else if kind.is_file() {
                    files.push((path, entry.path()));
                }
            }
        }
        files.sort();
        if files.len() > MAX_FILES {
            return Err(AssetsError::Invalid(format!(
                "{} files in {}: at most {MAX_FILES}",
                files.len(),
                folder.display()
            )));
        }
        let count = files.len();
        let mut index = Vec::with_capacity(count);
        let mut contents = Vec::with_capacity(files.len());
        for (path, file) in files {
            let bytes = std::fs::read(&file).map_err(read_err(&file))?;
            if bytes.len() as u64 > MAX_FILE_BYTES {
                return Err(AssetsError::Invalid(format!(
                    "{} is {} bytes: at most {MAX_FILE_BYTES} per file",
                    file.display(),
                    bytes.len()
                )));
            }
            index.push(Entry {
                path,
                size: bytes.len() as u64,
            });
            contents.push(bytes);
        }
        let options = Options {
            directory: None,
            ..options.clone()
        };
        let rules_file = |name: &str| match std::fs::read_to_string(folder.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(&folder.join(name))(e)),
        };
        let header = serde_json::to_vec(&Header {
            options,
            redirects: rules_file("_redirects")?,
            headers: rules_file("_headers")?,
            files: index,
        })
        .expect("the header serializes");
        let mut bundle = MAGIC.to_vec();
        bundle.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bundle.extend_from_slice(&header);
        for content in contents {
            bundle.extend_from_slice(&content);
        }
        Ok((bundle, count))
    }

    /// Reads a bundle (as uploaded, or as kept in the store), checking all of it.
    pub fn open(bundle: Bytes) -> Result<Self, AssetsError> {
        let bad = |what: &str| AssetsError::Invalid(format!("not an assets bundle: {what}"));
        let rest = bundle.strip_prefix(MAGIC).ok_or_else(|| bad("bad magic"))?;
        let (len, rest) = rest.split_at_checked(8).ok_or_else(|| bad("truncated"))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| bad("header too long"))?;
        let (header, _) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let header: Header =
            serde_json::from_slice(header).map_err(|e| bad(&format!("header: {e}")))?;
        header.options.check().map_err(AssetsError::Invalid)?;
        if header.files.len() > MAX_FILES {
            return Err(bad("too many files"));
        }
        let mut at = MAGIC.len() + 8 + len;
        let mut files = HashMap::with_capacity(header.files.len());
        for Entry { path, size } in header.files {
            let valid = path.starts_with('/')
                && !path.ends_with('/')
                && path
                    .split('/')
                    .skip(1)
                    .all(|s| !s.is_empty() && s != "." && s != "..");
            if !valid || size > MAX_FILE_BYTES {
                return Err(bad(&format!("file {path:?} of {size} bytes")));
            }
            let end = at
                .checked_add(size as usize)
                .filter(|end| *end <= bundle.len())
                .ok_or_else(|| bad("truncated"))?;
            let body = bundle.slice(at..end);
            at = end;
            let hash = Sha256::digest(&body);
            let asset = Asset {
                etag: format!("\"{}\"", hex::encode(&hash[..16])),
                content_type: content_type(&path),
                body,
            };
            if files.insert(path.clone(), asset).is_some() {
                return Err(bad(&format!("{path:?} twice")));
            }
        }
        if at != bundle.len() {
            return Err(bad("bytes after the last file"));
        }
        let warn = |file: &str, invalid: Vec<String>| {
            if !invalid.is_empty() {
                let count = invalid.len();
                let lines = invalid.join("; ");
                tracing::warn!(file, count, %lines, "assets: rules skipped");
            }
        };
        let html = header.options.html_handling;
        let (redirects, invalid) =
            rules::Redirects::parse(header.redirects.as_deref().unwrap_or(""), html);
        warn("_redirects", invalid);
        let (custom_headers, invalid) =
            rules::CustomHeaders::parse(header.headers.as_deref().unwrap_or(""));
        warn("_headers", invalid);
        Ok(Self {
            options: header.options,
            files,
            redirects,
            custom_headers,
            digest: hex::encode(Sha256::digest(&bundle)),
            bytes: bundle.len() as u64,
        })
    }

    /// How many files it serves.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// What the admin API shows of it.
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "sha256": self.digest,
            "bytes": self.bytes,
            "files": self.files.len(),
            "options": self.options,
        })
    }
}

/// The Content-Type of a path, from its extension; text gets `charset=utf-8`, as Cloudflare's.
fn content_type(path: &str) -> Option<String> {
    let mime = mime_guess::from_path(path).first()?;
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml");
    Some(match (text, mime.get_param("charset")) {
        (true, None) => format!("{mime}; charset=utf-8"),
        _ => mime.to_string(),
    })
}

/// `.assetsignore`: gitignore-style lines. A pattern with a `/` (other than at its end) matches
/// a path from the folder's root; one without matches any file or folder name; `*` matches
/// within a name, `**` across folders; `#` starts a comment.
#[derive(Default)]
struct Ignore {
    patterns: Vec<(bool, String)>,
}

impl Ignore {
    fn parse(text: &str) -> Self {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let l = l.trim_end_matches('/');
                let anchored = l.contains('/');
                (anchored, l.trim_start_matches('/').to_string())
            })
            .collect();
        Self { patterns }
    }

    /// Whether `path` (`/a/b.txt`) or a folder it is in is ignored.
    fn matches(&self, path: &str) -> bool {
        let relative = path.trim_start_matches('/');
        self.patterns.iter().any(|(anchored, pattern)| {
            if *anchored {
                serve::glob(pattern, relative)
            } else {
                relative.split('/').any(|name| serve::glob(pattern, name))
            }
        })
    }
}

#[cfg(test)]
mod tests;
