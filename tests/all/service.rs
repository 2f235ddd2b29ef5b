//! `prism serve`, black box: the real binary on a loopback port, driven
//! over HTTP and through the CLI client.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Run, guest, prism_with_env};

/// A running server on a fresh data directory; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start(extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
            .args(extra)
            .env("PRISM_DATA_DIR", dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line}")).to_string();
        Server { child, addr, dir }
    }

    /// `prism ARGS…` against this server as `token`'s tenant.
    fn cli(&self, token: &str, args: &[&str]) -> Run {
        self.cli_with_env(token, args, &[])
    }

    /// [`Server::cli`] with more environment variables.
    pub(crate) fn cli_with_env(&self, token: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let server = format!("http://{}", self.addr);
        let mut env = env.to_vec();
        env.extend([("PRISM_SERVER", server.as_str()), ("PRISM_TOKEN", token)]);
        prism_with_env(self.dir.path(), args, &env)
    }

    /// A new tenant's token.
    pub(crate) fn tenant(&self, name: &str) -> String {
        let run = self.cli("", &["tenant", "create", name]);
        assert!(run.success, "{}", run.stderr);
        run.stdout.trim().to_string()
    }

    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        request(&self.addr, method, path, token, headers, body)
    }

    pub(crate) fn json(&self, method: &str, path: &str, token: &str, body: &Value) -> Answer {
        self.request(method, path, token, &[("content-type", "application/json")], body.to_string().as_bytes())
    }

    pub(crate) fn deploy(&self, token: &str, wasm: &str, name: &str) -> Value {
        let answer =
            self.request("POST", &format!("/v1/modules?name={name}"), token, &[], &std::fs::read(wasm).unwrap());
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer.json()
    }

    fn kill9(mut self) -> tempfile::TempDir {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// The error's code and message, asserting the status.
    pub(crate) fn error(&self, status: u16) -> (String, String) {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        (v["error"]["code"].as_str().unwrap().to_string(), v["error"]["message"].as_str().unwrap().to_string())
    }
}

/// One HTTP/1.1 request on its own connection.
fn request(addr: &str, method: &str, path: &str, token: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    if !token.is_empty() {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw = &raw[line + 4 + size..];
    }
}

#[test]
fn square_deploys_and_invokes_through_the_cli() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let deployed = server.cli(&token, &["deploy", guest!(SQUARE)]);
    assert!(deployed.success, "{}", deployed.stderr);
    let info: Value = serde_json::from_str(&deployed.stdout).unwrap();
    assert_eq!(
        info["functions"],
        json!([{"name": "square", "params": [{"name": "x", "type": "i64"}], "returns": "i64"}])
    );
    let invoked = server.cli(&token, &["invoke", "square", "square", "7"]);
    assert!(invoked.success, "{}", invoked.stderr);
    assert_eq!(invoked.stdout.trim(), "49");
    let refused = server.cli("prism_wrong", &["invoke", "square", "square", "7"]);
    assert!(!refused.success, "{}", refused.stdout);
    assert!(refused.stderr.contains("the token is not valid (HTTP 401"), "{}", refused.stderr);
    let bad_arg = server.cli(&token, &["invoke", "square", "square", "seven"]);
    assert!(bad_arg.stderr.contains("argument 0 (`seven`) is not JSON"), "{}", bad_arg.stderr);
    // The same by id, over HTTP.
    let id = info["id"].as_str().unwrap();
    let answer = server.json("POST", &format!("/v1/modules/{id}/functions/square"), &token, &json!([9]));
    assert_eq!(answer.json(), json!({"result": 81}));
    let listed = server.request("GET", "/v1/modules", &token, &[], b"").json();
    assert_eq!(listed["modules"][0]["id"], info["id"]);
    assert_eq!(server.request("GET", &format!("/v1/modules/{id}"), &token, &[], b"").json(), info);
    // Deleted: gone from the list, and calls say so.
    assert_eq!(server.request("DELETE", "/v1/modules/square", &token, &[], b"").status, 204);
    assert_eq!(server.request("GET", "/v1/modules", &token, &[], b"").json(), json!({"modules": []}));
    let (_, message) =
        server.json("POST", &format!("/v1/modules/{id}/functions/square"), &token, &json!([9])).error(404);
    assert_eq!(message, format!("no module `{id}`"));
    assert_eq!(server.request("GET", "/healthz", "", &[], b"").json(), json!({"status": "ok"}));
    // A path is percent-decoded, but `+` in it is a plus (in a query, a space).
    server.deploy(&token, guest!(SQUARE), "a%2Bb%20c");
    let answer = server.json("POST", "/v1/modules/a+b%20c/functions/square", &token, &json!([3]));
    assert_eq!(answer.json(), json!({"result": 9}));
}

#[test]
fn openapi_document_is_served_and_names_every_endpoint() {
    let server = Server::start(&[]);
    let served = server.request("GET", "/v1/openapi.json", "", &[], b"").json();
    let file: Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    assert_eq!(served, file);
    // Every route of the router (host/service/src/api.rs) is documented.
    let paths = file["paths"].as_object().unwrap();
    for route in [
        "/healthz",
        "/v1/modules",
        "/v1/modules/{module}",
        "/v1/modules/{module}/functions/{function}",
        "/v1/objects",
        "/v1/objects/{ref}",
        "/v1/objects/{ref}/meta",
        "/v1/actors",
        "/v1/actors/{actor}",
        "/v1/actors/{actor}/methods/{method}",
        "/v1/jobs",
        "/v1/jobs/{job}",
        "/v1/jobs/{job}/logs",
        "/v1/jobs/{job}/stop",
    ] {
        assert!(paths.contains_key(route), "{route} is not in docs/openapi.json");
    }
    // As many operations as the router has routes.
    let api = include_str!("../../host/service/src/api.rs");
    let operations: usize =
        paths.values().map(|p| p.as_object().unwrap().keys().filter(|k| *k != "parameters").count()).sum();
    assert_eq!(api.matches("(&Method::").count(), operations, "a route was added or removed: update docs/openapi.json");
}

#[test]
fn bad_input_gets_a_precise_4xx_and_stores_nothing() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let upload = |bytes: &[u8]| server.request("POST", "/v1/modules?name=bad", &token, &[], bytes);
    let (code, message) = upload(b"hello").error(422);
    assert_eq!(code, "invalid_module");
    assert!(message.contains("not a WebAssembly file"), "{message}");
    let (_, message) = upload(b"\0asm\x01\0\0\0").error(422);
    assert!(message.contains("core WebAssembly module"), "{message}");
    let (_, message) = upload(&std::fs::read(guest!(PLAIN_COMMAND)).unwrap()).error(422);
    assert!(message.contains("does not export `prism:core/worker"), "{message}");
    assert_eq!(server.request("GET", "/v1/modules", &token, &[], b"").json(), json!({"modules": []}));

    let module = server.deploy(&token, guest!(SERVICE), "svc");
    // Signatures as the source spells them.
    let signatures: Vec<String> = module["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let params: Vec<String> =
                f["params"].as_array().unwrap().iter().map(|p| format!("{}: {}", p["name"], p["type"])).collect();
            format!("{}({}) -> {}", f["name"], params.join(", "), f["returns"]).replace('"', "")
        })
        .collect();
    assert!(signatures.contains(&"fail(message: String) -> Result<i64, String>".to_string()), "{signatures:?}");
    assert!(signatures.contains(&"sum_bytes(data: prism::View) -> u64".to_string()), "{signatures:?}");
    let invoke =
        |f: &str, body: &[u8]| server.request("POST", &format!("/v1/modules/svc/functions/{f}"), &token, &[], body);
    let (code, message) = invoke("nope", b"[]").error(404);
    assert_eq!(code, "not_found");
    assert!(message.contains("no function `nope`") && message.contains("`add`"), "{message}");
    let (code, message) = invoke("add", b"[1, 2, 3]").error(400);
    assert_eq!(code, "invalid_argument");
    assert_eq!(message, "`add(a: i64, b: i64) -> i64` takes 2 argument(s), got 3");
    let (_, message) = invoke("add", b"[1, \"two\"]").error(422);
    assert!(message.contains("argument `b` of `add` does not decode as `i64`"), "{message}");
    let (code, message) = invoke("add", b"[1, ").error(400);
    assert_eq!(code, "bad_request");
    assert!(message.contains("not valid JSON"), "{message}");
    let missing = "ab".repeat(32);
    let (_, message) = invoke("add", format!("[{{\"$ref\": \"{missing}\"}}, 1]").as_bytes()).error(404);
    assert!(message.contains(&missing), "{message}");
    let (code, _) = server.request("GET", &format!("/v1/objects/{missing}"), &token, &[], b"").error(404);
    assert_eq!(code, "not_found");
    let (_, message) = server.request("GET", "/v1/objects/xyz", &token, &[], b"").error(400);
    assert!(message.contains("not an object ref"), "{message}");
    let (code, _) = server.request("GET", "/v1/nothing", &token, &[], b"").error(404);
    assert_eq!(code, "not_found");
    // Found by schemathesis: an endpoint's other methods are 405 with
    // `Allow`, not 404; a `+` sign is not a hex digit.
    let trace = server.request("TRACE", "/v1/jobs", &token, &[], b"");
    assert!(trace.headers.contains("allow: GET, POST"), "{}", trace.headers);
    let (code, message) = trace.error(405);
    assert_eq!((code.as_str(), message.as_str()), ("method_not_allowed", "`/v1/jobs` answers GET, POST, not TRACE"));
    assert_eq!(server.request("PUT", "/healthz", "", &[], b"").status, 405);
    let (_, message) = server.request("GET", &format!("/v1/objects/{}", "+a".repeat(32)), &token, &[], b"").error(400);
    assert!(message.contains("not an object ref"), "{message}");

    // Auth.
    let (code, _) = server.request("GET", "/v1/modules", "", &[], b"").error(401);
    assert_eq!(code, "unauthorized");
    let (_, message) = server.request("GET", "/v1/modules", "prism_bogus", &[], b"").error(401);
    assert!(message.contains("not valid"), "{message}");

    // An oversize body: 413 naming the quota, nothing kept.
    let set = server.cli("", &["tenant", "quota", "alice", "--upload-bytes", "1"]);
    assert!(set.success, "{}", set.stderr);
    let (code, message) = server.request("POST", "/v1/objects", &token, &[], &vec![7u8; 2 << 20]).error(413);
    assert_eq!(code, "payload_too_large");
    assert!(message.contains("`upload_bytes`"), "{message}");
    // JSON arguments are bounded tighter: large data travels as objects.
    let bob = server.tenant("bob");
    server.deploy(&bob, guest!(SERVICE), "svc");
    let huge = format!("[{}1]", "1,".repeat(5 << 20));
    let (_, message) = server.request("POST", "/v1/modules/svc/functions/add", &bob, &[], huge.as_bytes()).error(413);
    assert!(message.contains("larger than 8388608 bytes") && message.contains("POST /v1/objects"), "{message}");

    // Traps are task errors; the server goes on.
    let (code, message) = invoke("fail", b"[\"no luck\"]").error(422);
    assert_eq!(code, "task_failed");
    assert!(message.contains("no luck"), "{message}");
    assert_eq!(invoke("add", b"[2, 2]").json(), json!({"result": 4}));
}

#[test]
fn limits_end_calls_with_errors_naming_the_quota() {
    let server = Server::start(&["--quota-cpu-deadline-ms", "300", "--quota-memory-per-instance", "64"]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    let invoke = |f: &str| server.request("POST", &format!("/v1/modules/svc/functions/{f}"), &token, &[], b"[]");
    // A call past a per-call quota could never succeed as it is: 413.
    let (code, message) = invoke("forever").error(413);
    assert_eq!(code, "quota_exceeded");
    assert!(message.contains("cpu deadline") && message.contains("`cpu_deadline_ms`"), "{message}");
    let (code, message) = invoke("hog").error(413);
    assert_eq!(code, "quota_exceeded");
    assert!(message.contains("memory limit of 64 MiB") && message.contains("`memory_per_instance`"), "{message}");
    // Overrides apply to a running tenant at once.
    assert!(server.cli("", &["tenant", "quota", "alice", "--stored-bytes", "1", "--cpu-deadline-ms", "100"]).success);
    let (_, message) = server.request("POST", "/v1/objects", &token, &[], &vec![1u8; 3 << 20]).error(413);
    assert!(message.contains("`stored_bytes`"), "{message}");
    // An upload that announces more than fits is refused before it is sent.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /v1/objects HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: 3000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 4096];
    let n = stream.read(&mut answer).expect("an answer without the body");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("`stored_bytes`"), "{answer}");
    let (_, message) = invoke("forever").error(413);
    assert!(message.contains("cpu deadline of 100ms"), "{message}");
    let bob = server.tenant("bob");
    // Request rate.
    assert!(server.cli("", &["tenant", "quota", "bob", "--requests-per-second", "2"]).success);
    let statuses: Vec<u16> = (0..5).map(|_| server.request("GET", "/v1/modules", &bob, &[], b"").status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(invoke("add").status, 400, "alice is not limited by bob's rate (her call has too few arguments)");
}

#[test]
fn concurrent_calls_over_quota_get_429() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    assert!(server.cli("", &["tenant", "quota", "alice", "--concurrent-tasks", "1"]).success);
    server.deploy(&token, guest!(SERVICE), "svc");
    let slow = server.json("POST", "/v1/modules/svc/functions/spin?result=ref", &token, &json!([1500]));
    assert_eq!(slow.status, 202, "{}", slow.text());
    let (code, message) = server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 2])).error(429);
    assert_eq!(code, "quota_exceeded");
    assert!(message.contains("`concurrent_tasks`"), "{message}");
    // Once the slow call is done, calls go through again.
    let r = slow.json()["ref"].as_str().unwrap().to_string();
    assert_eq!(server.request("GET", &format!("/v1/objects/{r}"), &token, &[], b"").json(), json!(1500));
    // (Its slot is given back by the task that waited for it, as it wakes.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answer = server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 2]));
    while answer.status == 429 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        answer = server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 2]));
    }
    assert_eq!(answer.json()["result"], 3, "{}", answer.text());
}

#[test]
fn a_client_that_hangs_up_frees_its_call() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let server = Server::start(&["--metrics-listen", &port]);
    let token = server.tenant("alice");
    assert!(server.cli("", &["tenant", "quota", "alice", "--concurrent-tasks", "1"]).success);
    server.deploy(&token, guest!(SERVICE), "svc");
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let body = "[60000]";
    let head = format!(
        "POST /v1/modules/svc/functions/spin HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // Watched without a call of our own, which could take the only slot first.
    let started = || {
        let text = request(&port, "GET", "/metrics", "", &[], b"").text();
        text.contains("prism_tasks_total{tenant=\"alice\",event=\"started\"} 1")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started() {
        assert!(Instant::now() < deadline, "the long call never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let add = || server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 2]));
    assert_eq!(add().status, 429, "the long call holds the only slot");
    // Hanging up ends the call: the quota is free long before its 60 s.
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = add();
        if answer.status == 200 {
            assert_eq!(answer.json(), json!({"result": 3}));
            break;
        }
        assert!(Instant::now() < deadline, "the abandoned call still holds the quota: {}", answer.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tenants_never_see_each_other() {
    let server = Server::start(&[]);
    let alice = server.tenant("alice");
    let bob = server.tenant("bob");
    let module = server.deploy(&alice, guest!(SERVICE), "svc")["id"].as_str().unwrap().to_string();
    let object =
        server.request("POST", "/v1/objects", &alice, &[], b"secret").json()["ref"].as_str().unwrap().to_string();
    let actor = server.json(
        "POST",
        "/v1/actors",
        &alice,
        &json!({"module": "svc", "class": "Tally", "args": [1], "name": "t"}),
    );
    assert_eq!(actor.status, 201, "{}", actor.text());
    let actor = actor.json()["id"].as_str().unwrap().to_string();
    let job =
        server.json("POST", "/v1/jobs", &alice, &json!({"module": "svc"})).json()["id"].as_str().unwrap().to_string();

    assert_eq!(server.request("GET", "/v1/modules", &bob, &[], b"").json(), json!({"modules": []}));
    assert_eq!(server.request("GET", "/v1/jobs", &bob, &[], b"").json(), json!({"jobs": []}));
    // Alice's things and made-up ones get the same answer, but for the id.
    let made_up = |id: &str| id.chars().rev().collect::<String>();
    for (path, id) in [
        ("/v1/modules/{}", &module),
        ("/v1/modules/{}/functions/add", &module),
        ("/v1/objects/{}", &object),
        ("/v1/objects/{}/meta", &object),
        ("/v1/jobs/{}", &job),
        ("/v1/jobs/{}/logs", &job),
    ] {
        let method = if path.contains("functions") { "POST" } else { "GET" };
        let theirs = server.request(method, &path.replace("{}", id), &bob, &[], b"[1, 2]");
        let missing = server.request(method, &path.replace("{}", &made_up(id)), &bob, &[], b"[1, 2]");
        assert_eq!(theirs.status, 404, "{path}: {}", theirs.text());
        assert_eq!(theirs.status, missing.status, "{path}");
        assert_eq!(theirs.text().replace(id.as_str(), "ID"), missing.text().replace(&made_up(id), "ID"), "{path}");
    }
    let call = server.json("POST", &format!("/v1/actors/{actor}/methods/add"), &bob, &json!([1]));
    let call_missing = server.json("POST", &format!("/v1/actors/{}/methods/add", made_up(&actor)), &bob, &json!([1]));
    assert_eq!(call.status, call_missing.status, "{}", call.text());
    assert_eq!(call.text().replace(&actor, "ID"), call_missing.text().replace(&made_up(&actor), "ID"));
    assert_eq!(server.request("GET", "/v1/actors?name=t", &bob, &[], b"").status, 404);
    assert_eq!(server.request("DELETE", &format!("/v1/actors/{actor}"), &bob, &[], b"").status, 404);
    // A guest of bob's passing alice's ref.
    server.deploy(&bob, guest!(SERVICE), "svc");
    let (_, message) =
        server.json("POST", "/v1/modules/svc/functions/sum_bytes", &bob, &json!([{"$ref": object}])).error(404);
    assert!(message.contains("no object"), "{message}");
    // Identical bytes uploaded by both are two objects, each only its owner's.
    let bobs = server.request("POST", "/v1/objects", &bob, &[], b"secret").json()["ref"].as_str().unwrap().to_string();
    assert_eq!(bobs, object, "the id is the content's hash in each namespace");
    assert!(server.request("DELETE", &format!("/v1/objects/{bobs}"), &bob, &[], b"").status == 204);
    assert_eq!(server.request("GET", &format!("/v1/objects/{object}"), &alice, &[], b"").body, b"secret");
    // Alice still has all her things.
    let answer = server.json("POST", &format!("/v1/actors/{actor}/methods/add"), &alice, &json!([2]));
    assert_eq!(answer.json(), json!({"result": 3}));
}

#[test]
fn objects_upload_download_ranges_meta_delete() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let put = server.cli(&token, &["object", "put", &write_temp(&server.dir, &data)]);
    assert!(put.success, "{}", put.stderr);
    let r = put.stdout.trim().to_string();
    let out = server.dir.path().join("downloaded");
    let got = server.cli(&token, &["object", "get", &r, "-o", out.to_str().unwrap()]);
    assert!(got.success, "{}", got.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let missing = server.cli(&token, &["object", "get", &"0".repeat(64)]);
    assert!(
        !missing.success && missing.stderr.contains("no object") && missing.stderr.contains("404"),
        "{}",
        missing.stderr
    );
    let whole = server.request("GET", &format!("/v1/objects/{r}"), &token, &[], b"");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, data);
    let part = server.request("GET", &format!("/v1/objects/{r}"), &token, &[("range", "bytes=1000-1999")], b"");
    assert_eq!(part.status, 206, "{}", part.headers);
    assert_eq!(part.body, data[1000..2000]);
    assert!(part.headers.contains("content-range: bytes 1000-1999/300000"), "{}", part.headers);
    let tail = server.request("GET", &format!("/v1/objects/{r}"), &token, &[("range", "bytes=-10")], b"");
    assert_eq!(tail.body, data[data.len() - 10..]);
    let (code, _) =
        server.request("GET", &format!("/v1/objects/{r}"), &token, &[("range", "bytes=400000-")], b"").error(416);
    assert_eq!(code, "range_not_satisfiable");
    let (code, _) =
        server.request("GET", &format!("/v1/objects/{r}"), &token, &[("range", "bytes=9-1")], b"").error(416);
    assert_eq!(code, "range_not_satisfiable");
    for malformed in ["bytes=1-2,5-6", "bytes=+1-2", "items=1-2"] {
        let (code, message) =
            server.request("GET", &format!("/v1/objects/{r}"), &token, &[("range", malformed)], b"").error(400);
        assert_eq!(code, "bad_request");
        assert!(message.contains("is not one range"), "{message}");
    }
    let meta = server.request("GET", &format!("/v1/objects/{r}/meta"), &token, &[], b"").json();
    assert_eq!(meta, json!({"ref": r, "state": "ready", "kind": "bytes", "size": 300_000}));
    // A task reads it mapped.
    server.deploy(&token, guest!(SERVICE), "svc");
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    let answer = server.json("POST", "/v1/modules/svc/functions/sum_bytes", &token, &json!([{"$ref": r}]));
    assert_eq!(answer.json(), json!({"result": sum}));
    // A result kept by ref, fetched as JSON.
    let kept = server.json("POST", "/v1/modules/svc/functions/add?result=ref", &token, &json!([20, 22])).json();
    let kept = kept["ref"].as_str().unwrap();
    assert_eq!(server.request("GET", &format!("/v1/objects/{kept}"), &token, &[], b"").json(), json!(42));
    assert_eq!(server.request("DELETE", &format!("/v1/objects/{r}"), &token, &[], b"").status, 204);
    assert_eq!(server.request("GET", &format!("/v1/objects/{r}"), &token, &[], b"").status, 404);
}

#[test]
fn uploads_stream_into_the_store_and_a_cut_off_one_leaves_nothing() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 249) as u8).collect();
    // Chunked, so the server cannot know the size before the end.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /v1/objects HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {token}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in data.chunks(100_000) {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).unwrap();
        stream.write_all(chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut raw = String::new();
    BufReader::new(stream).read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");
    let chunked: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(chunked["size"], json!(data.len()));
    // The same bytes with a length: the same object.
    let whole = server.request("POST", "/v1/objects", &token, &[], &data).json();
    assert_eq!(whole, chunked);
    let r = whole["ref"].as_str().unwrap();
    assert_eq!(server.request("GET", &format!("/v1/objects/{r}"), &token, &[], b"").body, data);
    // The CLI streams both ways, in several chunks.
    let put = server.cli(&token, &["object", "put", &write_temp(&server.dir, &data)]);
    assert_eq!(put.stdout.trim(), r, "{}", put.stderr);
    let out = server.dir.path().join("downloaded");
    let got = server.cli(&token, &["object", "get", r, "-o", out.to_str().unwrap()]);
    assert!(got.success, "{}", got.stderr);
    assert!(std::fs::read(&out).unwrap() == data);
    let missing = server.dir.path().join("missing");
    let got = server.cli(&token, &["object", "get", &"0".repeat(64), "-o", missing.to_str().unwrap()]);
    assert!(!got.success && got.stderr.contains("404"), "{}", got.stderr);
    assert!(!missing.exists(), "no file for an error answer");
    // Cut off after 1 MB of the 4 announced: nothing is kept, no file is left.
    let files = || -> Vec<String> {
        let blobs = server.dir.path().join("tenants/alice/objects/blobs");
        let mut names: Vec<String> =
            std::fs::read_dir(blobs).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    let before = files();
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /v1/objects HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: 4000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&data[..1_000_000]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while files() == before {
        assert!(Instant::now() < deadline, "the upload is not streamed into a file");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stream);
    while files() != before {
        assert!(Instant::now() < deadline, "left behind: {:?} (before: {before:?})", files());
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the server goes on.
    assert_eq!(server.request("GET", &format!("/v1/objects/{r}/meta"), &token, &[], b"").status, 200);
}

fn write_temp(dir: &tempfile::TempDir, data: &[u8]) -> String {
    let path = dir.path().join(format!("upload-{}", data.len()));
    std::fs::write(&path, data).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn actors_are_created_called_found_and_killed() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let module = server.deploy(&token, guest!(SERVICE), "svc");
    // The module shows its classes as the source spells them.
    assert_eq!(
        module["classes"],
        json!([{
            "name": "Tally",
            "params": [{"name": "start", "type": "i64"}],
            "methods": [{"name": "add", "params": [{"name": "n", "type": "i64"}], "returns": "i64"}],
        }])
    );
    let created = server.json(
        "POST",
        "/v1/actors",
        &token,
        &json!({"module": "svc", "class": "Tally", "args": [10], "name": "tally"}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    for expected in [11, 12, 13] {
        let answer = server.json("POST", &format!("/v1/actors/{id}/methods/add"), &token, &json!([1]));
        assert_eq!(answer.json(), json!({"result": expected}));
    }
    let found = server.request("GET", "/v1/actors?name=tally", &token, &[], b"").json();
    assert_eq!(found["id"], json!(id));
    let dup = server.json(
        "POST",
        "/v1/actors",
        &token,
        &json!({"module": "svc", "class": "Tally", "args": [0], "name": "tally"}),
    );
    assert_eq!(dup.status, 409, "{}", dup.text());
    // JSON Schema's integers include `1.0` (schemathesis sends them); `1.5` is not one.
    let whole = json!({"module": "svc", "class": "Tally", "args": [0], "max_restarts": 1.0});
    assert_eq!(server.json("POST", "/v1/actors", &token, &whole).status, 201);
    let half = json!({"module": "svc", "class": "Tally", "args": [0], "max_restarts": 1.5});
    let (_, message) = server.json("POST", "/v1/actors", &token, &half).error(400);
    assert!(message.contains("expected a whole number from 0 to 4294967295"), "{message}");
    let (_, message) = server.json("POST", "/v1/actors", &token, &json!({"module": "svc", "class": "Nope"})).error(404);
    assert_eq!(message, "module `svc` has no actor class `Nope`; it has `Tally`");
    // Calls that cannot fit the signatures are refused before they run.
    let (_, message) =
        server.json("POST", "/v1/actors", &token, &json!({"module": "svc", "class": "Tally"})).error(400);
    assert_eq!(message, "`Tally(start: i64)` takes 1 argument(s), got 0");
    let (_, message) = server.json("POST", &format!("/v1/actors/{id}/methods/add"), &token, &json!([1, 2])).error(400);
    assert_eq!(message, "`Tally.add(n: i64) -> i64` takes 1 argument(s), got 2");
    let (_, message) = server.json("POST", &format!("/v1/actors/{id}/methods/sub"), &token, &json!([1])).error(404);
    assert_eq!(message, "actor class `Tally` has no method `sub`; it has `add`");
    assert_eq!(server.json("POST", &format!("/v1/actors/{id}/methods/add"), &token, &json!([1])).json()["result"], 14);
    assert_eq!(server.request("DELETE", &format!("/v1/actors/{id}"), &token, &[], b"").status, 204);
    let after = server.json("POST", &format!("/v1/actors/{id}/methods/add"), &token, &json!([1]));
    assert!(after.status >= 400, "{}", after.text());
}

#[test]
fn jobs_run_log_and_stop() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    let submitted = server.cli(&token, &["job", "submit", "svc", "--", "one", "two"]);
    assert!(submitted.success, "{}", submitted.stderr);
    let id = serde_json::from_str::<Value>(&submitted.stdout).unwrap()["id"].as_str().unwrap().to_string();
    // Following the log waits for the end.
    let logs = server.cli(&token, &["job", "logs", &id, "--follow"]);
    assert_eq!(logs.stdout, "args [\"one\", \"two\"]\nadd 5\n");
    let status = server.cli(&token, &["job", "status", &id]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap_or_else(|e| panic!("{e}: {}", status.stderr));
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["exit_code"], 0);
    let listed = server.request("GET", "/v1/jobs", &token, &[], b"").json();
    assert_eq!(listed["jobs"][0]["id"], json!(id));

    let long = server.json("POST", "/v1/jobs", &token, &json!({"module": "svc", "args": ["forever"]})).json();
    let long = long["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.request("GET", &format!("/v1/jobs/{long}/logs"), &token, &[], b"").text().contains("tick 2") {
        assert!(Instant::now() < deadline, "the job printed no ticks");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = server.cli(&token, &["job", "stop", &long]);
    assert!(stopped.success, "{}", stopped.stderr);
    assert_eq!(server.request("GET", &format!("/v1/jobs/{long}"), &token, &[], b"").json()["state"], "stopped");
    let (_, message) = server.json("POST", "/v1/jobs", &token, &json!({"module": "svc", "argz": []})).error(400);
    assert!(message.contains("argz"), "{message}");
}

/// Regression: a driver had no cpu deadline and a job's log grew without
/// bound; both are tenant quotas now (`job_cpu_ms`, `job_log_bytes`).
#[test]
fn a_jobs_driver_cpu_and_log_are_bounded_by_quotas() {
    // Epochs tick in wall time, so the deadline leaves the chatty driver
    // room on a loaded CI machine (it once took over 300 ms there).
    let server = Server::start(&["--quota-job-cpu-ms", "2000", "--quota-job-log-bytes", "1"]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    let run = |arg: &str| {
        let job = server.json("POST", "/v1/jobs", &token, &json!({"module": "svc", "args": [arg]})).json();
        let id = job["id"].as_str().unwrap().to_string();
        let logs = server.request("GET", &format!("/v1/jobs/{id}/logs?follow=true"), &token, &[], b"").text();
        (server.request("GET", &format!("/v1/jobs/{id}"), &token, &[], b"").json(), logs)
    };
    let (busy, _) = run("busy");
    assert_eq!(busy["state"], "failed", "{busy}");
    let error = busy["error"].as_str().unwrap();
    assert!(error.contains("exceeded its cpu deadline of 2s"), "{error}");
    assert!(error.contains("the tenant quota `job_cpu_ms`"), "{error}");
    let (chatty, logs) = run("chatty");
    assert_eq!(chatty["state"], "succeeded", "{chatty}");
    assert!(logs.len() < (1 << 20) + 200, "{} bytes of log", logs.len());
    let notice = "prism: this job's output reached its quota of 1048576 bytes (the tenant quota `job_log_bytes`)";
    assert_eq!(logs.matches(notice).count(), 1, "{}", &logs[logs.len() - 300..]);
    assert!(logs.ends_with("the rest is dropped\n"));
}

#[test]
fn one_tenants_flood_does_not_starve_another() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let server = Server::start(&["--metrics-listen", &metrics]);
    let alice = server.tenant("alice");
    let bob = server.tenant("bob");
    server.deploy(&alice, guest!(SERVICE), "svc");
    server.deploy(&bob, guest!(SERVICE), "svc");
    // Alice's job queues 40 calls of 300 ms on 2 cpus: 6 s of work.
    let job = server.json("POST", "/v1/jobs", &alice, &json!({"module": "svc", "args": ["flood"]})).json();
    let started = |text: &str| text.contains("prism_tasks_total{tenant=\"alice\",event=\"started\"} 41");
    while !started(&request(&metrics, "GET", "/metrics", "", &[], b"").text()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let answer = server.json("POST", "/v1/modules/svc/functions/add", &bob, &json!([1, 2]));
    assert_eq!(answer.json(), json!({"result": 3}));
    // When bob's call is answered, most of alice's are still waiting.
    let text = request(&metrics, "GET", "/metrics", "", &[], b"").text();
    let finished = "prism_tasks_total{tenant=\"alice\",event=\"finished\"} ";
    let done: usize = text.lines().find_map(|l| l.strip_prefix(finished)).unwrap().parse().unwrap();
    assert!(done < 20, "bob waited for {done} of alice's 40 calls");
    // All of alice's calls finish too.
    let logs =
        server.request("GET", &format!("/v1/jobs/{}/logs?follow=true", job["id"].as_str().unwrap()), &alice, &[], b"");
    assert!(logs.text().contains("flood 40"), "{}", logs.text());
}

/// Regression (issue 12, item 8): cpus changed hands only when a call
/// ended, so a tenant spinning on every cpu held another's trivial call
/// until its loops hit their cpu deadline.
#[test]
fn a_tenant_spinning_on_every_cpu_does_not_hold_up_another() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let server = Server::start(&["--metrics-listen", &metrics]);
    let alice = server.tenant("alice");
    let bob = server.tenant("bob");
    // Alice's loops would run for ten minutes.
    assert!(server.cli("", &["tenant", "quota", "alice", "--cpu-deadline-ms", "600000"]).success);
    server.deploy(&alice, guest!(SERVICE), "svc");
    server.deploy(&bob, guest!(SERVICE), "svc");
    let loops: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            let head = format!(
                "POST /v1/modules/svc/functions/forever HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {alice}\r\ncontent-length: 2\r\n\r\n[]"
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    let count = |event: &str| -> usize {
        let text = request(&metrics, "GET", "/metrics", "", &[], b"").text();
        let prefix = format!("prism_tasks_total{{tenant=\"alice\",event=\"{event}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.parse().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count("started") < 2 {
        assert!(Instant::now() < deadline, "alice's loops never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Both cpus (`--workers 2`) spin for alice; bob's calls are answered all the same.
    for _ in 0..20 {
        let answer = server.json("POST", "/v1/modules/svc/functions/add", &bob, &json!([1, 2]));
        assert_eq!(answer.json(), json!({"result": 3}));
    }
    assert_eq!((count("finished"), count("failed")), (0, 0), "bob was answered only once alice's loops ended");
    // The loops spin on the threads for long calls, at a lower priority
    // than the threads that answer requests.
    let before = thread_cpu(server.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let after = thread_cpu(server.child.id());
    let spent = |long: bool| -> u64 {
        after
            .iter()
            .filter(|(_, t)| (t.name == "prism-long") == long)
            .map(|(tid, t)| t.ticks - before.get(tid).map_or(0, |b| b.ticks))
            .sum()
    };
    assert!(spent(true) > spent(false), "the loops ran elsewhere: {after:?}");
    let base = after[&server.child.id().to_string()].nice;
    for thread in after.values() {
        assert_eq!(thread.nice, if thread.name == "prism-long" { base + 10 } else { base }, "{after:?}");
    }
    drop(loops);
}

/// A thread of a process, from `/proc`.
#[derive(Debug)]
struct ThreadCpu {
    name: String,
    nice: i64,
    /// Cpu time used, in clock ticks.
    ticks: u64,
}

/// Each thread of process `pid`, by id.
fn thread_cpu(pid: u32) -> std::collections::HashMap<String, ThreadCpu> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| {
            let task = task.unwrap();
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // `pid (comm) state ...`: comm may hold spaces, so split after it.
            let (head, rest) = stat.rsplit_once(") ")?;
            let name = head.split_once(" (")?.1.to_owned();
            let fields: Vec<&str> = rest.split(' ').collect();
            let field = |n: usize| fields[n - 3].parse::<i64>().unwrap();
            let ticks = (field(14) + field(15)) as u64;
            Some((task.file_name().into_string().unwrap(), ThreadCpu { name, nice: field(19), ticks }))
        })
        .collect()
}

/// Regression (issue 12, item 2): warm instances held their pool slots
/// with no cap across tenants, and a load listed functions outside the
/// count: once two tenants had called a module, a third's upload failed
/// with "trapped while listing its functions", and its calls waited for a
/// slot that never came.
#[test]
fn warm_instances_give_up_their_slots_to_other_tenants() {
    let server = Server::start(&["--max-instances", "2"]);
    for name in ["alice", "bob", "carol", "dave"] {
        let token = server.tenant(name);
        server.deploy(&token, guest!(SERVICE), "svc");
        let answer = server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 2]));
        assert_eq!(answer.json(), json!({"result": 3}), "{name}");
    }
}

/// Live actors hold their slots: the tenant quota `actors` caps them, so
/// one tenant's actors cannot take every slot from the others; and the node
/// caps them across tenants, so many tenants' actors leave a slot per cpu
/// for calls.
#[test]
fn a_tenants_actors_are_capped_and_others_keep_their_slots() {
    let server = Server::start(&["--max-instances", "5", "--quota-actors", "2"]);
    let alice = server.tenant("alice");
    server.deploy(&alice, guest!(SERVICE), "svc");
    let tally = json!({"module": "svc", "class": "Tally", "args": [0]});
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let created = server.json("POST", "/v1/actors", &alice, &tally);
            assert_eq!(created.status, 201, "{}", created.text());
            created.json()["id"].as_str().unwrap().to_string()
        })
        .collect();
    let (code, message) = server.json("POST", "/v1/actors", &alice, &tally).error(429);
    assert_eq!(code, "quota_exceeded");
    assert_eq!(message, "2 actors are alive, as many as may be at once: kill one, or raise the tenant quota `actors`");
    // Three slots are left: bob calls and makes actors as if alice were not there.
    let bob = server.tenant("bob");
    server.deploy(&bob, guest!(SERVICE), "svc");
    assert_eq!(server.json("POST", "/v1/modules/svc/functions/add", &bob, &json!([1, 2])).json(), json!({"result": 3}));
    assert_eq!(server.json("POST", "/v1/actors", &bob, &tally).status, 201);
    // Three actors hold three of the five slots: carol, under her quota, is
    // refused by the node, and her calls still run on the two kept for them.
    let carol = server.tenant("carol");
    server.deploy(&carol, guest!(SERVICE), "svc");
    let (code, message) = server.json("POST", "/v1/actors", &carol, &tally).error(503);
    assert_eq!(code, "node_full");
    assert_eq!(
        message,
        "3 actors are alive on this node, as many as its instance slots allow beside 2 kept for calls: \
         kill one, or raise --max-instances"
    );
    let calls: Vec<_> =
        (0..4).map(|_| server.json("POST", "/v1/modules/svc/functions/add", &carol, &json!([1, 2])).json()).collect();
    assert_eq!(calls, vec![json!({"result": 3}); 4]);
    // A killed actor gives its place back (once it has shut down).
    assert_eq!(server.request("DELETE", &format!("/v1/actors/{}", ids[0]), &alice, &[], b"").status, 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = server.json("POST", "/v1/actors", &alice, &tally);
        if again.status == 201 {
            break;
        }
        assert_eq!(again.status, 429, "{}", again.text());
        assert!(Instant::now() < deadline, "the killed actor still counts");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn acknowledged_uploads_survive_kill_9() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let module = server.deploy(&token, guest!(SERVICE), "svc");
    let data = vec![5u8; 200_000];
    let object = server.request("POST", "/v1/objects", &token, &[], &data).json()["ref"].as_str().unwrap().to_string();
    let small = server.request("POST", "/v1/objects", &token, &[], b"tiny").json()["ref"].as_str().unwrap().to_string();
    let job =
        server.json("POST", "/v1/jobs", &token, &json!({"module": "svc"})).json()["id"].as_str().unwrap().to_string();
    let tally = |name: &str| json!({"module": "svc", "class": "Tally", "args": [10], "name": name});
    let actor = server.json("POST", "/v1/actors", &token, &tally("kept")).json()["id"].as_str().unwrap().to_string();
    let add = format!("/v1/actors/{actor}/methods/add");
    assert_eq!(server.json("POST", &add, &token, &json!([5])).json()["result"], 15);
    let killed = server.json("POST", "/v1/actors", &token, &tally("killed")).json()["id"].as_str().unwrap().to_string();
    assert_eq!(server.request("DELETE", &format!("/v1/actors/{killed}"), &token, &[], b"").status, 204);
    let logs = server.request("GET", &format!("/v1/jobs/{job}/logs?follow=true"), &token, &[], b"");
    assert!(logs.text().contains("add 5"), "{}", logs.text());
    let running = server.json("POST", "/v1/modules/svc/functions/forever?result=ref", &token, &json!([])).json();
    let running = running["ref"].as_str().unwrap().to_string();
    let dir = server.kill9();

    let server = Server::start_in(dir, &[]);
    assert_eq!(server.request("GET", &format!("/v1/objects/{object}"), &token, &[], b"").body, data);
    assert_eq!(server.request("GET", &format!("/v1/objects/{small}"), &token, &[], b"").body, b"tiny");
    assert_eq!(server.request("GET", "/v1/modules", &token, &[], b"").json()["modules"][0], module);
    assert_eq!(server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 1])).json()["result"], 2);
    let status = server.request("GET", &format!("/v1/jobs/{job}"), &token, &[], b"").json();
    assert_eq!(status["state"], "succeeded");
    assert!(server.request("GET", &format!("/v1/jobs/{job}/logs"), &token, &[], b"").text().contains("add 5"));
    // The actor is back, same id and name, its constructor run again (its
    // state was in its instance); the killed one stays gone.
    assert_eq!(server.request("GET", "/v1/actors?name=kept", &token, &[], b"").json()["id"], json!(actor));
    assert_eq!(server.json("POST", &add, &token, &json!([1])).json()["result"], 11);
    assert_eq!(server.request("GET", "/v1/actors?name=killed", &token, &[], b"").status, 404);
    // A call answered with a ref and still running failed with the server.
    let (code, message) = server.request("GET", &format!("/v1/objects/{running}"), &token, &[], b"").error(422);
    assert_eq!(code, "task_failed");
    assert!(message.contains("`forever` failed: the server stopped before the call finished"), "{message}");
    // And stays failed.
    let server = Server::start_in(server.kill9(), &[]);
    let (_, again) = server.request("GET", &format!("/v1/objects/{running}"), &token, &[], b"").error(422);
    assert_eq!(again, message);
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let mut server = Server::start(&[]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    let addr = server.addr.clone();
    let slow = {
        let token = token.clone();
        std::thread::spawn(move || request(&addr, "POST", "/v1/modules/svc/functions/spin", &token, &[], b"[800]"))
    };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let answer = slow.join().unwrap();
    assert_eq!(answer.json(), json!({"result": 800}));
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(&server.addr).is_err(), "still accepting after shutdown");
}

#[test]
fn a_slow_loris_client_is_cut_off_and_others_are_served() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let mut loris = TcpStream::connect(&server.addr).unwrap();
    loris.write_all(b"GET /v1/modules HTTP/1.1\r\nhost: x\r\n").unwrap();
    // Others are served meanwhile.
    assert_eq!(server.request("GET", "/v1/modules", &token, &[], b"").status, 200);
    // The server closes the half-sent request after its header timeout.
    loris.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = loris.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(30), "the connection was kept open");
}

#[test]
fn metrics_count_requests_and_tasks_by_tenant() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = Server::start(&["--metrics-listen", &port.to_string()]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 2]));
    server.json("POST", "/v1/modules/svc/functions/fail", &token, &json!(["x"]));
    let text = request(&port.to_string(), "GET", "/metrics", "", &[], b"").text();
    for line in [
        "prism_tasks_total{tenant=\"alice\",event=\"started\"} 2",
        "prism_tasks_total{tenant=\"alice\",event=\"failed\"} 1",
        "prism_http_requests_total{status=\"200\"} 1",
        "prism_http_requests_total{status=\"422\"} 1",
        "prism_http_request_duration_seconds_count",
        "prism_instances",
        "prism_object_bytes{tenant=\"alice\",tier=\"all\"}",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    // Not on the tenants' port.
    assert_eq!(server.request("GET", "/metrics", &token, &[], b"").status, 404);
}

#[test]
fn a_deleted_tenant_stops_and_vanishes_and_others_go_on() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    // Only closing the namespace can end her call before this deadline.
    let server = Server::start(&["--metrics-listen", &port, "--quota-cpu-deadline-ms", "600000"]);
    let instances = || -> u64 {
        let text = request(&port, "GET", "/metrics", "", &[], b"").text();
        let line = text.lines().find(|l| l.starts_with("prism_instances ")).unwrap().to_string();
        line["prism_instances ".len()..].parse().unwrap()
    };
    let tally = json!({"module": "svc", "class": "Tally", "args": [1]});
    let bob = server.tenant("bob");
    server.deploy(&bob, guest!(SERVICE), "svc");
    let bobs = server.json("POST", "/v1/actors", &bob, &tally).json()["id"].as_str().unwrap().to_string();
    let add = format!("/v1/actors/{bobs}/methods/add");
    assert_eq!(server.json("POST", &add, &bob, &json!([1])).json()["result"], 2);
    assert_eq!(server.json("POST", "/v1/modules/svc/functions/add", &bob, &json!([1, 1])).json()["result"], 2);
    let bob_instances = instances();
    // Alice keeps an object, an actor, a job and a call that never ends.
    let alice = server.tenant("alice");
    server.deploy(&alice, guest!(SERVICE), "svc");
    assert_eq!(server.request("POST", "/v1/objects", &alice, &[], &[7; 100_000]).status, 201);
    assert_eq!(server.json("POST", "/v1/actors", &alice, &tally).status, 201);
    assert_eq!(server.json("POST", "/v1/jobs", &alice, &json!({"module": "svc", "args": ["forever"]})).status, 201);
    assert_eq!(server.json("POST", "/v1/modules/svc/functions/forever?result=ref", &alice, &json!([])).status, 202);
    assert!(instances() > bob_instances);

    let deleted = server.cli("", &["tenant", "delete", "alice"]);
    assert!(deleted.success, "{}", deleted.stderr);
    assert_eq!(server.request("GET", "/v1/modules", &alice, &[], b"").error(401).0, "unauthorized");
    assert!(!server.dir.path().join("tenants/alice").exists(), "her data is removed");
    // Her instances end: the call traps at its next tick, the job and the actor stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    while instances() > bob_instances {
        assert!(Instant::now() < deadline, "{} instances left, bob has {bob_instances}", instances());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Bob goes on; the name is free, and a new alice starts empty.
    assert_eq!(server.json("POST", &add, &bob, &json!([1])).json()["result"], 3);
    let alice = server.tenant("alice");
    assert_eq!(server.request("GET", "/v1/modules", &alice, &[], b"").json(), json!({"modules": []}));
    let again = server.cli("", &["tenant", "delete", "carol"]);
    assert!(!again.success && again.stderr.contains("no tenant `carol`"), "{}", again.stderr);
}

#[test]
fn a_tenants_guests_get_no_environment_files_or_network() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SEMANTICS), "semantics");
    let job = server.json("POST", "/v1/jobs", &token, &json!({"module": "semantics", "args": ["sandbox"]})).json();
    let logs = format!("/v1/jobs/{}/logs?follow=true", job["id"].as_str().unwrap());
    assert_eq!(
        server.request("GET", &logs, &token, &[], b"").text(),
        "env vars: 0\nread /etc/passwd: false\nlist /: false\ntcp connect: false\ntcp listen: false\n"
    );
}

#[test]
fn tenant_names_are_checked_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| prism_with_env(dir.path(), args, &[]);
    let first = run(&["tenant", "create", "team-a"]);
    assert!(first.success && first.stdout.trim().starts_with("prism_"), "{}", first.stderr);
    let again = run(&["tenant", "create", "team-a"]);
    assert!(!again.success && again.stderr.contains("already exists"), "{}", again.stderr);
    let bad = run(&["tenant", "create", "Team A"]);
    assert!(!bad.success && bad.stderr.contains("not valid"), "{}", bad.stderr);
    // Only the token's hash is stored.
    let registry = std::fs::read(dir.path().join("tenants.redb")).unwrap();
    let token = first.stdout.trim().as_bytes();
    assert!(!registry.windows(token.len()).any(|w| w == token));
    // Deleted without a server: the name is free again.
    std::fs::create_dir_all(dir.path().join("tenants/team-a/modules")).unwrap();
    assert!(run(&["tenant", "delete", "team-a"]).success);
    assert!(!dir.path().join("tenants/team-a").exists());
    assert!(run(&["tenant", "create", "team-a"]).success);
}

#[test]
fn a_rotated_token_replaces_the_old_one_at_once() {
    let server = Server::start(&[]);
    let old = server.tenant("alice");
    server.deploy(&old, guest!(SERVICE), "svc");
    let rotated = server.cli("", &["tenant", "token", "alice"]);
    assert!(rotated.success, "{}", rotated.stderr);
    let new = rotated.stdout.trim();
    assert!(new.starts_with("prism_") && new != old);
    let (code, _) = server.request("GET", "/v1/modules", &old, &[], b"").error(401);
    assert_eq!(code, "unauthorized");
    // Same tenant, same namespace.
    assert_eq!(server.request("GET", "/v1/modules", new, &[], b"").json()["modules"][0]["name"], "svc");
    let unknown = server.cli("", &["tenant", "token", "bob"]);
    assert!(!unknown.success && unknown.stderr.contains("no tenant `bob`"), "{}", unknown.stderr);
}

#[test]
fn a_call_answered_with_a_ref_can_be_cancelled_by_its_tenant_only() {
    let server = Server::start(&[]);
    let alice = server.tenant("alice");
    let bob = server.tenant("bob");
    server.deploy(&alice, guest!(SERVICE), "svc");
    let running = server.json("POST", "/v1/modules/svc/functions/forever?result=ref", &alice, &json!([])).json();
    let running = running["ref"].as_str().unwrap().to_string();
    let cancel = format!("/v1/objects/{running}/cancel");
    // Bob cannot reach it; a bad flag and a made-up ref are named.
    let (code, _) = server.request("POST", &cancel, &bob, &[], b"").error(404);
    assert_eq!(code, "not_found");
    let (code, message) = server.request("POST", &format!("{cancel}?recursive=maybe"), &alice, &[], b"").error(400);
    assert_eq!((code.as_str(), message.as_str()), ("bad_request", "`recursive` is `true` or `false`, not `maybe`"));
    let unknown = format!("/v1/objects/{}/cancel", "ab".repeat(32));
    assert_eq!(server.request("POST", &unknown, &alice, &[], b"").error(404).0, "not_found");

    let answer = server.request("POST", &cancel, &alice, &[], b"");
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert_eq!(answer.json(), json!({"ref": running, "recursive": true}));
    let (code, message) = server.request("GET", &format!("/v1/objects/{running}"), &alice, &[], b"").error(409);
    assert_eq!(code, "cancelled");
    assert!(message.contains("task `forever` failed: it was cancelled"), "{message}");
    // A finished call keeps its value.
    let done = server.json("POST", "/v1/modules/svc/functions/add?result=ref", &alice, &json!([2, 3])).json();
    let done = done["ref"].as_str().unwrap().to_string();
    assert_eq!(server.request("GET", &format!("/v1/objects/{done}"), &alice, &[], b"").json(), json!(5));
    assert_eq!(server.request("POST", &format!("/v1/objects/{done}/cancel"), &alice, &[], b"").status, 202);
    assert_eq!(server.request("GET", &format!("/v1/objects/{done}"), &alice, &[], b"").json(), json!(5));
}

#[test]
fn a_module_calls_the_tenants_other_modules_and_no_other_tenants() {
    let server = Server::start(&[]);
    let alice = server.tenant("alice");
    let bob = server.tenant("bob");
    server.deploy(&alice, guest!(SQUARE), "square");
    server.deploy(&alice, guest!(CALLS), "calls");
    let answer = server.json("POST", "/v1/modules/calls/functions/sum_of_squares", &alice, &json!([4]));
    assert_eq!(answer.json(), json!({"result": 14}), "{}", answer.text());
    // Bob has the caller but not the library: Alice's `square` is not his.
    server.deploy(&bob, guest!(CALLS), "calls");
    let answer = server.json("POST", "/v1/modules/calls/functions/sum_of_squares", &bob, &json!([4]));
    let (code, message) = answer.error(422);
    assert_eq!(code, "task_failed");
    assert_eq!(
        message,
        "task `sum_of_squares` failed: a prism call it made failed: not found: no module `square` (this tenant's modules: `calls`)"
    );
}

/// One keep-alive HTTP/1.1 connection, for many requests in a row.
pub(crate) struct KeepAlive {
    reader: BufReader<TcpStream>,
    head: String,
}

impl KeepAlive {
    pub(crate) fn open(addr: &str, token: &str) -> KeepAlive {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let head = format!("host: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\n");
        KeepAlive { reader: BufReader::new(stream), head }
    }

    /// POSTs `body` to `path`; the status and body of the answer.
    pub(crate) fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        let (status, body) = self.send("POST", path, body.as_bytes());
        (status, String::from_utf8(body).unwrap())
    }

    /// Sends one request; the status and body of the answer.
    pub(crate) fn send(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!("{method} {path} HTTP/1.1\r\n{}content-length: {}\r\n\r\n", self.head, body.len());
        self.reader.get_mut().write_all(&[head.as_bytes(), body].concat()).unwrap();
        let (mut status, mut length, mut chunked, mut line) = (0, 0, false, String::new());
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(code) = line.strip_prefix("HTTP/1.1 ") {
                status = code[..3].parse().unwrap();
            } else if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        if !chunked {
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body).unwrap();
            return (status, body);
        }
        let mut body = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                return (status, body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

/// The server's resident memory, in KiB.
pub(crate) fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Regression: every HTTP call is a new caller, and each opened a lane (a
/// channel and a tokio task) into the actor that lived as long as the
/// actor: 330k calls took the server from 92 MB to 1.8 GB.
#[test]
fn actor_calls_over_http_keep_memory_flat() {
    let server = Server::start(&["--quota-requests-per-second", "1000000"]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    let created = server.json("POST", "/v1/actors", &token, &json!({"module": "svc", "class": "Tally", "args": [0]}));
    let path = format!("/v1/actors/{}/methods/add", created.json()["id"].as_str().unwrap());
    let load = |calls: usize| {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mut connection = KeepAlive::open(&server.addr, &token);
                    for _ in 0..calls {
                        let (status, body) = connection.post(&path, "[1]");
                        assert_eq!(status, 200, "{body}");
                    }
                });
            }
        });
    };
    load(2_000);
    let warm = rss_kib(&server);
    load(8_000);
    let after = rss_kib(&server);
    assert!(after < warm + 16 * 1024, "32k actor calls grew the server from {warm} KiB to {after} KiB");
    let total = server.json("POST", &path, &token, &json!([0])).json();
    assert_eq!(total, json!({"result": 40_000}), "no call was lost");
}

/// Regression: a dead actor, kept so that calls to it say why it died, kept
/// its run queue's buffers too (5 KB each), and dead actors were never
/// forgotten: a tenant making and killing actors grew the server for ever.
#[test]
fn actors_made_and_killed_over_http_keep_memory_flat() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    let mut http = KeepAlive::open(&server.addr, &token);
    let mut churn = |actors: i64| {
        for i in 0..actors {
            let (status, body) =
                http.post("/v1/actors", &format!(r#"{{"module": "svc", "class": "Tally", "args": [{i}]}}"#));
            assert_eq!(status, 201, "{body}");
            let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
            assert_eq!(
                http.post(&format!("/v1/actors/{id}/methods/add"), "[1]"),
                (200, format!("{{\"result\":{}}}\n", i + 1))
            );
            assert_eq!(http.send("DELETE", &format!("/v1/actors/{id}"), b"").0, 204);
        }
    };
    churn(1_000);
    let warm = rss_kib(&server);
    churn(10_000);
    let after = rss_kib(&server);
    assert!(after < warm + 12 * 1024, "10,000 actors made and killed grew the server from {warm} KiB to {after} KiB");
}

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted when
/// dropped: a disk that fills up. Mounting needs root, as CI runs.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(mib: u32) -> (SmallDisk, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "this test mounts a tmpfs, which needs root");
        (SmallDisk { path: dir.path().to_path_buf() }, dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// An ext4 file system on a loop device, mounted on a fresh directory, whose
/// writes can be throttled for the server's process (a cgroup's blkio or io
/// controller): a slow disk. Needs root and cgroups, as CI has.
struct SlowDisk {
    path: std::path::PathBuf,
    device: String,
    cgroup: std::path::PathBuf,
    _image: tempfile::NamedTempFile,
}

impl SlowDisk {
    fn mount() -> (SlowDisk, tempfile::TempDir) {
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(256 << 20).unwrap();
        let device = run(Command::new("losetup").args(["-f", "--show"]).arg(image.path()));
        // Initialised now, so no background writes compete with the test's.
        run(Command::new("mkfs.ext4").args(["-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", &device]));
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount").arg(&device).arg(dir.path()));
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let root = if v2 { "/sys/fs/cgroup" } else { "/sys/fs/cgroup/blkio" };
        if v2 {
            std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+io")
                .expect("cgroup v2 without the io controller");
        }
        let cgroup = std::path::Path::new(root).join(format!("prism-test-{}", std::process::id()));
        std::fs::create_dir(&cgroup).expect("this test throttles a disk with a cgroup (blkio or io)");
        let disk = SlowDisk { path: dir.path().to_path_buf(), device, cgroup, _image: image };
        (disk, dir)
    }

    /// From now on, `pid`'s writes to the disk go at `iops` a second.
    fn throttle(&self, pid: u32, iops: u32) {
        let number =
            std::fs::read_to_string(format!("/sys/class/block/{}/dev", self.device.trim_start_matches("/dev/")))
                .unwrap();
        let number = number.trim();
        match self.cgroup.join("io.max") {
            v2 if v2.exists() => std::fs::write(v2, format!("{number} wiops={iops}")),
            _ => std::fs::write(self.cgroup.join("blkio.throttle.write_iops_device"), format!("{number} {iops}")),
        }
        .unwrap();
        std::fs::write(self.cgroup.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.cgroup);
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Regression (issue 12, item 5): redb commits ran on the server's async
/// threads, so a few requests waiting on a slow disk held up every
/// tenant's requests, even those that touch no disk.
#[test]
fn a_slow_disk_holds_up_only_the_requests_that_write() {
    let (disk, dir) = SlowDisk::mount();
    let server = Server::start_in(dir, &[]);
    let (alice, bob) = (server.tenant("alice"), server.tenant("bob"));
    for token in [&alice, &bob] {
        server.deploy(token, guest!(SERVICE), "svc");
    }
    let add = || server.json("POST", "/v1/modules/svc/functions/add", &bob, &json!([1, 2]));
    assert_eq!(add().json(), json!({"result": 3}));
    disk.throttle(server.child.id(), 2);
    // More of alice's writes than the server has threads (3): each commits
    // to redb, which waits for the throttled disk.
    let pending = std::sync::atomic::AtomicUsize::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let tally = json!({"module": "svc", "class": "Tally", "args": [0]});
                let created = server.json("POST", "/v1/actors", &alice, &tally);
                assert_eq!(created.status, 201, "{}", created.text());
                pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        // Each of them takes a second or more; bob's call touches no disk.
        std::thread::sleep(Duration::from_millis(100));
        let answer = add();
        let still = pending.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(answer.json(), json!({"result": 3}));
        assert_eq!(still, 4, "bob was answered only after {} of alice's writes", 4 - still);
    });
}

/// Files whose names start with `prefix` anywhere under `dir`.
fn files_named(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, prefix));
        } else if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(path);
        }
    }
    found
}

/// Regression (issue 12, item 6): a full disk was `limit-exceeded` (413),
/// and redb's index refused every write after it until a restart.
#[test]
fn a_full_disk_loses_nothing_and_writes_resume_once_there_is_room() {
    let (_disk, dir) = SmallDisk::mount(24);
    let server = Server::start_in(dir, &[]);
    let token = server.tenant("alice");
    server.deploy(&token, guest!(SERVICE), "svc");
    let object = |i: u32| -> Vec<u8> { (0..1u32 << 20).map(|j| (j.wrapping_mul(i + 7) >> 3) as u8).collect() };
    let upload = |data: &[u8]| server.request("POST", "/v1/objects", &token, &[], data);
    let mut stored = Vec::new();
    let (refused, message) = loop {
        let i = stored.len() as u32;
        assert!(i < 64, "24 MiB took 64 MiB of objects");
        let data = object(i);
        let answer = upload(&data);
        if answer.status != 201 {
            let (code, message) = answer.error(507);
            break ((code, data), message);
        }
        stored.push((answer.json()["ref"].as_str().unwrap().to_string(), data));
    };
    assert_eq!(refused.0, "disk_full");
    assert!(message.contains("disk full") && message.contains(server.dir.path().to_str().unwrap()), "{message}");
    assert!(stored.len() >= 4, "only {} objects fit", stored.len());
    // Nothing half-written is left, and everything acknowledged reads back.
    assert_eq!(files_named(server.dir.path(), ".tmp-"), Vec::<std::path::PathBuf>::new());
    for (r, data) in &stored {
        let got = server.request("GET", &format!("/v1/objects/{r}"), &token, &[], b"");
        assert_eq!((got.status, got.body.len()), (200, data.len()));
        assert!(got.body == *data, "{r} reads back changed");
    }
    assert_eq!(
        server.json("POST", "/v1/modules/svc/functions/add", &token, &json!([1, 2])).json(),
        json!({"result": 3})
    );
    // Room is made; the refused upload works now, without a restart.
    let (freed, kept) = stored.split_at(stored.len() / 2);
    for (r, _) in freed {
        assert_eq!(server.request("DELETE", &format!("/v1/objects/{r}"), &token, &[], b"").status, 204);
    }
    let again = upload(&refused.1);
    assert_eq!(again.status, 201, "{}", again.text());
    let again = again.json()["ref"].as_str().unwrap().to_string();
    // And all of it was durable: it survives kill -9.
    let server = Server::start_in(server.kill9(), &[]);
    for (r, data) in kept.iter().chain([&(again, refused.1.clone())]) {
        let got = server.request("GET", &format!("/v1/objects/{r}"), &token, &[], b"");
        assert_eq!(got.status, 200, "{r} was lost: {}", got.text());
        assert!(got.body == *data, "{r} reads back changed");
    }
}
