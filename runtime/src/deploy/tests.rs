//! The deploy config's parsing and checks.

use super::*;

#[test]
fn a_wrangler_style_config_parses() {
    let config = DeployConfig::parse(
        r#"{
          // Cloudflare's shape
          "name": "counter-app",
          "durable_objects": {
            "bindings": [
              { "name": "COUNTER", "class_name": "Tally", "component": "counter.wasm" },
            ],
          },
          /* applied once each, in order */
          "migrations": [
            { "tag": "v1", "new_sqlite_classes": ["Counter"] },
            { "tag": "v2", "renamed_classes": [{ "from": "Counter", "to": "Tally" }],
              "deleted_classes": ["Old"] },
          ],
        }"#,
    )
    .unwrap();
    assert_eq!(config.durable_objects.bindings[0].class_name, "Tally");
    assert_eq!(config.migrations.len(), 2);
    assert_eq!(config.migrations[0].new_sqlite_classes, ["Counter"]);
    assert_eq!(config.migrations[1].renamed_classes[0].to, "Tally");
}

#[test]
fn the_repositorys_own_configs_parse() {
    for text in [
        include_str!("../../../duro.jsonc"),
        include_str!("../../../examples/js/duro.jsonc"),
        include_str!("../../../examples/python/duro.jsonc"),
        include_str!("../../../examples/c/duro.jsonc"),
    ] {
        let config = DeployConfig::parse(text).unwrap();
        assert!(config.worker.is_some());
        assert_eq!(config.durable_objects.bindings[0].name, "COUNTER");
    }
}

#[test]
fn outbound_policies_come_from_bindings_and_the_worker() {
    let config = DeployConfig::parse(
        r#"{
          "worker": { "component": "w.wasm", "outbound": { "allowed_hosts": ["*.example.com"] } },
          "durable_objects": { "bindings": [
            { "name": "A", "class_name": "X", "component": "a.wasm",
              "outbound": { "allowed_hosts": ["api.test:8443"], "timeout_ms": 500 } },
            { "name": "B", "class_name": "Y", "component": "b.wasm" },
          ] },
          "migrations": [{ "tag": "v1", "new_classes": ["X", "Y"] }],
        }"#,
    )
    .unwrap();
    assert_eq!(
        config.worker.as_ref().unwrap().component(),
        Path::new("w.wasm")
    );
    let outbound = config.outbound().unwrap();
    assert_eq!(
        outbound.classes.len(),
        1,
        "no policy for B: it reaches nothing"
    );
    let x = &outbound.classes[&ClassName::parse("X").unwrap()];
    assert_eq!(
        (x.allowed_hosts.as_slice(), x.timeout_ms),
        (&["api.test:8443".to_string()][..], 500)
    );
    assert_eq!(outbound.worker.unwrap().allowed_hosts, ["*.example.com"]);
    let plain = DeployConfig::parse(r#"{"worker": "w.wasm"}"#).unwrap();
    assert_eq!(plain.outbound().unwrap(), Outbound::default());
}

#[test]
fn unknown_keys_missing_commas_and_wrong_types_are_placed_in_the_file() {
    let cases = [
        (
            "{\n  \"durable_object\": {}\n}",
            "line 2 column 3: unknown key \"durable_object\" (did you mean \"durable_objects\"?)",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "X", "component": "a.wasm"},
               {"name": "B", "clas_name": "Y", "component": "b.wasm"}]}}"#,
            "unknown key \"durable_objects.bindings[1].clas_name\" (did you mean \"class_name\"?)",
        ),
        (
            r#"{"migrations": [{"tag": "v1", "renamed_classes": [{"from": "A", "too": "B"}]}]}"#,
            "unknown key \"migrations[0].renamed_classes[0].too\" (did you mean \"to\"?)",
        ),
        (
            "{\"worker\": {\"component\": \"w.wasm\", \"outbound\": {\"allowed_host\": []}}}",
            "unknown key \"worker.outbound.allowed_host\" (did you mean \"allowed_hosts\"?)",
        ),
        (
            "{\"frobnicate\": []}",
            "line 1 column 2: unknown key \"frobnicate\"",
        ),
        (
            "{\n  \"migrations\": [\n    {\"tag\": \"v1\"}\n    {\"tag\": \"v2\"}\n  ]\n}",
            "Expected comma on line 3",
        ),
        (
            "{\n  \"migrations\": [{\"tag\": 7}]\n}",
            "line 2 column 19: migrations[0].tag: invalid type: integer `7`, expected a string",
        ),
        ("{'migrations': []}", "on line 1"),
    ];
    for (text, reason) in cases {
        let error = DeployConfig::parse(text).expect_err(text).to_string();
        assert!(error.contains(reason), "{text}\n{error}");
    }
    // A wrangler file's own keys are accepted; those of what duro lacks are named.
    let config = DeployConfig::parse(
        r#"{"$schema": "x", "name": "app", "main": "src/index.ts",
            "compatibility_date": "2024-01-01", "observability": {"enabled": true},
            "kv_namespaces": [{"binding": "KV", "id": "x"}]}"#,
    )
    .unwrap();
    assert_eq!(config.unsupported, ["observability", "kv_namespaces"]);
    let warning = config.unsupported_warning().unwrap();
    assert!(
        warning.contains("keys observability, kv_namespaces are not implemented"),
        "{warning}"
    );
}

#[test]
fn a_wrangler_toml_reads_as_its_json_form() {
    let config = DeployConfig::parse_as(
        r#"
        name = "edge-chat-demo"
        compatibility_date = "2024-01-01"
        main = "src/chat.mjs"

        [durable_objects]
        bindings = [
          { name = "rooms", class_name = "ChatRoom" },
          { name = "limiters", class_name = "RateLimiter" },
        ]

        [[rules]]
        type = "Data"
        globs = ["**/*.html"]
        fallthrough = false

        [[migrations]]
        tag = "v1"
        new_sqlite_classes = ["ChatRoom", "RateLimiter"]
        "#,
        true,
        None,
    )
    .unwrap();
    assert_eq!(config.main.as_deref(), Some(Path::new("src/chat.mjs")));
    assert_eq!(config.durable_objects.bindings[1].class_name, "RateLimiter");
    assert!(config.durable_objects.bindings[0].component.is_none());
    assert_eq!(config.rules[0].kind, "Data");
    let error = DeployConfig::parse_as("[durable_object]\nbindings = []\n", true, None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("did you mean \"durable_objects\""),
        "{error}"
    );
}

#[test]
fn a_binding_without_a_component_needs_a_main_and_other_workers_are_refused() {
    let migrations = r#""migrations": [{"tag": "v1", "new_classes": ["X"]}]"#;
    let error = DeployConfig::parse(&format!(
        r#"{{"durable_objects": {{"bindings": [{{"name": "A", "class_name": "X"}}]}}, {migrations}}}"#
    ))
    .unwrap_err()
    .to_string();
    assert!(error.contains("give the config a `main`"), "{error}");
    let error = DeployConfig::parse(&format!(
        r#"{{"main": "i.ts", "durable_objects": {{"bindings": [{{"name": "A", "class_name": "X",
            "script_name": "other"}}]}}, {migrations}}}"#
    ))
    .unwrap_err()
    .to_string();
    assert!(error.contains("script_name and environment"), "{error}");
}

#[test]
fn mistakes_are_refused_with_the_reason() {
    for (text, reason) in [
        ("", "empty"),
        ("{", ""),
        (
            r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "X", "component": "a.wasm"}]}}"#,
            "not declared by any migration",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "X", "component": "a.wasm"}]},
                "migrations": [{"tag": "v1", "new_classes": ["X"]}, {"tag": "v2", "deleted_classes": ["X"]}]}"#,
            "not declared by any migration",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "1x", "component": "a.wasm"}]},
                "migrations": [{"tag": "v1", "new_classes": ["1x"]}]}"#,
            "invalid class name",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "X"}]}}"#,
            "component",
        ),
        (
            r#"{"migrations": [{"tag": "v1"}, {"tag": "v1"}]}"#,
            "two migrations",
        ),
        (
            r#"{"migrations": [{"tag": "v1", "renamed_classes": ["A"]}]}"#,
            "",
        ),
        (
            r#"{"migrations": [{"tag": "v1", "new_class": ["A"]}]}"#,
            "unknown key",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "X", "component": "a.wasm",
                "outbound": {"allowed_hosts": ["a.test/path"]}}]},
                "migrations": [{"tag": "v1", "new_classes": ["X"]}]}"#,
            "binding \"A\": outbound: allowed host \"a.test/path\"",
        ),
        (
            r#"{"worker": {"component": "w.wasm", "outbound": {"timeout_ms": 0}}}"#,
            "worker: outbound: timeout_ms",
        ),
        (
            r#"{"compatibility_date": "2026-3-1"}"#,
            "is not a date of the form YYYY-MM-DD",
        ),
    ] {
        let error = DeployConfig::parse(text).expect_err(text).to_string();
        assert!(error.contains(reason), "{text}: {error}");
    }
}

#[test]
fn an_exports_map_is_the_migration_it_amounts_to() {
    let text = r#"{
      "main": "src/index.ts",
      "durable_objects": { "bindings": [{ "name": "CHAT", "class_name": "Chat" }] },
      "exports": {
        "Chat": { "type": "durable-object", "storage": "sqlite" },
        "Gone": { "type": "durable-object", "state": "deleted" },
        "Old": { "type": "durable-object", "state": "renamed", "renamed_to": "Chat" },
        "Kv": { "type": "durable-object" }
      }
    }"#;
    let config = DeployConfig::parse(text).unwrap();
    assert!(config.unsupported.is_empty(), "{:?}", config.unsupported);
    let [migration] = config.migrations.as_slice() else {
        panic!("one migration: {:?}", config.migrations)
    };
    assert!(migration.tag.starts_with("exports-"), "{}", migration.tag);
    assert_eq!(migration.new_sqlite_classes, ["Chat"]);
    assert_eq!(migration.new_classes, ["Kv"]);
    assert_eq!(migration.deleted_classes, ["Gone"]);
    assert_eq!(
        (
            &*migration.renamed_classes[0].from,
            &*migration.renamed_classes[0].to
        ),
        ("Old", "Chat")
    );
    // The same map, the same tag (applied once); another map, another tag.
    assert_eq!(
        DeployConfig::parse(text).unwrap().migrations[0].tag,
        migration.tag
    );
    let other = text.replace("\"storage\": \"sqlite\"", "\"storage\": \"legacy-kv\"");
    assert_ne!(
        DeployConfig::parse(&other).unwrap().migrations[0].tag,
        migration.tag
    );

    for (text, reason) in [
        (
            r#"{"exports": {"A": {"type": "durable-object"}}, "migrations": [{"tag": "v1"}]}"#,
            "both set",
        ),
        (
            r#"{"exports": {"A": {"type": "durable-object", "state": "transferred", "transferred_to": "w"}}}"#,
            "not supported",
        ),
        (
            r#"{"exports": {"A": {"type": "durable-object", "state": "renamed"}}}"#,
            "needs renamed_to",
        ),
        (
            r#"{"exports": {"A": {"type": "workflow"}}}"#,
            "only \"durable-object\"",
        ),
    ] {
        let error = DeployConfig::parse(text).expect_err(text).to_string();
        assert!(error.contains(reason), "{text}: {error}");
    }
}

/// wrangler's environments: without `--env` the top level (the sections ignored, yet checked key
/// by key); with one, its keys over the top level's, the bindings and vars not inherited.
#[test]
fn an_environment_section_is_applied_as_wranglers_env_does() {
    let text = r#"{
        "main": "src/index.ts",
        "compatibility_date": "2025-01-01",
        "vars": { "STAGE": "top" },
        "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
        "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }],
        "env": {
            "staging": {
                "vars": { "STAGE": "staging" },
                "durable_objects": { "bindings": [{ "name": "STAGING_ROOMS", "class_name": "Room" }] },
                "routes": ["staging.example.com/*"]
            },
            "bare": { "main": "src/other.ts" }
        }
    }"#;
    let top = DeployConfig::parse(text).unwrap();
    assert_eq!(top.vars["STAGE"], "top");
    assert_eq!(top.durable_objects.bindings[0].name, "ROOMS");
    assert!(
        top.unsupported.contains(&"routes".to_string()),
        "{:?}",
        top.unsupported
    );
    let staging = DeployConfig::parse_env(text, Some("staging")).unwrap();
    assert_eq!(staging.vars["STAGE"], "staging");
    assert_eq!(staging.durable_objects.bindings[0].name, "STAGING_ROOMS");
    assert_eq!(
        staging.main.as_deref(),
        Some(Path::new("src/index.ts")),
        "inherited"
    );
    assert_eq!(staging.migrations.len(), 1, "inherited");
    let bare = DeployConfig::parse_env(text, Some("bare")).unwrap();
    assert!(bare.vars.is_empty() && bare.durable_objects.bindings.is_empty());
    assert_eq!(bare.main.as_deref(), Some(Path::new("src/other.ts")));
    let error = DeployConfig::parse_env(text, Some("prod"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(r#"no environment "prod""#) && error.contains(r#""staging""#),
        "{error}"
    );
    let misspelled = text.replace(r#""routes""#, r#""varz""#);
    let error = DeployConfig::parse(&misspelled).unwrap_err().to_string();
    assert!(
        error.contains("env.staging.varz") && error.contains("did you mean \"vars\""),
        "{error}"
    );
}
