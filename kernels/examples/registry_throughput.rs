//! Throughput of `kernels::registry`'s cryptography as JSON (the Rust side of `cargo xtask bench registry`).
//!
//! References: the BLAKE3 paper (2020, content addresses), RFC 8032 (Ed25519 signatures over the
//! canonical manifest), RFC 8439 (ChaCha20-Poly1305 sealing).
//!
//! usage: `registry_throughput MIB REPS` measures, on one buffer of MIB mebibytes and one thread, the
//! best of REPS runs of:
//! - `memcpy`: `copy_from_slice` into a second, pre-faulted buffer (the machine's reference);
//! - `blake3`: the artefact digest (`Digest::of`), what `push` and `verify` spend per byte;
//! - `sign` and `verify`: digest the artefact, build the canonical manifest naming it and sign it with
//!   Ed25519; then re-digest, compare and check the signature against a pinned keyring (what
//!   `Registry::push` and `Registry::verify` do in memory, without the file system);
//! - `seal` and `open`: ChaCha20-Poly1305 with a raw key (`seal_bytes`, `open_bytes`), the plaintext
//!   buffer moved in as the registry's callers do;
//! - `push+verify (disk)`: the whole `Registry::push` then `Registry::verify` of a file in a temporary
//!   registry (reads, writes and fsyncs included), once per run.
//!
//! Prints one JSON object: `{"mib":…, "rows":[{"op":…, "seconds":…, "mb_per_s":…}]}` (MB = 10⁶ bytes).

use std::path::Path;
use std::time::Instant;

use kernels::registry::keys::MANIFEST_DOMAIN;
use kernels::registry::seal::{open_bytes, seal_bytes};
use kernels::registry::{
    ArtefactEntry, ArtefactSource, Digest, Keyring, Manifest, PushSpec, Registry, SealKey, Signer,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mib), Some(reps)) =
        (args.get(1).and_then(|s| s.parse::<usize>().ok()), args.get(2).and_then(|s| s.parse::<usize>().ok()))
    else {
        eprintln!("usage: registry_throughput MIB REPS");
        std::process::exit(2);
    };
    if let Err(e) = run(mib, reps.max(1)) {
        eprintln!("registry_throughput: {e}");
        std::process::exit(1);
    }
}

fn run(mib: usize, reps: usize) -> Result<(), Box<dyn std::error::Error>> {
    let len = mib << 20;
    // Pseudo-random bytes (xorshift), so nothing compresses or short-circuits.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let signer = Signer::from_seed(&[7u8; 32]);
    let mut keyring = Keyring::new();
    keyring.add(&signer.public_key())?;
    let key = SealKey::Raw([9u8; 32]);
    let aad = b"bench".as_slice();

    let mut rows = Vec::new();
    let mut record = |op: &str, seconds: f64| {
        rows.push(serde_json::json!({ "op": op, "seconds": seconds, "mb_per_s": len as f64 / seconds / 1e6 }));
    };

    let mut dst = vec![1u8; len];
    record("memcpy", best(reps, || dst.copy_from_slice(&data)));
    std::hint::black_box(&dst);
    drop(dst);

    record("blake3", best(reps, || _ = std::hint::black_box(Digest::of(&data))));

    let mut signed = None;
    record(
        "sign",
        best(reps, || {
            let manifest = manifest_of(&data, &signer);
            let bytes = manifest.to_canonical_bytes().expect("a valid manifest");
            signed = Some((bytes.clone(), signer.sign(MANIFEST_DOMAIN, &bytes)));
        }),
    );
    let (bytes, sig) = signed.expect("signed at least once");
    let manifest = Manifest::from_canonical_bytes(&bytes, "bench manifest")?;
    let mut verified = Ok(());
    record(
        "verify",
        best(reps, || {
            verified = keyring.verify(MANIFEST_DOMAIN, &bytes, &sig, "bench manifest");
            assert_eq!(Digest::of(&data), manifest.artefacts[0].digest, "the artefact's digest changed");
        }),
    );
    verified?;

    let mut sealed = Vec::new();
    record("seal", best(reps, || sealed = seal_bytes(data.clone(), &key, aad).expect("sealing")) - clone_time(&data));
    let mut opened = Vec::new();
    record(
        "open",
        best(reps, || opened = open_bytes(sealed.clone(), &key, aad, Path::new("bench")).expect("opening"))
            - clone_time(&sealed),
    );
    if opened != data {
        return Err("open(seal(x)) != x".into());
    }

    let dir = std::env::temp_dir().join(format!("registry-throughput-{}", std::process::id()));
    let file = dir.join("model.bin");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(&file, &data)?;
    let mut version = 0u64;
    let mut outcome = Ok(());
    record(
        "push+verify (disk)",
        best(reps, || {
            version += 1;
            let reg_dir = dir.join(format!("reg{version}"));
            outcome = Registry::open(&reg_dir).and_then(|reg| {
                let spec = PushSpec::new("bench", 1).artefact(ArtefactSource::path("model.bin", &file));
                let pushed = reg.push(&spec, &signer)?;
                reg.verify(&pushed.reference, &keyring).map(drop)
            });
        }),
    );
    std::fs::remove_dir_all(&dir)?;
    outcome?;

    let out = serde_json::json!({ "mib": mib, "reps": reps, "rows": rows });
    println!("{out}");
    Ok(())
}

/// A one-artefact manifest naming `data`'s digest (what `push` builds before signing).
fn manifest_of(data: &[u8], signer: &Signer) -> Manifest {
    Manifest {
        name: "bench".into(),
        version: 1,
        artefacts: vec![ArtefactEntry { name: "model.bin".into(), digest: Digest::of(data), size: data.len() as u64 }],
        metrics: Default::default(),
        parents: Vec::new(),
        training_data: None,
        created_unix_ms: 0,
        signer_key_id: signer.key_id().clone(),
    }
}

/// The best wall time of `reps` calls of `f`, in seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The time of the buffer copy the seal/open calls above include (their argument is moved in, so the
/// benchmark clones it; callers in the registry hand over a buffer they own).
fn clone_time(buf: &[u8]) -> f64 {
    best(3, || drop(std::hint::black_box(buf.to_vec())))
}
