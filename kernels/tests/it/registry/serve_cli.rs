//! The secure model pipeline end to end through the `sovereign` binary (issue 17): keygen (a signing
//! key and an encryption key) → push (signs the manifest over the plaintext, then seals the artefact)
//! → `sovereign serve --registry … --key …` (pull → decrypt → verify → serve) answers a chat completion
//! with SmolLM2-135M-Instruct; then with the signer revoked (`registry revoke`), and with one byte of
//! the stored ciphertext flipped, `sovereign serve` exits 1 with the typed error's message before
//! binding its port (the port is held by the test during the run, and the error is not the bind's).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::tmp::Tmp;
use kernels::registry::{Digest, Registry};
use serde_json::{Value, json};

fn sovereign(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sovereign"));
    cmd.current_dir(dir).stdin(Stdio::null());
    cmd
}

/// Runs `sovereign ARGS…` to success.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = sovereign(dir).args(args).output().expect("run sovereign");
    assert!(out.status.success(), "sovereign {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// POSTs JSON over a new loopback connection: the status and the parsed answer.
fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |i| i + 4);
    let status = String::from_utf8_lossy(&out[..split]).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let text = String::from_utf8_lossy(&out[split..]);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}")))
}

const SERVE: [&str; 13] = [
    "serve",
    "--registry",
    "reg",
    "--name",
    "smollm2",
    "--version",
    "1",
    "--keyring",
    "keys",
    "--key",
    "keys/seal.seal",
    "--context",
    "256",
];

#[test]
fn sovereign_serves_a_sealed_signed_registry_model_and_refuses_a_tampered_one() {
    let gguf = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap_or_else(|e| panic!("{e}"));
    let tmp = Tmp::new("secure-serve");
    let d = tmp.0.as_path();
    let keys: Value =
        serde_json::from_str(&ok(d, &["registry", "keygen", "--dir", "keys", "--name", "release", "--json"])).unwrap();
    let key_id = keys["key_id"].as_str().unwrap();
    ok(d, &["registry", "keygen", "--dir", "keys", "--name", "seal", "--seal"]);
    let artefact = format!("model.gguf={}", gguf.display());
    let pushed = ok(
        d,
        &[
            "registry",
            "push",
            "--registry",
            "reg",
            "--name",
            "smollm2",
            "--version",
            "1",
            "--key",
            "keys/release.key",
            "--seal-key-file",
            "keys/seal.seal",
            &artefact,
            "--json",
        ],
    );
    let pushed: Value = serde_json::from_str(&pushed).unwrap();
    assert_eq!(pushed["artefacts"][0]["digest"], Digest::of_file(&gguf).unwrap().0.to_hex());

    // Serve it: the server prints `on http://ADDR` once it listens.
    let mut server =
        sovereign(d).args(SERVE).args(["--port", "0", "--max-batch", "1"]).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = server.stderr.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut seen, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(300));
    let addr: SocketAddr = loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let addr = line.split("on http://").nth(1).and_then(|u| u.split_whitespace().next()?.parse().ok());
                seen.push(line);
                if let Some(addr) = addr {
                    break addr;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                let _ = server.kill();
                let _ = server.wait();
                panic!("sovereign serve did not listen:\n{}", seen.join("\n"));
            }
        }
    };
    let chat = json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0, "max_tokens": 4,
    });
    let (status, v) = post(addr, "/v1/chat/completions", &chat);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    assert!(seen.iter().any(|l| l.contains("verified, signed by key")), "{seen:?}");

    // Revoke the signer: refused (after decryption, at verification) before the port is bound.
    ok(d, &["registry", "revoke", "--keyring", "keys", key_id]);
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let out = sovereign(d).args(SERVE).args(["--port", &port]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let typed = kernels::Error::RegistryRevokedKey { subject: "manifest smollm2@1".into(), key_id: key_id.into() };
    assert!(stderr.contains(&typed.to_string()), "stderr lacks {typed}:\n{stderr}");
    assert!(!stderr.contains("binding") && !stderr.contains("on http://"), "{stderr}");
    drop(held);
    std::fs::remove_file(d.join("keys/revoked.pub")).unwrap();

    // Tamper one byte of the stored ciphertext: refused before the port is bound.
    let reg = Registry::open(&d.join("reg")).unwrap();
    let digest = reg.resolve(&"smollm2@1".parse().unwrap()).unwrap();
    let index = std::fs::read_to_string(reg.sealed_index_path(&digest)).unwrap();
    let hex = index.split_whitespace().next().unwrap();
    let object = reg.store().path_of(&Digest::from_hex(hex).unwrap());
    let mut bytes = std::fs::read(&object).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&object, bytes).unwrap();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let out = sovereign(d).args(SERVE).args(["--port", &port]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let typed =
        kernels::Error::RegistryDecrypt { path: Path::new("reg").join(object.strip_prefix(d.join("reg")).unwrap()) };
    assert!(stderr.contains(&typed.to_string()), "stderr lacks {typed}:\n{stderr}");
    assert!(stderr.contains("refusing to serve smollm2@1"), "{stderr}");
    assert!(!stderr.contains("binding") && !stderr.contains("on http://"), "{stderr}");
    drop(held);
}
