//! A type-state artefact: its bytes can only be read once its Ed25519 signature verified (task
//! `c4w5.typestate`, 14 points).
//!
//! A model file is code in disguise: whoever controls its bytes controls what your server answers.
//! The registry signs every artefact (Ed25519, RFC 8032) and the server must check the signature
//! before it reads a byte. A runtime flag (`verified: bool`) can be forgotten; a type cannot. Here
//! the state is a type parameter: [`Artifact<Unverified>`] has no [`Artifact::bytes`] at all, and the
//! only way to an [`Artifact<Verified>`] is [`Artifact::verify`]. Code that serves an unverified
//! artefact does not compile:
//!
//! ```compile_fail,E0599
//! use c4w5_finetune_security::typestate::{Artifact, Unverified};
//!
//! let artefact: Artifact<Unverified> = Artifact::new(b"weights".to_vec(), [0u8; 64]);
//! let _ = artefact.bytes(); // error[E0599]: no method named `bytes` found for `Artifact<Unverified>`
//! ```
//!
//! and the states cannot be made outside this module (their fields are private), so nobody can
//! write `Artifact::<Verified> { .. }` either:
//!
//! ```compile_fail,E0451
//! use c4w5_finetune_security::typestate::{Artifact, Verified};
//!
//! let forged = Artifact::<Verified> { bytes: vec![], signature: [0; 64], signer: None, state: std::marker::PhantomData };
//! ```
//!
//! The verified path, once `verify` is written:
//!
//! ```
//! use c4w5_finetune_security::typestate::{Artifact, SecretKey};
//!
//! let key = SecretKey::from_seed([7; 32]);
//! let weights = b"the fine-tuned adapter".to_vec();
//! let signature = key.sign(&weights);
//! let verified = Artifact::new(weights, signature).verify(&key.public_key())?;
//! assert_eq!(verified.bytes(), b"the fine-tuned adapter");
//! # Ok::<(), c4w5_finetune_security::Error>(())
//! ```
//!
//! Signatures cover `DOMAIN || bytes`, the registry's domain-separated form (`kernels::registry::keys`
//! signs manifests with the same prefix), so a signature made for one kind of thing cannot be
//! replayed as another.

use std::marker::PhantomData;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::{Error, Result};

/// The domain-separation prefix every signature here covers (`kernels::registry::keys::MANIFEST_DOMAIN`).
pub const DOMAIN: &[u8] = b"sovereign-registry/manifest/v1\0";

/// The state of an artefact whose signature has not been checked.
#[derive(Debug)]
pub struct Unverified {
    _private: (),
}

/// The state of an artefact whose signature verified against a trusted key.
#[derive(Debug)]
pub struct Verified {
    _private: (),
}

/// An Ed25519 public key: 32 bytes that decode to a point of the curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key of these 32 bytes (RFC 8032's encoding). Given.
    ///
    /// Any point of the curve is accepted here, even one of small order (a weak key no honest key
    /// pair produces): refusing those is the verifier's job.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the bytes do not decode to a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey> {
        VerifyingKey::from_bytes(bytes).map_err(|_| Error::InvalidKey)?;
        Ok(PublicKey(*bytes))
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The 64 lowercase hex characters of the key.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// An Ed25519 signing key (the 32-byte secret seed of RFC 8032). Given: signing is the registry's
/// side; this lab writes the server's.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public_key().to_hex())
    }
}

impl SecretKey {
    /// The key of a 32-byte secret seed (keep it secret; generate it from the OS's random source).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The 64-byte signature (`R || S`) of `DOMAIN || bytes`.
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.0.sign(&[DOMAIN, bytes].concat()).to_bytes()
    }
}

/// Bytes with a signature, in state `S` ([`Unverified`] or [`Verified`]).
#[derive(Debug)]
pub struct Artifact<S> {
    bytes: Vec<u8>,
    signature: [u8; 64],
    signer: Option<PublicKey>,
    state: PhantomData<S>,
}

impl<S> Artifact<S> {
    /// The number of bytes (safe to know before verification: it reads no content).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there is no byte.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The signature, as received.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl Artifact<Unverified> {
    /// Bytes as received (from a file, a registry, the network), with their detached signature.
    pub fn new(bytes: Vec<u8>, signature: [u8; 64]) -> Artifact<Unverified> {
        Artifact { bytes, signature, signer: None, state: PhantomData }
    }

    // ANCHOR: verify
    /// Checks the signature over `DOMAIN || bytes` against `key` and, only if it holds, returns the
    /// same artefact in the [`Verified`] state (task `c4w5.typestate`).
    ///
    /// Use strict verification (RFC 8032 §5.1.7 with the extra checks of `verify_strict`: a canonical
    /// `S`, and no key or `R` of small order). Plain verification accepts a forged signature under a
    /// weak key for every message, and the hidden tests send one. Record `key` as the signer.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when `key`'s bytes do not decode (cannot happen for a [`PublicKey`] made
    /// by its constructors); [`Error::BadSignature`] with the key's hex when the signature does not
    /// verify: changed bytes, another key, a malformed or non-canonical signature, a weak key.
    pub fn verify(self, key: &PublicKey) -> Result<Artifact<Verified>> {
        todo!("c4w5.typestate")
    }
    // ANCHOR_END: verify

    /// [`Artifact::verify`] against each key of a pinned keyring in turn: the first that verifies is
    /// the signer (task `c4w5.typestate`).
    ///
    /// # Errors
    /// [`Error::BadSignature`] naming the last key tried when none verifies, [`Error::InvalidConfig`]
    /// when `keyring` is empty (trusting nobody must never mean trusting anybody).
    pub fn verify_any(self, keyring: &[PublicKey]) -> Result<Artifact<Verified>> {
        todo!("c4w5.typestate")
    }
}

impl Artifact<Verified> {
    /// The verified bytes. Only a verified artefact has this method.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The verified bytes, moved out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The key the signature verified against.
    pub fn signer(&self) -> PublicKey {
        self.signer.expect("a verified artefact always records its signer")
    }
}
