//! The bodies of the fuzz targets (`fuzz/`), kept here so that ordinary tests run them over a
//! committed corpus (`fuzz/corpus/`) without cargo-fuzz. Each takes arbitrary bytes, must never
//! panic, and checks a property of what it parsed.

use crate::http::route;
use crate::ids::{ClassName, IdSecret};

/// The route parser: a path and a query (split at the first `?`), ingress and admin.
pub fn route(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    };
    if let Ok(route::Ingress::ByName { rest, .. } | route::Ingress::ById { rest, .. }) =
        route::ingress(path, query)
    {
        assert!(
            rest.starts_with('/'),
            "the guest's path starts with a slash"
        );
    }
    let _ = route::admin(path);
    let _ = route::query_value(query, "name");
}

/// Class names and ids: `id-from-string` accepts exactly the ids the class made.
pub fn ids(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let secret = IdSecret::from_bytes([7; 32]);
    let class = ClassName::parse("Fuzz").expect("a valid name");
    let ids = secret.class_ids(&class, class.as_str());
    let other = secret.class_ids(&ClassName::parse("Other").expect("a valid name"), "Other");
    if let Ok(name) = ClassName::parse(text) {
        assert_eq!(ClassName::parse(name.as_str()).ok(), Some(name));
    }
    let from_name = ids.from_name(text);
    assert_eq!(ids.from_string(&from_name.to_hex()).ok(), Some(from_name));
    assert!(other.from_string(&from_name.to_hex()).is_err());
    if let Ok(id) = ids.from_string(text) {
        assert_eq!(id.to_hex(), text, "only the canonical form is accepted");
    }
}

/// The deploy config parser: arbitrary text is a config or an error, never a panic.
pub fn deploy_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::deploy::DeployConfig::parse(text);
    }
}

/// The write-ahead log: `data` as the records after a valid header. Whatever is read must decode
/// or be refused as damage, and decoded ops must encode back to the same bytes.
pub fn log(data: &[u8]) {
    crate::storage::fuzz_log(data);
}

#[cfg(test)]
mod tests {
    /// Every committed corpus input of every target, run as a plain test.
    #[test]
    fn the_fuzz_corpus_passes() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 4] = [
            ("route", super::route),
            ("ids", super::ids),
            ("deploy_config", super::deploy_config),
            ("log", super::log),
        ];
        for (name, target) in targets {
            let dir = corpus.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let mut count = 0;
            for entry in entries {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                count += 1;
            }
            assert!(count > 0, "no corpus for {name}");
        }
    }
}
