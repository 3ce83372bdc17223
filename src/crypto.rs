//! Access tokens sealed at rest: AES-256-GCM under `meta.token_key`, a fresh random 96-bit nonce
//! per seal, stored as base64(nonce || ciphertext || tag). The connection id is the associated
//! data, so a sealed token copied onto another connection's row does not open there.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::config::{Secret, TOKEN_KEY_BYTES};

const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Wrong key, another connection's token, or a damaged value: the causes look alike on
    /// purpose (GCM tells nothing more).
    #[error("the stored access token does not open with meta.token_key")]
    Unreadable,
    #[error("the token could not be sealed")]
    Seal,
}

/// The key that seals and opens access tokens. Prints redacted.
#[derive(Clone)]
pub struct TokenSealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSealer([redacted])")
    }
}

impl TokenSealer {
    pub fn new(key: &[u8; TOKEN_KEY_BYTES]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Seals `token` for the connection `connection_id`.
    pub fn seal(&self, connection_id: &str, token: &Secret) -> Result<String, SealError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose().as_bytes(),
                    aad: connection_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(BASE64.encode(out))
    }

    /// Opens what [`TokenSealer::seal`] made for the same connection.
    pub fn open(&self, connection_id: &str, sealed: &str) -> Result<Secret, SealError> {
        let bytes = BASE64
            .decode(sealed.trim())
            .map_err(|_| SealError::Unreadable)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SealError::Unreadable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Unreadable)?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: connection_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Unreadable)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn seals_and_opens_with_a_fresh_nonce_each_time() {
        let s = TokenSealer::new(&KEY);
        let token = Secret::new("EAAB-plain-token");
        let a = s.seal("conn-1", &token).unwrap();
        let b = s.seal("conn-1", &token).unwrap();
        assert_ne!(a, b, "a new nonce per seal");
        assert!(!a.contains("EAAB"));
        assert_eq!(s.open("conn-1", &a).unwrap().expose(), "EAAB-plain-token");
        assert_eq!(s.open("conn-1", &b).unwrap().expose(), "EAAB-plain-token");
    }

    #[test]
    fn another_key_connection_or_a_damaged_value_does_not_open() {
        let s = TokenSealer::new(&KEY);
        let sealed = s.seal("conn-1", &Secret::new("tok")).unwrap();
        assert!(TokenSealer::new(&[8; 32]).open("conn-1", &sealed).is_err());
        assert!(s.open("conn-2", &sealed).is_err());
        let mut bytes = BASE64.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(s.open("conn-1", &BASE64.encode(bytes)).is_err());
        assert!(s.open("conn-1", "not base64!").is_err());
        assert!(s.open("conn-1", "AAAA").is_err());
        assert!(!format!("{s:?}").contains('7'));
    }
}
