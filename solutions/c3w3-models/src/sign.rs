//! Ed25519 signatures over manifests (RFC 8032) and the pinned keyring that
//! decides whom to trust.
//!
//! # What is signed
//! Never the manifest bytes alone: the message is `MANIFEST_DOMAIN || bytes`, the
//! domain-separation prefix [`MANIFEST_DOMAIN`] (the same as
//! `kernels::registry::keys::MANIFEST_DOMAIN`) followed by the canonical bytes
//! ([`crate::manifest`]). A registry also signs other things (promotion-log
//! entries, under another prefix); distinct prefixes make a signature over one
//! kind of thing useless as a signature over another.
//!
//! # Key ids and the stored signature
//! A key id is the first 8 bytes of BLAKE3(public key), written as 16 lowercase
//! hex characters. A stored signature is 72 bytes: the key id's 8 bytes, then the
//! 64-byte Ed25519 signature (`R ‖ S`), as `kernels::registry::SignatureBlob`.
//!
//! # Whom to trust
//! Verification looks the signature's key id up in the verifier's own
//! [`Keyring`], pinned by the operator. A public key that travels with the
//! signed bundle ([`SignedManifest::public_key`]) is a convenience for display
//! and is **never** trusted: anyone can make a key pair and sign anything with it.
//! Verification is `verify_strict` (RFC 8032 with canonical `S` and no small-order
//! keys).
//!
//! # The order of the checks in [`verify_manifest`]
//! 1. the signature must be 72 bytes, else [`Error::InvalidInput`];
//! 2. the manifest bytes must hash (BLAKE3) to the digest the caller expected
//!    (the registry's ref), else [`Error::Tampered`];
//! 3. the key id must be in the keyring, else [`Error::UnknownSigner`];
//! 4. the signature must verify strictly under that key over
//!    `MANIFEST_DOMAIN || manifest`, else [`Error::BadSignature`].

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::manifest::hex;
use crate::{Error, Result, invalid};

// ANCHOR: sign_consts
/// Domain-separation prefix of manifest signatures (NUL-terminated).
pub const MANIFEST_DOMAIN: &[u8] = b"sovereign-registry/manifest/v1\0";

/// Length of a stored signature: 8-byte key id + 64-byte Ed25519 signature.
pub const SIGNATURE_LEN: usize = 72;
// ANCHOR_END: sign_consts

/// The 32-byte public key of a 32-byte RFC 8032 secret seed. Given.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

// ANCHOR: key_id
/// The key id of a public key: the first 8 bytes of BLAKE3(public) as 16 lowercase
/// hex characters (task c3w3.sign-verify).
pub fn key_id(public: &[u8; 32]) -> String {
    // BEGIN SOLUTION c3w3.sign-verify
    hex(&blake3::hash(public).as_bytes()[..8])
    // END SOLUTION
}
// ANCHOR_END: key_id

/// The public keys a verifier trusts, by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    /// Key id → 32-byte public key.
    pub keys: BTreeMap<String, [u8; 32]>,
}

impl Keyring {
    /// An empty keyring (trusts nobody). Given.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Trusts `public` under its [`key_id`]; returns the key id. Given.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the bytes are not an Ed25519 point.
    pub fn add(&mut self, public: &[u8; 32]) -> Result<String> {
        if VerifyingKey::from_bytes(public).is_err() {
            return invalid(format!("{} is not an Ed25519 public key", hex(public)));
        }
        let id = key_id(public);
        self.keys.insert(id.clone(), *public);
        Ok(id)
    }
}

// ANCHOR: signed_manifest
/// Signed manifest bytes as they travel in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// The canonical manifest bytes.
    pub manifest: Vec<u8>,
    /// The stored signature: key id (8 bytes) ‖ Ed25519 signature (64 bytes).
    pub signature: Vec<u8>,
    /// The signer's public key, if the bundle carries it. Never trusted.
    pub public_key: Option<[u8; 32]>,
}
// ANCHOR_END: signed_manifest

// ANCHOR: sign
/// Signs canonical manifest bytes with the key of `seed` (task c3w3.sign-verify, 10 points
/// with [`key_id`] and [`verify_manifest`]): the Ed25519 signature of
/// `MANIFEST_DOMAIN || manifest`, stored as key id bytes ‖ signature; the bundle
/// carries the public key.
pub fn sign_manifest(seed: &[u8; 32], manifest: &[u8]) -> SignedManifest {
    // BEGIN SOLUTION c3w3.sign-verify
    let key = SigningKey::from_bytes(seed);
    let public = key.verifying_key().to_bytes();
    let mut msg = Vec::with_capacity(MANIFEST_DOMAIN.len() + manifest.len());
    msg.extend_from_slice(MANIFEST_DOMAIN);
    msg.extend_from_slice(manifest);
    let mut signature = Vec::with_capacity(SIGNATURE_LEN);
    signature.extend_from_slice(&blake3::hash(&public).as_bytes()[..8]);
    signature.extend_from_slice(&key.sign(&msg).to_bytes());
    SignedManifest { manifest: manifest.to_vec(), signature, public_key: Some(public) }
    // END SOLUTION
}
// ANCHOR_END: sign

// ANCHOR: verify
/// Verifies a signed manifest against the caller's pinned keyring and the digest the
/// caller expects (task c3w3.sign-verify): the four checks of the module docs, in order.
///
/// # Errors
/// [`Error::InvalidInput`], [`Error::Tampered`], [`Error::UnknownSigner`] or
/// [`Error::BadSignature`], as the module docs say.
pub fn verify_manifest(bundle: &SignedManifest, expected_digest: &[u8; 32], keyring: &Keyring) -> Result<()> {
    // BEGIN SOLUTION c3w3.sign-verify
    if bundle.signature.len() != SIGNATURE_LEN {
        return invalid(format!("a stored signature is {SIGNATURE_LEN} bytes, got {}", bundle.signature.len()));
    }
    let got = blake3::hash(&bundle.manifest);
    if got.as_bytes() != expected_digest {
        return Err(Error::Tampered(format!(
            "the manifest hashes to {}, expected {}",
            got.to_hex(),
            hex(expected_digest)
        )));
    }
    let id = hex(&bundle.signature[..8]);
    let Some(public) = keyring.keys.get(&id) else {
        return Err(Error::UnknownSigner { key_id: id });
    };
    let bad = || Error::BadSignature { key_id: id.clone() };
    let vk = VerifyingKey::from_bytes(public).map_err(|_| bad())?;
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&bundle.signature[8..]);
    let mut msg = Vec::with_capacity(MANIFEST_DOMAIN.len() + bundle.manifest.len());
    msg.extend_from_slice(MANIFEST_DOMAIN);
    msg.extend_from_slice(&bundle.manifest);
    vk.verify_strict(&msg, &Signature::from_bytes(&sig)).map_err(|_| bad())
    // END SOLUTION
}
// ANCHOR_END: verify
