//! misbehave: a test class that breaks the rules on request, to show the runtime survives.
//!
//! - `/loop`: spins forever (the CPU limit must stop it)
//! - `/alloc`: allocates and touches memory without bound (the memory limit must stop it)
//! - `/trap`: panics
//! - `/log`: prints one line to stdout and one to stderr
//! - `/events`: how many events this instance has run (shows when the instance was reset)
//! - `/bump`: writes the key "bumps" then, with `?trap`, panics after the write

use std::hint::black_box;

use duro_sdk::{DurableObject, Request, Response, Result, State, json};

struct Misbehave {
    state: State,
    events: u64,
}

impl DurableObject for Misbehave {
    fn new(state: State) -> Self {
        Misbehave { state, events: 0 }
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
            "/log" => {
                println!("hello from the guest's stdout");
                eprintln!("hello from the guest's stderr");
                Ok(Response::text(200, "logged"))
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
