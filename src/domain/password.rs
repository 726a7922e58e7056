use rand::Rng;
use rand::distributions::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 1024;

/// A password Berth makes for a store's roles: 32 random letters and digits (about 190 bits),
/// with nothing a URI or a shell would need to quote.
pub fn generate() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// A password that meets the rules for a new one: 12 to 1024 characters, used whole (never
/// truncated, unlike bcrypt's 72 bytes).
#[derive(Debug)]
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: SecretString) -> Result<Self, String> {
        let n = raw.expose_secret().chars().count();
        if n < MIN_LEN {
            return Err(format!("must be at least {MIN_LEN} characters"));
        }
        if n > MAX_LEN {
            return Err(format!("must be at most {MAX_LEN} characters"));
        }
        Ok(Self(raw))
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

/// A request's password as its sender puts it on the wire (berthctl's requests are the server's
/// own types). `Debug` still redacts it; nothing else serializes these requests.
pub fn serialize_exposed<S: serde::Serializer>(p: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(p.expose_secret()),
        None => s.serialize_none(),
    }
}

/// [`serialize_exposed`] for a password that is always given.
pub fn serialize_secret<S: serde::Serializer>(p: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules_count_characters() {
        assert!(NewPassword::parse("short".into()).is_err());
        assert!(NewPassword::parse("ééééééééééé".into()).is_err(), "11 characters, 22 bytes");
        assert!(NewPassword::parse("twelve chars".into()).is_ok());
        assert!(NewPassword::parse("x".repeat(1024).into()).is_ok());
        assert!(NewPassword::parse("x".repeat(1025).into()).is_err());
    }

    #[test]
    fn a_request_puts_its_password_on_the_wire_and_never_in_debug() {
        let body = crate::service::databases::CreateDbUser {
            username: "app".into(),
            password: Some("hunter2-hunter2".into()),
            privileges: crate::provision::sql::Privilege::Read,
            database: None,
            host: None,
        };
        let wire = serde_json::to_value(&body).unwrap();
        assert_eq!(wire["password"], "hunter2-hunter2");
        assert!(!format!("{body:?}").contains("hunter2"), "{body:?}");
        let back: crate::service::databases::CreateDbUser = serde_json::from_value(wire).unwrap();
        assert_eq!(back.password.unwrap().expose_secret(), "hunter2-hunter2");
        let generated = crate::service::databases::RotatePassword { password: None };
        assert_eq!(serde_json::to_value(&generated).unwrap(), serde_json::json!({}), "left out, not null");
    }
}
