//! How a request finds its asset, as Cloudflare's asset worker does it: the path's file under the
//! html handling (`/page` -> `page.html`, canonical forms by 307), the not-found handling (a
//! single-page app's `/index.html`, the nearest `404.html`), `ETag` / `If-None-Match`, and,
//! beside a worker, which requests the worker takes first (`run_worker_first`); the folder's
//! `_redirects` before any file and its `_headers` on every answer (`rules`).

use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::rules::Redirected;
use super::{Assets, HtmlHandling, NotFoundHandling, RunWorkerFirst};

/// Most `run_worker_first` rules, and the longest (Cloudflare's limits).
const MAX_RULES: usize = 100;
const MAX_RULE_LEN: usize = 100;

/// Bytes a redirect's path keeps encoded.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%');

/// What serving needs of a request.
pub struct AssetRequest<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    /// `Authorization` or `Range` is present: the answer is not marked cacheable.
    pub private: bool,
    /// `Sec-Fetch-Mode: navigate` (a browser loading a page).
    pub navigate: bool,
}

impl<'a> AssetRequest<'a> {
    /// From a request's method, path, query and a header lookup (lowercase names).
    pub fn new(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> Self {
        Self {
            method,
            path,
            query,
            if_none_match: header("if-none-match"),
            private: header("authorization").is_some() || header("range").is_some(),
            navigate: header("sec-fetch-mode").is_some_and(|m| m.eq_ignore_ascii_case("navigate")),
        }
    }
}

/// An answer from the assets.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Empty for HEAD, 304 and redirects.
    pub body: Bytes,
}

/// Where a path leads.
enum Intent<'a> {
    Serve(&'a str, u16),
    Redirect(String),
    Nothing,
}

impl Assets {
    /// For the ingress: the assets' answer, or `None` when the request goes to the worker (or,
    /// without one, to the next route). Beside a worker a path with no file goes to the worker
    /// (the not-found handling applies only to a page load of a single-page app, or when
    /// `run_worker_first` rules say which paths are the worker's); without one the not-found
    /// handling applies and other methods than GET and HEAD get 405.
    pub fn route(&self, request: &AssetRequest<'_>, has_worker: bool) -> Option<Answer> {
        let mut fallback = true;
        if has_worker {
            match &self.options.run_worker_first {
                RunWorkerFirst::Always(true) => return None,
                RunWorkerFirst::Always(false) => fallback = false,
                RunWorkerFirst::Rules(rules) => {
                    if rules_say(rules, request.path) == Some(true) {
                        return None;
                    }
                }
            }
            if !matches!(request.method, "GET" | "HEAD") {
                return None;
            }
        }
        if let Some(answer) = self.redirected(request) {
            return Some(self.with_headers(request, answer));
        }
        let spa_page = request.navigate
            && self.options.not_found_handling == NotFoundHandling::SinglePageApplication;
        match self.intent(request.path, fallback || spa_page) {
            Intent::Nothing if has_worker => None,
            intent => Some(self.with_headers(request, self.answer(request, intent))),
        }
    }

    /// For the binding (`env.ASSETS.fetch`): always an answer, with the not-found handling.
    pub fn fetch(&self, request: &AssetRequest<'_>) -> Answer {
        let answer = match self.redirected(request) {
            Some(answer) => answer,
            None => self.answer(request, self.intent(request.path, true)),
        };
        self.with_headers(request, answer)
    }

    /// What `_redirects` makes of a GET or HEAD, if a rule matches it: a redirect, or the file
    /// of another path (a 200 rule: one hop; a plain 404 when there is no such file).
    fn redirected(&self, request: &AssetRequest<'_>) -> Option<Answer> {
        if self.redirects.is_empty() || !matches!(request.method, "GET" | "HEAD") {
            return None;
        }
        Some(match self.redirects.lookup(request.path, request.query)? {
            Redirected::To(status, location) => Answer {
                status,
                headers: vec![("location".into(), location)],
                body: Bytes::new(),
            },
            Redirected::Rewrite(path) => {
                let intent = match self.intent(&path, false) {
                    Intent::Redirect(_) => Intent::Nothing,
                    intent => intent,
                };
                self.answer(request, intent)
            }
        })
    }

    /// `answer` with the `_headers` rules that match the request's path applied.
    fn with_headers(&self, request: &AssetRequest<'_>, mut answer: Answer) -> Answer {
        if !self.custom_headers.is_empty() {
            self.custom_headers.apply(request.path, &mut answer.headers);
        }
        answer
    }

    fn answer(&self, request: &AssetRequest<'_>, intent: Intent<'_>) -> Answer {
        let plain = |status: u16, text: &'static str, extra: Vec<(String, String)>| {
            let mut headers = vec![("content-type".into(), "text/plain; charset=utf-8".into())];
            headers.extend(extra);
            Answer {
                status,
                headers,
                body: Bytes::from_static(text.as_bytes()),
            }
        };
        if !matches!(request.method, "GET" | "HEAD") {
            return plain(
                405,
                "Method Not Allowed",
                vec![("allow".into(), "GET, HEAD".into())],
            );
        }
        let (path, status) = match intent {
            Intent::Nothing => return plain(404, "Not Found", Vec::new()),
            Intent::Redirect(to) => {
                let mut location = utf8_percent_encode(&to, PATH).to_string();
                if let Some(query) = request.query {
                    location = format!("{location}?{query}");
                }
                return Answer {
                    status: 307,
                    headers: vec![("location".into(), location)],
                    body: Bytes::new(),
                };
            }
            Intent::Serve(path, status) => (path, status),
        };
        let asset = &self.files[path];
        let mut headers = vec![("etag".to_string(), asset.etag.clone())];
        if !request.private {
            headers.push((
                "cache-control".into(),
                "public, max-age=0, must-revalidate".into(),
            ));
        }
        if status == 200
            && request
                .if_none_match
                .is_some_and(|tags| matches(tags, &asset.etag))
        {
            return Answer {
                status: 304,
                headers,
                body: Bytes::new(),
            };
        }
        if let Some(content_type) = &asset.content_type {
            headers.push(("content-type".into(), content_type.clone()));
        }
        let body = if request.method == "HEAD" {
            headers.push(("content-length".into(), asset.body.len().to_string()));
            Bytes::new()
        } else {
            asset.body.clone()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Where `raw_path` leads under the html handling, then (if `fallback`) the not-found
    /// handling.
    fn intent(&self, raw_path: &str, fallback: bool) -> Intent<'_> {
        let Ok(path) = percent_decode_str(raw_path).decode_utf8() else {
            return Intent::Nothing;
        };
        let found = self.html_intent(&path);
        if !matches!(found, Intent::Nothing) || !fallback {
            return found;
        }
        match self.options.not_found_handling {
            NotFoundHandling::None => Intent::Nothing,
            NotFoundHandling::SinglePageApplication => self.serve("/index.html", 200),
            NotFoundHandling::NotFoundPage => {
                let mut dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
                loop {
                    let page = format!("{dir}/404.html");
                    if let Some((key, _)) = self.files.get_key_value(page.as_str()) {
                        return Intent::Serve(key, 404);
                    }
                    match dir.rsplit_once('/') {
                        Some((up, _)) => dir = up,
                        None => return Intent::Nothing,
                    }
                }
            }
        }
    }

    fn serve(&self, path: &str, status: u16) -> Intent<'_> {
        match self.files.get_key_value(path) {
            Some((key, _)) => Intent::Serve(key, status),
            None => Intent::Nothing,
        }
    }

    fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The html handling: which file a path serves, or which canonical path it redirects to.
    fn html_intent(&self, path: &str) -> Intent<'_> {
        let redirect =
            |to: &str| Intent::Redirect(if to.is_empty() { "/".into() } else { to.into() });
        let handling = self.options.html_handling;
        if handling == HtmlHandling::None {
            return self.serve(path, 200);
        }
        if let Some(dir) = path.strip_suffix("/index.html")
            && self.has(path)
        {
            return match handling {
                HtmlHandling::DropTrailingSlash if !dir.is_empty() => redirect(dir),
                _ => redirect(&format!("{dir}/")),
            };
        }
        if let Some(page) = path.strip_suffix(".html")
            && self.has(path)
        {
            return match handling {
                HtmlHandling::ForceTrailingSlash => redirect(&format!("{page}/")),
                _ => redirect(page),
            };
        }
        if let Some(page) = path.strip_suffix('/') {
            let index = format!("{path}index.html");
            let html = format!("{page}.html");
            return match handling {
                _ if page.is_empty() => self.serve(&index, 200),
                HtmlHandling::AutoTrailingSlash if self.has(&index) => self.serve(&index, 200),
                HtmlHandling::AutoTrailingSlash if self.has(&html) => redirect(page),
                HtmlHandling::ForceTrailingSlash if self.has(&index) => self.serve(&index, 200),
                HtmlHandling::ForceTrailingSlash => self.serve(&html, 200),
                HtmlHandling::DropTrailingSlash if self.has(&index) || self.has(&html) => {
                    redirect(page)
                }
                _ => Intent::Nothing,
            };
        }
        if self.has(path) {
            return self.serve(path, 200);
        }
        let html = format!("{path}.html");
        let index = format!("{path}/index.html");
        match handling {
            HtmlHandling::ForceTrailingSlash if self.has(&html) || self.has(&index) => {
                redirect(&format!("{path}/"))
            }
            HtmlHandling::AutoTrailingSlash if self.has(&html) => self.serve(&html, 200),
            HtmlHandling::AutoTrailingSlash if self.has(&index) => redirect(&format!("{path}/")),
            HtmlHandling::DropTrailingSlash if self.has(&html) => self.serve(&html, 200),
            HtmlHandling::DropTrailingSlash => self.serve(&index, 200),
            _ => Intent::Nothing,
        }
    }
}

/// Whether `If-None-Match` (a list of tags, or `*`) names `etag`, strongly or weakly.
fn matches(tags: &str, etag: &str) -> bool {
    tags.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

/// What `run_worker_first` rules say of `path`: `Some(true)` to the worker, `Some(false)` to
/// the assets (a `!/` rule, which wins), `None` when no rule matches.
fn rules_say(rules: &[String], path: &str) -> Option<bool> {
    let mut worker = false;
    for rule in rules {
        match rule.strip_prefix('!') {
            Some(negative) if glob_any(negative, path) => return Some(false),
            Some(_) => {}
            None => worker |= glob_any(rule, path),
        }
    }
    worker.then_some(true)
}

/// `run_worker_first` rules as Cloudflare checks them: 1 to 100 rules of at most 100 bytes, each
/// starting with `/` or `!/`, no duplicates, not only negative ones.
pub(super) fn check_rules(rules: &[String]) -> Result<(), String> {
    let refuse = |why: String| Err(format!("assets.run_worker_first: {why}"));
    if rules.is_empty() || rules.len() > MAX_RULES {
        return refuse(format!("1 to {MAX_RULES} rules, not {}", rules.len()));
    }
    for (i, rule) in rules.iter().enumerate() {
        if rule.len() > MAX_RULE_LEN {
            return refuse(format!("rule {rule:?} is over {MAX_RULE_LEN} bytes"));
        }
        if !rule.starts_with('/') && !rule.starts_with("!/") {
            return refuse(format!("rule {rule:?} must start with '/' or '!/'"));
        }
        if rules[..i].contains(rule) {
            return refuse(format!("rule {rule:?} is given twice"));
        }
    }
    if rules.iter().all(|r| r.starts_with('!')) {
        return refuse("only negative rules ('!/...'): nothing would reach the worker".into());
    }
    Ok(())
}

/// A `run_worker_first` glob: `*` matches anything, `/` included.
fn glob_any(pattern: &str, text: &str) -> bool {
    glob_with(pattern.as_bytes(), text.as_bytes(), true)
}

/// An `.assetsignore` glob: `*` matches within a name, `**` across names.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
    glob_with(pattern.as_bytes(), text.as_bytes(), false)
}

fn glob_with(pattern: &[u8], text: &[u8], star_crosses: bool) -> bool {
    match pattern {
        [] => text.is_empty(),
        [b'*', b'*', rest @ ..] => {
            (0..=text.len()).any(|i| glob_with(rest, &text[i..], star_crosses))
        }
        [b'*', rest @ ..] => (0..=text.len())
            .take_while(|&i| star_crosses || i == 0 || text[i - 1] != b'/')
            .any(|i| glob_with(rest, &text[i..], star_crosses)),
        [c, rest @ ..] => text.first() == Some(c) && glob_with(rest, &text[1..], star_crosses),
    }
}
