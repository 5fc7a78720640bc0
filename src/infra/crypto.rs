//! Tenant RSA key pairs and hybrid encryption of tenant secrets (provider credentials and
//! the like).
//!
//! Keys are laid out as Dify lays them out: RSA-2048, the public key as an SPKI PEM
//! (`-----BEGIN PUBLIC KEY-----`, what Dify stores in `tenants.encrypt_public_key`) and the
//! private key as a PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`, what PyCryptodome's
//! `export_key` writes). Parsing also accepts PKCS#8 private keys and PKCS#1 public keys.
//!
//! # Scheme
//!
//! A random 32-byte AES-256-GCM key is wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256) under
//! the tenant's public key, and the plaintext is sealed with that AES key under a random
//! 12-byte nonce. The output bytes are:
//!
//! ```text
//! b"KILN1:" || rsa_wrapped_key (modulus length: 256 bytes for RSA-2048)
//!           || nonce (12 bytes) || ciphertext || GCM tag (16 bytes)
//! ```
//!
//! Credential columns hold the standard base64 of these bytes ([`encrypt_token`]).
//!
//! This framing is kiln's own. It is **not** byte-compatible with Dify's `HYBRID:` format
//! (RSA-OAEP-SHA1 plus AES-EAX): credentials encrypted by Dify cannot be decrypted here and
//! must be re-entered, just as after Dify's own `reset-encrypt-key-pair` command.
//!
//! # RUSTSEC-2023-0071
//!
//! The `rsa` crate's private-key operations are not constant time (the Marvin attack). That
//! matters when an attacker can submit chosen ciphertexts and time the answers over a
//! network. kiln only decrypts values it stored itself, locally, and never exposes
//! decryption as an oracle whose timing or error is observable per request; decryption
//! also uses RSA blinding.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use secrecy::SecretString;
use secrecy::zeroize::Zeroizing;

/// Marks kiln's framing and its version, so a foreign or future format is refused clearly.
pub const PREFIX: &[u8] = b"KILN1:";

/// RSA modulus size of generated keys, as Dify uses.
const RSA_BITS: usize = 2048;
const AES_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Crypto failures, each naming what went wrong without revealing secrets.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot generate RSA key pair: {0}")]
    KeyGeneration(#[source] rsa::Error),
    #[error("cannot encode RSA key as PEM: {0}")]
    KeyEncoding(String),
    #[error("key generation task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("invalid RSA public key (expected an SPKI or PKCS#1 PEM)")]
    InvalidPublicKey,
    #[error("invalid RSA private key (expected a PKCS#1 or PKCS#8 PEM)")]
    InvalidPrivateKey,
    #[error("cannot generate random bytes: {0}")]
    Random(String),
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error(
        "not a kiln-encrypted value: missing KILN1: prefix (values encrypted by Dify must be re-entered)"
    )]
    WrongPrefix,
    #[error("encrypted value is too short: {len} bytes, at least {min} expected")]
    TooShort { len: usize, min: usize },
    #[error("cannot unwrap the data key: encrypted with another key pair, or corrupted")]
    KeyUnwrap,
    #[error("encrypted value failed authentication: tampered with, or encrypted with another key")]
    Authentication,
    #[error("encrypted value is not valid base64: {0}")]
    Base64(#[source] base64::DecodeError),
    #[error("decrypted value is not valid UTF-8")]
    Utf8,
}

/// A freshly generated tenant key pair: the public half goes to the database, the private
/// half to storage.
pub struct KeyPair {
    /// SPKI PEM, as stored in `tenants.encrypt_public_key`.
    pub public_pem: String,
    /// PKCS#1 PEM, as written to `privkeys/{tenant_id}/private.pem`.
    pub private_pem: SecretString,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_pem", &self.public_pem)
            .field("private_pem", &"[REDACTED]")
            .finish()
    }
}

/// Generates an RSA-2048 key pair in Dify's PEM layouts. CPU-heavy: prefer
/// [`generate_key_pair_async`] on the runtime.
pub fn generate_key_pair() -> Result<KeyPair, CryptoError> {
    let private = RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(CryptoError::KeyGeneration)?;
    let public_pem = RsaPublicKey::from(&private)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| CryptoError::KeyEncoding(e.to_string()))?;
    let private_pem =
        private.to_pkcs1_pem(LineEnding::LF).map_err(|e| CryptoError::KeyEncoding(e.to_string()))?;
    Ok(KeyPair { public_pem, private_pem: SecretString::from(private_pem.as_str()) })
}

/// Generates a key pair on the blocking pool, so workers keep serving requests meanwhile.
pub async fn generate_key_pair_async() -> Result<KeyPair, CryptoError> {
    tokio::task::spawn_blocking(generate_key_pair).await.map_err(CryptoError::Task)?
}

/// Encrypts `plaintext` for the holder of the private key matching `public_pem`.
pub fn encrypt(plaintext: &[u8], public_pem: &str) -> Result<Vec<u8>, CryptoError> {
    let public = parse_public_key(public_pem)?;
    let mut data_key = Zeroizing::new([0u8; AES_KEY_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(data_key.as_mut_slice()).map_err(|e| CryptoError::Random(e.to_string()))?;
    getrandom::fill(&mut nonce).map_err(|e| CryptoError::Random(e.to_string()))?;

    let wrapped = public
        .encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), data_key.as_slice())
        .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
    let cipher = Aes256Gcm::new_from_slice(data_key.as_slice())
        .map_err(|_| CryptoError::Encrypt("invalid AES key length".into()))?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), plaintext)
        .map_err(|_| CryptoError::Encrypt("AES-GCM encryption failed".into()))?;

    let mut out = Vec::with_capacity(PREFIX.len() + wrapped.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts bytes produced by [`encrypt`] with the matching private key.
pub fn decrypt(data: &[u8], private_pem: &str) -> Result<Vec<u8>, CryptoError> {
    let body = data.strip_prefix(PREFIX).ok_or(CryptoError::WrongPrefix)?;
    let private = parse_private_key(private_pem)?;
    let wrapped_len = private.size();
    let min = PREFIX.len() + wrapped_len + NONCE_LEN + TAG_LEN;
    if data.len() < min {
        return Err(CryptoError::TooShort { len: data.len(), min });
    }
    // Checked splits although the length was checked above: no panic path at all.
    let too_short = || CryptoError::TooShort { len: data.len(), min };
    let (wrapped, rest) = body.split_at_checked(wrapped_len).ok_or_else(too_short)?;
    let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>().ok_or_else(too_short)?;

    let data_key = Zeroizing::new(
        private
            .decrypt_blinded(&mut OsRng, Oaep::new::<sha2::Sha256>(), wrapped)
            .map_err(|_| CryptoError::KeyUnwrap)?,
    );
    let cipher = Aes256Gcm::new_from_slice(&data_key).map_err(|_| CryptoError::KeyUnwrap)?;
    cipher.decrypt(&Nonce::from(*nonce), sealed).map_err(|_| CryptoError::Authentication)
}

/// Encrypts text into the base64 string stored in credential columns.
pub fn encrypt_token(text: &str, public_pem: &str) -> Result<String, CryptoError> {
    Ok(BASE64.encode(encrypt(text.as_bytes(), public_pem)?))
}

/// Decrypts a credential column value produced by [`encrypt_token`].
pub fn decrypt_token(token_b64: &str, private_pem: &str) -> Result<String, CryptoError> {
    let data = BASE64.decode(token_b64.trim()).map_err(CryptoError::Base64)?;
    let plaintext = decrypt(&data, private_pem)?;
    String::from_utf8(plaintext).map_err(|_| CryptoError::Utf8)
}

fn parse_public_key(pem: &str) -> Result<RsaPublicKey, CryptoError> {
    let pem = pem.trim();
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| CryptoError::InvalidPublicKey)
}

fn parse_private_key(pem: &str) -> Result<RsaPrivateKey, CryptoError> {
    let pem = pem.trim();
    RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|_| CryptoError::InvalidPrivateKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePrivateKey;
    use secrecy::ExposeSecret;
    use std::sync::OnceLock;

    /// Key generation is slow; tests share two pairs.
    fn pairs() -> &'static (KeyPair, KeyPair) {
        static PAIRS: OnceLock<(KeyPair, KeyPair)> = OnceLock::new();
        PAIRS.get_or_init(|| (generate_key_pair().unwrap(), generate_key_pair().unwrap()))
    }

    #[test]
    fn generated_pems_have_difys_layout() {
        let (pair, _) = pairs();
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{}", pair.public_pem);
        assert!(pair.private_pem.expose_secret().starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let private = parse_private_key(pair.private_pem.expose_secret()).unwrap();
        assert_eq!(private.size() * 8, RSA_BITS);
        assert!(!format!("{pair:?}").contains("PRIVATE"));
    }

    #[test]
    fn round_trip() {
        let (pair, _) = pairs();
        for text in ["", "sk-secret", "ünïcödé 🔑", &"x".repeat(10_000)] {
            let data = encrypt(text.as_bytes(), &pair.public_pem).unwrap();
            assert!(data.starts_with(PREFIX));
            assert_eq!(data.len(), PREFIX.len() + 256 + NONCE_LEN + text.len() + TAG_LEN);
            let back = decrypt(&data, pair.private_pem.expose_secret()).unwrap();
            assert_eq!(back, text.as_bytes());

            let token = encrypt_token(text, &pair.public_pem).unwrap();
            assert_eq!(decrypt_token(&token, pair.private_pem.expose_secret()).unwrap(), text);
        }
    }

    #[test]
    fn encryption_is_randomised() {
        let (pair, _) = pairs();
        assert_ne!(
            encrypt_token("same", &pair.public_pem).unwrap(),
            encrypt_token("same", &pair.public_pem).unwrap()
        );
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let (pair, _) = pairs();
        let data = encrypt(b"secret value", &pair.public_pem).unwrap();
        let private = pair.private_pem.expose_secret();

        let mut body = data.clone();
        let last = body.len() - 1;
        body[last] ^= 1;
        assert!(matches!(decrypt(&body, private), Err(CryptoError::Authentication)));

        let mut nonce = data.clone();
        nonce[PREFIX.len() + 256] ^= 1;
        assert!(matches!(decrypt(&nonce, private), Err(CryptoError::Authentication)));

        let mut wrapped = data.clone();
        wrapped[PREFIX.len() + 10] ^= 1;
        assert!(matches!(decrypt(&wrapped, private), Err(CryptoError::KeyUnwrap)));
    }

    #[test]
    fn decrypt_with_another_key_fails() {
        let (pair, other) = pairs();
        let data = encrypt(b"secret value", &pair.public_pem).unwrap();
        let err = decrypt(&data, other.private_pem.expose_secret()).unwrap_err();
        assert!(matches!(err, CryptoError::KeyUnwrap), "{err}");
    }

    #[test]
    fn wrong_prefix_and_short_input_fail() {
        let (pair, _) = pairs();
        let private = pair.private_pem.expose_secret();
        let mut data = encrypt(b"secret value", &pair.public_pem).unwrap();
        data[..6].copy_from_slice(b"HYBRID");
        assert!(matches!(decrypt(&data, private), Err(CryptoError::WrongPrefix)));
        assert!(matches!(decrypt(b"", private), Err(CryptoError::WrongPrefix)));

        let short = [PREFIX, &[0u8; 100]].concat();
        let err = decrypt(&short, private).unwrap_err();
        assert!(matches!(err, CryptoError::TooShort { len: 106, min: 290 }), "{err}");
    }

    #[test]
    fn bad_keys_and_tokens_fail() {
        let (pair, _) = pairs();
        assert!(matches!(encrypt(b"x", "not a key"), Err(CryptoError::InvalidPublicKey)));
        assert!(matches!(
            encrypt(b"x", pair.private_pem.expose_secret()),
            Err(CryptoError::InvalidPublicKey)
        ));
        let data = encrypt(b"x", &pair.public_pem).unwrap();
        assert!(matches!(decrypt(&data, "not a key"), Err(CryptoError::InvalidPrivateKey)));
        assert!(matches!(decrypt(&data, &pair.public_pem), Err(CryptoError::InvalidPrivateKey)));
        assert!(matches!(
            decrypt_token("***", pair.private_pem.expose_secret()),
            Err(CryptoError::Base64(_))
        ));
    }

    #[test]
    fn accepts_pkcs8_private_and_pkcs1_public_keys() {
        let (pair, _) = pairs();
        let private = parse_private_key(pair.private_pem.expose_secret()).unwrap();
        let pkcs8 = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        let pkcs1_public = RsaPublicKey::from(&private).to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(pkcs1_public.starts_with("-----BEGIN RSA PUBLIC KEY-----"));

        let token = encrypt_token("via pkcs1 public", &pkcs1_public).unwrap();
        assert_eq!(decrypt_token(&token, &pkcs8).unwrap(), "via pkcs1 public");
        // CRLF line endings, as a key pasted from Windows might have.
        let crlf = pkcs8.replace('\n', "\r\n");
        assert_eq!(decrypt_token(&token, &crlf).unwrap(), "via pkcs1 public");
    }
}
