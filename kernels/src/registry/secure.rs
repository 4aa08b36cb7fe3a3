//! The secure model pipeline as types: a version read from the registry is a [`Model<Sealed>`] (its
//! artefacts still ChaCha20-Poly1305 ciphertext, RFC 8439) or a [`Model<Unverified>`] (pushed in
//! plaintext); [`Model::decrypt`] turns the first into the second, [`Model::verify`] checks the
//! Ed25519 signature (RFC 8032) and every BLAKE3 digest and yields a [`Model<Verified>`], and only a
//! `Model<Verified>` gives its bytes out (`artefact`, `write_to`, `into_llama`) or is accepted by the
//! server (`kernels::serve::ChatModel::from_verified`). The order is sign-then-encrypt: the manifest
//! signs the plaintext digests, so the receiver decrypts first and verifies what it will load.
//!
//! # Threat model
//!
//! A verified model proves **who published these bytes, and that they are unchanged**: the manifest
//! (name, version, artefact digests and sizes, metrics, parents, training-data digest) was signed by a
//! key of the operator's pinned [`Keyring`] that the keyring does not revoke, the ref still names that
//! manifest, the decrypted artefacts hash to the signed digests, and every parent the manifest names is
//! a version this registry holds, itself signed by a trusted key. Encryption adds confidentiality at
//! rest (a copy of the registry without the key reveals no weights; the manifest, with names, sizes,
//! digests, metrics and lineage, stays in clear), and its tag binds each ciphertext to its manifest
//! digest and artefact name.
//!
//! It does **not** prove that the model is good, safe or unpoisoned, that its training data was clean or
//! what the `training_data` digest says it was, that its metrics are honest, nor anything about a key
//! that leaked before it was revoked: a signature carries the publisher's word, and the trust you put in
//! the publisher. The symmetric key proves nothing about the publisher (whoever holds it can seal other
//! bytes; [`Model::verify`] is what refuses them), and a wrong key and a tampered ciphertext are the
//! same failure by design of the AEAD. Revocation takes effect where the keyring says so; a server with
//! an old keyring file still trusts the key. Freshness is the caller's: the version served is the one
//! named (`name@version`), and nothing says it is the newest one published.
//!
//! Pulling reads every artefact whole into memory (decryption is one AEAD message per artefact, as in
//! [`seal`]), so plaintext is never written to disk unless [`Model::write_to`] is asked to.
//!
//! # Refusals (typed errors, nothing is given out)
//!
//! | what went wrong | where | error |
//! |---|---|---|
//! | sealed artefact bytes tampered, or opened with the wrong key | [`Model::decrypt`] | [`Error::RegistryDecrypt`] |
//! | plaintext artefact bytes tampered (or re-sealed by a key holder) | [`Model::verify`] | [`Error::RegistryArtefactDigest`] / [`Error::RegistryArtefactSize`] |
//! | manifest edited under its digest / ref moved without a signature | [`Model::verify`] | [`Error::RegistryManifestDigest`] / [`Error::RegistrySignatureMalformed`] / [`Error::RegistryBadSignature`] |
//! | signer not in the keyring | [`Model::verify`] | [`Error::RegistryUntrustedKey`] |
//! | signer revoked (`revoked <key id>` in the keyring) | [`Model::verify`] | [`Error::RegistryRevokedKey`] |
//! | a parent the registry does not know | [`Model::verify`] | [`Error::RegistryUnknownParent`] |
//!
//! # Storage of a sealed version
//!
//! [`Registry::push_sealed`] signs the manifest over the plaintext, seals each artefact with associated
//! data [`seal::artefact_aad`]`(manifest digest, name)`, stores the ciphertext as an ordinary object and
//! lists it in `<root>/sealed/<manifest hex>`: one line `<ciphertext digest hex> <artefact name>` per
//! artefact, sorted by name. That list is not signed and need not be: a swapped or edited ciphertext
//! fails its tag, and what decrypts must still hash to the signed digests. No plaintext of a sealed
//! version is ever written to the store.

use std::collections::BTreeSet;
use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::atomic::{io_err, write_atomic};
use super::seal::{self, SealKey, artefact_aad};
use super::{ArtefactEntry, ArtefactSource, Digest, KeyId, Keyring, Manifest, ModelRef, PushSpec, Pushed, Registry};
use crate::Error;

mod private {
    /// Seals [`super::State`]: no state outside this module.
    pub trait Sealed {}
}

/// A state of [`Model`]: [`Sealed`], [`Unverified`] or [`Verified`] (sealed trait: no other).
pub trait State: private::Sealed {}

/// State of a model whose artefacts are still ciphertext. Uninhabited: a marker only.
#[derive(Debug)]
pub enum Sealed {}
/// State of a model whose plaintext is in memory but whose signature and digests are unchecked.
#[derive(Debug)]
pub enum Unverified {}
/// State of a model that passed [`Model::verify`]: the only state that gives its bytes out.
#[derive(Debug)]
pub enum Verified {}

impl private::Sealed for Sealed {}
impl private::Sealed for Unverified {}
impl private::Sealed for Verified {}
impl State for Sealed {}
impl State for Unverified {}
impl State for Verified {}

/// One artefact's bytes as held by a [`Model`]: ciphertext in `Model<Sealed>`, plaintext after.
#[derive(Clone)]
struct Blob {
    name: String,
    /// Where the bytes were read (named in errors).
    path: PathBuf,
    bytes: Vec<u8>,
}

/// A model version read from a registry, in state `S` (see the module docs for the pipeline).
///
/// The state is in the type, so skipping a step does not compile. The whole flow, which compiles and runs:
///
/// ```
/// # fn main() -> Result<(), kernels::Error> {
/// use kernels::registry::secure::Pulled;
/// use kernels::registry::{ArtefactSource, Keyring, PushSpec, Registry, SealKey, Signer};
/// let dir = std::env::temp_dir().join(format!("secure-doc-{}", std::process::id()));
/// let reg = Registry::open(&dir)?;
/// let signer = Signer::from_seed(&[7; 32]);
/// let mut keyring = Keyring::new();
/// keyring.add(&signer.public_key())?;
/// let key = SealKey::Raw([9; 32]);
/// let spec = PushSpec::new("tiny", 1).artefact(ArtefactSource::bytes("model.bin", b"weights".to_vec()));
/// reg.push_sealed(&spec, &signer, &key)?; // sign, then encrypt, then store
///
/// let Pulled::Sealed(sealed) = reg.pull_model(&"tiny@1".parse()?)? else { unreachable!() };
/// let verified = sealed.decrypt(&key)?.verify(&keyring)?;
/// assert_eq!(verified.artefact("model.bin"), Some(&b"weights"[..]));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
///
/// Reading a sealed (still encrypted) model's bytes does not compile (`artefact` exists only on
/// `Model<Verified>`):
///
/// ```compile_fail,E0599
/// use kernels::registry::secure::{Model, Sealed};
/// fn read(model: &Model<Sealed>) -> Option<&[u8]> {
///     model.artefact("model.gguf")
/// }
/// ```
///
/// Nor does writing it out for a loader:
///
/// ```compile_fail,E0599
/// use kernels::registry::secure::{Model, Sealed};
/// fn load(model: &Model<Sealed>) {
///     model.write_to(std::path::Path::new("serving")).unwrap();
/// }
/// ```
///
/// Nor skipping decryption (`verify` takes a `Model<Unverified>`):
///
/// ```compile_fail,E0599
/// use kernels::registry::Keyring;
/// use kernels::registry::secure::{Model, Sealed, Verified};
/// fn skip(model: Model<Sealed>, keyring: &Keyring) -> Model<Verified> {
///     model.verify(keyring).unwrap()
/// }
/// ```
///
/// Nor reading a decrypted but unverified model:
///
/// ```compile_fail,E0599
/// use kernels::registry::secure::{Model, Unverified};
/// fn read(model: &Model<Unverified>) -> Option<&[u8]> {
///     model.artefact("model.gguf")
/// }
/// ```
///
/// Nor passing an unverified model where a verified one is required (the serving entry point,
/// `kernels::serve::ChatModel::from_verified`, takes `Model<Verified>`; its docs show that call):
///
/// ```compile_fail,E0308
/// use kernels::registry::secure::{Model, Unverified, Verified};
/// fn serve(model: Model<Verified>) { let _ = model; }
/// fn skip(model: Model<Unverified>) {
///     serve(model)
/// }
/// ```
///
/// There is no public constructor: a `Model` comes from [`Registry::pull_model`], and a
/// `Model<Verified>` only from [`Model::verify`] (short of `unsafe` code).
//
// The compile-fail proofs are rustdoc `compile_fail,EXXXX` tests, not trybuild: trybuild builds in a
// second target directory and would inherit CI's clippy-driver wrapper. Each was checked to compile
// with `Model<Verified>` in place of the state it refuses, so it fails for the reason its code names.
pub struct Model<S: State> {
    registry: Registry,
    reference: ModelRef,
    /// The manifest digest the ref named at pull time.
    digest: Digest,
    /// The manifest bytes as read (checked against `digest` by `verify`).
    manifest_bytes: Vec<u8>,
    /// The stored signature, if any.
    signature: Option<Vec<u8>>,
    /// The manifest: as read (unchecked) before `verify`, as verified after.
    manifest: Manifest,
    /// The signer (`manifest.signer_key_id` before `verify`, the signature's after).
    key_id: KeyId,
    artefacts: Vec<Blob>,
    state: PhantomData<S>,
}

impl<S: State> std::fmt::Debug for Model<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("state", &std::any::type_name::<S>())
            .field("reference", &self.reference)
            .field("manifest", &self.digest)
            .field("artefacts", &self.artefacts.iter().map(|a| (&a.name, a.bytes.len())).collect::<Vec<_>>())
            .finish()
    }
}

/// What [`Registry::pull_model`] read: the version's encryption is in the type, so a sealed version
/// cannot be verified (nor loaded) before [`Model::decrypt`].
#[derive(Debug)]
pub enum Pulled {
    /// A version pushed with [`Registry::push_sealed`]: decrypt it first.
    Sealed(Model<Sealed>),
    /// A version pushed in plaintext ([`Registry::push`]): verify it.
    Plain(Model<Unverified>),
}

impl<S: State> Model<S> {
    /// The version, `name@version`.
    pub fn reference(&self) -> &ModelRef {
        &self.reference
    }

    /// The manifest digest the version's ref named when it was pulled.
    pub fn manifest_digest(&self) -> &Digest {
        &self.digest
    }

    /// The same model in state `T` (private: only the transitions below call it).
    fn into_state<T: State>(self) -> Model<T> {
        Model {
            registry: self.registry,
            reference: self.reference,
            digest: self.digest,
            manifest_bytes: self.manifest_bytes,
            signature: self.signature,
            manifest: self.manifest,
            key_id: self.key_id,
            artefacts: self.artefacts,
            state: PhantomData,
        }
    }
}

impl Model<Sealed> {
    /// Decrypts every artefact with `key` (ChaCha20-Poly1305, associated data = manifest digest ||
    /// artefact name). All or nothing: [`Error::RegistryDecrypt`] for a wrong key or a tampered or
    /// moved ciphertext, [`Error::RegistrySealedHeader`] for an unusable header.
    pub fn decrypt(mut self, key: &SealKey) -> Result<Model<Unverified>, Error> {
        for a in &mut self.artefacts {
            let sealed = std::mem::take(&mut a.bytes);
            a.bytes = seal::open_bytes(sealed, key, &artefact_aad(&self.digest, &a.name), &a.path)?;
        }
        Ok(self.into_state())
    }
}

impl Model<Unverified> {
    /// Verifies against `keyring`: the manifest bytes hash to the digest the ref named, the signature
    /// is by a keyring key that is not revoked (strict RFC 8032) and the manifest names that signer and
    /// this version, the artefacts are exactly the manifest's with its sizes and BLAKE3 digests, and
    /// every parent is a version of this registry whose manifest verifies. The first failure is the
    /// error (see the module docs' table); nothing is given out.
    pub fn verify(self, keyring: &Keyring) -> Result<Model<Verified>, Error> {
        let r = self.reference.to_string();
        let found = Digest::of(&self.manifest_bytes);
        if found != self.digest {
            return Err(Error::RegistryManifestDigest {
                reference: r,
                expected: self.digest.to_hex(),
                found: found.to_hex(),
            });
        }
        let (manifest, key_id) = Registry::check_signed_manifest(
            &self.manifest_bytes,
            self.signature.as_deref(),
            keyring,
            &format!("manifest {r}"),
            Some(&self.reference),
        )?;
        check_artefacts(&r, &manifest.artefacts, &self.artefacts)?;
        for p in &manifest.parents {
            match self.registry.verify_manifest(p, keyring) {
                Err(Error::RegistryNotFound { .. }) => {
                    return Err(Error::RegistryUnknownParent { reference: r, parent: p.to_string() });
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        let mut model: Model<Verified> = self.into_state();
        model.manifest = manifest;
        model.key_id = key_id;
        Ok(model)
    }
}

/// Checks that `held` is exactly the manifest's artefacts, each with its size and digest.
fn check_artefacts(r: &str, entries: &[ArtefactEntry], held: &[Blob]) -> Result<(), Error> {
    if let Some(extra) = held.iter().find(|b| !entries.iter().any(|e| e.name == b.name)) {
        return Err(Error::RegistryInvalid {
            what: "artefact",
            value: extra.name.clone(),
            reason: format!("not in the signed manifest of {r}"),
        });
    }
    for e in entries {
        let Some(b) = held.iter().find(|b| b.name == e.name) else {
            return Err(Error::RegistryArtefactMissing { reference: r.to_string(), artefact: e.name.clone() });
        };
        if b.bytes.len() as u64 != e.size {
            return Err(Error::RegistryArtefactSize {
                reference: r.to_string(),
                artefact: e.name.clone(),
                expected: e.size,
                found: b.bytes.len() as u64,
            });
        }
        let found = Digest::of(&b.bytes);
        if found != e.digest {
            return Err(Error::RegistryArtefactDigest {
                reference: r.to_string(),
                artefact: e.name.clone(),
                expected: e.digest.to_hex(),
                found: found.to_hex(),
            });
        }
    }
    Ok(())
}

impl Model<Verified> {
    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The key id that signed it (in the keyring, not revoked).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The verified bytes of artefact `name` (`None` if the version has no such artefact).
    pub fn artefact(&self, name: &str) -> Option<&[u8]> {
        self.artefacts.iter().find(|a| a.name == name).map(|a| a.bytes.as_slice())
    }

    /// Takes the verified bytes of artefact `name` ([`Error::RegistryArtefactMissing`] without it).
    pub fn into_artefact(self, name: &str) -> Result<Vec<u8>, Error> {
        let reference = self.reference.to_string();
        self.artefacts
            .into_iter()
            .find(|a| a.name == name)
            .map(|a| a.bytes)
            .ok_or_else(|| Error::RegistryArtefactMissing { reference, artefact: name.to_string() })
    }

    /// Writes every artefact to `dir/<name>` (each through a 0600 temp file and a rename), for loaders
    /// that want a path. Returns the files written.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        self.artefacts
            .iter()
            .map(|a| {
                let dest = dir.join(&a.name);
                seal::write_plain(&dest, &a.bytes)?;
                Ok(dest)
            })
            .collect()
    }

    /// Loads artefact `name` as a LLaMA-family GGUF decoder, from memory (the plaintext of a sealed
    /// model never touches the disk).
    ///
    /// A sealed model cannot be loaded:
    ///
    /// ```compile_fail,E0599
    /// use kernels::registry::secure::{Model, Sealed};
    /// fn load(model: Model<Sealed>) -> kernels::llm::LlamaModel {
    ///     model.into_llama("model.gguf").unwrap()
    /// }
    /// ```
    #[cfg(feature = "llm")]
    pub fn into_llama(self, name: &str) -> crate::Result<crate::llm::LlamaModel> {
        let bytes = self.into_artefact(name)?;
        crate::llm::LlamaModel::from_gguf(crate::formats::gguf::Gguf::from_vec(bytes)?)
    }
}

/// Parses a sealed-version index (`<digest hex> <name>` lines).
fn parse_index(text: &str, path: &Path) -> Result<Vec<(String, Digest)>, Error> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let bad = |reason: String| Error::RegistrySealedHeader {
                path: path.to_path_buf(),
                reason: format!("line {}: {reason}", i + 1),
            };
            let (hex, name) = line.split_once(' ').ok_or_else(|| bad("expected `<digest hex> <name>`".into()))?;
            let digest = Digest::from_hex(hex).map_err(|e| bad(e.to_string()))?;
            super::manifest::check_name("artefact name", name).map_err(|e| bad(e.to_string()))?;
            Ok((name.to_string(), digest))
        })
        .collect()
}

/// Reads `path`, or `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::RegistryIo { path: path.to_path_buf(), source: e }),
    }
}

impl Registry {
    /// The list of a sealed version's ciphertext objects (see [`secure`](self)); it exists only for
    /// versions pushed with [`Registry::push_sealed`].
    pub fn sealed_index_path(&self, manifest: &Digest) -> PathBuf {
        self.root().join("sealed").join(manifest.to_hex())
    }

    /// Registers `spec` sealed: signs the manifest over the plaintext digests (as [`Registry::push`]),
    /// then stores only each artefact's ChaCha20-Poly1305 ciphertext under `key`, bound to the manifest
    /// digest and artefact name, and lists it in the sealed index before committing the ref. Artefacts
    /// are read whole into memory.
    pub fn push_sealed(&self, spec: &PushSpec, signer: &super::Signer, key: &SealKey) -> Result<Pushed, Error> {
        let reference = self.check_new(spec)?;
        let mut plain = Vec::with_capacity(spec.artefacts.len());
        for a in &spec.artefacts {
            let bytes = match a {
                ArtefactSource::Path { path, .. } => fs::read(path).map_err(io_err(path))?,
                ArtefactSource::Bytes { bytes, .. } => bytes.clone(),
            };
            plain.push((a.name().to_string(), bytes));
        }
        let entries = plain
            .iter()
            .map(|(name, b)| ArtefactEntry { name: name.clone(), digest: Digest::of(b), size: b.len() as u64 })
            .collect();
        let (manifest, bytes, sig) = Self::sign_manifest(spec, entries, signer)?;
        let digest = Digest::of(&bytes);
        plain.sort_by(|a, b| a.0.cmp(&b.0));
        let mut index = String::new();
        for (name, b) in plain {
            let sealed = seal::seal_bytes(b, key, &artefact_aad(&digest, &name))?;
            index.push_str(&format!("{} {name}\n", self.store().put_bytes(&sealed)?));
        }
        let index_path = self.sealed_index_path(&digest);
        if let Some(dir) = index_path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        write_atomic(&index_path, index.as_bytes(), 0o644)?;
        let committed = self.commit(&reference, &bytes, &sig)?;
        Ok(Pushed { reference, manifest, digest: committed })
    }

    /// Verifies a sealed version as far as it can be without its key: the manifest
    /// ([`Registry::verify_manifest`]: digest, signature by a trusted, unrevoked key, signer, version),
    /// that the sealed index lists exactly the manifest's artefacts, and that each ciphertext object is
    /// intact at its address. The plaintext digests are checked only by [`Model::verify`] after
    /// [`Model::decrypt`]. Used by [`Registry::promote`] for sealed versions.
    pub fn verify_sealed(&self, r: &ModelRef, keyring: &Keyring) -> Result<super::Verified, Error> {
        let v = self.verify_manifest(r, keyring)?;
        let index_path = self.sealed_index_path(&v.digest);
        let text = read_optional(&index_path)?
            .ok_or_else(|| Error::RegistryNotFound { what: format!("sealed index of {r}") })?;
        let listed = parse_index(&String::from_utf8_lossy(&text), &index_path)?;
        let signed: BTreeSet<&str> = v.manifest.artefacts.iter().map(|a| a.name.as_str()).collect();
        let sealed: BTreeSet<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
        if let Some(name) = signed.difference(&sealed).next() {
            return Err(Error::RegistryArtefactMissing { reference: r.to_string(), artefact: name.to_string() });
        }
        if let Some(name) = sealed.difference(&signed).next() {
            return Err(Error::RegistryInvalid {
                what: "artefact",
                value: name.to_string(),
                reason: format!("not in the signed manifest of {r}"),
            });
        }
        for (name, d) in &listed {
            match self.store().rehash(d) {
                Ok((found, _)) if found == *d => {}
                Ok((found, _)) => {
                    return Err(Error::RegistryObjectCorrupt { expected: d.to_hex(), found: found.to_hex() });
                }
                Err(Error::RegistryNotFound { .. }) => {
                    return Err(Error::RegistryArtefactMissing { reference: r.to_string(), artefact: name.clone() });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(v)
    }

    /// Reads version `r` for the type-state pipeline, checking nothing yet: the manifest the ref names,
    /// its signature and each artefact's stored bytes (ciphertext for a sealed version). Fails only when
    /// something cannot be read: an unknown version ([`Error::RegistryNotFound`]), a manifest that is not
    /// canonical ([`Error::RegistryManifestMalformed`]), an artefact whose object is gone
    /// ([`Error::RegistryArtefactMissing`]).
    pub fn pull_model(&self, r: &ModelRef) -> Result<Pulled, Error> {
        let digest = self.resolve(r)?;
        let manifest_path = self.store().path_of(&digest);
        let manifest_bytes = read_optional(&manifest_path)?
            .ok_or_else(|| Error::RegistryNotFound { what: format!("manifest {digest} of {r}") })?;
        let signature = read_optional(&self.signature_path(&digest))?;
        let manifest = Manifest::from_canonical_bytes(&manifest_bytes, &format!("manifest {r}"))?;
        let read_object = |name: &str, d: &Digest| -> Result<Blob, Error> {
            let path = self.store().path_of(d);
            let bytes = read_optional(&path)?.ok_or_else(|| Error::RegistryArtefactMissing {
                reference: r.to_string(),
                artefact: name.to_string(),
            })?;
            Ok(Blob { name: name.to_string(), path, bytes })
        };
        let index_path = self.sealed_index_path(&digest);
        let sealed = read_optional(&index_path)?;
        let artefacts = match &sealed {
            Some(text) => {
                let text = String::from_utf8_lossy(text);
                parse_index(&text, &index_path)?
                    .iter()
                    .map(|(name, d)| read_object(name, d))
                    .collect::<Result<Vec<_>, _>>()
            }
            None => manifest.artefacts.iter().map(|a| read_object(&a.name, &a.digest)).collect::<Result<Vec<_>, _>>(),
        }?;
        let model: Model<Unverified> = Model {
            registry: self.clone(),
            reference: r.clone(),
            digest,
            manifest_bytes,
            signature,
            key_id: manifest.signer_key_id.clone(),
            manifest,
            artefacts,
            state: PhantomData,
        };
        Ok(match sealed {
            Some(_) => Pulled::Sealed(model.into_state()),
            None => Pulled::Plain(model),
        })
    }
}
