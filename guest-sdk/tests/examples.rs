//! Every public item of the SDK shows an example in its documentation (rustdoc's own check for
//! this, `missing_doc_code_examples`, is unstable). The examples themselves run as doc tests.

use std::path::Path;

/// Items that are documented where they are defined, or generated.
fn exempt(line: &str) -> bool {
    line.starts_with("pub use ") && !line.starts_with("pub use wit::") || line == "pub mod worker;"
}

#[test]
fn every_public_item_has_an_example() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Vec<&str> = text.lines().collect();
        let lines: Vec<&str> = raw.iter().map(|l| l.trim()).collect();
        // What the top-level item around a line is: generated bindings and the macros' private
        // helpers are skipped; a trait's methods are items.
        let mut skipping = false;
        let mut in_trait = false;
        for (at, line) in lines.iter().enumerate() {
            let top = !raw[at].starts_with(' ');
            if top
                && (raw[at].starts_with("pub mod wit") || raw[at].starts_with("pub mod __private"))
            {
                skipping = !raw[at].ends_with(';');
                continue;
            }
            if top && raw[at].starts_with("pub trait ") {
                in_trait = true;
            }
            if top && raw[at] == "}" {
                skipping = false;
                in_trait = false;
            }
            let method = in_trait && raw[at].starts_with("    fn ");
            let item = [
                "pub fn ",
                "pub struct ",
                "pub enum ",
                "pub trait ",
                "pub type ",
                "pub use ",
            ]
            .iter()
            .any(|p| line.starts_with(p))
                || line.starts_with("macro_rules!");
            if skipping || !(item || method) || exempt(line) {
                continue;
            }
            let docs = lines[..at]
                .iter()
                .rev()
                .skip_while(|l| l.starts_with("#["))
                .take_while(|l| l.starts_with("///"));
            if !docs.clone().any(|l| l.contains("```")) {
                missing.push(format!("{}:{}: {line}", path.display(), at + 1));
            }
        }
    }
    assert!(missing.is_empty(), "no example:\n{}", missing.join("\n"));
}
