//! Tenant (workspace) key pairs kept where Dify keeps them: the public PEM in the database,
//! the private PEM in storage at `privkeys/{tenant_id}/private.pem`.

use opendal::ErrorKind;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::infra::crypto::{self, CryptoError};
use crate::infra::storage::Storage;

/// Failures around tenant keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Worded as Dify's `PrivkeyNotFoundError`, so operators recognise it.
    #[error("Private key not found, tenant_id: {tenant_id}")]
    NotFound { tenant_id: Uuid },
    #[error("cannot write private key to storage at {path}: {source}")]
    Write { path: String, source: opendal::Error },
    #[error("cannot read private key from storage at {path}: {source}")]
    Read { path: String, source: opendal::Error },
    #[error("private key at {path} is not valid UTF-8")]
    NotUtf8 { path: String },
    #[error("decryption task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Storage path of a tenant's private key, in Dify's layout so an existing Dify storage
/// directory can be reused as is.
pub fn private_key_path(tenant_id: &Uuid) -> String {
    // Uuid's Display is the lowercase hyphenated form Dify uses.
    format!("privkeys/{tenant_id}/private.pem")
}

/// Generates a tenant key pair, stores the private half (replacing any previous one) and
/// returns the public PEM for `tenants.encrypt_public_key`.
pub async fn create_tenant_key_pair(storage: &Storage, tenant_id: &Uuid) -> Result<String, KeyError> {
    let pair = crypto::generate_key_pair_async().await?;
    let path = private_key_path(tenant_id);
    storage
        .operator()
        .write(&path, pair.private_pem.expose_secret().as_bytes().to_vec())
        .await
        .map_err(|source| KeyError::Write { path: path.clone(), source })?;
    tracing::info!(%tenant_id, path, "stored tenant private key");
    Ok(pair.public_pem)
}

/// Reads a tenant's private PEM from storage.
pub async fn load_private_key(storage: &Storage, tenant_id: &Uuid) -> Result<SecretString, KeyError> {
    let path = private_key_path(tenant_id);
    let bytes = match storage.operator().read(&path).await {
        Ok(bytes) => bytes.to_vec(),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(KeyError::NotFound { tenant_id: *tenant_id });
        }
        Err(source) => return Err(KeyError::Read { path, source }),
    };
    let pem = String::from_utf8(bytes).map_err(|_| KeyError::NotUtf8 { path })?;
    Ok(SecretString::from(pem))
}

/// Encrypts a secret for a tenant, giving the base64 value stored in credential columns.
///
/// Async only for symmetry with [`decrypt_for_tenant`]: the public-key operation is cheap.
pub async fn encrypt_for_tenant(public_pem: &str, text: &str) -> Result<String, KeyError> {
    Ok(crypto::encrypt_token(text, public_pem)?)
}

/// Decrypts a tenant's credential column value with its stored private key.
///
/// The private-key operation runs on the blocking pool, as it costs around a millisecond.
pub async fn decrypt_for_tenant(
    storage: &Storage,
    tenant_id: &Uuid,
    token_b64: &str,
) -> Result<String, KeyError> {
    let private_pem = load_private_key(storage, tenant_id).await?;
    let token = token_b64.to_owned();
    let text =
        tokio::task::spawn_blocking(move || crypto::decrypt_token(&token, private_pem.expose_secret()))
            .await
            .map_err(KeyError::Task)??;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &tempfile::TempDir) -> Storage {
        let loaded = crate::config::load(&crate::config::LoadOptions {
            environment: vec![("OPENDAL_FS_ROOT".into(), dir.path().display().to_string())],
            ..Default::default()
        });
        let settings = loaded.settings.unwrap();
        Storage::open(&settings).unwrap()
    }

    #[test]
    fn path_is_difys_layout() {
        let id = Uuid::parse_str("6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9").unwrap();
        assert_eq!(private_key_path(&id), "privkeys/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/private.pem");
    }

    #[tokio::test]
    async fn create_load_encrypt_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(&dir);
        let tenant = Uuid::new_v4();

        let public_pem = create_tenant_key_pair(&storage, &tenant).await.unwrap();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));

        let file = dir.path().join("privkeys").join(tenant.to_string()).join("private.pem");
        let on_disk = std::fs::read_to_string(&file).unwrap();
        assert!(on_disk.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{on_disk}");
        assert!(on_disk.trim_end().ends_with("-----END RSA PRIVATE KEY-----"));

        let loaded = load_private_key(&storage, &tenant).await.unwrap();
        assert_eq!(loaded.expose_secret(), on_disk);

        let token = encrypt_for_tenant(&public_pem, "sk-provider-key").await.unwrap();
        assert_eq!(decrypt_for_tenant(&storage, &tenant, &token).await.unwrap(), "sk-provider-key");
    }

    #[tokio::test]
    async fn unknown_tenant_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(&dir);
        let tenant = Uuid::new_v4();

        let err = load_private_key(&storage, &tenant).await.unwrap_err();
        assert!(matches!(err, KeyError::NotFound { tenant_id } if tenant_id == tenant));
        assert_eq!(err.to_string(), format!("Private key not found, tenant_id: {tenant}"));

        let err = decrypt_for_tenant(&storage, &tenant, "AAAA").await.unwrap_err();
        assert!(matches!(err, KeyError::NotFound { .. }), "{err}");
    }
}
