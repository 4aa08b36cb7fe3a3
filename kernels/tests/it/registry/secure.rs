//! `kernels::registry::secure`: the type-state pipeline (pull → decrypt → verify) round trips for a
//! sealed and a plain version, and one refusal per threat (a table: what is tampered, at which step
//! the pipeline stops, with which typed error), plus the keyring's `revoked` lines.

use std::fs;
use std::path::{Path, PathBuf};

use super::{bytes, keyring, r, signer};
use crate::tmp::Tmp;
use kernels::Error;
use kernels::registry::keys::revocation_line;
use kernels::registry::seal::{self, SealKey, artefact_aad};
use kernels::registry::secure::{Model, Pulled, Verified};
use kernels::registry::{
    ArtefactSource, Digest, Keyring, LogCheck, Manifest, ModelRef, PushSpec, Registry, Signer, Stage,
};

const KEY: SealKey = SealKey::Raw([5; 32]);

/// A registry with `m@1` pushed sealed and `p@1` pushed in plaintext, both `model.bin` + `config.json`.
struct Case {
    dir: Tmp,
    reg: Registry,
    signer: Signer,
    keyring: Keyring,
    key: SealKey,
    reference: ModelRef,
}

fn spec(name: &str) -> PushSpec {
    PushSpec::new(name, 1)
        .artefact(ArtefactSource::bytes("model.bin", bytes(4096, 11)))
        .artefact(ArtefactSource::bytes("config.json", b"{\"layers\":2}".to_vec()))
        .metric("accuracy", 0.9)
}

fn case(tag: &str, reference: &str) -> Case {
    let dir = Tmp::new(tag);
    let reg = Registry::open(&dir.join("reg")).expect("open");
    let signer = signer(1);
    let keyring = keyring(&[&signer]);
    reg.push_sealed(&spec("m"), &signer, &KEY).expect("push sealed");
    reg.push(&spec("p"), &signer).expect("push plain");
    Case { dir, reg, signer, keyring, key: KEY, reference: r(reference) }
}

/// The step at which the pipeline stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Pull,
    Decrypt,
    Verify,
}

/// Pull, decrypt when sealed, verify.
fn run(c: &Case) -> Result<Model<Verified>, (Step, Error)> {
    let unverified = match c.reg.pull_model(&c.reference).map_err(|e| (Step::Pull, e))? {
        Pulled::Sealed(m) => m.decrypt(&c.key).map_err(|e| (Step::Decrypt, e))?,
        Pulled::Plain(m) => m,
    };
    unverified.verify(&c.keyring).map_err(|e| (Step::Verify, e))
}

/// The store path of a sealed version's ciphertext of `artefact`.
fn ciphertext_path(c: &Case, artefact: &str) -> PathBuf {
    let digest = c.reg.resolve(&c.reference).unwrap();
    let index = fs::read_to_string(c.reg.sealed_index_path(&digest)).unwrap();
    let hex = index.lines().find_map(|l| l.strip_suffix(&format!(" {artefact}"))).expect("listed");
    c.reg.store().path_of(&Digest::from_hex(hex).unwrap())
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x01;
    fs::write(path, b).unwrap();
}

/// The manifest of `c.reference` with one metric changed, as canonical bytes.
fn edited_manifest(c: &Case) -> Vec<u8> {
    let digest = c.reg.resolve(&c.reference).unwrap();
    let mut m = Manifest::from_canonical_bytes(&c.reg.store().get(&digest).unwrap(), "test").unwrap();
    m.metrics.insert("accuracy".into(), 0.99);
    m.to_canonical_bytes().unwrap()
}

/// Points the ref of `c.reference` at `digest`.
fn move_ref(c: &Case, digest: &Digest) {
    fs::write(c.reg.ref_path(&c.reference), format!("{digest}\n")).unwrap();
}

#[test]
fn a_sealed_version_decrypts_verifies_and_gives_its_bytes() {
    let c = case("secure-sealed", "m@1");
    let v = run(&c).unwrap_or_else(|(s, e)| panic!("{s:?}: {e}"));
    assert_eq!(v.artefact("model.bin"), Some(&bytes(4096, 11)[..]));
    assert_eq!(v.artefact("config.json"), Some(&b"{\"layers\":2}"[..]));
    assert_eq!(v.key_id(), c.signer.key_id());
    assert_eq!(v.manifest().metrics["accuracy"], 0.9);
    assert_eq!(v.reference(), &r("m@1"));
    let out = v.write_to(&c.dir.join("serving")).unwrap();
    assert_eq!(fs::read(&out[0]).unwrap(), v.artefact(out[0].file_name().unwrap().to_str().unwrap()).unwrap());
    assert_eq!(v.into_artefact("model.bin").unwrap(), bytes(4096, 11));
}

#[test]
fn a_sealed_version_keeps_no_plaintext_in_the_store_and_old_verify_asks_for_the_key() {
    let c = case("secure-noplain", "m@1");
    let model = bytes(4096, 11);
    let digest = c.reg.resolve(&c.reference).unwrap();
    let manifest = Manifest::from_canonical_bytes(&c.reg.store().get(&digest).unwrap(), "test").unwrap();
    // The manifest signs the plaintext digest, which has no object; the plain version `p@1` has one.
    let entry = manifest.artefacts.iter().find(|a| a.name == "model.bin").unwrap();
    assert_eq!(entry.digest, Digest::of(&model));
    let ct = fs::read(ciphertext_path(&c, "model.bin")).unwrap();
    assert!(!ct.windows(64).any(|w| w == &model[..64]), "plaintext found in the ciphertext");
    assert!(c.reg.store().contains(&entry.digest), "p@1 stored the same plaintext");
    let sealed_only = case("secure-noplain2", "m@1");
    let reg = Registry::open(&sealed_only.dir.join("reg2")).unwrap();
    reg.push_sealed(&spec("m"), &sealed_only.signer, &KEY).unwrap();
    assert!(!reg.store().contains(&entry.digest), "a sealed push stored plaintext");
    match reg.verify(&r("m@1"), &sealed_only.keyring) {
        Err(Error::RegistryKeyRequired { artefact }) => assert_eq!(artefact, "config.json"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_plain_version_is_pulled_unverified_and_verifies() {
    let c = case("secure-plain", "p@1");
    let Pulled::Plain(m) = c.reg.pull_model(&c.reference).unwrap() else { panic!("p@1 is plain") };
    assert_eq!(m.reference(), &r("p@1"));
    let v = m.verify(&c.keyring).unwrap();
    assert_eq!(v.artefact("model.bin"), Some(&bytes(4096, 11)[..]));
}

#[test]
fn a_known_parent_verifies() {
    let c = case("secure-parent-ok", "child@1");
    let spec = PushSpec::new("child", 1).artefact(ArtefactSource::bytes("model.bin", b"x".to_vec())).parent(r("m@1"));
    c.reg.push_sealed(&spec, &c.signer, &KEY).unwrap();
    let v = run(&c).unwrap_or_else(|(s, e)| panic!("{s:?}: {e}"));
    assert_eq!(v.manifest().parents, vec![r("m@1")]);
}

#[test]
fn a_sealed_version_is_promoted_and_a_revoked_signer_breaks_the_log_replay() {
    let c = case("secure-promote", "m@1");
    c.reg.promote(&c.reference, Stage::Production, &c.signer, &c.keyring).unwrap();
    assert_eq!(c.reg.stage_of(&c.reference, &c.keyring, None).unwrap(), Some(Stage::Production));
    let mut revoked = c.keyring.clone();
    revoked.revoke(c.signer.key_id().clone());
    match c.reg.promotion_log(&revoked, None) {
        Err(Error::RegistryLog { entry: 0, check: LogCheck::RevokedKey { key_id } }) => {
            assert_eq!(key_id, c.signer.key_id().to_string())
        }
        other => panic!("{other:?}"),
    }
    match c.reg.promote(&r("p@1"), Stage::Staging, &c.signer, &revoked) {
        Err(Error::RegistryRevokedKey { subject, .. }) => assert_eq!(subject, "promotion of p@1"),
        other => panic!("{other:?}"),
    }
    // Without the key, promotion still checks the ciphertext objects at their addresses.
    flip_byte(&ciphertext_path(&c, "model.bin"), 10);
    match c.reg.promote(&c.reference, Stage::Archived, &c.signer, &c.keyring) {
        Err(Error::RegistryObjectCorrupt { .. }) => {}
        other => panic!("{other:?}"),
    }
}

type Tamper = fn(&mut Case);
type Expect = fn(&Error) -> bool;

/// One refusal: the pipeline must stop at `step` with an error `expect` accepts, and give nothing out.
fn check(name: &str, reference: &str, tamper: Tamper, step: Step, expect: Expect) {
    let mut c = case(&format!("secure-{}", name.replace(' ', "-")), reference);
    tamper(&mut c);
    match run(&c) {
        Ok(v) => panic!("{name}: verified {v:?}"),
        Err((s, e)) => {
            assert_eq!(s, step, "{name}: stopped at {s:?} with {e}");
            assert!(expect(&e), "{name}: unexpected error {e:?}");
        }
    }
}

#[test]
fn every_threat_is_refused_with_its_typed_error() {
    let cases: [(&str, &str, Tamper, Step, Expect); 12] = [
        (
            "tampered sealed artefact",
            "m@1",
            |c| flip_byte(&ciphertext_path(c, "model.bin"), 100),
            Step::Decrypt,
            |e| matches!(e, Error::RegistryDecrypt { .. }),
        ),
        (
            "tampered plain artefact",
            "p@1",
            |c| flip_byte(&c.reg.store().path_of(&Digest::of(&bytes(4096, 11))), 100),
            Step::Verify,
            |e| matches!(e, Error::RegistryArtefactDigest { artefact, .. } if artefact == "model.bin"),
        ),
        (
            "re-sealed other bytes by a key holder",
            "m@1",
            |c| {
                let d = c.reg.resolve(&c.reference).unwrap();
                let other = seal::seal_bytes(bytes(4096, 99), &c.key, &artefact_aad(&d, "model.bin")).unwrap();
                fs::write(ciphertext_path(c, "model.bin"), other).unwrap();
            },
            Step::Verify,
            |e| matches!(e, Error::RegistryArtefactDigest { artefact, .. } if artefact == "model.bin"),
        ),
        (
            "manifest edited under its digest",
            "m@1",
            |c| {
                let path = c.reg.store().path_of(&c.reg.resolve(&c.reference).unwrap());
                fs::write(path, edited_manifest(c)).unwrap();
            },
            Step::Verify,
            |e| matches!(e, Error::RegistryManifestDigest { .. }),
        ),
        (
            "manifest replaced and ref moved",
            "p@1",
            |c| {
                let d = c.reg.store().put_bytes(&edited_manifest(c)).unwrap();
                move_ref(c, &d);
            },
            Step::Verify,
            |e| matches!(e, Error::RegistrySignatureMalformed { .. }),
        ),
        (
            "manifest replaced with the old signature",
            "p@1",
            |c| {
                let old = c.reg.resolve(&c.reference).unwrap();
                let d = c.reg.store().put_bytes(&edited_manifest(c)).unwrap();
                fs::copy(c.reg.signature_path(&old), c.reg.signature_path(&d)).unwrap();
                move_ref(c, &d);
            },
            Step::Verify,
            |e| matches!(e, Error::RegistryBadSignature { .. }),
        ),
        (
            "wrong decryption key",
            "m@1",
            |c| c.key = SealKey::Raw([6; 32]),
            Step::Decrypt,
            |e| matches!(e, Error::RegistryDecrypt { .. }),
        ),
        (
            "signer not in the keyring",
            "m@1",
            |c| c.keyring = keyring(&[&signer(2)]),
            Step::Verify,
            |e| matches!(e, Error::RegistryUntrustedKey { .. }),
        ),
        (
            "signer revoked in the keyring file",
            "m@1",
            |c| {
                let path = c.dir.join("keyring.pub");
                let text = format!(
                    "{}{}",
                    kernels::registry::keys::public_key_text(&c.signer.public_key()),
                    revocation_line(c.signer.key_id())
                );
                fs::write(&path, text).unwrap();
                c.keyring = Keyring::load(&path).unwrap();
            },
            Step::Verify,
            |e| matches!(e, Error::RegistryRevokedKey { .. }),
        ),
        (
            "unknown lineage parent",
            "child@1",
            |c| {
                let spec = PushSpec::new("child", 1)
                    .artefact(ArtefactSource::bytes("m.bin", b"x".to_vec()))
                    .parent(r("base@7"));
                c.reg.push_sealed(&spec, &c.signer, &c.key).unwrap();
            },
            Step::Verify,
            |e| matches!(e, Error::RegistryUnknownParent { parent, .. } if parent == "base@7"),
        ),
        (
            "artefact dropped from the sealed index",
            "m@1",
            |c| {
                let path = c.reg.sealed_index_path(&c.reg.resolve(&c.reference).unwrap());
                let text = fs::read_to_string(&path).unwrap();
                let kept: String =
                    text.lines().filter(|l| !l.ends_with(" config.json")).map(|l| format!("{l}\n")).collect();
                fs::write(path, kept).unwrap();
            },
            Step::Verify,
            |e| matches!(e, Error::RegistryArtefactMissing { artefact, .. } if artefact == "config.json"),
        ),
        (
            "ciphertexts swapped between artefacts",
            "m@1",
            |c| {
                let path = c.reg.sealed_index_path(&c.reg.resolve(&c.reference).unwrap());
                let text = fs::read_to_string(&path).unwrap();
                let (a, b) = text.trim_end().split_once('\n').unwrap();
                let (ha, na) = a.split_once(' ').unwrap();
                let (hb, nb) = b.split_once(' ').unwrap();
                fs::write(path, format!("{hb} {na}\n{ha} {nb}\n")).unwrap();
            },
            Step::Decrypt,
            |e| matches!(e, Error::RegistryDecrypt { .. }),
        ),
    ];
    for (name, reference, tamper, step, expect) in cases {
        check(name, reference, tamper, step, expect);
    }
}

#[test]
fn keyring_revocation_lines_are_read_and_checked() {
    let dir = Tmp::new("secure-revoke");
    let (a, b) = (signer(1), signer(2));
    let pub_a = kernels::registry::keys::public_key_text(&a.public_key());
    let pub_b = kernels::registry::keys::public_key_text(&b.public_key());
    // A file without revocation lines reads as before.
    let plain = dir.join("plain.pub");
    fs::write(&plain, format!("{pub_a}{pub_b}")).unwrap();
    let ring = Keyring::load(&plain).unwrap();
    assert!(ring.contains(a.key_id()) && ring.contains(b.key_id()));
    assert_eq!(ring.revoked().count(), 0);
    // A revocation in one file of a folder wins over the key listed in another.
    let folder = dir.join("ring");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("a.pub"), &pub_a).unwrap();
    fs::write(folder.join("b.pub"), format!("{pub_b}# a leaked key\n  {}", revocation_line(a.key_id()))).unwrap();
    let ring = Keyring::load(&folder).unwrap();
    assert!(ring.is_revoked(a.key_id()) && !ring.contains(a.key_id()));
    assert!(ring.contains(b.key_id()));
    assert_eq!(ring.key_ids().collect::<Vec<_>>(), vec![b.key_id()]);
    // Bad revocation lines name the file and line.
    for (text, line) in [("revoked 1234\n", 1), (format!("{pub_a}revoked  XYZ\n").as_str(), 3)] {
        let bad = dir.join("bad.pub");
        fs::write(&bad, text).unwrap();
        match Keyring::load(&bad) {
            Err(Error::RegistryKeyFile { path, reason }) => {
                assert_eq!(path, bad);
                assert!(reason.contains(&format!("line {line}")) && reason.contains("revoked"), "{reason}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}
