//! `sovereign serve --registry DIR --name N --version V --keyring K [--key FILE]`: serve a chat model
//! straight from a `kernels::registry` folder through the type-state pipeline of
//! `kernels::registry::secure` (pull → decrypt → verify → `ChatModel::from_verified`). Every refusal
//! (tampered bytes, wrong key, untrusted or revoked signer, unknown parent) happens before the port is
//! bound, and exits 1 with the typed error's message.
//!
//! ```text
//! sovereign registry keygen --dir keys --name release && sovereign registry keygen --dir keys --name seal --seal
//! sovereign registry push --registry reg --name smollm2 --version 1 --key keys/release.key --seal-key-file keys/seal.seal model.gguf
//! sovereign serve --registry reg --name smollm2 --version 1 --keyring keys --key keys/seal.seal
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kernels::registry::secure::Pulled;
use kernels::registry::{Keyring, ModelRef, Registry, SealKey};
use kernels::serve::ChatModel;

/// Where `sovereign serve` takes a registry model from (all of `--registry`, `--name`, `--version`,
/// `--keyring`; `--key` for a sealed version).
#[derive(clap::Args)]
pub struct RegistryModelArgs {
    /// A registry folder to serve the chat model from (with --name, --version, --keyring).
    #[arg(long, requires_all = ["name", "version", "keyring"], conflicts_with_all = ["model", "demo"])]
    registry: Option<PathBuf>,
    /// The model's name in the registry.
    #[arg(long, requires = "registry")]
    name: Option<String>,
    /// The version to serve.
    #[arg(long, requires = "registry")]
    version: Option<u64>,
    /// The trusted public keys (a .pub file or a folder of them; `revoked <key id>` lines revoke).
    #[arg(long, requires = "registry")]
    keyring: Option<PathBuf>,
    /// The 32-byte encryption key of a sealed version (from `registry keygen --seal`).
    #[arg(long, requires = "registry")]
    key: Option<PathBuf>,
    /// The GGUF artefact to serve (default: the version's only `*.gguf` artefact).
    #[arg(long, requires = "registry")]
    artefact: Option<String>,
}

impl RegistryModelArgs {
    /// True when a registry model was asked for.
    pub fn given(&self) -> bool {
        self.registry.is_some()
    }

    /// Pulls, decrypts (when sealed), verifies and loads the chat model, named `id` or the model's name.
    pub fn load(&self, id: Option<&str>) -> Result<Option<ChatModel>> {
        let (Some(dir), Some(name), Some(version), Some(keyring)) =
            (&self.registry, &self.name, self.version, &self.keyring)
        else {
            return Ok(None);
        };
        let registry = crate::registry::open_existing(dir)?;
        let r = ModelRef::new(name, version)?;
        let ring = Keyring::load(keyring).with_context(|| format!("loading keyring {}", keyring.display()))?;
        let verified = verify(&registry, &r, &ring, self.key.as_ref())
            .with_context(|| format!("refusing to serve {r} from registry {}", dir.display()))?;
        let artefact = match &self.artefact {
            Some(a) => a.clone(),
            None => {
                let ggufs: Vec<&str> = verified
                    .manifest()
                    .artefacts
                    .iter()
                    .map(|a| a.name.as_str())
                    .filter(|n| n.ends_with(".gguf"))
                    .collect();
                match ggufs.as_slice() {
                    [one] => (*one).to_string(),
                    _ => bail!("{r} has {} .gguf artefacts: name one with --artefact", ggufs.len()),
                }
            }
        };
        let id = id.map_or_else(|| name.clone(), str::to_string);
        eprintln!("loading chat model {id} from {r} (verified, signed by key {})", verified.key_id());
        Ok(Some(ChatModel::from_verified(id, verified, &artefact).with_context(|| format!("loading {r}"))?))
    }
}

/// The verified version: a sealed one needs `key`, a plain one refuses a key (it was expected sealed).
fn verify(
    registry: &Registry,
    r: &ModelRef,
    ring: &Keyring,
    key: Option<&PathBuf>,
) -> Result<kernels::registry::secure::Model<kernels::registry::secure::Verified>> {
    let unverified = match (registry.pull_model(r)?, key) {
        (Pulled::Sealed(sealed), Some(key)) => sealed.decrypt(&SealKey::Raw(crate::registry::read_seal_key(key)?))?,
        (Pulled::Sealed(_), None) => bail!("{r} is sealed: give its encryption key with --key FILE"),
        (Pulled::Plain(_), Some(_)) => bail!("{r} is not sealed, but --key was given: refusing a plaintext version"),
        (Pulled::Plain(plain), None) => plain,
    };
    Ok(unverified.verify(ring)?)
}
