//! The assets folder's `_redirects` and `_headers` files, as Cloudflare's asset worker reads and
//! applies them: redirect rules (`/from /to [code]`, 301/302/303/307/308, or 200 to serve
//! another file) tried before any file, and header rules (a path line, then `Name: value` or
//! `! Name` lines) applied to every answer of the assets. Paths may hold one `*` (`:splat` in
//! the target) and `:name` placeholders (a segment). A bad line is skipped with a warning, as
//! wrangler does; the files themselves are never served.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::HtmlHandling;

/// Cloudflare's limits: rules of each kind, and characters in one line.
const MAX_STATIC_REDIRECTS: usize = 2_000;
const MAX_DYNAMIC_REDIRECTS: usize = 100;
const MAX_HEADER_RULES: usize = 100;
const MAX_LINE: usize = 2_000;
/// The status codes a redirect rule may give.
const REDIRECT_CODES: [u16; 6] = [200, 301, 302, 303, 307, 308];

/// A rule's path: literal text, at most one `*` (captured as `splat`) and `:name` placeholders
/// (one path segment each).
#[derive(Debug, Clone, PartialEq)]
struct Pattern(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Splat,
    Param(String),
}

impl Pattern {
    fn parse(path: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = path;
        while let Some(c) = rest.chars().next() {
            if c == '*' {
                if parts.contains(&Part::Splat) {
                    return Err("only one '*' per path".into());
                }
                parts.push(Part::Text(std::mem::take(&mut text)));
                parts.push(Part::Splat);
                rest = &rest[1..];
            } else if c == ':' && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic()) {
                let name_len = rest[1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len() - 1);
                let name = &rest[1..=name_len];
                if name == "splat" && parts.contains(&Part::Splat) {
                    return Err("'*' and ':splat' in one path".into());
                }
                parts.push(Part::Text(std::mem::take(&mut text)));
                parts.push(Part::Param(name.to_string()));
                rest = &rest[1 + name_len..];
            } else {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        parts.push(Part::Text(text));
        parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
        Ok(Self(parts))
    }

    fn is_static(&self) -> bool {
        self.0.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The captures of `path` if it matches the whole pattern (`*` greedy).
    fn captures(&self, path: &str) -> Option<HashMap<String, String>> {
        let mut found = HashMap::new();
        matches_from(&self.0, path, &mut found).then_some(found)
    }
}

fn matches_from(parts: &[Part], path: &str, found: &mut HashMap<String, String>) -> bool {
    match parts {
        [] => path.is_empty(),
        [Part::Text(text), rest @ ..] => path
            .strip_prefix(text.as_str())
            .is_some_and(|after| matches_from(rest, after, found)),
        [Part::Param(name), rest @ ..] => {
            let segment = path.find('/').unwrap_or(path.len());
            (1..=segment)
                .rev()
                .filter(|&i| path.is_char_boundary(i))
                .any(|end| {
                    matches_from(rest, &path[end..], found)
                        && found
                            .insert(name.clone(), path[..end].to_string())
                            .is_none()
                })
        }
        [Part::Splat, rest @ ..] => (0..=path.len())
            .rev()
            .filter(|&i| path.is_char_boundary(i))
            .any(|end| {
                matches_from(rest, &path[end..], found)
                    && found
                        .insert("splat".into(), path[..end].to_string())
                        .is_none()
            }),
    }
}

/// `text` with `:name` (and `:splat`) replaced by what was captured.
fn fill(text: &str, found: &HashMap<String, String>) -> String {
    let mut out = text.to_string();
    let mut names: Vec<_> = found.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len())); // `:ab` before `:a`
    for name in names {
        out = out.replace(&format!(":{name}"), &found[name]);
    }
    out
}

/// The lines of a rules file worth reading, with their numbers; `#` comments and blank lines
/// skipped, overlong lines refused.
fn lines<'a>(text: &'a str, invalid: &mut Vec<String>) -> Vec<(usize, &'a str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.chars().count() > MAX_LINE {
            invalid.push(format!("line {}: over {MAX_LINE} characters", i + 1));
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

/// One `_redirects` rule.
#[derive(Debug)]
struct Redirect {
    from: Pattern,
    to: String,
    status: u16,
}

/// What a request's path leads to under the redirect rules.
#[derive(Debug, PartialEq)]
pub enum Redirected {
    /// A 3xx with this `Location`.
    To(u16, String),
    /// Serve this path's file instead (a 200 rule).
    Rewrite(String),
}

/// The `_redirects` file: exact paths first, then the first matching dynamic rule.
#[derive(Debug, Default)]
pub struct Redirects {
    exact: HashMap<String, Redirect>,
    dynamic: Vec<Redirect>,
}

impl Redirects {
    /// Reads `text`; the reasons of the lines it skipped come back beside it.
    pub fn parse(text: &str, html: HtmlHandling) -> (Self, Vec<String>) {
        let mut invalid = Vec::new();
        let mut rules = Self::default();
        let mut seen_dynamic = false;
        for (n, line) in lines(text, &mut invalid) {
            let line = strip_comment(line);
            let bad = |why: &str| format!("line {n}: {why} ({line})");
            let tokens: Vec<_> = line.split_whitespace().collect();
            let (from, to, status) = match tokens[..] {
                [from, to] => (from, to, 302),
                [from, to, code] => match code.parse::<u16>() {
                    Ok(code) if REDIRECT_CODES.contains(&code) => (from, to, code),
                    _ => {
                        invalid.push(bad("the status must be 200, 301, 302, 303, 307 or 308"));
                        continue;
                    }
                },
                _ => {
                    invalid.push(bad("a rule is `source destination [status]`"));
                    continue;
                }
            };
            if from.contains("://") {
                invalid.push(bad("the source must be a path, not a URL"));
                continue;
            }
            let from = from.split(['?', '#']).next().unwrap_or_default();
            let from = if from.starts_with('/') {
                from.to_string()
            } else {
                format!("/{from}")
            };
            let relative = to.starts_with('/');
            if !relative && !to.starts_with("https://") && !to.starts_with("http://") {
                invalid.push(bad("the destination must be a path or a URL"));
                continue;
            }
            if status == 200 && !relative {
                invalid.push(bad("a 200 rule must serve a path of the site, not a URL"));
                continue;
            }
            let loops = relative
                && matches!(to, "/index" | "/index.html")
                && (from.ends_with("/*") || (from.ends_with('/') && html != HtmlHandling::None));
            if loops {
                invalid.push(bad("it would redirect forever"));
                continue;
            }
            let pattern = match Pattern::parse(&from) {
                Ok(pattern) => pattern,
                Err(why) => {
                    invalid.push(bad(&why));
                    continue;
                }
            };
            seen_dynamic |= !pattern.is_static();
            let rule = Redirect {
                from: pattern,
                to: to.to_string(),
                status,
            };
            if !seen_dynamic {
                let count = rules.exact.len();
                match rules.exact.entry(from) {
                    _ if count >= MAX_STATIC_REDIRECTS => {
                        invalid.push(bad(&format!("over {MAX_STATIC_REDIRECTS} static rules")));
                    }
                    Entry::Occupied(_) => invalid.push(bad("a rule for this source came earlier")),
                    Entry::Vacant(slot) => {
                        slot.insert(rule);
                    }
                }
            } else if rules.dynamic.len() >= MAX_DYNAMIC_REDIRECTS {
                invalid.push(bad(&format!(
                    "over {MAX_DYNAMIC_REDIRECTS} dynamic rules: the rest of the file is skipped"
                )));
                break;
            } else if rules.dynamic.iter().any(|r| r.from == rule.from) {
                invalid.push(bad("a rule for this source came earlier"));
            } else {
                rules.dynamic.push(rule);
            }
        }
        (rules, invalid)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.dynamic.is_empty()
    }

    /// Where `path` (as sent, percent-encoded) with `query` leads, if a rule matches it.
    pub fn lookup(&self, path: &str, query: Option<&str>) -> Option<Redirected> {
        let (rule, found) = match self.exact.get(path) {
            Some(rule) => (rule, HashMap::new()),
            None => self
                .dynamic
                .iter()
                .find_map(|rule| Some((rule, rule.from.captures(path)?)))?,
        };
        let to = fill(&rule.to, &found);
        if rule.status == 200 {
            let path = to.split(['?', '#']).next().unwrap_or_default();
            return Some(Redirected::Rewrite(path.to_string()));
        }
        let (to, fragment) = match to.split_once('#') {
            Some((to, fragment)) => (to.to_string(), format!("#{fragment}")),
            None => (to, String::new()),
        };
        let location = match (to.contains('?'), query) {
            (false, Some(query)) if !query.is_empty() => format!("{to}?{query}{fragment}"),
            _ => format!("{to}{fragment}"),
        };
        Some(Redirected::To(rule.status, location))
    }
}

/// A line's inline comment (whitespace, then `#` to the end) removed.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return line[..i].trim_end();
        }
    }
    line
}

/// One `_headers` rule: its path, the headers it sets (name lowercase, values joined) and
/// those it removes.
#[derive(Debug)]
struct HeaderRule {
    path: Pattern,
    source: String,
    set: Vec<(String, String)>,
    unset: Vec<String>,
}

/// The `_headers` file.
#[derive(Debug, Default)]
pub struct CustomHeaders {
    rules: Vec<HeaderRule>,
}

impl CustomHeaders {
    /// Reads `text`; the reasons of the lines it skipped come back beside it.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut invalid = Vec::new();
        let mut rules: Vec<HeaderRule> = Vec::new();
        // The rule the following header lines belong to (`None` after a bad path line).
        let mut current: Option<usize> = None;
        let mut in_rule = false;
        for (n, line) in lines(text, &mut invalid) {
            let bad = |why: &str| format!("line {n}: {why} ({line})");
            if line.starts_with('/')
                || line
                    .split_once("://")
                    .is_some_and(|(s, _)| !s.contains(char::is_whitespace))
            {
                in_rule = true;
                current = None;
                if !line.starts_with('/') {
                    invalid.push(bad(
                        "rules for a host (a URL) are not supported; use a path",
                    ));
                    continue;
                }
                let path = line.split(['?', '#']).next().unwrap_or_default();
                let pattern = match Pattern::parse(path) {
                    Ok(pattern) => pattern,
                    Err(why) => {
                        invalid.push(bad(&why));
                        continue;
                    }
                };
                if let Some(at) = rules.iter().position(|r| r.source == path) {
                    // A later rule for the same path replaces it, in its place.
                    rules[at].set.clear();
                    rules[at].unset.clear();
                    current = Some(at);
                } else if rules.len() >= MAX_HEADER_RULES {
                    invalid.push(bad(&format!(
                        "over {MAX_HEADER_RULES} rules: the rest of the file is skipped"
                    )));
                    break;
                } else {
                    rules.push(HeaderRule {
                        path: pattern,
                        source: path.to_string(),
                        set: Vec::new(),
                        unset: Vec::new(),
                    });
                    current = Some(rules.len() - 1);
                }
                continue;
            }
            if !in_rule {
                invalid.push(bad("a header comes before any path"));
                continue;
            }
            let Some(rule) = current.map(|at| &mut rules[at]) else {
                continue; // the path line was refused
            };
            if let Some(name) = line.strip_prefix('!').filter(|_| !line.contains(':')) {
                rule.unset.push(name.trim().to_ascii_lowercase());
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                invalid.push(bad("a header line is `Name: value` or `! Name`"));
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name.is_empty() || name.contains(char::is_whitespace) || value.is_empty() {
                invalid.push(bad("a header needs a name without spaces and a value"));
                continue;
            }
            match rule.set.iter_mut().find(|(n, _)| *n == name) {
                Some((_, joined)) => *joined = format!("{joined}, {value}"),
                None => rule.set.push((name, value.to_string())),
            }
        }
        for rule in &rules {
            if rule.set.is_empty() && rule.unset.is_empty() {
                invalid.push(format!("{}: no headers specified", rule.source));
            }
        }
        (Self { rules }, invalid)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule matching `path` to `headers`, in file order: its removals, then its
    /// headers (the first value of a name replaces the answer's own, later ones are appended).
    pub fn apply(&self, path: &str, headers: &mut Vec<(String, String)>) {
        let mut touched: Vec<String> = Vec::new();
        for rule in &self.rules {
            let Some(found) = rule.path.captures(path) else {
                continue;
            };
            for name in &rule.unset {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            }
            for (name, value) in &rule.set {
                let value = fill(value, &found);
                if touched.contains(name) {
                    match headers
                        .iter_mut()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    {
                        Some((_, joined)) => *joined = format!("{joined}, {value}"),
                        None => headers.push((name.clone(), value)),
                    }
                } else {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    headers.push((name.clone(), value));
                    touched.push(name.clone());
                }
            }
        }
    }
}
