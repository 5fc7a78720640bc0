//! File storage through OpenDAL, laid out as Dify lays it out, and the shared secret key.

use base64::Engine;
use opendal::{ErrorKind, Operator};
use secrecy::{ExposeSecret, SecretString};

use crate::config::value::HttpUrl;

use crate::config::Settings;
use crate::config::settings::{OpendalScheme, StorageType};

/// Dify's storage key for a generated `SECRET_KEY`.
pub const SECRET_KEY_PATH: &str = ".dify_secret_key";

/// Storage failures, naming the root or key involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open storage at {root}: {source}")]
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

/// Where an S3 (or S3-compatible) store is, from either Dify's or OpenDAL's variables.
struct S3Target<'a> {
    bucket: &'a str,
    endpoint: &'a Option<HttpUrl>,
    region: &'a str,
    access_key: &'a Option<SecretString>,
    secret_key: &'a Option<SecretString>,
    root: &'a str,
}

fn s3_operator(target: S3Target<'_>, variables: &str) -> (opendal::Result<Operator>, String) {
    // OpenDAL's HTTP services need a process-wide transport; kiln's is reqwest on rustls with
    // the ring provider that `main` installs.
    static TRANSPORT: std::sync::Once = std::sync::Once::new();
    TRANSPORT.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal::HttpTransporter::install_default(opendal_http_transport_reqwest::ReqwestTransport::default());
    });
    let mut builder =
        opendal::services::S3::default().bucket(target.bucket).region(target.region).root(target.root);
    if let Some(endpoint) = target.endpoint {
        builder = builder.endpoint(endpoint.0.as_str().trim_end_matches('/'));
    }
    if let (Some(key), Some(secret)) = (target.access_key, target.secret_key) {
        builder = builder.access_key_id(key.expose_secret()).secret_access_key(secret.expose_secret());
    }
    let endpoint = target.endpoint.as_ref().map(|e| e.0.as_str()).unwrap_or("AWS");
    let shown = format!("s3://{}{} at {endpoint} ({variables})", target.bucket, target.root);
    (Operator::new(builder), shown)
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
        let storage = &settings.storage;
        let (operator, root) = match (storage.storage_type, storage.opendal_scheme) {
            (StorageType::S3, _) => s3_operator(
                S3Target {
                    bucket: &storage.s3_bucket_name,
                    endpoint: &storage.s3_endpoint,
                    region: &storage.s3_region,
                    access_key: &storage.s3_access_key,
                    secret_key: &storage.s3_secret_key,
                    root: "/",
                },
                "S3_*",
            ),
            (StorageType::Opendal, OpendalScheme::S3) => s3_operator(
                S3Target {
                    bucket: &storage.opendal_s3_bucket,
                    endpoint: &storage.opendal_s3_endpoint,
                    region: &storage.opendal_s3_region,
                    access_key: &storage.opendal_s3_access_key_id,
                    secret_key: &storage.opendal_s3_secret_access_key,
                    root: &storage.opendal_s3_root,
                },
                "OPENDAL_S3_*",
            ),
            _ => {
                let root_path = settings.storage_root();
                let root = std::path::absolute(&root_path).unwrap_or(root_path).display().to_string();
                (Operator::new(opendal::services::Fs::default().root(&root)), root)
            }
        };
        let operator = operator
            .map_err(|source| StorageError::Open { root: root.clone(), source })?
            .layer(opendal::layers::RetryLayer::new().with_max_times(3).with_jitter());
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
            Ok(bytes) => return self.read_settled_key(bytes.to_vec()).await,
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
        self.read_settled_key(bytes.to_vec()).await
    }

    /// Parses the key file; an empty file may be another replica's write in progress (the
    /// exclusive create comes before the content), so it is read again for a moment before
    /// it counts as empty.
    async fn read_settled_key(&self, mut bytes: Vec<u8>) -> Result<SecretString, StorageError> {
        for _ in 0..20 {
            if !String::from_utf8_lossy(&bytes).trim().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            bytes = self
                .operator
                .read(SECRET_KEY_PATH)
                .await
                .map_err(|source| StorageError::SecretKey { root: self.root.clone(), source })?
                .to_vec();
        }
        self.parse_key(bytes)
    }

    fn parse_key(&self, bytes: Vec<u8>) -> Result<SecretString, StorageError> {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if text.is_empty() {
            return Err(StorageError::EmptySecretKey { root: self.root.clone() });
        }
        Ok(SecretString::from(text))
    }
}
