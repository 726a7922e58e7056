use std::fmt;

/// A login e-mail address, trimmed and lower-cased (logins are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() || s.len() > 254 {
            return Err("must be an e-mail address of 1 to 254 characters");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters");
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Self(s))
            }
            _ => Err("must be an e-mail address like name@example.com"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn normalises_and_rejects() {
        assert_eq!(Email::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        assert!(Email::parse("admin@localhost").is_ok());
        for bad in ["", "ann", "@x.com", "ann@", "a b@x.com", "a@b@c", "a@.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
