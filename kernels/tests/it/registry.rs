//! `kernels::registry`: round trips (push → sign → verify → pull, seal → open with a raw key and a
//! passphrase, export → import), stages and lineage, crash leftovers and concurrent writers, interop
//! with an independent implementation (the `cryptography` package in the peers' venv:
//! `kernels/tests/fixtures/registry/peer.py`), the tamper suite in `registry/tamper.rs`, the type-state
//! pipeline's refusals in `registry/secure.rs` and `sovereign serve` from a sealed registry in `registry/serve_cli.rs`.

mod secure;
#[cfg(feature = "cli")]
mod serve_cli;
mod tamper;

pub(crate) use crate::tmp::Tmp;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use kernels::Error;
use kernels::registry::seal::{self, KdfParams, SealKey, artefact_aad};
use kernels::registry::{
    ArtefactSource, Digest, ExportConfig, ImportConfig, Keyring, ModelRef, PushSpec, Pushed, Registry, Signer, Stage,
    keygen,
};
use serde_json::{Value, json};

// ------------------------------------------------------------------ helpers

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub(crate) fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

pub(crate) fn r(s: &str) -> ModelRef {
    s.parse().expect("reference")
}

/// A signer from a fixed seed and a keyring trusting it.
pub(crate) fn signer(seed: u8) -> Signer {
    Signer::from_seed(&[seed; 32])
}

pub(crate) fn keyring(signers: &[&Signer]) -> Keyring {
    let mut k = Keyring::new();
    for s in signers {
        k.add(&s.public_key()).expect("valid key");
    }
    k
}

/// Cheap Argon2id parameters for tests (the default costs 64 MiB per derivation).
pub(crate) const TEST_KDF: KdfParams = KdfParams { m_cost_kib: 256, t_cost: 1, p_cost: 1 };

/// A registry with `fraud@1` pushed: `model.bin` (`model_len` bytes), `config.json`, two metrics.
pub(crate) struct Fixture {
    pub dir: Tmp,
    pub reg: Registry,
    pub signer: Signer,
    pub keyring: Keyring,
    pub v1: Pushed,
}

pub(crate) fn fixture(tag: &str, model_len: usize) -> Fixture {
    let dir = Tmp::new(tag);
    let reg = Registry::open(&dir.join("reg")).expect("open");
    let signer = signer(1);
    let keyring = keyring(&[&signer]);
    let spec = PushSpec::new("fraud", 1)
        .artefact(ArtefactSource::bytes("model.bin", bytes(model_len, 1)))
        .artefact(ArtefactSource::bytes("config.json", br#"{"trees":100,"depth":6}"#.to_vec()))
        .metric("auc", 0.9731)
        .metric("logloss", 0.0871)
        .created_unix_ms(1_700_000_000_000);
    let v1 = reg.push(&spec, &signer).expect("push");
    Fixture { dir, reg, signer, keyring, v1 }
}

/// Every file under `dir` (relative paths), for "nothing was written" checks.
pub(crate) fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap_or(&p).to_path_buf());
            }
        }
    }
    out
}

/// Runs `fixtures/registry/peer.py` in the peers' venv with one JSON request.
pub(crate) fn peer(req: Value) -> Value {
    let py = kernels::cache::venv_python();
    assert!(
        py.is_file(),
        "the peers' Python venv is missing ({}): run `cargo xtask peers` (needs `cryptography`)",
        py.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/registry/peer.py");
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the peer");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(req.to_string().as_bytes()).expect("write request");
    }
    let out = child.wait_with_output().expect("peer output");
    assert!(out.status.success(), "peer.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("peer JSON")
}

// ------------------------------------------------------------------ round trips

#[test]
fn push_sign_verify_pull_round_trip() {
    let f = fixture("roundtrip", 70_000);
    let v = f.reg.verify(&r("fraud@1"), &f.keyring).expect("verify");
    assert_eq!(v.manifest, f.v1.manifest);
    assert_eq!(v.digest, f.v1.digest);
    assert_eq!(v.key_id, *f.signer.key_id());
    assert_eq!(v.manifest.metrics["auc"].to_bits(), 0.9731f64.to_bits());
    let names: Vec<&str> = v.manifest.artefacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["config.json", "model.bin"], "artefacts sorted by name");

    let out = f.dir.join("pulled");
    let files = f.reg.pull(&r("fraud@1"), &f.keyring, &out).expect("pull");
    assert_eq!(files.len(), 2);
    assert_eq!(fs::read(out.join("model.bin")).expect("read"), bytes(70_000, 1));
    assert_eq!(fs::read(out.join("config.json")).expect("read"), br#"{"trees":100,"depth":6}"#);

    // Content addressing: objects live at objects/<2 hex>/<62 hex> of their BLAKE3 digest.
    let model = &v.manifest.artefacts[1];
    let h = model.digest.to_hex();
    assert_eq!(h, hex(blake3::hash(&bytes(70_000, 1)).as_bytes()));
    assert!(f.dir.join("reg/objects").join(&h[..2]).join(&h[2..]).is_file());
    assert_eq!(f.reg.store().get(&model.digest).expect("get"), bytes(70_000, 1));
    // The manifest is content-addressed too, and its ref names it.
    assert_eq!(fs::read_to_string(f.dir.join("reg/refs/fraud/1")).expect("ref"), format!("{}\n", f.v1.digest));
    assert_eq!(Digest::of(&f.reg.store().get(&f.v1.digest).expect("manifest")), f.v1.digest);

    assert_eq!(f.reg.models().expect("models"), ["fraud"]);
    assert_eq!(f.reg.versions("fraud").expect("versions"), [1]);
    // Versions are immutable.
    let again = f.reg.push(&PushSpec::new("fraud", 1).artefact(ArtefactSource::bytes("x", vec![1])), &f.signer);
    assert!(
        matches!(again, Err(Error::RegistryVersionExists { ref reference, .. }) if reference == "fraud@1"),
        "{again:?}"
    );
}

#[test]
fn push_streams_a_file_and_shares_identical_objects() {
    let f = fixture("stream", 10);
    let src = f.dir.join("big.bin");
    let data = bytes(3 * 1024 * 1024 + 17, 9);
    fs::write(&src, &data).expect("write");
    let spec = PushSpec::new("fraud", 2).artefact(ArtefactSource::path("model.bin", &src)).parent(r("fraud@1"));
    let p = f.reg.push(&spec, &f.signer).expect("push");
    assert_eq!(p.manifest.artefacts[0].size, data.len() as u64);
    assert_eq!(p.manifest.artefacts[0].digest, Digest::of(&data));
    // Same bytes under another version: one object.
    let spec = PushSpec::new("fraud", 3).artefact(ArtefactSource::path("weights", &src));
    let p3 = f.reg.push(&spec, &f.signer).expect("push");
    assert_eq!(p3.manifest.artefacts[0].digest, p.manifest.artefacts[0].digest);
    f.reg.verify(&r("fraud@2"), &f.keyring).expect("verify 2");
    f.reg.verify(&r("fraud@3"), &f.keyring).expect("verify 3");
    assert_eq!(f.reg.versions("fraud").expect("versions"), [1, 2, 3]);
}

#[test]
fn manifest_bytes_are_canonical_and_floats_round_trip() {
    let f = fixture("canonical", 10);
    let bytes = f.reg.store().get(&f.v1.digest).expect("manifest");
    let text = std::str::from_utf8(&bytes).expect("utf8");
    // Hand-written expectation: sorted keys, no whitespace, floats with a '.', integers plain.
    let expected = format!(
        concat!(
            r#"{{"artefacts":[{{"digest":"{}","name":"config.json","size":23}},{{"digest":"{}","name":"model.bin","size":10}}],"#,
            r#""created_unix_ms":1700000000000,"metrics":{{"auc":0.9731,"logloss":0.0871}},"name":"fraud","parents":[],"schema":1,"#,
            r#""signer_key_id":"{}","training_data":null,"version":1}}"#
        ),
        Digest::of(br#"{"trees":100,"depth":6}"#),
        Digest::of(&self::bytes(10, 1)),
        f.signer.key_id()
    );
    assert_eq!(text, expected);

    // Awkward floats survive write → parse bit for bit; escapes are canonical.
    let mut m = f.v1.manifest.clone();
    let floats = [0.1, 1e-7, 1.5e300, -0.0, 3.0, f64::MIN_POSITIVE, f64::MAX, 5e-324, 123_456_789.123_456_79, -2.5e-10];
    for (i, x) in floats.iter().enumerate() {
        m.metrics.insert(format!("m{i}\n\"q\"\u{1}é"), *x);
    }
    let b = m.to_canonical_bytes().expect("canonical");
    let back = kernels::registry::Manifest::from_canonical_bytes(&b, "test").expect("parse");
    for (k, v) in &m.metrics {
        assert_eq!(back.metrics[k].to_bits(), v.to_bits(), "{k:?}");
    }
    // serde_json (an independent parser) reads the same values.
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(v["metrics"]["m2\n\"q\"\u{1}é"].as_f64(), Some(1.5e300));
    // Non-canonical spellings of the same manifest are refused.
    for variant in [
        text.replacen(',', ", ", 1),
        text.replacen("\"version\":1", "\"version\":1.0", 1),
        text.replacen("0.9731", "9.731e-1", 1),
        format!("{text}\n"),
    ] {
        let e = kernels::registry::Manifest::from_canonical_bytes(variant.as_bytes(), "variant");
        assert!(matches!(e, Err(Error::RegistryManifestMalformed { .. })), "{variant}: {e:?}");
    }
    // Non-finite metrics cannot be written.
    let mut bad = f.v1.manifest.clone();
    bad.metrics.insert("nan".into(), f64::NAN);
    assert!(matches!(bad.to_canonical_bytes(), Err(Error::RegistryInvalid { what: "metric", .. })));
}

#[test]
fn seal_open_round_trips_with_raw_key_and_passphrase() {
    let t = Tmp::new("seal");
    let plain = bytes(100_001, 3);
    let src = t.join("plain.bin");
    fs::write(&src, &plain).expect("write");
    let aad = artefact_aad(&Digest::of(b"manifest"), "model.bin");
    let cases: Vec<(&str, SealKey)> = vec![
        ("raw", SealKey::Raw([42; 32])),
        ("pass", SealKey::Passphrase { passphrase: b"correct horse battery staple".to_vec(), params: TEST_KDF }),
    ];
    for (tag, key) in cases {
        let sealed = t.join(&format!("{tag}.sealed"));
        seal::seal_file(&src, &sealed, &key, &aad).expect("seal");
        let sb = fs::read(&sealed).expect("read");
        assert_eq!(&sb[..7], b"SOVSEAL");
        assert!(!sb.windows(32).any(|w| w == &plain[..32]), "{tag}: plaintext visible in the sealed file");
        let out = t.join(&format!("{tag}.out"));
        let n = seal::open_file(&sealed, &out, &key, &aad).expect("open");
        assert_eq!(n, plain.len() as u64);
        assert_eq!(fs::read(&out).expect("read"), plain, "{tag}");
        // Two seals of the same file use different nonces (and salts).
        let sealed2 = t.join(&format!("{tag}.sealed2"));
        seal::seal_file(&src, &sealed2, &key, &aad).expect("seal");
        assert_ne!(fs::read(&sealed2).expect("read"), sb, "{tag}: nonce reused");
    }
    // The default parameters are RFC 9106's second recommendation.
    assert_eq!(KdfParams::default(), KdfParams { m_cost_kib: 65536, t_cost: 3, p_cost: 1 });
}

#[test]
fn export_import_round_trip_plain_and_sealed() {
    let f = fixture("bundle", 5000);
    let cases: Vec<(&str, Option<SealKey>)> = vec![
        ("plain", None),
        ("raw", Some(SealKey::Raw([7; 32]))),
        ("pass", Some(SealKey::Passphrase { passphrase: b"pw".to_vec(), params: TEST_KDF })),
    ];
    for (tag, key) in cases {
        let bundle = f.dir.join(&format!("bundle-{tag}"));
        f.reg.export(&r("fraud@1"), &f.keyring, &bundle, &ExportConfig { seal: key.clone() }).expect("export");
        let names = files_under(&bundle);
        let sealed = key.is_some();
        assert!(names.contains(Path::new("manifest.json")) && names.contains(Path::new("manifest.sig")));
        assert_eq!(names.contains(Path::new("artefacts/model.bin.sealed")), sealed, "{tag}: {names:?}");
        let server = Registry::open(&f.dir.join(&format!("server-{tag}"))).expect("open");
        let got =
            server.import(&bundle, &f.keyring, &ImportConfig { key, expect: Some(r("fraud@1")) }).expect("import");
        assert_eq!(got.digest, f.v1.digest);
        server.verify(&r("fraud@1"), &f.keyring).expect("verify on the server");
        let out = f.dir.join(&format!("served-{tag}"));
        server.pull(&r("fraud@1"), &f.keyring, &out).expect("pull");
        assert_eq!(fs::read(out.join("model.bin")).expect("read"), bytes(5000, 1));
        // Importing again is a no-op.
        server
            .import(&bundle, &f.keyring, &ImportConfig { key: None, expect: None })
            .map(|_| ())
            .or_else(|e| match e {
                Error::RegistryKeyRequired { .. } if sealed => Ok(()),
                e => Err(e),
            })
            .expect("re-import");
    }
}

// ------------------------------------------------------------------ keys

#[test]
fn keygen_writes_an_owner_only_key_and_a_loadable_keyring() {
    let t = Tmp::new("keygen");
    let kp = keygen(&t.join("keys"), "release").expect("keygen");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&kp.secret).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let s = Signer::load(&kp.secret).expect("load");
    assert_eq!(s.key_id(), &kp.key_id);
    // key id = first 16 hex of BLAKE3(public key)
    assert_eq!(kp.key_id.as_str(), &hex(blake3::hash(&s.public_key()).as_bytes())[..16]);
    let ring = Keyring::load(&t.join("keys")).expect("keyring folder");
    assert!(ring.contains(&kp.key_id));
    let ring = Keyring::load(&kp.public).expect("keyring file");
    assert_eq!(ring.key_ids().count(), 1);
    // Never overwritten.
    assert!(matches!(keygen(&t.join("keys"), "release"), Err(Error::RegistryIo { .. })));
    // A group-readable signing key is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&kp.secret, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(Signer::load(&kp.secret), Err(Error::RegistryKeyFile { .. })));
    }
}

#[test]
fn detached_file_signatures_bind_the_contents_not_the_name() {
    let t = Tmp::new("detached");
    let signer = Signer::from_seed(&[3u8; 32]);
    let other = Signer::from_seed(&[4u8; 32]);
    let mut ring = Keyring::new();
    ring.add(&signer.public_key()).expect("add");
    let file = t.join("train.parquet");
    fs::write(&file, bytes(100_003, 9)).expect("write");
    let sig = kernels::registry::sign_file(&file, &signer).expect("sign").to_bytes();
    assert_eq!(kernels::registry::verify_file(&file, &sig, &ring).expect("verify"), *signer.key_id());
    // A renamed copy verifies: the statement is the contents' digest and size.
    let copy = t.join("renamed.bin");
    fs::copy(&file, &copy).expect("copy");
    kernels::registry::verify_file(&copy, &sig, &ring).expect("renamed copy");
    // The statement is the canonical JSON of digest and size.
    let stmt = kernels::registry::keys::file_statement(&file).expect("statement");
    let (d, n) = Digest::of_file(&file).expect("digest");
    assert_eq!(String::from_utf8(stmt).unwrap(), format!("{{\"blake3\":\"{}\",\"size\":{n}}}", d.to_hex()));
    // One flipped byte, a truncation, a flipped signature bit, a short signature, an untrusted signer,
    // and a manifest-domain signature over the same statement: each refused with its own error.
    let mut data = fs::read(&file).expect("read");
    data[50_000] ^= 1;
    fs::write(&copy, &data).expect("write");
    assert!(matches!(kernels::registry::verify_file(&copy, &sig, &ring), Err(Error::RegistryBadSignature { .. })));
    fs::write(&copy, &data[..data.len() - 1]).expect("write");
    assert!(matches!(kernels::registry::verify_file(&copy, &sig, &ring), Err(Error::RegistryBadSignature { .. })));
    let mut bad = sig;
    bad[40] ^= 0x10;
    assert!(matches!(kernels::registry::verify_file(&file, &bad, &ring), Err(Error::RegistryBadSignature { .. })));
    assert!(matches!(
        kernels::registry::verify_file(&file, &sig[..71], &ring),
        Err(Error::RegistrySignatureMalformed { .. })
    ));
    let foreign = kernels::registry::sign_file(&file, &other).expect("sign").to_bytes();
    assert!(matches!(kernels::registry::verify_file(&file, &foreign, &ring), Err(Error::RegistryUntrustedKey { .. })));
    let stmt = kernels::registry::keys::file_statement(&file).expect("statement");
    let cross = signer.sign(kernels::registry::keys::MANIFEST_DOMAIN, &stmt).to_bytes();
    assert!(matches!(kernels::registry::verify_file(&file, &cross, &ring), Err(Error::RegistryBadSignature { .. })));
    // A missing file is an I/O error naming it.
    let missing = t.join("missing");
    let err = kernels::registry::sign_file(&missing, &signer).expect_err("missing file");
    assert!(err.to_string().contains("missing"), "{err}");
}

// ------------------------------------------------------------------ stages and lineage

#[test]
fn stages_replay_from_the_signed_log() {
    let f = fixture("stages", 100);
    let p2 = f
        .reg
        .push(&PushSpec::new("fraud", 2).artefact(ArtefactSource::bytes("model.bin", bytes(100, 2))), &f.signer)
        .expect("push");
    assert_eq!(f.reg.stage_of(&r("fraud@1"), &f.keyring, None).expect("stage"), None);
    f.reg.promote(&r("fraud@1"), Stage::Staging, &f.signer, &f.keyring).expect("promote");
    f.reg.promote(&r("fraud@1"), Stage::Production, &f.signer, &f.keyring).expect("promote");
    f.reg.promote(&p2.reference, Stage::Staging, &f.signer, &f.keyring).expect("promote");
    let pinned = f.reg.log_head(&f.keyring).expect("head");
    f.reg.promote(&p2.reference, Stage::Production, &f.signer, &f.keyring).expect("promote");
    let head = f.reg.promote(&r("fraud@1"), Stage::Archived, &f.signer, &f.keyring).expect("promote");
    assert_eq!(head.len, 5);
    assert_eq!(f.reg.stage_of(&r("fraud@1"), &f.keyring, Some(&pinned)).expect("stage"), Some(Stage::Archived));
    assert_eq!(f.reg.in_stage("fraud", Stage::Production, &f.keyring, Some(&head)).expect("in stage"), [2]);
    let log = f.reg.promotion_log(&f.keyring, None).expect("log");
    assert_eq!(log.len(), 5);
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
        assert_eq!(e.prev, if i == 0 { Digest([0; 32]) } else { log[i - 1].hash });
    }
    // A signer outside the keyring cannot promote; promoting an unknown version fails.
    let stranger = signer(99);
    assert!(matches!(
        f.reg.promote(&r("fraud@2"), Stage::Archived, &stranger, &f.keyring),
        Err(Error::RegistryUntrustedKey { ref key_id, .. }) if key_id == stranger.key_id().as_str()
    ));
    assert!(matches!(
        f.reg.promote(&r("fraud@9"), Stage::Staging, &f.signer, &f.keyring),
        Err(Error::RegistryNotFound { .. })
    ));
    assert_eq!("production".parse::<Stage>().expect("stage"), Stage::Production);
    assert!(matches!("prod".parse::<Stage>(), Err(Error::RegistryInvalid { what: "stage", .. })));
}

#[test]
fn lineage_walks_parents_and_training_data() {
    let f = fixture("lineage", 100);
    let data_a = Digest::of(b"transactions 2024-01..06");
    let data_b = Digest::of(b"transactions 2024-07..12");
    let push = |name: &str, v: u64, parents: &[&str], data: Option<Digest>| {
        let mut spec = PushSpec::new(name, v).artefact(ArtefactSource::bytes("model.bin", bytes(50, v)));
        for p in parents {
            spec = spec.parent(r(p));
        }
        if let Some(d) = data {
            spec = spec.training_data(d);
        }
        f.reg.push(&spec, &f.signer).expect("push")
    };
    push("teacher", 1, &[], Some(data_a));
    push("fraud", 2, &["fraud@1", "teacher@1"], Some(data_b));
    push("student", 1, &["fraud@2", "teacher@1"], None);
    let nodes = f.reg.lineage(&r("student@1"), &f.keyring).expect("lineage");
    let got: Vec<(String, usize, Option<Digest>)> =
        nodes.iter().map(|n| (n.reference.to_string(), n.depth, n.training_data)).collect();
    assert_eq!(
        got,
        [
            ("student@1".to_string(), 0, None),
            ("fraud@2".to_string(), 1, Some(data_b)),
            ("teacher@1".to_string(), 1, Some(data_a)),
            ("fraud@1".to_string(), 2, None),
        ]
    );
    // A parent that is not registered is an error.
    push("orphan", 1, &["ghost@3"], None);
    assert!(
        matches!(f.reg.lineage(&r("orphan@1"), &f.keyring), Err(Error::RegistryNotFound { ref what }) if what == "ghost@3")
    );
}

#[test]
fn bad_names_and_references_are_refused() {
    let f = fixture("names", 10);
    for bad in ["", ".hidden", "-x", "a/b", "..", "a b", "é"] {
        let e = f.reg.push(&PushSpec::new(bad, 1), &f.signer);
        assert!(matches!(e, Err(Error::RegistryInvalid { what: "model name", .. })), "{bad:?}: {e:?}");
        let e = f.reg.push(&PushSpec::new("ok", 1).artefact(ArtefactSource::bytes(bad, vec![1])), &f.signer);
        assert!(matches!(e, Err(Error::RegistryInvalid { what: "artefact name", .. })), "{bad:?}: {e:?}");
    }
    for bad in ["fraud", "fraud@", "fraud@01", "fraud@-1", "fraud@x", "@1", "a/b@1", "fraud@99999999999999999999"] {
        assert!(bad.parse::<ModelRef>().is_err(), "{bad}");
    }
    let dup = PushSpec::new("dup", 1)
        .artefact(ArtefactSource::bytes("a", vec![1]))
        .artefact(ArtefactSource::bytes("a", vec![2]));
    assert!(matches!(f.reg.push(&dup, &f.signer), Err(Error::RegistryInvalid { what: "artefact name", .. })));
}

// ------------------------------------------------------------------ crashes and concurrency

#[test]
fn crash_leftovers_are_ignored_and_a_partial_object_is_repaired() {
    let f = fixture("crash", 4000);
    let root = f.dir.join("reg");
    // A crash mid-write leaves temp files: in objects/, in an object folder, among refs, beside a pull.
    let model = f.v1.manifest.artefacts.iter().find(|a| a.name == "model.bin").expect("model").clone();
    let obj = f.reg.store().path_of(&model.digest);
    fs::write(root.join("objects/.tmp-1-dead"), bytes(100, 5)).expect("write");
    fs::write(obj.parent().expect("parent").join(".tmp-1-beef"), bytes(10, 6)).expect("write");
    fs::write(root.join("refs/fraud/.tmp-1-cafe"), "garbage").expect("write");
    fs::write(root.join("lock"), "stale").expect("write");
    assert_eq!(f.reg.versions("fraud").expect("versions"), [1]);
    f.reg.verify(&r("fraud@1"), &f.keyring).expect("temp files do not matter");
    f.reg
        .push(&PushSpec::new("fraud", 2).artefact(ArtefactSource::bytes("m", vec![1, 2, 3])), &f.signer)
        .expect("push");

    // A partial object at its final path (a torn copy from outside the registry) is never served...
    let full = fs::read(&obj).expect("read");
    fs::write(&obj, &full[..1000]).expect("truncate");
    let e = f.reg.verify(&r("fraud@1"), &f.keyring);
    assert!(matches!(e, Err(Error::RegistryArtefactSize { expected: 4000, found: 1000, .. })), "{e:?}");
    assert!(matches!(f.reg.store().get(&model.digest), Err(Error::RegistryObjectCorrupt { .. })));
    // ...and putting the same bytes again repairs it.
    f.reg
        .push(&PushSpec::new("fraud", 3).artefact(ArtefactSource::bytes("model.bin", bytes(4000, 1))), &f.signer)
        .expect("push");
    f.reg.verify(&r("fraud@1"), &f.keyring).expect("repaired");
    // A failed pull leaves no file behind.
    fs::write(&obj, &full[..1000]).expect("truncate");
    let out = f.dir.join("out");
    assert!(f.reg.pull(&r("fraud@1"), &f.keyring, &out).is_err());
    assert!(files_under(&out).is_empty(), "{:?}", files_under(&out));
}

#[test]
fn concurrent_writers_never_corrupt_the_store() {
    let f = fixture("concurrent", 10);
    let shared = bytes(200_000, 77);
    let winners = AtomicUsize::new(0);
    let losers = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (reg, signer, keyring, shared, winners, losers) =
                (&f.reg, &f.signer, &f.keyring, &shared, &winners, &losers);
            s.spawn(move || {
                for i in 0..12u64 {
                    // Own versions (distinct), a shared object, and a contested version both try.
                    let v = 100 + t * 100 + i;
                    let spec = PushSpec::new("race", v)
                        .artefact(ArtefactSource::bytes("shared.bin", shared.clone()))
                        .artefact(ArtefactSource::bytes("own.bin", bytes(1000, v)));
                    reg.push(&spec, signer).expect("own version");
                    let contested =
                        PushSpec::new("race", 1000 + i).artefact(ArtefactSource::bytes("by", bytes(64, t * 1000 + i)));
                    match reg.push(&contested, signer) {
                        Ok(_) => winners.fetch_add(1, Ordering::Relaxed),
                        Err(Error::RegistryVersionExists { .. }) => losers.fetch_add(1, Ordering::Relaxed),
                        Err(e) => panic!("contested push: {e}"),
                    };
                    reg.promote(&r(&format!("race@{v}")), Stage::Staging, signer, keyring).expect("promote");
                }
            });
        }
    });
    assert_eq!(winners.load(Ordering::Relaxed), 12);
    assert_eq!(losers.load(Ordering::Relaxed), 12);
    let versions = f.reg.versions("race").expect("versions");
    assert_eq!(versions.len(), 24 + 12);
    for v in versions {
        f.reg.verify(&r(&format!("race@{v}")), &f.keyring).expect("every version verifies");
    }
    let log = f.reg.promotion_log(&f.keyring, None).expect("the chain is intact");
    assert_eq!(log.len(), 24);
    // No temp file is left anywhere.
    assert!(files_under(&f.dir.join("reg")).iter().all(|p| !p.to_string_lossy().contains(".tmp-")));
}

// ------------------------------------------------------------------ interop with `cryptography`

#[test]
fn signatures_interoperate_with_cryptography() {
    let f = fixture("interop-sig", 100);
    let manifest = f.reg.store().get(&f.v1.digest).expect("manifest");
    let sig = fs::read(f.reg.signature_path(&f.v1.digest)).expect("sig");
    let mut message = kernels::registry::keys::MANIFEST_DOMAIN.to_vec();
    message.extend_from_slice(&manifest);
    // Our signature verifies there over domain || canonical bytes; a flipped one does not.
    let ok = peer(
        json!({"op": "ed25519_verify", "public": hex(&f.signer.public_key()), "message": hex(&message), "signature": hex(&sig[8..])}),
    );
    assert_eq!(ok["ok"], true);
    let mut bad = sig[8..].to_vec();
    bad[5] ^= 1;
    let no = peer(
        json!({"op": "ed25519_verify", "public": hex(&f.signer.public_key()), "message": hex(&message), "signature": hex(&bad)}),
    );
    assert_eq!(no["ok"], false);
    // Ed25519 is deterministic: the same seed gives the same public key and signature there.
    let theirs = peer(json!({"op": "ed25519_sign", "seed": hex(&[1u8; 32]), "message": hex(&message)}));
    assert_eq!(theirs["public"], hex(&f.signer.public_key()));
    assert_eq!(theirs["signature"], hex(&sig[8..]));
    // A signature made there verifies here.
    let other = peer(json!({"op": "ed25519_sign", "seed": hex(&[5u8; 32]), "message": hex(b"hello")}));
    let mut ring = Keyring::new();
    let id =
        ring.add(unhex(other["public"].as_str().expect("hex")).as_slice().try_into().expect("32 bytes")).expect("key");
    let mut blob = [0u8; 72];
    blob[..8].copy_from_slice(&id.to_bytes());
    blob[8..].copy_from_slice(&unhex(other["signature"].as_str().expect("hex")));
    let blob = kernels::registry::SignatureBlob::from_bytes(&blob, "test").expect("blob");
    ring.verify(b"", b"hello", &blob, "test").expect("their signature verifies here");
}

#[test]
fn ciphertexts_interoperate_with_cryptography() {
    let t = Tmp::new("interop-seal");
    let aad = artefact_aad(&Digest::of(b"some manifest"), "model.safetensors");
    let key = [0x5au8; 32];
    for (i, len) in [0usize, 1, 64, 65_537].into_iter().enumerate() {
        let plain = bytes(len, 40 + i as u64);
        let nonce = bytes(12, 90 + i as u64);
        // cryptography seals (given key, nonce, aad) → we open.
        let theirs = peer(
            json!({"op": "seal", "key": hex(&key), "nonce": hex(&nonce), "aad": hex(&aad), "plaintext": hex(&plain)}),
        );
        let sealed = t.join(&format!("theirs-{i}"));
        fs::write(&sealed, unhex(theirs["sealed"].as_str().expect("hex"))).expect("write");
        let out = t.join(&format!("theirs-{i}.out"));
        seal::open_file(&sealed, &out, &SealKey::Raw(key), &aad).expect("open theirs");
        assert_eq!(fs::read(&out).expect("read"), plain);
        // The header and nonce we parse are theirs.
        let h = seal::parse_header(&fs::read(&sealed).expect("read"), &sealed).expect("header");
        assert_eq!(h.nonce.to_vec(), nonce);
        // We seal → cryptography opens, and refuses another artefact's AAD.
        let ours = t.join(&format!("ours-{i}"));
        fs::write(t.join("p"), &plain).expect("write");
        seal::seal_file(&t.join("p"), &ours, &SealKey::Raw(key), &aad).expect("seal");
        let sealed_hex = hex(&fs::read(&ours).expect("read"));
        let opened = peer(json!({"op": "open", "key": hex(&key), "aad": hex(&aad), "sealed": sealed_hex}));
        assert_eq!(opened["plaintext"], hex(&plain));
        let other_aad = artefact_aad(&Digest::of(b"some manifest"), "other");
        let refused = peer(json!({"op": "open", "key": hex(&key), "aad": hex(&other_aad), "sealed": sealed_hex}));
        assert_eq!(refused["error"], "InvalidTag");
    }
    // Argon2id: the same key from the same passphrase, salt and parameters; a passphrase-sealed file opens there.
    let salt = bytes(16, 123);
    let ours = seal::derive_key(b"open sesame", &salt, &TEST_KDF).expect("derive");
    let theirs =
        peer(json!({"op": "argon2id", "passphrase": "open sesame", "salt": hex(&salt), "m": 256, "t": 1, "p": 1}));
    assert_eq!(theirs["key"], hex(&ours));
    let plain = bytes(3000, 8);
    fs::write(t.join("p"), &plain).expect("write");
    let key = SealKey::Passphrase { passphrase: b"open sesame".to_vec(), params: TEST_KDF };
    seal::seal_file(&t.join("p"), &t.join("pass.sealed"), &key, &aad).expect("seal");
    let opened = peer(
        json!({"op": "open", "passphrase": "open sesame", "aad": hex(&aad), "sealed": hex(&fs::read(t.join("pass.sealed")).expect("read"))}),
    );
    assert_eq!(opened["plaintext"], hex(&plain));
}
