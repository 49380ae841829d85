use super::*;

/// A bundle of `files` (path, content) with `options`, opened.
fn assets(files: &[(&str, &str)], options: Options) -> Assets {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let file = dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let (bundle, count) = Assets::bundle(dir.path(), &options).unwrap();
    let assets = Assets::open(bundle.into()).unwrap();
    assert_eq!(assets.len(), count);
    assets
}

fn get(path: &str) -> AssetRequest<'_> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    AssetRequest::new("GET", path, query, |_| None)
}

/// What `path` gets without a worker: (status, body or location).
fn served(assets: &Assets, path: &str) -> (u16, String) {
    let answer = assets
        .route(&get(path), false)
        .expect("no worker: always an answer");
    let location = answer.headers.iter().find(|(n, _)| n == "location");
    let text = match location {
        Some((_, to)) => to.clone(),
        None => String::from_utf8(answer.body.to_vec()).unwrap(),
    };
    (answer.status, text)
}

const SITE: &[(&str, &str)] = &[
    ("/index.html", "home"),
    ("/about.html", "about"),
    ("/docs/index.html", "docs"),
    ("/docs/404.html", "docs missing"),
    ("/404.html", "missing"),
    ("/logo.svg", "<svg/>"),
];

#[test]
fn html_handling_finds_pages_and_redirects_to_their_canonical_path() {
    let auto = assets(SITE, Options::default());
    for (path, want) in [
        ("/", (200, "home")),
        ("/about", (200, "about")),
        ("/about.html", (307, "/about")),
        ("/about/", (307, "/about")),
        ("/docs", (307, "/docs/")),
        ("/docs/", (200, "docs")),
        ("/docs/index.html", (307, "/docs/")),
        ("/index.html?a=1", (307, "/?a=1")),
        ("/logo.svg", (200, "<svg/>")),
    ] {
        assert_eq!(served(&auto, path), (want.0, want.1.to_string()), "{path}");
    }
    let force = assets(
        SITE,
        Options {
            html_handling: HtmlHandling::ForceTrailingSlash,
            ..Options::default()
        },
    );
    assert_eq!(served(&force, "/about"), (307, "/about/".into()));
    assert_eq!(served(&force, "/about/"), (200, "about".into()));
    assert_eq!(served(&force, "/docs"), (307, "/docs/".into()));
    let drop = assets(
        SITE,
        Options {
            html_handling: HtmlHandling::DropTrailingSlash,
            ..Options::default()
        },
    );
    assert_eq!(served(&drop, "/docs/"), (307, "/docs".into()));
    assert_eq!(served(&drop, "/docs"), (200, "docs".into()));
    assert_eq!(served(&drop, "/"), (200, "home".into()));
    let none = assets(
        SITE,
        Options {
            html_handling: HtmlHandling::None,
            ..Options::default()
        },
    );
    assert_eq!(served(&none, "/about").0, 404);
    assert_eq!(served(&none, "/about.html"), (200, "about".into()));
}

#[test]
fn not_found_handling_serves_the_app_or_the_nearest_404_page() {
    let plain = assets(SITE, Options::default());
    assert_eq!(served(&plain, "/nothing"), (404, "Not Found".into()));
    let spa = assets(
        SITE,
        Options {
            not_found_handling: NotFoundHandling::SinglePageApplication,
            ..Options::default()
        },
    );
    assert_eq!(served(&spa, "/users/7"), (200, "home".into()));
    let pages = assets(
        SITE,
        Options {
            not_found_handling: NotFoundHandling::NotFoundPage,
            ..Options::default()
        },
    );
    assert_eq!(served(&pages, "/docs/a/b"), (404, "docs missing".into()));
    assert_eq!(served(&pages, "/blog/x"), (404, "missing".into()));
}

#[test]
fn beside_a_worker_the_worker_takes_what_no_file_answers() {
    let spa = assets(
        SITE,
        Options {
            not_found_handling: NotFoundHandling::SinglePageApplication,
            ..Options::default()
        },
    );
    assert!(spa.route(&get("/about"), true).is_some());
    assert!(spa.route(&get("/api/users"), true).is_none());
    let post = AssetRequest::new("POST", "/about", None, |_| None);
    assert!(
        spa.route(&post, true).is_none(),
        "other methods: the worker"
    );
    assert_eq!(spa.route(&post, false).unwrap().status, 405);
    // A browser loading a page of the app gets the app, as Cloudflare's navigation rule says.
    let navigate = AssetRequest::new("GET", "/users/7", None, |h| {
        (h == "sec-fetch-mode").then_some("navigate")
    });
    assert_eq!(spa.route(&navigate, true).unwrap().status, 200);
    // The binding applies the not-found handling too.
    assert_eq!(spa.fetch(&get("/users/7")).status, 200);

    let first = |rule: RunWorkerFirst| {
        assets(
            SITE,
            Options {
                run_worker_first: rule,
                ..Options::default()
            },
        )
    };
    assert!(
        first(RunWorkerFirst::Always(true))
            .route(&get("/about"), true)
            .is_none()
    );
    assert!(
        first(RunWorkerFirst::Always(true))
            .route(&get("/about"), false)
            .is_some()
    );
    let rules = first(RunWorkerFirst::Rules(vec![
        "/docs/*".into(),
        "!/docs/index.html".into(),
    ]));
    assert!(rules.route(&get("/docs/a/b"), true).is_none());
    assert_eq!(
        rules.route(&get("/docs/index.html"), true).unwrap().status,
        307
    );
    assert_eq!(rules.route(&get("/about"), true).unwrap().status, 200);
}

#[test]
fn etags_answer_304_and_private_requests_are_not_marked_cacheable() {
    let site = assets(SITE, Options::default());
    let first = site.route(&get("/logo.svg"), false).unwrap();
    let header = |answer: &Answer, name: &str| {
        answer
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header(&first, "content-type").unwrap(), "image/svg+xml");
    let etag = header(&first, "etag").unwrap();
    let tags = format!("\"other\", W/{etag}");
    let again = AssetRequest::new("GET", "/logo.svg", None, |h| {
        (h == "if-none-match").then_some(tags.as_str())
    });
    let again = site.route(&again, false).unwrap();
    assert_eq!((again.status, again.body.len()), (304, 0));
    let private = AssetRequest::new("GET", "/logo.svg", None, |h| {
        (h == "authorization").then_some("Bearer x")
    });
    let private = site.route(&private, false).unwrap();
    assert_eq!(header(&private, "cache-control"), None);
}

#[test]
fn assetsignore_and_wranglers_own_files_are_left_out() {
    let site = assets(
        &[
            ("/index.html", "home"),
            ("/.assetsignore", "# comment\n*.map\nprivate/\n/top.txt\n"),
            ("/_headers", "/*\n  X-Frame-Options: DENY\n"),
            ("/app.js", "js"),
            ("/app.js.map", "map"),
            ("/private/key", "secret"),
            ("/top.txt", "top"),
            ("/deep/top.txt", "deep"),
        ],
        Options::default(),
    );
    let mut paths: Vec<_> = site.files.keys().cloned().collect();
    paths.sort();
    assert_eq!(paths, ["/app.js", "/deep/top.txt", "/index.html"]);
}

#[test]
fn bad_bundles_and_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    let (bundle, _) = Assets::bundle(dir.path(), &Options::default()).unwrap();
    for bad in [
        b"not a bundle".to_vec(),
        bundle[..bundle.len() - 1].to_vec(),
        [&bundle[..], b"x"].concat(),
    ] {
        assert!(Assets::open(bad.into()).is_err());
    }
    for rules in [
        vec![],
        vec!["api/*".to_string()],
        vec!["!/api/*".to_string()],
        vec!["/a".to_string(), "/a".to_string()],
    ] {
        let options = Options {
            run_worker_first: RunWorkerFirst::Rules(rules.clone()),
            ..Options::default()
        };
        assert!(Assets::bundle(dir.path(), &options).is_err(), "{rules:?}");
    }
    let options = Options {
        binding: Some("NOT OK".into()),
        ..Options::default()
    };
    assert!(Assets::bundle(dir.path(), &options).is_err());
}

#[test]
fn redirect_rules_match_as_cloudflares() {
    use rules::{Redirected, Redirects};
    let text = "/a/exact /static 301\n/a/exact /ignored\n/a/* /dyn/:splat\n/b/* /bdyn\n\
                /b/exact /never 301\n/p/:x/:y /q/:y/:x 307\n/x https://h.example/?k=v\n\
                /loop/* /index.html\n/one two three four\n";
    let (rules, invalid) = Redirects::parse(text, HtmlHandling::AutoTrailingSlash);
    // The duplicate, the loop and the four-token line are refused, with their line numbers.
    assert_eq!(invalid.len(), 3, "{invalid:?}");
    assert!(invalid[0].starts_with("line 2:"), "{invalid:?}");
    let to = |status, location: &str| Some(Redirected::To(status, location.to_string()));
    // Exact paths first; once a pattern came, later rules are tried in order with it.
    assert_eq!(rules.lookup("/a/exact", None), to(301, "/static"));
    assert_eq!(rules.lookup("/b/exact", None), to(302, "/bdyn"));
    assert_eq!(rules.lookup("/a/b/c", Some("q=1")), to(302, "/dyn/b/c?q=1"));
    assert_eq!(rules.lookup("/p/1/2", None), to(307, "/q/2/1"));
    assert_eq!(rules.lookup("/p/1/2/3", None), None);
    // A destination with a query keeps its own.
    assert_eq!(
        rules.lookup("/x", Some("z=9")),
        to(302, "https://h.example/?k=v")
    );
}

#[test]
fn header_rules_merge_in_file_order() {
    use rules::CustomHeaders;
    let text = "/*\n  A: 1\n  B: x\nnot-a-header-line\n/s/:name\n  ! B\n  A: 2\n  C: :name\n/s/:name\n  D: later\n";
    let (rules, invalid) = CustomHeaders::parse(text);
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    let mut headers = vec![("a".to_string(), "own".to_string())];
    rules.apply("/s/me", &mut headers);
    // A later rule for the same path replaced the first in its place (no C, B not removed).
    assert_eq!(
        headers,
        [
            ("a".into(), "1".into()),
            ("b".into(), "x".into()),
            ("d".into(), "later".into())
        ]
        .map(|(n, v): (String, String)| (n, v))
        .to_vec()
    );
}
