//! Password hashes: bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2id (PHC string).
//! Hashes are parsed when users.toml is loaded, so a malformed one is a config
//! error, never a failed login. Checking is CPU-bound (tens to hundreds of
//! milliseconds by design) and must run on the blocking pool (see `endpoint`).

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

/// bcrypt reads at most 72 bytes of a password; longer ones are refused rather
/// than silently truncated (two passwords sharing 72 bytes must not both match).
pub const BCRYPT_MAX_PASSWORD: usize = 72;

/// bcrypt cost of `portcullis hash-password`.
pub const DEFAULT_BCRYPT_COST: u32 = 12;

/// A parsed password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Hash {
    /// bcrypt, with its cost.
    Bcrypt {
        /// The 60-character hash.
        hash: String,
        /// Work factor.
        cost: u32,
    },
    /// argon2id PHC string.
    Argon2id {
        /// `$argon2id$v=19$m=...,t=...,p=...$salt$hash`.
        hash: String,
    },
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hash::Bcrypt { cost, .. } => write!(f, "bcrypt(cost {cost})"),
            Hash::Argon2id { .. } => f.write_str("argon2id"),
        }
    }
}

impl Hash {
    /// Parses a users.toml `password_hash`.
    pub fn parse(s: &str) -> Result<Hash, String> {
        if s.starts_with("$2a$") || s.starts_with("$2b$") || s.starts_with("$2y$") {
            let parts: bcrypt::HashParts =
                s.parse().map_err(|e| format!("invalid bcrypt hash: {e}"))?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(format!("invalid bcrypt cost {cost} (4 to 31)"));
            }
            return Ok(Hash::Bcrypt {
                hash: s.to_owned(),
                cost,
            });
        }
        if s.starts_with("$argon2id$") {
            let parsed =
                PasswordHash::new(s).map_err(|e| format!("invalid argon2id PHC string: {e}"))?;
            argon2::Params::try_from(&parsed)
                .map_err(|e| format!("invalid argon2id parameters: {e}"))?;
            if parsed.hash.is_none() || parsed.salt.is_none() {
                return Err("argon2id PHC string without salt or hash".into());
            }
            return Ok(Hash::Argon2id { hash: s.to_owned() });
        }
        if s.starts_with("$argon2") {
            return Err("only argon2id is accepted (not argon2i or argon2d)".into());
        }
        Err(
            "unknown hash format: expected bcrypt (`$2b$...`) or argon2id (`$argon2id$...`); \
             make one with `portcullis hash-password`"
                .into(),
        )
    }

    /// Whether `password` matches. Blocking and slow by design. A password bcrypt
    /// cannot take whole costs the same time and does not match.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Bcrypt { hash, .. } => {
                let ok = bcrypt::verify(password, hash).unwrap_or(false);
                ok && password.len() <= BCRYPT_MAX_PASSWORD
            }
            Hash::Argon2id { hash } => PasswordHash::new(hash)
                .is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok()),
        }
    }

    /// A hash of a random password with the same parameters (so checking it costs
    /// the same): what an unknown user's password is checked against.
    pub fn dummy_like(&self) -> Option<Hash> {
        let mut random = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut random);
        match self {
            Hash::Bcrypt { cost, .. } => bcrypt::hash(random, *cost)
                .ok()
                .map(|hash| Hash::Bcrypt { hash, cost: *cost }),
            Hash::Argon2id { hash } => {
                let parsed = PasswordHash::new(hash).ok()?;
                let params = argon2::Params::try_from(&parsed).ok()?;
                let a = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                let h = a.hash_password(&random).ok()?;
                Some(Hash::Argon2id {
                    hash: h.to_string(),
                })
            }
        }
    }

    /// Parameters only, `hash-password`'s default (bcrypt at [`DEFAULT_BCRYPT_COST`]):
    /// a template for [`Hash::dummy_like`]. It holds no hash and verifies nothing.
    pub fn default_params() -> Hash {
        Hash::Bcrypt {
            hash: String::new(),
            cost: DEFAULT_BCRYPT_COST,
        }
    }

    /// A label for grouping users by cost.
    pub fn params(&self) -> String {
        match self {
            Hash::Bcrypt { cost, .. } => format!("bcrypt:{cost}"),
            Hash::Argon2id { hash } => hash.rsplitn(3, '$').nth(2).unwrap_or("").to_owned(),
        }
    }
}

/// Why `hash-password` refused a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Empty input.
    #[error("empty password")]
    Empty,
    /// Not UTF-8 (the token endpoint only ever sees UTF-8 passwords).
    #[error("the password is not UTF-8")]
    NotUtf8,
    /// Over bcrypt's limit.
    #[error("the password is {0} bytes; bcrypt takes at most 72 (use --argon2 for longer ones)")]
    TooLong(usize),
    /// The hasher failed.
    #[error("hashing failed: {0}")]
    Failed(String),
}

/// `portcullis hash-password`: one trailing newline (`\n` or `\r\n`) is stripped
/// from `input`, then it is hashed with bcrypt at `cost`, or argon2id (OWASP
/// parameters: m=19456 KiB, t=2, p=1).
pub fn hash_password(input: &[u8], argon2id: bool, cost: u32) -> Result<String, HashError> {
    let pw = input
        .strip_suffix(b"\r\n")
        .or_else(|| input.strip_suffix(b"\n"))
        .unwrap_or(input);
    if pw.is_empty() {
        return Err(HashError::Empty);
    }
    std::str::from_utf8(pw).map_err(|_| HashError::NotUtf8)?;
    if argon2id {
        return Argon2::default()
            .hash_password(pw)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Failed(e.to_string()));
    }
    if pw.len() > BCRYPT_MAX_PASSWORD {
        return Err(HashError::TooLong(pw.len()));
    }
    bcrypt::hash(pw, cost).map_err(|e| HashError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FastAPI tutorial's user johndoe, password "secret".
    const TUTORIAL: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";

    #[test]
    fn bcrypt_variants() {
        let h = hash_password(b"secret\n", false, 4).unwrap();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let v = format!("{prefix}{}", &h[4..]);
            let parsed = Hash::parse(&v).unwrap();
            assert!(parsed.verify(b"secret"), "{prefix}");
            assert!(!parsed.verify(b"secret\n"), "{prefix}");
        }
        assert!(Hash::parse("$2x$04$abc").is_err());
        assert!(Hash::parse("$2b$04$short").is_err());
        assert!(Hash::parse("plaintext").is_err());
        assert!(Hash::parse("").is_err());
    }

    #[test]
    fn tutorial_hash() {
        let h = Hash::parse(TUTORIAL).unwrap();
        assert!(matches!(h, Hash::Bcrypt { cost: 12, .. }));
        assert!(h.verify(b"secret"));
        assert!(!h.verify(b"Secret"));
    }

    #[test]
    fn long_passwords() {
        let long = vec![b'a'; 100];
        assert_eq!(hash_password(&long, false, 4), Err(HashError::TooLong(100)));
        // A hash of the first 72 bytes must not accept the longer password.
        let h = Hash::parse(&hash_password(&long[..72], false, 4).unwrap()).unwrap();
        assert!(h.verify(&long[..72]));
        assert!(!h.verify(&long));
        let a = Hash::parse(&hash_password(&long, true, 0).unwrap()).unwrap();
        assert!(a.verify(&long));
        assert!(!a.verify(&long[..72]));
    }

    #[test]
    fn argon2id_and_input_rules() {
        let h = hash_password(b"pw\r\n", true, 0).unwrap();
        assert!(h.starts_with("$argon2id$"));
        let parsed = Hash::parse(&h).unwrap();
        assert!(parsed.verify(b"pw"));
        assert!(!parsed.verify(b"pw\r"));
        assert!(!Hash::default_params().verify(b""));
        assert_eq!(Hash::default_params().params(), "bcrypt:12");
        let d = parsed.dummy_like().unwrap();
        assert_eq!(d.params(), parsed.params());
        assert!(!d.verify(b"pw"));
        assert!(Hash::parse(&h.replace("argon2id", "argon2i")).is_err());
        assert_eq!(hash_password(b"\n", false, 4), Err(HashError::Empty));
        assert_eq!(hash_password(b"\xff\n", false, 4), Err(HashError::NotUtf8));
        // Only one newline is stripped.
        let two = Hash::parse(&hash_password(b"pw\n\n", false, 4).unwrap()).unwrap();
        assert!(two.verify(b"pw\n"));
    }
}
