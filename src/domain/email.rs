//! A normalised, syntactically valid email address.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidEmail(pub &'static str);

impl Email {
    /// Trims and lower-cases the address (the whole address: mailbox providers treat the local
    /// part case-insensitively, and one account per address is what users expect).
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(InvalidEmail("email is required"));
        }
        if email.len() > 254 {
            return Err(InvalidEmail("email is too long"));
        }
        if email.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"' | '\\')
        }) {
            return Err(InvalidEmail(
                "email contains characters that are not allowed",
            ));
        }
        let (local, domain) = email
            .rsplit_once('@')
            .ok_or(InvalidEmail("email must contain @"))?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(InvalidEmail("email has an invalid local part"));
        }
        let labels_ok = domain
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'));
        if !domain.contains('.') || !labels_ok {
            return Err(InvalidEmail("email has an invalid domain"));
        }
        Ok(Self(email))
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
    use super::*;

    #[test]
    fn normalises_case_and_space() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a b@example.com",
            "a@b@c.com",
            "x@-a.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
