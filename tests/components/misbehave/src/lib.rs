//! misbehave: a test class that breaks the rules on request, to show the runtime survives.
//!
//! - `/loop`: spins forever (the CPU limit must stop it)
//! - `/alloc`: allocates and touches memory without bound (the memory limit must stop it)
//! - `/trap`: panics
//! - `/log`: prints one line to stdout and one to stderr
//! - `/events`: how many events this instance has run (shows when the instance was reset)
//! - `/bump`: writes the key "bumps" then, with `?trap`, panics after the write
//! - `/hold?mib=N&ms=M`: allocates and touches N MiB more, keeps them, then spins M ms
//! - `/big?mib=N`: answers with a body of N MiB
//! - `/write?kib=N`: writes N KiB in 100 KiB values in one event (a storage error answers 500)

use std::hint::black_box;

use duro_sdk::{DurableObject, Request, Response, Result, State, json};

struct Misbehave {
    state: State,
    events: u64,
    held: Vec<Vec<u8>>,
}

fn param(request: &Request, name: &str) -> usize {
    request
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

impl DurableObject for Misbehave {
    fn new(state: State) -> Self {
        Misbehave {
            state,
            events: 0,
            held: Vec::new(),
        }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        self.events += 1;
        match request.path() {
            "/loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "/alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[black_box(4096)] = 1;
                    hoard.push(black_box(chunk));
                }
            }
            "/trap" => panic!("trap requested"),
            "/fail" => Err(duro_sdk::Error::http(500, "failed on purpose")),
            "/env" => {
                // `/env?NAME`: the var or secret NAME.
                let name = request.query().unwrap_or_default();
                Response::json(&json!({ "value": duro_sdk::env::get(name) }))
            }
            "/say" => {
                // The request's body as one line of the guest's stdout, whatever it holds.
                println!("{}", String::from_utf8_lossy(request.body()));
                Ok(Response::text(200, "said"))
            }
            "/log" => {
                println!("hello from the guest's stdout");
                eprintln!("hello from the guest's stderr");
                Ok(Response::text(200, "logged"))
            }
            "/hold" => {
                for _ in 0..param(&request, "mib") {
                    let mut chunk = vec![1u8; 1 << 20];
                    chunk[black_box(4096)] = 2;
                    self.held.push(black_box(chunk));
                }
                let until = std::time::Instant::now()
                    + std::time::Duration::from_millis(param(&request, "ms") as u64);
                while std::time::Instant::now() < until {
                    black_box(0);
                }
                Response::json(&json!({ "held_mib": self.held.len() }))
            }
            "/big" => Ok(Response::new(200).with_body(vec![b'x'; param(&request, "mib") << 20])),
            "/write" => {
                let storage = self.state.storage();
                let value = vec![0u8; 100 * 1024];
                for i in 0..param(&request, "kib").div_ceil(100) {
                    storage.put_bytes(&format!("w{i}"), &value)?;
                }
                Ok(Response::text(200, "written"))
            }
            "/events" => Response::json(&json!({ "events": self.events })),
            "/bump" => {
                let storage = self.state.storage();
                let bumps = storage.get::<u64>("bumps")?.unwrap_or(0) + 1;
                storage.put("bumps", &bumps)?;
                if request.query() == Some("trap") {
                    panic!("trap after a write");
                }
                Response::json(&json!({ "bumps": bumps }))
            }
            _ => Ok(Response::text(404, "not found")),
        }
    }
}

duro_sdk::export!(Misbehave);
