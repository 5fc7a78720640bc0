//! File storage through OpenDAL, laid out as Dify lays it out, and the shared secret key.

use base64::Engine;
use opendal::{ErrorKind, Operator};
use secrecy::SecretString;

use crate::config::Settings;

/// Dify's storage key for a generated `SECRET_KEY`.
pub const SECRET_KEY_PATH: &str = ".dify_secret_key";

/// Storage failures, naming the root or key involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open storage at {root} (OPENDAL_FS_ROOT): {source}")]
    Open { root: String, source: opendal::Error },
    #[error(
        "SECRET_KEY is not set and could not be generated at {SECRET_KEY_PATH} in storage {root}: {source}. Set SECRET_KEY or make the storage writable"
    )]
    SecretKey { root: String, source: opendal::Error },
    #[error(
        "{SECRET_KEY_PATH} in storage {root} is empty; delete it to have a new key generated, or set SECRET_KEY"
    )]
    EmptySecretKey { root: String },
    #[error("cannot generate random bytes: {0}")]
    Random(String),
}

/// The configured storage.
#[derive(Debug, Clone)]
pub struct Storage {
    operator: Operator,
    root: String,
}

impl Storage {
    /// Opens the storage named by `STORAGE_TYPE` / `OPENDAL_*`.
    pub fn open(settings: &Settings) -> Result<Self, StorageError> {
        let root_path = settings.storage_root();
        let root = std::path::absolute(&root_path).unwrap_or(root_path).display().to_string();
        let builder = opendal::services::Fs::default().root(&root);
        let operator =
            Operator::new(builder).map_err(|source| StorageError::Open { root: root.clone(), source })?;
        Ok(Self { operator, root })
    }

    /// The OpenDAL operator, for features that store files.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// Where the storage lives, for messages.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Checks that the storage answers, for readiness.
    pub async fn check(&self) -> Result<(), opendal::Error> {
        self.operator.check().await
    }

    /// Returns the shared secret key from storage, creating it if no replica has yet.
    ///
    /// The write is create-only, so replicas racing on first start converge on whichever
    /// key landed first: each re-reads the stored key rather than trusting its own.
    pub async fn load_or_create_secret_key(&self) -> Result<SecretString, StorageError> {
        let error = |source| StorageError::SecretKey { root: self.root.clone(), source };
        match self.operator.read(SECRET_KEY_PATH).await {
            Ok(bytes) => return self.parse_key(bytes.to_vec()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let mut random = [0u8; 48];
        getrandom::fill(&mut random).map_err(|e| StorageError::Random(e.to_string()))?;
        // Same shape as Python's secrets.token_urlsafe(48), which Dify uses.
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        match self.operator.write_with(SECRET_KEY_PATH, format!("{key}\n")).if_not_exists(true).await {
            Ok(_) => {
                tracing::info!(path = SECRET_KEY_PATH, root = %self.root, "generated SECRET_KEY and stored it")
            }
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {}
            Err(e) => return Err(error(e)),
        }
        let bytes = self.operator.read(SECRET_KEY_PATH).await.map_err(error)?;
        self.parse_key(bytes.to_vec())
    }

    fn parse_key(&self, bytes: Vec<u8>) -> Result<SecretString, StorageError> {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if text.is_empty() {
            return Err(StorageError::EmptySecretKey { root: self.root.clone() });
        }
        Ok(SecretString::from(text))
    }
}
