//! The dashboard admin password as an argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`):
//! made by `ads-stats dashboard hash-password` (and `demo`), checked by the configuration and at
//! every sign-in. Salted and slow on purpose, unlike the SHA-256 digest it replaces, so a leaked
//! configuration does not give the password away to a GPU in minutes.
//!
//! Hashing uses argon2's default parameters (argon2id, version 19, m = 19456 KiB, t = 2, p = 1:
//! OWASP's minimum for argon2id); verifying uses whatever parameters the string carries. One
//! verification takes tens of milliseconds of CPU, so callers on an async worker run it on a
//! blocking thread.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, PasswordHash};

/// Why a PHC string was refused (said without repeating the string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHash(String);

/// A new PHC string for `password`, with a fresh random salt from the operating system.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Accepts only a complete argon2id PHC string whose parameters argon2 can run.
pub fn check_phc(text: &str) -> Result<(), InvalidHash> {
    parse(text).map(|_| ())
}

fn parse(text: &str) -> Result<PasswordHash, InvalidHash> {
    let bad = |why: &str| InvalidHash(why.to_string());
    let hash = PasswordHash::new(text.trim())
        .map_err(|_| bad("is not a PHC string such as $argon2id$v=19$m=19456,t=2,p=1$…"))?;
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return Err(bad(
            "is not an argon2id hash (it must start with $argon2id$)",
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(bad("has no salt or no hash part"));
    }
    Params::try_from(&hash).map_err(|e| bad(&format!("has unusable parameters ({e})")))?;
    Ok(hash)
}

/// Whether `password` matches the PHC string `phc`; a string that does not parse matches
/// nothing. Takes as long as the string's parameters say (tens of milliseconds by default).
pub fn verify(phc: &str, password: &str) -> bool {
    match parse(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        check_phc(&phc).unwrap();
        assert!(verify(&phc, "correct horse"));
        assert!(!verify(&phc, "correct horse "));
        assert!(!verify(&phc, ""));
        assert_ne!(phc, hash("correct horse").unwrap(), "a new salt each time");
    }

    #[test]
    fn malformed_or_other_algorithms_are_refused() {
        let phc = hash("x").unwrap();
        for bad in [
            "",
            "argon2id",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            &phc.replacen("argon2id", "argon2i", 1),
            &phc.replacen("m=19456", "m=1", 1),
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(check_phc(bad).is_err(), "{bad}");
            assert!(!verify(bad, "x"), "{bad}");
        }
    }
}
