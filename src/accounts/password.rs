//! Password policy and hashing.
//!
//! New passwords are hashed with argon2id (PHC string, random salt). Accounts imported from
//! Dify carry its legacy PBKDF2-HMAC-SHA256 hash plus a separate salt column; those still
//! verify, and [`Verification::Valid`] says when the stored hash should be replaced by an
//! argon2id one after a successful login.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Dify's password rule, quoted verbatim in the error so messages match Dify's.
pub const PASSWORD_PATTERN: &str = r"^(?=.*[a-zA-Z])(?=.*\d).{8,}$";

/// PBKDF2 iterations Dify uses for its legacy hashes.
const DIFY_PBKDF2_ROUNDS: u32 = 10_000;

/// Length in bytes of Dify's PBKDF2 digest before hex encoding.
const DIFY_DIGEST_LEN: usize = 32;

/// A password that does not satisfy [`PASSWORD_PATTERN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid password. Must match {PASSWORD_PATTERN}")]
pub struct PolicyError;

/// Failures while hashing a new password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 rejected its input or the system RNG failed while drawing the salt.
    #[error("cannot hash password: {0}")]
    Hash(#[source] argon2::password_hash::Error),
}

/// Checks a new password against Dify's policy, so kiln accepts exactly what Dify accepts.
///
/// This is a hand-written equivalent of Python's `re.match(PASSWORD_PATTERN, password)`:
/// at least 8 characters (not bytes), at least one ASCII letter and at least one ASCII digit.
/// As in Python, `.` does not match a line feed, so a password containing `\n` is rejected,
/// except for a single trailing one, which `$` allows.
pub fn validate_policy(password: &str) -> Result<(), PolicyError> {
    let body = password.strip_suffix('\n').unwrap_or(password);
    let long_enough = body.chars().count() >= 8;
    let single_line = !body.contains('\n');
    let has_letter = body.chars().any(|c| c.is_ascii_alphabetic());
    let has_digit = body.chars().any(|c| c.is_ascii_digit());
    if long_enough && single_line && has_letter && has_digit { Ok(()) } else { Err(PolicyError) }
}

/// Hashes a password with argon2id and a fresh random salt, for storing in `accounts.password`.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let hashed = Argon2::default().hash_password(password.as_bytes()).map_err(PasswordError::Hash)?;
    Ok(hashed.to_string())
}

/// The outcome of checking a password, telling the caller whether to rehash it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches; `needs_upgrade` is true when the stored hash is Dify's legacy
    /// PBKDF2 one and should be replaced with [`hash`] while the plaintext is at hand.
    Valid { needs_upgrade: bool },
    /// The password does not match, or the stored hash is unusable.
    Invalid,
}

/// Checks `password` against a stored argon2 PHC string or a Dify legacy PBKDF2 hash.
///
/// Never fails loudly: a missing salt or malformed hash is simply [`Verification::Invalid`],
/// so a corrupt row cannot be told apart from a wrong password by a caller.
pub fn verify(password: &str, stored_hash: &str, stored_salt: Option<&str>) -> Verification {
    if stored_hash.starts_with("$argon2") {
        return match Argon2::default().verify_password(password.as_bytes(), stored_hash) {
            Ok(()) => Verification::Valid { needs_upgrade: false },
            Err(_) => Verification::Invalid,
        };
    }
    if verify_dify_legacy(password, stored_hash, stored_salt) {
        Verification::Valid { needs_upgrade: true }
    } else {
        Verification::Invalid
    }
}

/// Computes Dify's legacy `(password_hash, password_salt)` column values, for importing
/// Dify accounts and for tests.
///
/// Dify stores `base64(hexlify(pbkdf2_hmac_sha256(password, salt, 10000)))`: base64 of the
/// 64-character lowercase hex string, not of the raw digest.
pub fn dify_legacy_hash(password: &str, salt: &[u8]) -> (String, String) {
    let hex_digest = hex::encode(dify_digest(password, salt));
    (BASE64.encode(hex_digest), BASE64.encode(salt))
}

fn dify_digest(password: &str, salt: &[u8]) -> [u8; DIFY_DIGEST_LEN] {
    let mut digest = [0u8; DIFY_DIGEST_LEN];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, DIFY_PBKDF2_ROUNDS, &mut digest);
    digest
}

fn verify_dify_legacy(password: &str, stored_hash: &str, stored_salt: Option<&str>) -> bool {
    let Some(salt_b64) = stored_salt else { return false };
    let Ok(salt) = BASE64.decode(salt_b64.trim()) else { return false };
    let Ok(expected) = BASE64.decode(stored_hash.trim()) else { return false };
    // Dify compares the hex text bytewise, so this compares the same bytes it does.
    let computed = hex::encode(dify_digest(password, &salt));
    constant_time_eq(computed.as_bytes(), &expected)
}

/// Compares two byte strings without an early exit on the first difference, so timing does
/// not reveal how much of a guessed hash was right. The length is not secret (always 64).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed with Python's hashlib, exactly as Dify does, for the password `difypass123`
    /// and the salt bytes 0..16.
    const DIFY_HASH: &str =
        "Y2FlZjRmMjJmZmEyMmNkMTk2YjJiY2QwMjU2NDI2MGQzMjlmMDcxYzE3YTFhOTg5NGE2NTU0NWRkMWQ1ODliYg==";
    const DIFY_SALT: &str = "AAECAwQFBgcICQoLDA0ODw==";

    #[test]
    fn policy_accepts_and_rejects_like_dify() {
        assert_eq!(validate_policy("abc12345"), Ok(()));
        assert_eq!(validate_policy("abcdefgh"), Err(PolicyError));
        assert_eq!(validate_policy("12345678"), Err(PolicyError));
        assert_eq!(validate_policy("ab1"), Err(PolicyError));
        assert_eq!(validate_policy(""), Err(PolicyError));
    }

    #[test]
    fn policy_counts_characters_and_needs_ascii_letter_and_digit() {
        // 8 characters but more than 8 bytes.
        assert_eq!(validate_policy("pässwört1"), Ok(()));
        assert_eq!(validate_policy("äöü1éèêa"), Ok(()));
        // Long enough in bytes but only 7 characters.
        assert_eq!(validate_policy("äöüa1éè"), Err(PolicyError));
        // Non-ASCII letters do not count as letters.
        assert_eq!(validate_policy("äöüßéèê1"), Err(PolicyError));
        assert_eq!(validate_policy("пароль123"), Err(PolicyError));
    }

    #[test]
    fn policy_treats_line_feeds_like_python_re() {
        assert_eq!(validate_policy("abc12345\n"), Ok(()));
        assert_eq!(validate_policy("abc1\n2345"), Err(PolicyError));
        assert_eq!(validate_policy("abc12345\n\n"), Err(PolicyError));
    }

    #[test]
    fn policy_error_message_is_difys() {
        assert_eq!(PolicyError.to_string(), r"Invalid password. Must match ^(?=.*[a-zA-Z])(?=.*\d).{8,}$");
    }

    #[test]
    fn argon2_round_trip() {
        let stored = hash("correct horse 1").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert_eq!(verify("correct horse 1", &stored, None), Verification::Valid { needs_upgrade: false });
        assert_eq!(verify("correct horse 2", &stored, None), Verification::Invalid);
        // The salt column is irrelevant for argon2 hashes.
        assert_eq!(
            verify("correct horse 1", &stored, Some(DIFY_SALT)),
            Verification::Valid { needs_upgrade: false }
        );
    }

    #[test]
    fn argon2_salts_differ() {
        assert_ne!(hash("same password 1").unwrap(), hash("same password 1").unwrap());
    }

    #[test]
    fn malformed_argon2_is_invalid() {
        assert_eq!(verify("abc12345", "$argon2id$garbage", None), Verification::Invalid);
    }

    #[test]
    fn dify_legacy_vector_verifies_and_asks_for_upgrade() {
        assert_eq!(
            verify("difypass123", DIFY_HASH, Some(DIFY_SALT)),
            Verification::Valid { needs_upgrade: true }
        );
        assert_eq!(verify("difypass124", DIFY_HASH, Some(DIFY_SALT)), Verification::Invalid);
    }

    #[test]
    fn dify_legacy_hash_reproduces_vector() {
        let salt: Vec<u8> = (0u8..16).collect();
        let (hash_b64, salt_b64) = dify_legacy_hash("difypass123", &salt);
        assert_eq!(hash_b64, DIFY_HASH);
        assert_eq!(salt_b64, DIFY_SALT);
    }

    #[test]
    fn malformed_legacy_inputs_are_invalid() {
        assert_eq!(verify("difypass123", DIFY_HASH, None), Verification::Invalid);
        assert_eq!(verify("difypass123", DIFY_HASH, Some("not base64!")), Verification::Invalid);
        assert_eq!(verify("difypass123", "not base64!", Some(DIFY_SALT)), Verification::Invalid);
        assert_eq!(verify("difypass123", "", Some(DIFY_SALT)), Verification::Invalid);
        assert_eq!(verify("difypass123", "", Some("")), Verification::Invalid);
        // Right salt, truncated hash.
        assert_eq!(verify("difypass123", &DIFY_HASH[..40], Some(DIFY_SALT)), Verification::Invalid);
    }
}
