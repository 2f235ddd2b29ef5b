//! Soak: mixed load from several tenants on one `prism serve` over loopback
//! (function invocations, actor calls, actors made and killed, object
//! uploads, downloads and deletes, jobs), checking every answer, then that nothing was lost and
//! that the server's memory after warm-up stayed flat.
//! `PRISM_SOAK_SECONDS` sets how long (default 60); `tests/soak/run.sh`
//! runs it longer and prints the figures for docs/benchmarks.md.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::guest;
use crate::service::{KeepAlive, Server, rss_kib};

const TENANTS: usize = 3;
/// Client connections per tenant.
const CLIENTS: usize = 2;
/// Memory the server may grow by after warm-up.
const GROWTH_BOUND_KIB: u64 = 48 * 1024;

/// What one client did.
#[derive(Default, Debug)]
struct Done {
    invocations: u64,
    actor_calls: u64,
    actors_killed: u64,
    objects: u64,
    jobs: u64,
}

#[test]
fn mixed_load_from_several_tenants_loses_nothing_and_memory_stays_flat() {
    let seconds: u64 = std::env::var("PRISM_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let server = Server::start(&["--quota-requests-per-second", "1000000"]);
    let tenants: Vec<(String, String)> = (0..TENANTS)
        .map(|i| {
            let token = server.tenant(&format!("soak{i}"));
            server.deploy(&token, guest!(SERVICE), "svc");
            let actor =
                server.json("POST", "/v1/actors", &token, &json!({"module": "svc", "class": "Tally", "args": [0]}));
            let actor = format!("/v1/actors/{}/methods/add", actor.json()["id"].as_str().unwrap());
            (token, actor)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (warm, done) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..TENANTS * CLIENTS)
            .map(|c| {
                let (token, actor) = &tenants[c % TENANTS];
                let addr = &server.addr;
                s.spawn(move || client(addr, token, actor, c as u64, deadline))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds / 6));
        let warm = rss_kib(&server);
        (warm, clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>())
    });
    let after = rss_kib(&server);
    let total = |f: fn(&Done) -> u64| done.iter().map(f).sum::<u64>();
    eprintln!(
        "soak: {seconds} s, {} invocations, {} actor calls, {} actors made and killed, {} objects, {} jobs; \
         RSS {warm} KiB after warm-up, {after} KiB at the end",
        total(|d| d.invocations),
        total(|d| d.actor_calls),
        total(|d| d.actors_killed),
        total(|d| d.objects),
        total(|d| d.jobs),
    );
    for (t, (token, actor)) in tenants.iter().enumerate() {
        let calls: u64 = done.iter().skip(t).step_by(TENANTS).map(|d| d.actor_calls).sum();
        let total = server.json("POST", actor, token, &json!([0])).json();
        assert_eq!(total, json!({"result": calls}), "tenant {t}'s actor lost calls");
    }
    assert!(after < warm + GROWTH_BOUND_KIB, "the server grew from {warm} KiB to {after} KiB under load");
}

/// One client's loop until `deadline`, checking every answer.
fn client(addr: &str, token: &str, actor: &str, id: u64, deadline: Instant) -> Done {
    let mut http = KeepAlive::open(addr, token);
    let mut done = Done::default();
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        i += 1;
        let (a, b) = (id as i64, i as i64);
        let (status, body) = http.post("/v1/modules/svc/functions/add", &format!("[{a}, {b}]"));
        assert_eq!((status, body), (200, format!("{{\"result\":{}}}\n", a + b)));
        done.invocations += 1;
        let (status, body) = http.post(actor, "[1]");
        assert_eq!(status, 200, "{body}");
        done.actor_calls += 1;
        if i.is_multiple_of(4) {
            let data: Vec<u8> = (0..4096u64).map(|k| (k * 31 + i + id) as u8).collect();
            let (status, body) = http.send("POST", "/v1/objects", &data);
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            let r = serde_json::from_slice::<Value>(&body).unwrap()["ref"].as_str().unwrap().to_string();
            assert_eq!(http.send("GET", &format!("/v1/objects/{r}"), b""), (200, data));
            assert_eq!(http.send("DELETE", &format!("/v1/objects/{r}"), b"").0, 204);
            done.objects += 1;
        }
        if i.is_multiple_of(50) {
            let (status, body) =
                http.post("/v1/actors", &format!(r#"{{"module": "svc", "class": "Tally", "args": [{b}]}}"#));
            assert_eq!(status, 201, "{body}");
            let made = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
            let (status, body) = http.post(&format!("/v1/actors/{made}/methods/add"), "[1]");
            assert_eq!((status, body), (200, format!("{{\"result\":{}}}\n", b + 1)));
            assert_eq!(http.send("DELETE", &format!("/v1/actors/{made}"), b"").0, 204);
            done.actors_killed += 1;
        }
        if i.is_multiple_of(200) {
            let (status, body) = http.post("/v1/jobs", r#"{"module": "svc", "args": ["soak"]}"#);
            assert_eq!(status, 201, "{body}");
            let job = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
            let (status, log) = http.send("GET", &format!("/v1/jobs/{job}/logs?follow=true"), b"");
            assert_eq!((status, String::from_utf8(log).unwrap()), (200, "args [\"soak\"]\nadd 5\n".to_string()));
            done.jobs += 1;
        }
    }
    done
}
