//! The tamper suite: every way of corrupting a registry, a bundle, a sealed file or the promotion
//! log must be refused with the specific typed error (matched on the variant and its fields), and
//! nothing may be written out. Each test prints how many cases it ran (`--nocapture`).

use std::fs;
use std::path::Path;

use kernels::Error;
use kernels::registry::seal::{self, SealKey, artefact_aad};
use kernels::registry::{
    ArtefactSource, Digest, ExportConfig, ImportConfig, LogCheck, Manifest, PushSpec, Registry, SignatureBlob, Stage,
};

use super::{Fixture, TEST_KDF, Tmp, bytes, files_under, fixture, keyring, r, signer};

/// Counts cases and reports them.
struct Tally(&'static str, usize);

impl Tally {
    fn case(&mut self) {
        self.1 += 1;
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        println!("tamper cases ({}): {}", self.0, self.1);
    }
}

/// Writes `bytes` to `path`, runs `check`, restores the original content.
fn with_content(path: &Path, bytes: &[u8], check: impl FnOnce()) {
    let original = fs::read(path).expect("read original");
    fs::write(path, bytes).expect("write tampered");
    check();
    fs::write(path, original).expect("restore");
}

/// Positions to flip: every byte of small files, a prime stride (plus the ends) of big ones.
fn positions(len: usize) -> Vec<usize> {
    if len <= 4096 {
        (0..len).collect()
    } else {
        let mut p: Vec<usize> = (0..len).step_by(65_521).collect();
        p.extend([1, len / 2, len - 17, len - 1]);
        p
    }
}

fn flipped(b: &[u8], i: usize, mask: u8) -> Vec<u8> {
    let mut v = b.to_vec();
    v[i] ^= mask;
    v
}

fn truncations(len: usize) -> Vec<usize> {
    let mut t = vec![0, 1, len / 3, len / 2, len.saturating_sub(1)];
    t.retain(|&x| x < len);
    t.dedup();
    t
}

fn artefact<'a>(f: &'a Fixture, name: &str) -> &'a kernels::registry::ArtefactEntry {
    f.v1.manifest.artefacts.iter().find(|a| a.name == name).expect("artefact")
}

/// Verify and pull `fraud@1` both fail as `pred` says; the pull writes nothing.
fn refused(f: &Fixture, case: &str, pred: impl Fn(&Error) -> bool) {
    let e = f.reg.verify(&r("fraud@1"), &f.keyring).expect_err(case);
    assert!(pred(&e), "{case}: verify gave {e:?}");
    let out = f.dir.join("pull-out");
    let e = f.reg.pull(&r("fraud@1"), &f.keyring, &out).expect_err(case);
    assert!(pred(&e), "{case}: pull gave {e:?}");
    assert!(files_under(&out).is_empty(), "{case}: pull wrote {:?}", files_under(&out));
}

#[test]
fn tampered_artefacts_are_refused() {
    let mut t = Tally("artefacts in the store", 0);
    for (len, tag) in [(300usize, "small"), (2 * 1024 * 1024 + 5, "big")] {
        let f = fixture(&format!("tamper-art-{tag}"), len);
        let a = artefact(&f, "model.bin").clone();
        let path = f.reg.store().path_of(&a.digest);
        let good = fs::read(&path).expect("read");
        for i in positions(good.len()) {
            with_content(&path, &flipped(&good, i, 0xff), || {
                refused(
                    &f,
                    &format!("flip byte {i}"),
                    |e| matches!(e, Error::RegistryArtefactDigest { artefact, expected, .. } if artefact == "model.bin" && *expected == a.digest.to_hex()),
                );
            });
            t.case();
        }
        for cut in truncations(good.len()) {
            with_content(&path, &good[..cut], || {
                refused(
                    &f,
                    &format!("truncate at {cut}"),
                    |e| matches!(e, Error::RegistryArtefactSize { artefact, found, .. } if artefact == "model.bin" && *found == cut as u64),
                );
            });
            t.case();
        }
        let mut longer = good.clone();
        longer.push(0);
        with_content(&path, &longer, || {
            refused(
                &f,
                "one byte appended",
                |e| matches!(e, Error::RegistryArtefactSize { expected, .. } if *expected == len as u64),
            );
        });
        t.case();
        fs::remove_file(&path).expect("delete");
        refused(
            &f,
            "deleted",
            |e| matches!(e, Error::RegistryArtefactMissing { artefact, .. } if artefact == "model.bin"),
        );
        t.case();
    }
}

#[test]
fn tampered_manifests_are_refused() {
    let mut t = Tally("manifests in the store", 0);
    let f = fixture("tamper-manifest", 300);
    let path = f.reg.store().path_of(&f.v1.digest);
    let good = fs::read(&path).expect("read");
    let sig = fs::read(f.reg.signature_path(&f.v1.digest)).expect("sig");
    let ref_path = f.reg.ref_path(&r("fraud@1"));
    let good_ref = fs::read(&ref_path).expect("ref");
    for i in positions(good.len()) {
        // In place: the bytes no longer hash to the ref's digest.
        with_content(&path, &flipped(&good, i, 0x01), || {
            refused(
                &f,
                &format!("flip manifest byte {i}"),
                |e| matches!(e, Error::RegistryManifestDigest { expected, .. } if *expected == f.v1.digest.to_hex()),
            );
        });
        t.case();
        // Re-addressed: the attacker stores the edited manifest at its own digest, copies the
        // signature and re-points the ref; the signature no longer covers the bytes.
        let edited = flipped(&good, i, 0x01);
        let d = f.reg.store().put_bytes(&edited).expect("put");
        fs::write(f.reg.signature_path(&d), &sig).expect("sig");
        with_content(&ref_path, format!("{d}\n").as_bytes(), || {
            refused(
                &f,
                &format!("re-addressed flip {i}"),
                |e| matches!(e, Error::RegistryBadSignature { key_id, .. } if key_id == f.signer.key_id().as_str()),
            );
        });
        t.case();
    }
    for cut in truncations(good.len()) {
        with_content(&path, &good[..cut], || {
            refused(&f, &format!("truncate manifest at {cut}"), |e| matches!(e, Error::RegistryManifestDigest { .. }));
        });
        t.case();
    }
    with_content(&ref_path, b"not a digest\n", || {
        refused(&f, "garbage ref", |e| matches!(e, Error::RegistryManifestMalformed { .. }));
    });
    t.case();
    assert_eq!(fs::read(&ref_path).expect("ref"), good_ref);
}

#[test]
fn tampered_signatures_and_foreign_keys_are_refused() {
    let mut t = Tally("signatures and keys", 0);
    let f = fixture("tamper-sig", 300);
    let sig_path = f.reg.signature_path(&f.v1.digest);
    let good = fs::read(&sig_path).expect("sig");
    assert_eq!(good.len(), 72);
    for i in 0..good.len() {
        with_content(&sig_path, &flipped(&good, i, 0xff), || {
            refused(&f, &format!("flip signature byte {i}"), |e| {
                if i < 8 {
                    matches!(e, Error::RegistryUntrustedKey { .. })
                } else {
                    matches!(e, Error::RegistryBadSignature { key_id, .. } if key_id == f.signer.key_id().as_str())
                }
            });
        });
        t.case();
    }
    for cut in [0usize, 8, 40, 71] {
        with_content(&sig_path, &good[..cut], || {
            refused(&f, &format!("truncate signature at {cut}"), |e| {
                matches!(e, Error::RegistrySignatureMalformed { .. })
            });
        });
        t.case();
    }
    let mut longer = good.clone();
    longer.push(0);
    with_content(&sig_path, &longer, || {
        refused(&f, "signature + 1 byte", |e| matches!(e, Error::RegistrySignatureMalformed { .. }))
    });
    t.case();
    fs::rename(&sig_path, f.dir.join("sig.bak")).expect("move");
    refused(&f, "signature deleted", |e| matches!(e, Error::RegistrySignatureMalformed { .. }));
    fs::rename(f.dir.join("sig.bak"), &sig_path).expect("move back");
    t.case();

    // Signed with a key that is not in the keyring.
    let stranger = signer(2);
    let p =
        f.reg.push(&PushSpec::new("fraud", 2).artefact(ArtefactSource::bytes("m", vec![1])), &stranger).expect("push");
    let e = f.reg.verify(&p.reference, &f.keyring).expect_err("untrusted");
    assert!(
        matches!(e, Error::RegistryUntrustedKey { ref key_id, .. } if key_id == stranger.key_id().as_str()),
        "{e:?}"
    );
    t.case();

    // Swapping the signer key id. B is trusted too.
    let b = signer(3);
    let both = keyring(&[&f.signer, &b]);
    let check = |case: &str, pred: &dyn Fn(&Error) -> bool| {
        let e = f.reg.verify(&r("fraud@1"), &both).expect_err(case);
        assert!(pred(&e), "{case}: {e:?}");
    };
    // (a) the signature file names B: B's key does not verify A's signature.
    let mut swapped = good.clone();
    swapped[..8].copy_from_slice(&b.key_id().to_bytes());
    with_content(&sig_path, &swapped, || {
        check(
            "sig names B",
            &|e| matches!(e, Error::RegistryBadSignature { key_id, .. } if key_id == b.key_id().as_str()),
        )
    });
    t.case();
    // (b) the manifest names B but A signed it (validly): the signer must be the one named.
    let mut m: Manifest = f.v1.manifest.clone();
    m.signer_key_id = b.key_id().clone();
    let mb = m.to_canonical_bytes().expect("bytes");
    let d = f.reg.store().put_bytes(&mb).expect("put");
    let ref_path = f.reg.ref_path(&r("fraud@1"));
    let by_a = f.signer.sign(kernels::registry::keys::MANIFEST_DOMAIN, &mb);
    fs::write(f.reg.signature_path(&d), by_a.to_bytes()).expect("sig");
    with_content(&ref_path, format!("{d}\n").as_bytes(), || {
        check("manifest names B, A signed", &|e| {
            matches!(e, Error::RegistrySignerMismatch { manifest_key_id, signature_key_id, .. }
                if manifest_key_id == b.key_id().as_str() && signature_key_id == f.signer.key_id().as_str())
        })
    });
    t.case();
    // (c) manifest and signature both name B, the signature is A's.
    let forged = SignatureBlob { key_id: b.key_id().clone(), signature: by_a.signature };
    fs::write(f.reg.signature_path(&d), forged.to_bytes()).expect("sig");
    with_content(&ref_path, format!("{d}\n").as_bytes(), || {
        check(
            "both name B",
            &|e| matches!(e, Error::RegistryBadSignature { key_id, .. } if key_id == b.key_id().as_str()),
        )
    });
    t.case();
}

#[test]
fn an_old_manifest_replayed_under_a_new_version_is_refused() {
    let mut t = Tally("replayed manifests", 0);
    let f = fixture("tamper-replay", 300);
    f.reg
        .push(&PushSpec::new("fraud", 2).artefact(ArtefactSource::bytes("model.bin", bytes(300, 2))), &f.signer)
        .expect("push");
    let v1 = format!("{}\n", f.v1.digest);
    for target in ["fraud@2", "fraud@7", "other@1"] {
        let path = f.reg.ref_path(&r(target));
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let before = fs::read(&path).ok();
        fs::write(&path, &v1).expect("write");
        let e = f.reg.verify(&r(target), &f.keyring).expect_err(target);
        assert!(
            matches!(e, Error::RegistryRefMismatch { ref reference, ref manifest } if reference == target && manifest == "fraud@1"),
            "{e:?}"
        );
        match before {
            Some(b) => fs::write(&path, b).expect("restore"),
            None => fs::remove_file(&path).expect("remove"),
        }
        t.case();
    }
    // A bundle of v1 offered as v2.
    let bundle = f.dir.join("b1");
    f.reg.export(&r("fraud@1"), &f.keyring, &bundle, &ExportConfig::default()).expect("export");
    let server = Registry::open(&f.dir.join("server")).expect("open");
    let e = server
        .import(&bundle, &f.keyring, &ImportConfig { key: None, expect: Some(r("fraud@2")) })
        .expect_err("replay");
    assert!(matches!(e, Error::RegistryRefMismatch { ref manifest, .. } if manifest == "fraud@1"), "{e:?}");
    assert!(server.versions("fraud").expect("versions").is_empty());
    t.case();
}

/// Expected error of a flipped byte `i` of a sealed file with a raw key (header: 9 bytes, nonce: 12).
fn raw_flip_expect(i: usize) -> fn(&Error) -> bool {
    if i < 9 {
        |e| matches!(e, Error::RegistrySealedHeader { .. })
    } else {
        |e| matches!(e, Error::RegistryDecrypt { .. })
    }
}

#[test]
fn tampered_sealed_files_are_refused_and_write_nothing() {
    let mut t = Tally("sealed files", 0);
    let dir = Tmp::new("tamper-seal");
    let aad = artefact_aad(&Digest::of(b"m"), "model.bin");
    let key = SealKey::Raw([9; 32]);
    let plain = bytes(200, 4);
    let good = seal::seal_bytes(plain.clone(), &key, &aad).expect("seal");
    assert_eq!(good.len(), 9 + 12 + 200 + 16);
    let src = dir.join("x.sealed");
    let out_dir = dir.join("out");
    fs::create_dir_all(&out_dir).expect("mkdir");
    let out = out_dir.join("model.bin");
    let open = |bytes: &[u8], key: &SealKey, aad: &[u8], case: &str, pred: &dyn Fn(&Error) -> bool| {
        fs::write(&src, bytes).expect("write");
        let e = seal::open_file(&src, &out, key, aad).expect_err(case);
        assert!(pred(&e), "{case}: {e:?}");
        assert!(files_under(&out_dir).is_empty(), "{case}: wrote {:?}", files_under(&out_dir));
    };
    for i in 0..good.len() {
        open(&flipped(&good, i, 0xff), &key, &aad, &format!("flip {i}"), &raw_flip_expect(i));
        t.case();
    }
    for cut in 0..good.len() {
        let pred: &dyn Fn(&Error) -> bool = if cut < 9 + 12 + 16 {
            &|e| matches!(e, Error::RegistrySealedHeader { .. })
        } else {
            &|e| matches!(e, Error::RegistryDecrypt { .. })
        };
        open(&good[..cut], &key, &aad, &format!("truncate at {cut}"), pred);
        t.case();
    }
    let decrypt: &dyn Fn(&Error) -> bool = &|e| matches!(e, Error::RegistryDecrypt { .. });
    let header: &dyn Fn(&Error) -> bool = &|e| matches!(e, Error::RegistrySealedHeader { .. });
    open(&good, &SealKey::Raw([8; 32]), &aad, "wrong raw key", decrypt);
    open(&good, &key, &artefact_aad(&Digest::of(b"m"), "config.json"), "other artefact name", decrypt);
    open(&good, &key, &artefact_aad(&Digest::of(b"m2"), "model.bin"), "other manifest", decrypt);
    open(
        &good,
        &SealKey::Passphrase { passphrase: b"x".to_vec(), params: TEST_KDF },
        &aad,
        "passphrase for a raw-key file",
        header,
    );
    t.1 += 4;

    // Passphrase files: every header byte, a stride of the body, wrong passphrase, raw key.
    let pass = SealKey::Passphrase { passphrase: b"correct horse".to_vec(), params: TEST_KDF };
    let good = seal::seal_bytes(plain, &pass, &aad).expect("seal");
    let hlen = 9 + 13 + 16 + 12;
    for i in (0..hlen).chain((hlen..good.len()).step_by(7)).chain([good.len() - 1]) {
        // m_cost = 256 KiB: flipping its two low bytes gives another valid cost (a different key);
        // every other parameter flip leaves the bounds (t, p > 64, m > 2 GiB, salt length > 64).
        let pred: &dyn Fn(&Error) -> bool = match i {
            0..=8 | 11..=21 => header,
            _ => decrypt,
        };
        open(&flipped(&good, i, 0xff), &pass, &aad, &format!("passphrase file flip {i}"), pred);
        t.case();
    }
    open(
        &good,
        &SealKey::Passphrase { passphrase: b"correct horsf".to_vec(), params: TEST_KDF },
        &aad,
        "wrong passphrase",
        decrypt,
    );
    open(&good, &SealKey::Raw([0; 32]), &aad, "raw key for a passphrase file", header);
    t.1 += 2;
}

/// A server registry, and a check that importing `bundle` fails as `pred` says and adds nothing.
fn import_refused(
    server: &Registry,
    bundle: &Path,
    f: &Fixture,
    cfg: &ImportConfig,
    case: &str,
    pred: &dyn Fn(&Error) -> bool,
) {
    let before = files_under(server.root());
    let e = server.import(bundle, &f.keyring, cfg).expect_err(case);
    assert!(pred(&e), "{case}: {e:?}");
    assert_eq!(files_under(server.root()), before, "{case}: the server changed");
}

#[test]
fn tampered_bundles_are_refused_before_anything_is_added() {
    let mut t = Tally("bundles", 0);
    let f = fixture("tamper-bundle", 300);
    let server = Registry::open(&f.dir.join("server")).expect("open");
    let plain = f.dir.join("plain");
    f.reg.export(&r("fraud@1"), &f.keyring, &plain, &ExportConfig::default()).expect("export");
    let none = ImportConfig::default();

    let manifest = plain.join("manifest.json");
    let good = fs::read(&manifest).expect("read");
    for i in 0..good.len() {
        with_content(&manifest, &flipped(&good, i, 0x01), || {
            import_refused(&server, &plain, &f, &none, &format!("manifest flip {i}"), &|e| {
                matches!(e, Error::RegistryBadSignature { .. })
            });
        });
        t.case();
    }
    let sig = plain.join("manifest.sig");
    let good = fs::read(&sig).expect("read");
    for i in 0..good.len() {
        with_content(&sig, &flipped(&good, i, 0xff), || {
            let pred: &dyn Fn(&Error) -> bool = if i < 8 {
                &|e| matches!(e, Error::RegistryUntrustedKey { .. })
            } else {
                &|e| matches!(e, Error::RegistryBadSignature { .. })
            };
            import_refused(&server, &plain, &f, &none, &format!("sig flip {i}"), pred);
        });
        t.case();
    }
    let art = plain.join("artefacts/model.bin");
    let good = fs::read(&art).expect("read");
    for i in 0..good.len() {
        with_content(&art, &flipped(&good, i, 0xff), || {
            import_refused(
                &server,
                &plain,
                &f,
                &none,
                &format!("artefact flip {i}"),
                &|e| matches!(e, Error::RegistryArtefactDigest { artefact, .. } if artefact == "model.bin"),
            );
        });
        t.case();
    }
    for cut in truncations(good.len()) {
        with_content(&art, &good[..cut], || {
            import_refused(&server, &plain, &f, &none, &format!("artefact cut {cut}"), &|e| {
                matches!(e, Error::RegistryArtefactSize { .. })
            });
        });
        t.case();
    }
    fs::write(plain.join("artefacts/extra.bin"), b"surprise").expect("write");
    import_refused(&server, &plain, &f, &none, "extra file", &|e| matches!(e, Error::RegistryBundle { .. }));
    fs::remove_file(plain.join("artefacts/extra.bin")).expect("rm");
    fs::rename(&art, f.dir.join("held")).expect("mv");
    import_refused(&server, &plain, &f, &none, "missing artefact", &|e| {
        matches!(e, Error::RegistryArtefactMissing { .. })
    });
    fs::rename(f.dir.join("held"), &art).expect("mv back");
    t.1 += 2;

    // An attacker re-signs the bundle with their own key and ships it as signer.pub: not trusted.
    let attacker = signer(66);
    let mut m = f.v1.manifest.clone();
    m.signer_key_id = attacker.key_id().clone();
    m.metrics.insert("auc".into(), 0.999);
    let mb = m.to_canonical_bytes().expect("bytes");
    let forged = f.dir.join("forged");
    fs::create_dir_all(forged.join("artefacts")).expect("mkdir");
    for name in ["model.bin", "config.json"] {
        fs::copy(plain.join("artefacts").join(name), forged.join("artefacts").join(name)).expect("copy");
    }
    fs::write(forged.join("manifest.json"), &mb).expect("write");
    fs::write(forged.join("manifest.sig"), attacker.sign(kernels::registry::keys::MANIFEST_DOMAIN, &mb).to_bytes())
        .expect("write");
    fs::write(forged.join("signer.pub"), kernels::registry::keys::public_key_text(&attacker.public_key()))
        .expect("write");
    import_refused(
        &server,
        &forged,
        &f,
        &none,
        "self-signed bundle",
        &|e| matches!(e, Error::RegistryUntrustedKey { key_id, .. } if key_id == attacker.key_id().as_str()),
    );
    t.case();

    // Sealed bundles.
    let key = SealKey::Raw([3; 32]);
    let sealed = f.dir.join("sealed");
    f.reg.export(&r("fraud@1"), &f.keyring, &sealed, &ExportConfig { seal: Some(key.clone()) }).expect("export");
    let with_key = ImportConfig { key: Some(key.clone()), expect: None };
    let sart = sealed.join("artefacts/model.bin.sealed");
    let good = fs::read(&sart).expect("read");
    for i in 0..good.len() {
        with_content(&sart, &flipped(&good, i, 0xff), || {
            import_refused(&server, &sealed, &f, &with_key, &format!("sealed flip {i}"), &raw_flip_expect(i));
        });
        t.case();
    }
    for cut in truncations(good.len()) {
        with_content(&sart, &good[..cut], || {
            let pred: &dyn Fn(&Error) -> bool = if cut < 37 {
                &|e| matches!(e, Error::RegistrySealedHeader { .. })
            } else {
                &|e| matches!(e, Error::RegistryDecrypt { .. })
            };
            import_refused(&server, &sealed, &f, &with_key, &format!("sealed cut {cut}"), pred);
        });
        t.case();
    }
    // Swap the two artefacts' ciphertexts.
    let cart = sealed.join("artefacts/config.json.sealed");
    let cgood = fs::read(&cart).expect("read");
    with_content(&sart, &cgood, || {
        with_content(&cart, &good, || {
            import_refused(&server, &sealed, &f, &with_key, "swapped ciphertexts", &|e| {
                matches!(e, Error::RegistryDecrypt { .. })
            });
        });
    });
    t.case();
    // The same model bytes sealed for another version do not open in this one.
    f.reg
        .push(
            &PushSpec::new("fraud", 2)
                .artefact(ArtefactSource::bytes("model.bin", bytes(300, 1)))
                .artefact(ArtefactSource::bytes("config.json", br#"{"trees":100,"depth":6}"#.to_vec())),
            &f.signer,
        )
        .expect("push");
    let sealed2 = f.dir.join("sealed2");
    f.reg.export(&r("fraud@2"), &f.keyring, &sealed2, &ExportConfig { seal: Some(key.clone()) }).expect("export");
    with_content(&sart, &fs::read(sealed2.join("artefacts/model.bin.sealed")).expect("read"), || {
        import_refused(&server, &sealed, &f, &with_key, "ciphertext from another version", &|e| {
            matches!(e, Error::RegistryDecrypt { .. })
        });
    });
    t.case();
    import_refused(
        &server,
        &sealed,
        &f,
        &none,
        "no key",
        &|e| matches!(e, Error::RegistryKeyRequired { artefact } if artefact == "config.json"),
    );
    let wrong = ImportConfig { key: Some(SealKey::Raw([4; 32])), expect: None };
    import_refused(&server, &sealed, &f, &wrong, "wrong key", &|e| matches!(e, Error::RegistryDecrypt { .. }));
    let pass = SealKey::Passphrase { passphrase: b"s3cret".to_vec(), params: TEST_KDF };
    let psealed = f.dir.join("psealed");
    f.reg.export(&r("fraud@1"), &f.keyring, &psealed, &ExportConfig { seal: Some(pass) }).expect("export");
    let wrong_pass = ImportConfig {
        key: Some(SealKey::Passphrase { passphrase: b"s3cres".to_vec(), params: TEST_KDF }),
        expect: None,
    };
    import_refused(&server, &psealed, &f, &wrong_pass, "wrong passphrase", &|e| {
        matches!(e, Error::RegistryDecrypt { .. })
    });
    t.1 += 3;
    // A version that exists with another manifest cannot be overwritten by import.
    server.import(&plain, &f.keyring, &none).expect("import v1");
    let mut other = f.v1.manifest.clone();
    other.created_unix_ms += 1;
    let ob = other.to_canonical_bytes().expect("bytes");
    let ob_dir = f.dir.join("other");
    fs::create_dir_all(ob_dir.join("artefacts")).expect("mkdir");
    for name in ["model.bin", "config.json"] {
        fs::copy(plain.join("artefacts").join(name), ob_dir.join("artefacts").join(name)).expect("copy");
    }
    fs::write(ob_dir.join("manifest.json"), &ob).expect("write");
    fs::write(ob_dir.join("manifest.sig"), f.signer.sign(kernels::registry::keys::MANIFEST_DOMAIN, &ob).to_bytes())
        .expect("write");
    import_refused(&server, &ob_dir, &f, &none, "existing version", &|e| {
        matches!(e, Error::RegistryVersionExists { .. })
    });
    t.case();
}

/// A registry with four promotions (fraud@1 staging, production; fraud@2 staging, production).
fn promoted(tag: &str) -> (Fixture, Vec<Vec<u8>>) {
    let f = fixture(tag, 100);
    f.reg
        .push(&PushSpec::new("fraud", 2).artefact(ArtefactSource::bytes("model.bin", bytes(100, 2))), &f.signer)
        .expect("push");
    for (v, s) in [(1, Stage::Staging), (1, Stage::Production), (2, Stage::Staging), (2, Stage::Production)] {
        f.reg.promote(&r(&format!("fraud@{v}")), s, &f.signer, &f.keyring).expect("promote");
    }
    let log = fs::read(f.reg.log_path()).expect("log");
    let lines = log.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    (f, lines)
}

fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect()
}

#[test]
fn tampered_promotion_logs_are_refused() {
    let mut t = Tally("promotion log", 0);
    let (f, lines) = promoted("tamper-log");
    let path = f.reg.log_path();
    let head = f.reg.log_head(&f.keyring).expect("head");
    let log_err = |bytes: &[u8], pinned: Option<&kernels::registry::LogHead>, case: &str| -> (usize, LogCheck) {
        let mut out = None;
        with_content(&path, bytes, || match f.reg.stages(&f.keyring, pinned) {
            Err(Error::RegistryLog { entry, check }) => out = Some((entry, check)),
            other => panic!("{case}: {other:?}"),
        });
        out.expect("checked")
    };
    let seq = |e: u64, f: u64| LogCheck::Sequence { expected: e, found: f };

    let swapped = join_lines(&[lines[0].clone(), lines[2].clone(), lines[1].clone(), lines[3].clone()]);
    assert_eq!(log_err(&swapped, None, "swap 1,2"), (1, seq(1, 2)));
    assert_eq!(log_err(&join_lines(&lines[1..]), None, "delete first"), (0, seq(0, 1)));
    let del1 = [lines[0].clone(), lines[2].clone(), lines[3].clone()];
    assert_eq!(log_err(&join_lines(&del1), None, "delete entry 1"), (1, seq(1, 2)));
    // Deleting the tail leaves a valid shorter chain: caught against the pinned head.
    assert!(matches!(
        log_err(&join_lines(&lines[..3]), Some(&head), "delete last"),
        (3, LogCheck::PinnedHead { pinned_len: 4, found_len: 3 })
    ));
    with_content(&path, &join_lines(&lines[..3]), || {
        assert_eq!(f.reg.stages(&f.keyring, None).expect("a shorter chain is valid").len(), 2);
    });
    t.1 += 4;
    // Edits of signed fields.
    let edit = |i: usize, from: &str, to: &str| {
        let mut l = lines.clone();
        let s = String::from_utf8(l[i].clone()).expect("utf8");
        assert!(s.contains(from), "{s}");
        l[i] = s.replacen(from, to, 1).into_bytes();
        join_lines(&l)
    };
    let bad_sig = |case: &str, bytes: Vec<u8>, entry: usize| {
        let (e, c) = log_err(&bytes, None, case);
        assert!(e == entry && matches!(c, LogCheck::BadSignature { .. }), "{case}: {e} {c:?}");
    };
    bad_sig("production → archived", edit(3, "\"stage\":\"production\"", "\"stage\":\"archived\""), 3);
    bad_sig("staging → production", edit(0, "\"stage\":\"staging\"", "\"stage\":\"production\""), 0);
    bad_sig("other version", edit(1, "\"model\":\"fraud@1\"", "\"model\":\"fraud@2\""), 1);
    bad_sig("time", edit(2, "\"at_unix_ms\":", "\"at_unix_ms\":1"), 2);
    let renumbered = {
        let mut l = del1.to_vec();
        l[1] = String::from_utf8(l[1].clone()).expect("utf8").replacen("\"seq\":2", "\"seq\":1", 1).into_bytes();
        join_lines(&l)
    };
    bad_sig("delete and renumber", renumbered, 1);
    t.1 += 5;
    // Every byte flipped (low bit): an error at the line of the byte.
    let full = join_lines(&lines);
    let mut line_of = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        line_of.extend(std::iter::repeat_n(i, l.len() + 1));
    }
    for (i, &line) in line_of.iter().enumerate() {
        let (entry, check) = log_err(&flipped(&full, i, 0x01), None, &format!("flip {i}"));
        assert_eq!(entry, line, "flip {i}: {check:?}");
        assert!(
            matches!(check, LogCheck::Malformed(_) | LogCheck::BadSignature { .. } | LogCheck::UntrustedKey { .. }),
            "flip {i}: {check:?}"
        );
        t.case();
    }
    // Truncated mid-line.
    for cut in [lines[0].len() / 2, lines[0].len() + 5, full.len() - 2] {
        let (_, check) = log_err(&full[..cut], None, &format!("cut {cut}"));
        assert!(matches!(check, LogCheck::Malformed(_)), "cut {cut}: {check:?}");
        t.case();
    }
    // An entry signed by a key the reader does not trust.
    let stranger = signer(5);
    let both = keyring(&[&f.signer, &stranger]);
    f.reg.promote(&r("fraud@1"), Stage::Archived, &stranger, &both).expect("promote");
    match f.reg.stages(&f.keyring, None) {
        Err(Error::RegistryLog { entry: 4, check: LogCheck::UntrustedKey { key_id } }) => {
            assert_eq!(key_id, stranger.key_id().as_str())
        }
        other => panic!("untrusted entry: {other:?}"),
    }
    fs::write(&path, &full).expect("restore");
    t.case();
    // An entry copied from another registry's log (same signer, same position): the chain breaks.
    let g = fixture("tamper-log-other", 100);
    g.reg
        .push(&PushSpec::new("fraud", 2).artefact(ArtefactSource::bytes("model.bin", bytes(100, 2))), &g.signer)
        .expect("push");
    g.reg.promote(&r("fraud@2"), Stage::Staging, &g.signer, &g.keyring).expect("promote");
    g.reg.promote(&r("fraud@1"), Stage::Production, &g.signer, &g.keyring).expect("promote");
    let theirs: Vec<Vec<u8>> = fs::read(g.reg.log_path())
        .expect("log")
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut spliced = lines.clone();
    spliced[1] = theirs[1].clone();
    let (entry, check) = log_err(&join_lines(&spliced), None, "copied entry");
    assert!(entry == 1 && matches!(check, LogCheck::PrevHash { .. }), "{entry} {check:?}");
    t.case();
    // An entry whose version's ref was re-pointed to another manifest.
    let ref2 = f.reg.ref_path(&r("fraud@2"));
    with_content(&ref2, format!("{}\n", f.v1.digest).as_bytes(), || match f.reg.stages(&f.keyring, None) {
        Err(Error::RegistryLog { entry: 2, check: LogCheck::ManifestMismatch { expected, .. } }) => {
            assert_eq!(expected, f.v1.digest.to_hex())
        }
        other => panic!("re-pointed ref: {other:?}"),
    });
    t.case();
}
