//! `sovereign registry`: keys, signed model versions, verification, stages, lineage, bundles and sealed files
//! on a `kernels::registry` folder.
//!
//! ```text
//! sovereign registry keygen --dir keys --name release
//! sovereign registry push --registry reg --name fraud --version 1 --key keys/release.key models/fraud/model.safetensors --metric auc=0.93
//! sovereign registry verify --registry reg fraud@1 --keyring keys
//! sovereign registry promote --registry reg fraud@1 --stage production --key keys/release.key --keyring keys
//! sovereign registry lineage --registry reg fraud@2 --keyring keys
//! sovereign registry pull --registry reg fraud@1 --keyring keys --out serving/
//! sovereign registry encrypt --passphrase-env PASS model.safetensors model.sealed
//! sovereign registry revoke --keyring keys 0123456789abcdef                  # appends `revoked <key id>`
//! sovereign registry push --registry reg --name m --version 2 --key keys/release.key --seal-key-file keys/seal.seal m.gguf
//! ```
//!
//! A version's manifest is signed once, by `push`: it names its signer's key id, a signature by another key
//! over the same manifest is refused by verification, so "re-signing" a version means pushing a new one.
//! `sign` and `verify-file` are for files outside a registry (a data set, a bundle archive, a report):
//! a detached 72-byte signature over the file's BLAKE3 digest and size.
//!
//! ```text
//! sovereign registry sign --key keys/release.key data/train.parquet          # writes data/train.parquet.sig
//! sovereign registry verify-file --keyring keys data/train.parquet
//! ```

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use kernels::registry::seal::{self, SealKey};
use kernels::registry::{
    ArtefactSource, Digest, ExportConfig, ImportConfig, Keyring, ModelRef, PushSpec, Registry, Signer, Stage, keygen,
    manifest,
};
use serde_json::json;

use crate::{print_json, spinner};

mod mlflow;

/// The associated data of a file sealed by `registry encrypt`: a fixed domain, so a sealed registry
/// artefact (bound to its manifest and name) cannot be opened as a loose file, nor the reverse.
const FILE_AAD: &[u8] = b"sovereign-cli/sealed-file/v1";

/// `sovereign registry …`.
#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Generate an Ed25519 signing key (<name>.key, mode 0600) and its public key (<name>.pub) into a folder,
    /// or with --seal a random 32-byte encryption key (<name>.seal).
    Keygen {
        /// The folder to write into (created if needed).
        #[arg(long)]
        dir: PathBuf,
        /// The key's name (file stem).
        #[arg(long)]
        name: String,
        /// Write an encryption key for `encrypt --key-file` instead of a signing key.
        #[arg(long)]
        seal: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register a new model version: store its artefacts, write and sign its manifest.
    Push(PushArgs),
    /// Revoke a key in a keyring: a `revoked <key id>` line (in the file, or in a folder's revoked.pub);
    /// every signature by it is refused from then on, wherever that keyring is used.
    Revoke {
        /// The keyring: a .pub file, or a folder of them.
        #[arg(long)]
        keyring: PathBuf,
        /// The key id to revoke (16 hex characters).
        key_id: String,
    },
    /// Sign a file outside a registry: a detached signature (FILE.sig) over its BLAKE3 digest and size.
    Sign {
        /// The signing key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The file to sign.
        file: PathBuf,
        /// Where to write the signature (default: FILE.sig).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a detached signature made by `sign` against the keyring.
    VerifyFile {
        /// The signed file.
        file: PathBuf,
        /// The signature (default: FILE.sig).
        #[arg(long)]
        sig: Option<PathBuf>,
        /// The trusted public keys (a .pub file or a folder of them).
        #[arg(long)]
        keyring: PathBuf,
        /// Print the result as JSON (also on failure, with the exit status 1).
        #[arg(long)]
        json: bool,
    },
    /// Verify a version, then copy its artefacts into a folder.
    Pull {
        #[command(flatten)]
        at: VersionArgs,
        /// The folder to write the artefacts into.
        #[arg(long)]
        out: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a version: manifest digest, signature by a keyring key, signer, every artefact's size and digest.
    Verify {
        #[command(flatten)]
        at: VersionArgs,
        /// Print the result as JSON (also on failure, with the exit status 1).
        #[arg(long)]
        json: bool,
    },
    /// Record (signed, in the hash-chained promotion log) that a verified version entered a stage.
    Promote {
        #[command(flatten)]
        at: VersionArgs,
        /// staging, production or archived.
        #[arg(long)]
        stage: Stage,
        /// The signing key (its public key must be in the keyring).
        #[arg(long)]
        key: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a version's ancestry (parents, breadth-first) with training-data digests.
    Lineage {
        #[command(flatten)]
        at: VersionArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List models, versions and manifests (and stages from the verified promotion log, with --keyring).
    Ls {
        /// The registry folder.
        #[arg(long)]
        registry: PathBuf,
        /// The trusted public keys (a .pub file or a folder of them): adds each version's stage.
        #[arg(long)]
        keyring: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a verified version as a bundle folder (manifest, signature, artefacts, optionally sealed).
    Export {
        #[command(flatten)]
        at: VersionArgs,
        /// The bundle folder to create (must not exist).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        key: SealKeyArgs,
    },
    /// Verify a bundle folder against the keyring, then add it to the registry.
    Import {
        /// The registry folder.
        #[arg(long)]
        registry: PathBuf,
        /// The bundle folder.
        bundle: PathBuf,
        /// The trusted public keys (a .pub file or a folder of them).
        #[arg(long)]
        keyring: PathBuf,
        #[command(flatten)]
        key: SealKeyArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt a file with ChaCha20-Poly1305 (a raw key file or an Argon2id passphrase).
    Encrypt(SealArgs),
    /// Decrypt a file sealed by `encrypt` (nothing is written unless it authenticates).
    Decrypt(SealArgs),
    /// Publish a verified version to an MLflow Model Registry: its artefacts become a run's artifacts and a
    /// model version tagged with the manifest digest, the version and the signer's key id.
    MlflowRegister(mlflow::MlflowRegisterArgs),
}

/// A version in a registry, checked against a keyring.
#[derive(Args)]
pub struct VersionArgs {
    /// The registry folder.
    #[arg(long)]
    registry: PathBuf,
    /// The version, name@version.
    reference: String,
    /// The trusted public keys (a .pub file or a folder of them).
    #[arg(long)]
    keyring: PathBuf,
}

/// Arguments of `registry push`.
#[derive(Args)]
pub struct PushArgs {
    /// The registry folder (created if needed).
    #[arg(long)]
    registry: PathBuf,
    /// The model's name.
    #[arg(long)]
    name: String,
    /// The new version number.
    #[arg(long)]
    version: u64,
    /// The signing key file (from `keygen`).
    #[arg(long)]
    key: PathBuf,
    /// Files to register: PATH (named by its file name) or NAME=PATH.
    #[arg(required = true)]
    artefacts: Vec<String>,
    /// A metric, name=value (repeatable).
    #[arg(long = "metric")]
    metrics: Vec<String>,
    /// A version this one derives from, name@version (repeatable; must be registered).
    #[arg(long = "parent")]
    parents: Vec<String>,
    /// The training data file, recorded by its BLAKE3 digest.
    #[arg(long)]
    training_data: Option<PathBuf>,
    /// Encrypt the artefacts at rest with this 32-byte key (from `keygen --seal`): the manifest signs the
    /// plaintext, the registry keeps only ciphertext (`sovereign serve --registry … --key` reads it).
    #[arg(long)]
    seal_key_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The key of a sealed file or bundle: a key file or a passphrase in an environment variable.
#[derive(Args)]
pub struct SealKeyArgs {
    /// A 32-byte key: a file of 64 hex characters (from `keygen --seal`) or of 32 raw bytes.
    #[arg(long, conflicts_with = "passphrase_env")]
    key_file: Option<PathBuf>,
    /// The environment variable holding a passphrase (Argon2id derives the key).
    #[arg(long)]
    passphrase_env: Option<String>,
}

/// Arguments of `registry encrypt` and `decrypt`.
#[derive(Args)]
pub struct SealArgs {
    #[command(flatten)]
    key: SealKeyArgs,
    /// The file to read.
    input: PathBuf,
    /// The file to write (atomically).
    output: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `sovereign registry …`.
pub fn run(command: RegistryCommand) -> Result<()> {
    match command {
        RegistryCommand::Keygen { dir, name, seal, json } => keygen_cmd(&dir, &name, seal, json),
        RegistryCommand::Push(args) => push(args),
        RegistryCommand::Revoke { keyring, key_id } => revoke(&keyring, &key_id),
        RegistryCommand::Sign { key, file, out, json } => sign(&key, &file, out, json),
        RegistryCommand::VerifyFile { file, sig, keyring: ring, json } => verify_file(&file, sig, &ring, json),
        RegistryCommand::Pull { at, out, json } => pull(&at, &out, json),
        RegistryCommand::Verify { at, json } => verify(&at, json),
        RegistryCommand::Promote { at, stage, key, json } => promote(&at, stage, &key, json),
        RegistryCommand::Lineage { at, json } => lineage(&at, json),
        RegistryCommand::Ls { registry, keyring, json } => ls(&registry, keyring.as_deref(), json),
        RegistryCommand::Export { at, out, key } => export(&at, &out, &key),
        RegistryCommand::Import { registry, bundle, keyring, key, json } => {
            import(&registry, &bundle, &keyring, &key, json)
        }
        RegistryCommand::Encrypt(args) => seal_cmd(&args, true),
        RegistryCommand::Decrypt(args) => seal_cmd(&args, false),
        RegistryCommand::MlflowRegister(args) => mlflow::register(&args),
    }
}

// ------------------------------------------------------------------ helpers

/// Opens an existing registry folder (never creates one by mistake on a typo'd path).
pub fn open_existing(path: &Path) -> Result<Registry> {
    if !path.join("refs").is_dir() || !path.join("objects").is_dir() {
        bail!("{} is not a registry (no refs/ and objects/; `registry push` creates one)", path.display());
    }
    Registry::open(path).with_context(|| format!("opening registry {}", path.display()))
}

fn keyring(path: &Path) -> Result<Keyring> {
    Keyring::load(path).with_context(|| format!("loading keyring {}", path.display()))
}

fn reference(s: &str) -> Result<ModelRef> {
    s.parse::<ModelRef>().map_err(anyhow::Error::new)
}

impl VersionArgs {
    fn open(&self) -> Result<(Registry, ModelRef, Keyring)> {
        let r = reference(&self.reference)?;
        Ok((open_existing(&self.registry)?, r, keyring(&self.keyring)?))
    }
}

impl SealKeyArgs {
    /// The key given, if any.
    fn key(&self) -> Result<Option<SealKey>> {
        if let Some(path) = &self.key_file {
            return Ok(Some(SealKey::Raw(read_seal_key(path)?)));
        }
        let Some(var) = &self.passphrase_env else { return Ok(None) };
        let value = std::env::var_os(var).ok_or_else(|| {
            anyhow!(
                "environment variable {var} is not set (--passphrase-env names the variable holding the passphrase)"
            )
        })?;
        if value.is_empty() {
            bail!("environment variable {var} is empty: a passphrase is needed");
        }
        use std::os::unix::ffi::OsStringExt;
        Ok(Some(SealKey::passphrase(value.into_vec())))
    }

    fn required(&self) -> Result<SealKey> {
        self.key()?.ok_or_else(|| anyhow!("give --key-file FILE or --passphrase-env VAR"))
    }
}

/// Reads a 32-byte key: 64 hex characters (comment lines `#` allowed) or exactly 32 raw bytes; refuses a
/// file others may read.
pub fn read_seal_key(path: &Path) -> Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading key file {}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!("key file {}: permissions {:o} let others read the key; chmod 600 it", path.display(), mode & 0o777);
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading key file {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        if let [line] = lines.as_slice()
            && line.len() == 64
            && line.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let mut key = [0u8; 32];
            for (i, k) in key.iter_mut().enumerate() {
                *k = u8::from_str_radix(&line[2 * i..2 * i + 2], 16)?;
            }
            return Ok(key);
        }
    }
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow!(
            "key file {}: expected one line of 64 hex characters or 32 raw bytes ({} bytes found)",
            path.display(),
            bytes.len()
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An artefact argument: `NAME=PATH`, or a path named by its file name.
fn artefact(arg: &str) -> Result<ArtefactSource> {
    let path = Path::new(arg);
    if !path.exists()
        && let Some((name, p)) = arg.split_once('=')
        && manifest::check_name("artefact name", name).is_ok()
    {
        if !Path::new(p).is_file() {
            bail!("artefact {name:?}: {p} is not a file");
        }
        return Ok(ArtefactSource::path(name, p));
    }
    if !path.is_file() {
        bail!("artefact {arg} is not a file");
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    manifest::check_name("artefact name", &name).with_context(|| format!("artefact {arg}: name it with NAME={arg}"))?;
    Ok(ArtefactSource::path(&name, path))
}

// ------------------------------------------------------------------ commands

fn keygen_cmd(dir: &Path, name: &str, seal_key: bool, json: bool) -> Result<()> {
    if !seal_key {
        let files = keygen(dir, name).with_context(|| format!("generating key {name:?} in {}", dir.display()))?;
        if json {
            print_json(&json!({"key_id": files.key_id.as_str(), "secret": files.secret, "public": files.public}));
        } else {
            println!("key id {}", files.key_id);
            println!("  signing key {} (keep it secret)", files.secret.display());
            println!("  public key  {} (copy it into the keyrings that must trust this key)", files.public.display());
        }
        return Ok(());
    }
    manifest::check_name("key name", name)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.seal"));
    let mut key = [0u8; 32];
    use rand::TryRngCore;
    rand::rngs::OsRng.try_fill_bytes(&mut key).map_err(|e| anyhow!("the OS random source failed: {e}"))?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {} (an existing key is never overwritten)", path.display()))?;
    let text = format!("# sovereign ChaCha20-Poly1305 key (32 bytes, hex)\n{}\n", hex(&key));
    key.fill(0);
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    if json {
        print_json(&json!({"seal_key": path}));
    } else {
        println!("encryption key {} (keep it secret)", path.display());
    }
    Ok(())
}

fn push(args: PushArgs) -> Result<()> {
    let signer = Signer::load(&args.key).with_context(|| format!("loading signing key {}", args.key.display()))?;
    let mut spec = PushSpec::new(&args.name, args.version);
    for a in &args.artefacts {
        spec = spec.artefact(artefact(a)?);
    }
    for m in &args.metrics {
        let (k, v) = m.split_once('=').ok_or_else(|| anyhow!("--metric {m:?}: expected name=value"))?;
        let v: f64 = v.trim().parse().map_err(|_| anyhow!("--metric {m:?}: {v:?} is not a number"))?;
        if !v.is_finite() || k.is_empty() {
            bail!("--metric {m:?}: the name must not be empty and the value must be finite");
        }
        spec = spec.metric(k, v);
    }
    let registry = Registry::open(&args.registry).with_context(|| format!("opening {}", args.registry.display()))?;
    for p in &args.parents {
        let r = reference(p).with_context(|| format!("--parent {p:?}"))?;
        if registry.try_resolve(&r)?.is_none() {
            bail!("--parent {r} is not registered in {}", args.registry.display());
        }
        spec = spec.parent(r);
    }
    if let Some(path) = &args.training_data {
        let (digest, _) =
            Digest::of_file(path).with_context(|| format!("hashing --training-data {}", path.display()))?;
        spec = spec.training_data(digest);
    }
    let pb = spinner(format!("pushing {}@{}", args.name, args.version));
    let pushed = match &args.seal_key_file {
        Some(k) => registry.push_sealed(&spec, &signer, &SealKey::Raw(read_seal_key(k)?))?,
        None => registry.push(&spec, &signer)?,
    };
    pb.finish_and_clear();
    let m = &pushed.manifest;
    if args.json {
        print_json(&json!({
            "reference": pushed.reference.to_string(),
            "manifest": pushed.digest.to_hex(),
            "key_id": m.signer_key_id.as_str(),
            "artefacts": m.artefacts.iter().map(|a| json!({"name": a.name, "digest": a.digest.to_hex(), "size": a.size})).collect::<Vec<_>>(),
            "metrics": m.metrics,
            "parents": m.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "training_data": m.training_data.map(|d| d.to_hex()),
        }));
    } else {
        let sealed = if args.seal_key_file.is_some() { " (artefacts sealed)" } else { "" };
        println!("pushed {}{sealed}: manifest {}, signed by key {}", pushed.reference, pushed.digest, m.signer_key_id);
        for a in &m.artefacts {
            println!("  {:<32} {:>12} bytes  {}", a.name, a.size, a.digest);
        }
    }
    Ok(())
}

fn revoke(ring: &Path, key_id: &str) -> Result<()> {
    let id = kernels::registry::KeyId::parse(key_id)?;
    let file = if ring.is_dir() { ring.join("revoked.pub") } else { ring.to_path_buf() };
    let mut text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && ring.is_dir() => {
            "# sovereign-registry revoked keys\n".to_string()
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading keyring {}", file.display()))),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&kernels::registry::keys::revocation_line(&id));
    kernels::registry::atomic::write_atomic(&file, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", file.display()))?;
    // Read back: the keyring must still load, now with the key revoked.
    let loaded = keyring(ring)?;
    if !loaded.is_revoked(&id) {
        bail!("{} does not revoke {id} after writing", ring.display());
    }
    println!("revoked key {id} in {}", file.display());
    Ok(())
}

fn verify(at: &VersionArgs, json: bool) -> Result<()> {
    let (registry, r, ring) = at.open()?;
    let pb = spinner(format!("verifying {r}"));
    let result = registry.verify(&r, &ring);
    pb.finish_and_clear();
    match result {
        Ok(v) => {
            if json {
                print_json(&json!({
                    "reference": r.to_string(),
                    "verified": true,
                    "manifest": v.digest.to_hex(),
                    "key_id": v.key_id.as_str(),
                    "artefacts": v.manifest.artefacts.iter().map(|a| json!({"name": a.name, "digest": a.digest.to_hex(), "size": a.size})).collect::<Vec<_>>(),
                }));
            } else {
                println!("verified {r}: manifest {}, signed by key {}", v.digest, v.key_id);
                for a in &v.manifest.artefacts {
                    println!("  ok {:<32} {:>12} bytes  {}", a.name, a.size, a.digest);
                }
            }
            Ok(())
        }
        Err(e) => {
            if json {
                print_json(&json!({"reference": r.to_string(), "verified": false, "error": e.to_string()}));
            }
            Err(anyhow::Error::new(e).context(format!("verification of {r} in {} FAILED", at.registry.display())))
        }
    }
}

/// `FILE.sig` beside `file`.
fn default_sig_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

fn sign(key: &Path, file: &Path, out: Option<PathBuf>, json: bool) -> Result<()> {
    let signer = Signer::load(key).with_context(|| format!("loading signing key {}", key.display()))?;
    let pb = spinner(format!("signing {}", file.display()));
    let sig = kernels::registry::sign_file(file, &signer).with_context(|| format!("signing {}", file.display()))?;
    pb.finish_and_clear();
    let out = out.unwrap_or_else(|| default_sig_path(file));
    kernels::registry::atomic::write_atomic(&out, &sig.to_bytes(), 0o644)
        .with_context(|| format!("writing {}", out.display()))?;
    if json {
        print_json(&json!({"file": file, "signature": out, "key_id": sig.key_id.as_str()}));
    } else {
        println!("signed {} with key {} -> {}", file.display(), sig.key_id, out.display());
    }
    Ok(())
}

fn verify_file(file: &Path, sig: Option<PathBuf>, ring: &Path, json: bool) -> Result<()> {
    let sig_path = sig.unwrap_or_else(|| default_sig_path(file));
    let ring = keyring(ring)?;
    let result = std::fs::read(&sig_path)
        .with_context(|| format!("reading signature {}", sig_path.display()))
        .and_then(|bytes| kernels::registry::verify_file(file, &bytes, &ring).map_err(anyhow::Error::new));
    match result {
        Ok(key_id) => {
            if json {
                print_json(&json!({"file": file, "verified": true, "key_id": key_id.as_str()}));
            } else {
                println!("verified {}: signed by key {key_id}", file.display());
            }
            Ok(())
        }
        Err(e) => {
            if json {
                print_json(&json!({"file": file, "verified": false, "error": format!("{e:#}")}));
            }
            Err(e.context(format!("verification of {} against {} FAILED", file.display(), sig_path.display())))
        }
    }
}

fn pull(at: &VersionArgs, out: &Path, json: bool) -> Result<()> {
    let (registry, r, ring) = at.open()?;
    let pb = spinner(format!("verifying and pulling {r}"));
    let files = registry.pull(&r, &ring, out).with_context(|| format!("pulling {r}"))?;
    pb.finish_and_clear();
    if json {
        print_json(&json!({"reference": r.to_string(), "files": files}));
    } else {
        println!("pulled {r} (verified) into {}:", out.display());
        for f in &files {
            println!("  {}", f.display());
        }
    }
    Ok(())
}

fn promote(at: &VersionArgs, stage: Stage, key: &Path, json: bool) -> Result<()> {
    let (registry, r, ring) = at.open()?;
    let signer = Signer::load(key).with_context(|| format!("loading signing key {}", key.display()))?;
    let head = registry.promote(&r, stage, &signer, &ring).with_context(|| format!("promoting {r} to {stage}"))?;
    if json {
        print_json(&json!({
            "reference": r.to_string(),
            "stage": stage.as_str(),
            "key_id": signer.key_id().as_str(),
            "log_len": head.len,
            "log_head": head.hash.to_hex(),
        }));
    } else {
        println!("promoted {r} to {stage}, signed by key {}", signer.key_id());
        println!("  promotion log: {} entries, head {} (remember it to detect truncation)", head.len, head.hash);
    }
    Ok(())
}

fn lineage(at: &VersionArgs, json: bool) -> Result<()> {
    let (registry, r, ring) = at.open()?;
    let nodes = registry.lineage(&r, &ring).with_context(|| format!("lineage of {r}"))?;
    if json {
        print_json(&json!(
            nodes
                .iter()
                .map(|n| json!({
                    "reference": n.reference.to_string(),
                    "depth": n.depth,
                    "manifest": n.manifest.to_hex(),
                    "parents": n.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "training_data": n.training_data.map(|d| d.to_hex()),
                }))
                .collect::<Vec<_>>()
        ));
    } else {
        for n in &nodes {
            let parents: Vec<String> = n.parents.iter().map(ToString::to_string).collect();
            println!(
                "{}{}  manifest {}  training data {}{}",
                "  ".repeat(n.depth),
                n.reference,
                n.manifest,
                n.training_data.map_or("-".to_string(), |d| d.to_hex()),
                if parents.is_empty() { String::new() } else { format!("  parents {}", parents.join(", ")) }
            );
        }
    }
    Ok(())
}

fn ls(path: &Path, keyring_path: Option<&Path>, json: bool) -> Result<()> {
    let registry = open_existing(path)?;
    let stages: BTreeMap<ModelRef, Stage> = match keyring_path {
        Some(k) => registry.stages(&keyring(k)?, None).context("replaying the promotion log")?,
        None => BTreeMap::new(),
    };
    let mut rows = Vec::new();
    for name in registry.models()? {
        for version in registry.versions(&name)? {
            let r = ModelRef::new(&name, version)?;
            let digest = registry.resolve(&r)?;
            rows.push((r.clone(), digest, stages.get(&r).copied()));
        }
    }
    if json {
        print_json(&json!(
            rows.iter()
                .map(|(r, d, s)| json!({
                    "name": r.name,
                    "version": r.version,
                    "manifest": d.to_hex(),
                    "stage": s.map(|s| s.as_str()),
                }))
                .collect::<Vec<_>>()
        ));
    } else if rows.is_empty() {
        println!("{} holds no model", path.display());
    } else {
        for (r, d, s) in &rows {
            let stage = match (s, keyring_path) {
                (Some(s), _) => s.as_str(),
                (None, Some(_)) => "-",
                (None, None) => "",
            };
            println!("{:<40} {:<11} {}", r.to_string(), stage, d);
        }
    }
    Ok(())
}

fn export(at: &VersionArgs, out: &Path, key: &SealKeyArgs) -> Result<()> {
    let (registry, r, ring) = at.open()?;
    let cfg = ExportConfig { seal: key.key()? };
    let pb = spinner(format!("exporting {r}"));
    registry.export(&r, &ring, out, &cfg).with_context(|| format!("exporting {r}"))?;
    pb.finish_and_clear();
    let sealed = if cfg.seal.is_some() { ", artefacts sealed" } else { "" };
    println!("exported {r} (verified) to {}{sealed}", out.display());
    Ok(())
}

fn import(path: &Path, bundle: &Path, keyring_path: &Path, key: &SealKeyArgs, json: bool) -> Result<()> {
    let registry = Registry::open(path).with_context(|| format!("opening {}", path.display()))?;
    let cfg = ImportConfig { key: key.key()?, expect: None };
    let pb = spinner(format!("verifying and importing {}", bundle.display()));
    let pushed = registry
        .import(bundle, &keyring(keyring_path)?, &cfg)
        .with_context(|| format!("importing bundle {}", bundle.display()))?;
    pb.finish_and_clear();
    if json {
        print_json(&json!({"reference": pushed.reference.to_string(), "manifest": pushed.digest.to_hex()}));
    } else {
        println!("imported {} (verified): manifest {}", pushed.reference, pushed.digest);
    }
    Ok(())
}

fn seal_cmd(args: &SealArgs, encrypt: bool) -> Result<()> {
    let key = args.key.required()?;
    if args.input == args.output {
        bail!("the input and the output are the same file ({})", args.input.display());
    }
    // The registry's atomic commit fsyncs `output.parent()`, which is empty (and cannot be opened) for a bare
    // file name: anchor such a name in the current folder.
    let output = if args.output.parent().is_some_and(|p| p.as_os_str().is_empty()) {
        Path::new(".").join(&args.output)
    } else {
        args.output.clone()
    };
    let verb = if encrypt { "encrypting" } else { "decrypting" };
    let pb = spinner(format!("{verb} {}", args.input.display()));
    let bytes = if encrypt {
        seal::seal_file(&args.input, &output, &key, FILE_AAD)
            .with_context(|| format!("encrypting {}", args.input.display()))?;
        std::fs::metadata(&output)?.len()
    } else {
        seal::open_file(&args.input, &output, &key, FILE_AAD)
            .with_context(|| format!("decrypting {}", args.input.display()))?
    };
    pb.finish_and_clear();
    if args.json {
        print_json(&json!({"input": args.input, "output": args.output, "bytes": bytes}));
    } else {
        let done = if encrypt { "encrypted" } else { "decrypted (authenticated)" };
        println!("{done} {} → {} ({bytes} bytes)", args.input.display(), args.output.display());
    }
    Ok(())
}
