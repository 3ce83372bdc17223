//! API tokens: HS256 JWTs whose `sellerId` claim names the caller.

use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "sellerId")]
    pub seller_id: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Not before: a token is refused until this moment (less `auth.leeway_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// RFC 7519 lets `aud` be one string or an array of them; issuers use both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Verifies and issues tokens with the configured secret; built once at start-up.
#[derive(Clone)]
pub struct TokenVerifier {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    /// `auth.max_token_lifetime` in seconds; `None` when off.
    max_lifetime: Option<u64>,
}

impl TokenVerifier {
    pub fn new(settings: &AuthSettings) -> Self {
        let secret = settings.jwt_secret.expose().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = settings.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let issuer = non_empty(&settings.issuer);
        let audience = non_empty(&settings.audience);
        // A configured issuer or audience must be present, not merely correct when present.
        let mut required = vec!["exp"];
        if let Some(iss) = &issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
            validation,
            issuer,
            audience,
            max_lifetime: (!settings.max_token_lifetime.is_zero())
                .then_some(settings.max_token_lifetime.as_secs()),
        }
    }

    /// The claims of a valid token. Expired, wrongly signed, `alg: none` and other algorithms fail.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        // RFC 7515 §4.1.11: a recipient must reject critical extensions it does not understand,
        // and we understand none. The library does not look at `crit`, so we do, before anything.
        if has_crit_header(token) {
            return Err(AuthError::Invalid("a `crit` header is not accepted".into()));
        }
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => {
                        AuthError::Invalid("not valid yet (`nbf` in the future)".into())
                    }
                    ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        AuthError::Invalid("algorithm not accepted (HS256 only)".into())
                    }
                    ErrorKind::MissingRequiredClaim(c) => {
                        AuthError::Invalid(format!("missing `{c}` claim"))
                    }
                    ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
                    ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience".into()),
                    ErrorKind::Json(_) => {
                        AuthError::Invalid("claims are not as expected (`sellerId`, `exp`)".into())
                    }
                    _ => AuthError::Invalid("malformed token".into()),
                }
            })?;
        if let Some(max) = self.max_lifetime {
            // From `iat` and from now: an `iat` set in the future must not stretch the lifetime.
            let now = unix_now();
            let from = data.claims.iat.map_or(now, |iat| iat.min(now));
            if data.claims.exp.saturating_sub(from) > max {
                return Err(AuthError::Invalid(format!(
                    "`exp` is more than auth.max_token_lifetime ({max} s) away"
                )));
            }
        }
        if data.claims.seller_id.trim().is_empty() {
            return Err(AuthError::Invalid("empty `sellerId` claim".into()));
        }
        // No seller id holds one, and PostgreSQL text cannot hold a NUL at all.
        if data.claims.seller_id.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "`sellerId` holds control characters".into(),
            ));
        }
        Ok(data.claims)
    }

    /// A token for `seller_id` valid for `ttl`, carrying the configured issuer and audience.
    pub fn issue(&self, seller_id: &str, ttl: Duration) -> Result<String, AuthError> {
        let now = unix_now();
        let claims = Claims {
            seller_id: seller_id.to_string(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

/// Whether the token's protected header (its first segment) names a `crit` parameter. A header
/// that does not decode is left to the library, which refuses it.
fn has_crit_header(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
        .is_ok_and(|h| h.contains_key("crit"))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings(secret: &str) -> AuthSettings {
        AuthSettings {
            jwt_secret: Secret::new(secret),
            issuer: String::new(),
            audience: String::new(),
            leeway_seconds: 0,
            max_token_lifetime: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_seller() {
        let v = TokenVerifier::new(&settings("s3cret"));
        let token = v.issue("seller-1", Duration::from_secs(60)).unwrap();
        assert_eq!(v.verify(&token).unwrap().seller_id, "seller-1");
    }

    #[test]
    fn another_secret_is_rejected() {
        let token = TokenVerifier::new(&settings("one"))
            .issue("s", Duration::from_secs(60))
            .unwrap();
        assert!(matches!(
            TokenVerifier::new(&settings("two")).verify(&token),
            Err(AuthError::Invalid(_))
        ));
    }

    fn signed(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn nbf_in_the_future_is_refused_and_in_the_past_accepted() {
        let v = TokenVerifier::new(&settings("k"));
        let now = unix_now();
        let later = signed(
            "k",
            serde_json::json!({"sellerId": "s", "exp": now + 600, "nbf": now + 300}),
        );
        assert!(matches!(v.verify(&later), Err(AuthError::Invalid(_))));
        let earlier = signed(
            "k",
            serde_json::json!({"sellerId": "s", "exp": now + 600, "nbf": now - 5}),
        );
        assert_eq!(v.verify(&earlier).unwrap().seller_id, "s");
    }

    #[test]
    fn an_audience_array_works_when_it_names_us() {
        let mut strict = settings("k");
        strict.audience = "ads-stats".into();
        let v = TokenVerifier::new(&strict);
        let exp = unix_now() + 600;
        let ours = signed(
            "k",
            serde_json::json!({"sellerId": "s", "exp": exp, "aud": ["billing", "ads-stats"]}),
        );
        assert_eq!(v.verify(&ours).unwrap().seller_id, "s");
        let theirs = signed(
            "k",
            serde_json::json!({"sellerId": "s", "exp": exp, "aud": ["billing"]}),
        );
        assert!(v.verify(&theirs).is_err());
        // Without a configured audience an array is accepted as it comes.
        let loose = TokenVerifier::new(&settings("k"));
        assert_eq!(loose.verify(&theirs).unwrap().seller_id, "s");
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let mut strict = settings("k");
        strict.issuer = "ads-platform".into();
        strict.audience = "ads-stats".into();
        let strict = TokenVerifier::new(&strict);
        let loose = TokenVerifier::new(&settings("k"));
        let token = loose.issue("s", Duration::from_secs(60)).unwrap();
        assert!(strict.verify(&token).is_err());
        let token = strict.issue("s", Duration::from_secs(60)).unwrap();
        assert_eq!(strict.verify(&token).unwrap().seller_id, "s");
    }

    #[test]
    fn a_lifetime_past_the_maximum_is_refused() {
        let v = TokenVerifier::new(&settings("k"));
        let now = unix_now();
        let day = 86_400;
        let ok = signed(
            "k",
            serde_json::json!({"sellerId": "s", "iat": now, "exp": now + day}),
        );
        assert_eq!(v.verify(&ok).unwrap().seller_id, "s");
        let long = signed(
            "k",
            serde_json::json!({"sellerId": "s", "iat": now, "exp": now + day + 1}),
        );
        assert!(matches!(v.verify(&long), Err(AuthError::Invalid(_))));
        // Issued long ago and still valid for a while: the lifetime counts from `iat`.
        let old = signed(
            "k",
            serde_json::json!({"sellerId": "s", "iat": now - day, "exp": now + 60}),
        );
        assert!(v.verify(&old).is_err());
        // No `iat`: counted from now. An `iat` in the future does not stretch it.
        let no_iat = signed(
            "k",
            serde_json::json!({"sellerId": "s", "exp": now + 2 * day}),
        );
        assert!(v.verify(&no_iat).is_err());
        let future_iat = signed(
            "k",
            serde_json::json!({"sellerId": "s", "iat": now + 10 * day, "exp": now + 10 * day + 60}),
        );
        assert!(v.verify(&future_iat).is_err());
        let mut off = settings("k");
        off.max_token_lifetime = Duration::ZERO;
        assert_eq!(
            TokenVerifier::new(&off).verify(&no_iat).unwrap().seller_id,
            "s"
        );
    }

    #[test]
    fn a_crit_header_is_refused() {
        let now = unix_now();
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["exp".into()]);
        let token = encode(
            &header,
            &serde_json::json!({"sellerId": "s", "exp": now + 60}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        let v = TokenVerifier::new(&settings("k"));
        assert!(matches!(v.verify(&token), Err(AuthError::Invalid(_))));
    }
}
