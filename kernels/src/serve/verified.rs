//! Serving a model from the registry: the entry point takes only a
//! [`Model<Verified>`](crate::registry::secure::Model) (the type-state pipeline of
//! [`crate::registry::secure`]: pulled, decrypted, signature and digests verified), so an unverified or
//! still-sealed model cannot reach the server.

use crate::Result;
use crate::registry::secure::{Model, Verified};

use super::ChatModel;

impl ChatModel {
    /// A chat model from artefact `artefact` (a GGUF) of a verified registry version, loaded from
    /// memory: the decrypted weights are never written to disk.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), kernels::Error> {
    /// use kernels::registry::secure::Pulled;
    /// use kernels::registry::{Keyring, Registry, SealKey};
    /// use kernels::serve::ChatModel;
    /// let reg = Registry::open("reg".as_ref())?;
    /// let keyring = Keyring::load("keys".as_ref())?;
    /// let Pulled::Sealed(sealed) = reg.pull_model(&"smollm2@1".parse()?)? else { panic!("not sealed") };
    /// let verified = sealed.decrypt(&SealKey::Raw([0; 32]))?.verify(&keyring)?;
    /// let chat = ChatModel::from_verified("smollm2", verified, "model.gguf")?;
    /// # let _ = chat; Ok(()) }
    /// ```
    ///
    /// An unverified model does not type-check:
    ///
    /// ```compile_fail,E0308
    /// use kernels::registry::secure::{Model, Unverified};
    /// use kernels::serve::ChatModel;
    /// fn serve(model: Model<Unverified>) -> kernels::Result<ChatModel> {
    ///     ChatModel::from_verified("smollm2", model, "model.gguf")
    /// }
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::RegistryArtefactMissing`] when the version has no such artefact; the GGUF
    /// reader's, decoder's, tokenizer's and chat template's errors.
    pub fn from_verified(id: impl Into<String>, model: Model<Verified>, artefact: &str) -> Result<ChatModel> {
        Self::from_llama(id, model.into_llama(artefact)?)
    }
}
