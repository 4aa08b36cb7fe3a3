//! Fuzzes the registry's parsers of untrusted bytes: canonical JSON (`CValue::parse`), manifests
//! (`Manifest::from_canonical_bytes`), model references, key ids, stored signatures and sealed-file headers.
//! Beyond "no panic", each accepted input must be canonical: writing back what was parsed reproduces the
//! input exactly (the parsers accept one byte string per value, which is what makes digests and signatures
//! over them meaningful), and a parsed manifest is valid, addressed by the BLAKE3 of those bytes and
//! survives a sign-and-verify round trip.
#![no_main]

use std::path::Path;

use kernels::registry::canonical::CValue;
use kernels::registry::keys::MANIFEST_DOMAIN;
use kernels::registry::seal::{MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST, parse_header};
use kernels::registry::{Digest, KeyId, Keyring, Manifest, ModelRef, SignatureBlob, Signer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Canonical JSON: accepted only in its canonical bytes.
    let json = CValue::parse(data);
    if let Ok(v) = &json {
        assert_eq!(v.to_bytes().as_deref(), Some(data), "CValue accepted non-canonical bytes");
    }

    // Manifests: canonical, valid, content-addressed, signable.
    if let Ok(m) = Manifest::from_canonical_bytes(data, "fuzz") {
        assert!(json.is_ok(), "a manifest parsed from bytes the canonical JSON parser refuses");
        assert_eq!(m.to_canonical_bytes().expect("a parsed manifest re-serialises"), data);
        assert_eq!(m.digest().expect("digest"), Digest::of(data));
        m.validate().expect("a parsed manifest is valid");
        assert!(m.artefacts.windows(2).all(|w| w[0].name < w[1].name), "artefacts unsorted or repeated");
        assert!(m.metrics.values().all(|v| v.is_finite()));
        let r = m.reference();
        assert_eq!(r.to_string().parse::<ModelRef>().expect("the reference parses"), r);
        for p in &m.parents {
            assert_eq!(p.to_string().parse::<ModelRef>().expect("a parent parses"), *p);
        }
        assert_eq!(KeyId::parse(m.signer_key_id.as_str()).expect("key id"), m.signer_key_id);
        // Signed by a key of the keyring: verification accepts exactly these bytes.
        let signer = Signer::from_seed(&[7; 32]);
        let mut ring = Keyring::new();
        ring.add(&signer.public_key()).expect("a valid public key");
        let sig = signer.sign(MANIFEST_DOMAIN, data);
        ring.verify(MANIFEST_DOMAIN, data, &sig, "fuzz").expect("own signature verifies");
        let blob = SignatureBlob::from_bytes(&sig.to_bytes(), "fuzz").expect("stored form parses");
        assert_eq!(blob, sig);
    }

    if let Ok(text) = std::str::from_utf8(data) {
        // A reference reads back to the same text (no sign, no leading zeros, no spaces).
        if let Ok(r) = text.parse::<ModelRef>() {
            assert_eq!(r.to_string(), text);
        }
        if let Ok(id) = KeyId::parse(text) {
            assert_eq!(id.as_str(), text);
            assert_eq!(KeyId::from_bytes(id.to_bytes()), id);
        }
    }

    // A stored signature: exactly 72 bytes, and they round-trip.
    if let Ok(sig) = SignatureBlob::from_bytes(data, "fuzz") {
        assert_eq!(&sig.to_bytes()[..], data);
    }

    // A sealed file's header: bounded KDF parameters, and room for the nonce and the tag.
    if let Ok(h) = parse_header(data, Path::new("fuzz")) {
        assert!(h.len + 16 <= data.len(), "header leaves no room for the tag");
        if let Some((p, salt)) = &h.kdf {
            assert!((1..=MAX_P_COST).contains(&p.p_cost));
            assert!((1..=MAX_T_COST).contains(&p.t_cost));
            assert!(p.m_cost_kib >= 8 * p.p_cost && p.m_cost_kib <= MAX_M_COST_KIB);
            assert!((8..=64).contains(&salt.len()));
        }
    }
});
