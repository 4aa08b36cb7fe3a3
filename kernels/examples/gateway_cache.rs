//! The gateway's semantic cache measured (`cargo run --release -p kernels --features gateway --example
//! gateway_cache`): the false-hit rate on near-miss pairs and the hit rate on paraphrases over a
//! threshold sweep (all-MiniLM-L6-v2 cosine similarity), and a replayed workload through the gateway
//! in front of a real `kernels::serve` backend (SmolLM2-135M-Instruct): hit rate, and the latency
//! saved as the ratio of the workload's time without the cache to its time with it, both measured in
//! this run on this CPU. Writes `book/src/course4/c4w2/records/gateway_cache.{json,md}`.
//!
//! Pairs: `tests/fixtures/gateway/paraphrases.json` (40 paraphrases, 40 near misses).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernels::gateway::breaker::Clock;
use kernels::gateway::config::CacheConfig;
use kernels::gateway::{Gateway, GatewayConfig, SemanticCache, hash_key};
use kernels::nn::bert::BertModel;
use kernels::serve::{ChatModel, Models, ServerConfig};
use serde_json::{Value, json};

type Pairs = Vec<(String, String)>;

fn pairs(v: &Value, key: &str) -> Pairs {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned()))
        .collect()
}

fn cpu_name() -> String {
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{name}, {threads} threads")
}

/// A real SmolLM2 server on a loopback port, in a thread of its own.
fn start_backend() -> std::net::SocketAddr {
    let gguf = kernels::cache::model_file("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
    let models =
        Models { chat: Some(ChatModel::load("smollm2", gguf).expect("SmolLM2 (cargo xtask models)")), embedding: None };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let config = ServerConfig { addr, max_batch: 1, context: 512, ..ServerConfig::default() };
            kernels::serve::serve(listener, config, models, std::future::pending()).await.unwrap();
        });
    });
    addr
}

async fn start_gateway(backend: std::net::SocketAddr, cache: Option<SemanticCache>) -> String {
    let config = format!(
        "[[backends]]\nname = \"smollm2\"\nurl = \"http://{backend}\"\ntier = \"sovereign\"\nmodels = [\"smollm2\"]\n\
         [[keys]]\nname = \"bench\"\nblake3 = \"{}\"\ntier = \"sovereign\"\n[health]\ninterval_ms = 0\n",
        hash_key("sk-bench")
    );
    let gw = Gateway::new(GatewayConfig::from_toml_str(&config).unwrap(), Clock::System, cache).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(kernels::gateway::serve(listener, gw, std::future::pending()));
    url
}

/// Sends the workload in order; returns per request (latency, cache header).
async fn replay(url: &str, workload: &[String]) -> Vec<(Duration, Option<String>)> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for q in workload {
        let body = json!({"model": "smollm2", "messages": [{"role": "user", "content": q}], "temperature": 0, "max_tokens": 24});
        let t = Instant::now();
        let r =
            client.post(format!("{url}/v1/chat/completions")).bearer_auth("sk-bench").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let header = r.headers().get("x-sovereign-cache").map(|v| v.to_str().unwrap().to_owned());
        let _ = r.bytes().await.unwrap();
        out.push((t.elapsed(), header));
    }
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tests/fixtures/gateway/paraphrases.json")).unwrap())
            .unwrap();
    let (para, near) = (pairs(&fixture, "paraphrases"), pairs(&fixture, "near_misses"));
    let minilm = kernels::cache::model_file("all-minilm-l6-v2", "model.safetensors");
    let encoder = Arc::new(BertModel::load(minilm.parent().unwrap()).expect("all-MiniLM-L6-v2 (cargo xtask models)"));
    let threshold = CacheConfig::default().similarity_threshold;

    // 1. Similarities of the pairs, and the sweep.
    let cos = |p: &Pairs| -> Vec<f32> {
        p.iter()
            .map(|(a, b)| {
                let e = encoder.embed(&[a.as_str(), b.as_str()]).unwrap();
                kernels::simd::cosine(&e[0], &e[1])
            })
            .collect()
    };
    let (cp, cn) = (cos(&para), cos(&near));
    let rate = |c: &[f32], t: f32| c.iter().filter(|&&s| s >= t).count() as f64 / c.len() as f64;
    let sweep: Vec<Value> = [0.80f32, 0.85, 0.88, 0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98]
        .iter()
        .map(
            |&t| json!({"threshold": t, "paraphrase_hit_rate": rate(&cp, t), "near_miss_false_hit_rate": rate(&cn, t)}),
        )
        .collect();

    // 2. The replayed workload: 20 questions, their paraphrases, the questions again, then 10 near misses.
    let k = 20;
    let mut workload: Vec<String> = para[..k].iter().map(|(a, _)| a.clone()).collect();
    workload.extend(para[..k].iter().map(|(_, b)| b.clone()));
    workload.extend(para[..k].iter().map(|(a, _)| a.clone()));
    workload.extend(near[..10].iter().map(|(_, b)| b.clone()));
    let backend = start_backend();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (cached, plain) = rt.block_on(async {
        let cache =
            SemanticCache::new(CacheConfig { enabled: true, ..CacheConfig::default() }, encoder.clone()).unwrap();
        let with = start_gateway(backend, Some(cache)).await;
        let without = start_gateway(backend, None).await;
        // Warm the backend once (page cache, allocator) outside both measurements.
        replay(&without, &["Hello".to_owned()]).await;
        let plain = replay(&without, &workload).await;
        let cached = replay(&with, &workload).await;
        (cached, plain)
    });
    let total = |r: &[(Duration, Option<String>)]| r.iter().map(|(d, _)| d.as_secs_f64()).sum::<f64>();
    let count = |kind: &str, range: std::ops::Range<usize>| {
        cached[range].iter().filter(|(_, h)| h.as_deref() == Some(kind)).count()
    };
    let n = workload.len();
    let hits = cached.iter().filter(|(_, h)| h.is_some()).count();
    let mean = |v: Vec<f64>| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let hit_ms = mean(cached.iter().filter(|(_, h)| h.is_some()).map(|(d, _)| d.as_secs_f64() * 1e3).collect());
    let miss_ms = mean(cached.iter().filter(|(_, h)| h.is_none()).map(|(d, _)| d.as_secs_f64() * 1e3).collect());
    let report = json!({
        "cpu": cpu_name(),
        "encoder": "all-MiniLM-L6-v2 (kernels::nn::bert)",
        "backend": "kernels::serve, SmolLM2-135M-Instruct Q4_1, max_tokens 24, temperature 0",
        "threshold": threshold,
        "pairs": {"paraphrases": para.len(), "near_misses": near.len()},
        "at_threshold": {"paraphrase_hit_rate": rate(&cp, threshold), "near_miss_false_hit_rate": rate(&cn, threshold)},
        "near_misses_at_or_above_threshold": near.iter().zip(&cn).filter(|(_, s)| **s >= threshold)
            .map(|((a, b), s)| json!({"a": a, "b": b, "cosine": s})).collect::<Vec<_>>(),
        "sweep": sweep,
        "workload": {
            "requests": n,
            "hits": hits,
            "hit_rate": hits as f64 / n as f64,
            "semantic_hits_on_paraphrases": count("semantic", k..2 * k),
            "exact_hits_on_repeats": count("exact", 2 * k..3 * k),
            "false_hits_on_near_misses": cached[3 * k..].iter().filter(|(_, h)| h.is_some()).count(),
            "mean_hit_ms": hit_ms,
            "mean_miss_ms": miss_ms,
            "time_without_cache_s": total(&plain),
            "time_with_cache_s": total(&cached),
            "speedup": total(&plain) / total(&cached),
        },
    });
    let dir = root.join("../book/src/course4/c4w2/records");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway_cache.json"), serde_json::to_string_pretty(&report).unwrap() + "\n").unwrap();
    let w = &report["workload"];
    let mut md = format!(
        "Semantic cache of `kernels::gateway`, measured by `examples/gateway_cache.rs` on {}.\n\n\
         Replayed workload ({} requests through the gateway to a real SmolLM2-135M backend: 20 questions, their \
         paraphrases, the questions again, 10 near misses), threshold {threshold}:\n\n\
         | figure | value |\n|---|---|\n\
         | hit rate | {:.1} % ({} of {}) |\n| semantic hits on the 20 paraphrases | {} |\n\
         | exact hits on the 20 repeats | {} |\n| false hits on the 10 near misses | {} |\n\
         | mean latency, hit / miss | {:.2} ms / {:.1} ms |\n\
         | workload time without / with the cache | {:.2} s / {:.2} s ({:.2}× faster) |\n\n\
         Pairs ({} paraphrases, {} near misses) by cosine similarity of all-MiniLM-L6-v2 embeddings:\n\n",
        report["cpu"].as_str().unwrap(),
        n,
        w["hit_rate"].as_f64().unwrap() * 100.0,
        hits,
        n,
        w["semantic_hits_on_paraphrases"],
        w["exact_hits_on_repeats"],
        w["false_hits_on_near_misses"],
        hit_ms,
        miss_ms,
        w["time_without_cache_s"].as_f64().unwrap(),
        w["time_with_cache_s"].as_f64().unwrap(),
        w["speedup"].as_f64().unwrap(),
        para.len(),
        near.len(),
    );
    for m in report["near_misses_at_or_above_threshold"].as_array().unwrap() {
        md.push_str(&format!(
            "A near miss at or above the threshold: {:?} vs {:?} (cosine {:.3}).\n\n",
            m["a"].as_str().unwrap(),
            m["b"].as_str().unwrap(),
            m["cosine"].as_f64().unwrap()
        ));
    }
    md.push_str("| threshold | paraphrase hit rate | near-miss false-hit rate |\n|---|---|---|\n");
    for s in report["sweep"].as_array().unwrap() {
        md.push_str(&format!(
            "| {:.2} | {:.1} % | {:.1} % |\n",
            s["threshold"].as_f64().unwrap(),
            s["paraphrase_hit_rate"].as_f64().unwrap() * 100.0,
            s["near_miss_false_hit_rate"].as_f64().unwrap() * 100.0
        ));
    }
    std::fs::write(dir.join("gateway_cache.md"), &md).unwrap();
    println!("{md}");
}
