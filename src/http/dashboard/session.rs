//! Admin sign-in: the password check, in-memory sessions, the session cookie and CSRF tokens.
//!
//! Sessions live in this process only (a restart signs everyone out, which an operator tool can
//! afford). Tokens are looked up by their SHA-256, so neither the map's layout nor the time a
//! lookup takes depends on the token itself, and a memory dump holds no usable token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

use crate::config::{AdminPassword, Settings};

/// The session cookie's name; scoped to `/dashboard`, so the API never sees it.
pub const COOKIE: &str = "ads_stats_dashboard";
/// Logins kept at once; past it the one closest to expiry is dropped. Only a correct password
/// creates a session, so this only bounds memory against a script logging in in a loop.
const MAX_SESSIONS: usize = 256;

/// The configured admin: a user name and how to check the password.
pub struct Admin {
    user_digest: [u8; 32],
    password: AdminPassword,
}

impl Admin {
    /// Whether `user` and `password` are the admin's. Both checks always run (the argon2 one
    /// takes tens of milliseconds: call this on a blocking thread), and the user name is compared
    /// in constant time: the answer's timing says nothing about which part was wrong.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let user_ok = constant_time_eq(&sha256(user.as_bytes()), &self.user_digest);
        let password_ok = match &self.password {
            AdminPassword::Argon2(phc) => crate::password::verify(phc, password),
            AdminPassword::Sha256(digest) => constant_time_eq(&sha256(password.as_bytes()), digest),
        };
        user_ok & password_ok
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Sent back in every POST form; a forged cross-site form cannot know it.
    pub csrf: String,
    expires: Instant,
}

/// Sign-in attempts one client address may make per minute.
const LOGINS_PER_MINUTE: u32 = 10;

/// Credentials, live sessions and cookie policy: the dashboard's whole access control.
pub struct Access {
    admin: std::sync::Arc<Admin>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
    secure_cookies: bool,
    /// Sign-in attempts per client address: online guessing gets a few tries a minute.
    logins: crate::http::KeyedRateLimiter,
}

impl Access {
    /// `None` unless both the admin user and a password hash are configured. The cookie is
    /// `Secure` as [`Settings::secure_cookies`] decides (by default in production).
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let (user, password) = settings.dashboard.admin()?;
        Some(Self {
            admin: std::sync::Arc::new(Admin {
                user_digest: sha256(user.as_bytes()),
                password,
            }),
            sessions: Mutex::default(),
            ttl: settings.dashboard.session_ttl,
            secure_cookies: settings.secure_cookies(),
            logins: crate::http::KeyedRateLimiter::per_minute(LOGINS_PER_MINUTE)?,
        })
    }

    /// `Err(wait)` when `client` has used up its sign-in attempts for now.
    pub fn allow_login_attempt(&self, client: &str) -> Result<(), Duration> {
        self.logins.check(client)
    }

    /// The admin's credentials, to check a password on a blocking thread ([`Admin::check`]).
    pub fn admin(&self) -> std::sync::Arc<Admin> {
        self.admin.clone()
    }

    /// Starts a session; returns the token for the cookie.
    pub fn start_session(&self) -> String {
        let token = random_token();
        let session = Session {
            csrf: random_token(),
            expires: Instant::now() + self.ttl,
        };
        if let Ok(mut sessions) = self.sessions.lock() {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_SESSIONS {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    sessions.remove(&oldest);
                }
            }
            sessions.insert(sha256(token.as_bytes()), session);
        }
        token
    }

    /// The live session the request's cookie names, if any.
    pub fn session(&self, req: &HttpRequest) -> Option<Session> {
        let token = cookie_value(req, COOKIE)?;
        let key = sha256(token.as_bytes());
        let mut sessions = self.sessions.lock().ok()?;
        match sessions.get(&key) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// The live session, provided `csrf` is its token; `None` refuses the POST.
    pub fn session_with_csrf(&self, req: &HttpRequest, csrf: Option<&str>) -> Option<Session> {
        let session = self.session(req)?;
        let csrf = csrf?;
        constant_time_eq(csrf.as_bytes(), session.csrf.as_bytes()).then_some(session)
    }

    /// Ends the request's session, if it has one.
    pub fn end_session(&self, req: &HttpRequest) {
        if let Some(token) = cookie_value(req, COOKIE) {
            if let Ok(mut sessions) = self.sessions.lock() {
                sessions.remove(&sha256(token.as_bytes()));
            }
        }
    }

    /// `Set-Cookie` for a new session: unreadable by scripts, never sent cross-site, only under
    /// `/dashboard`, `Secure` in production or as `dashboard.secure_cookies` says.
    pub fn session_cookie(&self, token: &str) -> String {
        self.cookie(token, self.ttl.as_secs())
    }

    /// `Set-Cookie` that makes the browser forget the session.
    pub fn expired_cookie(&self) -> String {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
    }
}

/// 256 bits from the operating system's generator, as hex. uuid's v4 draws its 122 random bits
/// from `getrandom` (the OS CSPRNG); three of them give 366 bits, of which 256 are kept.
fn random_token() -> String {
    let mut bytes = Vec::with_capacity(48);
    for _ in 0..3 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    // Each uuid has 6 fixed version/variant bits; hashing spreads the 366 random bits over 32
    // bytes so none of the output is predictable.
    hex(&sha256(&bytes))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Equal-length inputs are compared in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into an early exit.
    std::hint::black_box(diff) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, Settings};
    use actix_web::test::TestRequest;

    fn access(secure: bool) -> Access {
        let settings = Settings::defaults_with(|s| {
            s.dashboard.admin_user = "admin".into();
            // printf %s 'correct horse' | sha256sum
            s.dashboard.admin_password_sha256 = Secret::new(hex(&sha256(b"correct horse")));
            s.dashboard.secure_cookies = Some(secure);
        })
        .expect("settings");
        Access::from_settings(&settings).expect("configured")
    }

    #[test]
    fn off_unless_user_and_hash_are_both_set() {
        let mut s = Settings::defaults_with(|_| {}).unwrap();
        assert!(Access::from_settings(&s).is_none());
        s.dashboard.admin_user = "admin".into();
        assert!(Access::from_settings(&s).is_none());
        s.dashboard.admin_user = String::new();
        s.dashboard.admin_password_sha256 = Secret::new("ab".repeat(32));
        assert!(Access::from_settings(&s).is_none());
        s.dashboard.admin_password_sha256 = Secret::new("");
        s.dashboard.admin_password_hash = Secret::new(crate::password::hash("pw").unwrap());
        assert!(Access::from_settings(&s).is_none());
        s.dashboard.admin_user = "admin".into();
        assert!(Access::from_settings(&s).is_some());
    }

    #[test]
    fn an_argon2_hash_checks_user_and_password() {
        let s = Settings::defaults_with(|s| {
            s.dashboard.admin_user = "admin".into();
            s.dashboard.admin_password_hash =
                Secret::new(crate::password::hash("correct horse").unwrap());
        })
        .unwrap();
        let admin = Access::from_settings(&s).unwrap().admin();
        assert!(admin.check("admin", "correct horse"));
        assert!(!admin.check("admin", "correct horse "));
        assert!(!admin.check("Admin", "correct horse"));
    }

    #[test]
    fn a_malformed_hash_is_a_config_error() {
        let err = Settings::defaults_with(|s| {
            s.dashboard.admin_password_sha256 = Secret::new("+".repeat(64));
        })
        .unwrap_err();
        assert_eq!(err.key, "dashboard.admin_password_sha256");
        assert!(Settings::defaults_with(|s| {
            s.dashboard.admin_password_sha256 = Secret::new("AB".repeat(32));
        })
        .is_ok());
    }

    #[test]
    fn only_the_right_user_and_password_pass() {
        let a = access(false).admin();
        assert!(a.check("admin", "correct horse"));
        assert!(!a.check("admin", "correct horse "));
        assert!(!a.check("Admin", "correct horse"));
        assert!(!a.check("", ""));
    }

    #[test]
    fn sessions_are_found_by_cookie_and_csrf_must_match() {
        let a = access(false);
        let token = a.start_session();
        assert_eq!(token.len(), 64);
        let req = TestRequest::default()
            .insert_header((header::COOKIE, format!("other=1; {COOKIE}={token}")))
            .to_http_request();
        let session = a.session(&req).expect("session");
        assert_ne!(session.csrf, token);
        assert!(a.session_with_csrf(&req, Some(&session.csrf)).is_some());
        assert!(a.session_with_csrf(&req, Some("wrong")).is_none());
        assert!(a.session_with_csrf(&req, None).is_none());
        a.end_session(&req);
        assert!(a.session(&req).is_none());
        let forged = TestRequest::default()
            .insert_header((header::COOKIE, format!("{COOKIE}={}", "0".repeat(64))))
            .to_http_request();
        assert!(a.session(&forged).is_none());
    }

    #[test]
    fn cookie_attributes() {
        let plain = access(false).session_cookie("t");
        assert_eq!(
            plain,
            format!("{COOKIE}=t; Path=/dashboard; Max-Age=43200; HttpOnly; SameSite=Strict")
        );
        assert!(access(true).session_cookie("t").ends_with("; Secure"));
        assert!(access(false).expired_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn tokens_do_not_repeat() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token());
    }
}
