//! `users.toml` (SPEC §5): the accounts the built-in token endpoint knows.
//!
//! ```toml
//! [users.johndoe]
//! password_hash = "$2b$12$..."   # bcrypt or $argon2id$ (PHC); `portcullis hash-password`
//! full_name = "John Doe"          # -> `name` claim
//! email = "johndoe@example.com"   # -> `email` claim
//! disabled = false                # true: logins and refreshes get 400 Inactive user
//! scopes = ["items:read"]         # the most a token for this user can carry
//! ```
//! Unknown keys are errors, reported as `file:line:col: message` like proxy.toml.
//! [`parse`] runs as part of compiling the config, so a reload re-reads the file and
//! an invalid one keeps the running config (and its users) serving.

use super::error::{ConfigError, ConfigErrors, Reporter};
use crate::password::Hash;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use toml::Spanned;

/// The file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    /// Accounts by username.
    #[serde(default)]
    users: BTreeMap<Spanned<String>, Spanned<RawUser>>,
}

/// `[users.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    /// bcrypt (`$2a$`/`$2b$`/`$2y$`) or argon2id PHC hash of the password.
    password_hash: Spanned<String>,
    /// Display name, issued as the `name` claim.
    full_name: Option<String>,
    /// Issued as the `email` claim.
    email: Option<String>,
    /// A disabled user cannot log in or refresh (400 Inactive user).
    #[serde(default)]
    disabled: bool,
    /// Scopes this user may be granted.
    #[serde(default)]
    scopes: Vec<Spanned<String>>,
}

/// One account.
#[derive(Debug)]
pub struct User {
    /// Username (the `sub` of its tokens).
    pub name: String,
    /// Password hash.
    pub hash: Hash,
    /// `name` claim.
    pub full_name: Option<String>,
    /// `email` claim.
    pub email: Option<String>,
    /// Refused at the endpoint.
    pub disabled: bool,
    /// Grantable scopes.
    pub scopes: Vec<String>,
}

/// Every account, and the dummy hash an unknown username is checked against.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Arc<User>>,
    /// Parameters of the hash most users have (more than half), else
    /// [`Hash::default_params`]: the dummy is made like it.
    template: Option<Hash>,
    dummy: OnceLock<Option<Hash>>,
    /// Users whose hash parameters differ from the dummy's: login timing tells them
    /// apart from unknown usernames (`portcullis check` prints these).
    warnings: Vec<ConfigError>,
}

/// Mixed-parameter warnings listed one by one; past this many, one line counts the rest.
const MAX_WARNINGS: usize = 10;

/// Longest username accepted (bytes).
pub const MAX_USERNAME: usize = 256;

impl Users {
    /// A user by exact name.
    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.by_name.get(name)
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Warnings about the file: users whose hash parameters (algorithm, bcrypt cost,
    /// argon2 parameters) differ from the dummy's, at their `password_hash`.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// The hash an unknown user's password is checked against: same parameters as
    /// most users' (more than half; else `hash-password`'s default, bcrypt cost 12),
    /// so an unknown username costs what a known one does. Made on first use
    /// (it is itself a slow hash): call from the blocking pool.
    pub fn dummy(&self) -> Option<&Hash> {
        self.dummy
            .get_or_init(|| self.template.as_ref().and_then(Hash::dummy_like))
            .as_ref()
    }
}

/// Compiles users.toml text; `path` names it in errors. The config compiler reads
/// the file named by `[token_endpoint] users` (a read error is reported at that
/// line of `proxy.toml`) and calls this, so `check`, start-up and every reload see
/// the file as it is.
pub fn parse(path: &Path, src: &str) -> Result<Users, ConfigErrors> {
    let mut rep = Reporter::new(path, src);
    let raw: RawUsers = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            rep.at(e.span().unwrap_or(0..0), e.message().trim().to_string());
            return Err(ConfigErrors(rep.errors));
        }
    };
    let mut by_name = HashMap::new();
    let mut counts: HashMap<String, (usize, Hash)> = HashMap::new();
    // Where each user's hash is, with its parameters: for the warnings.
    let mut placed: Vec<(std::ops::Range<usize>, String, String)> = Vec::new();
    for (name, u) in raw.users {
        let span = name.span();
        let name = name.into_inner();
        if name.is_empty() || name.len() > MAX_USERNAME || name.chars().any(char::is_control) {
            rep.at(
                span,
                format!("invalid username (1 to {MAX_USERNAME} bytes, no control characters)"),
            );
            continue;
        }
        let u = u.into_inner();
        let hash = match Hash::parse(u.password_hash.get_ref()) {
            Ok(h) => {
                placed.push((u.password_hash.span(), name.clone(), h.params()));
                h
            }
            Err(e) => {
                rep.at(u.password_hash.span(), format!("user `{name}`: {e}"));
                continue;
            }
        };
        let mut scopes = Vec::new();
        for s in u.scopes {
            let sp = s.span();
            let s = s.into_inner();
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                rep.at(
                    sp,
                    format!("user `{name}`: invalid scope `{s}` (no spaces or control characters)"),
                );
            } else if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        counts
            .entry(hash.params())
            .or_insert_with(|| (0, hash.clone()))
            .0 += 1;
        by_name.insert(
            name.clone(),
            Arc::new(User {
                name,
                hash,
                full_name: u.full_name,
                email: u.email,
                disabled: u.disabled,
                scopes,
            }),
        );
    }
    if !rep.is_empty() {
        return Err(ConfigErrors(rep.errors));
    }
    let template = dummy_template(counts.into_values().collect());
    let warnings = match &template {
        Some(t) => mixed_warnings(path, src, &t.params(), placed),
        None => Vec::new(),
    };
    Ok(Users {
        by_name,
        template,
        dummy: OnceLock::new(),
        warnings,
    })
}

/// What the dummy hash is made like, from the users' (count, hash) per parameter
/// set: the parameters more than half the users have, else `hash-password`'s
/// default. Mixed parameters leak either way (the warnings say so); the default
/// at least costs an attacker as much as a freshly hashed password.
fn dummy_template(counts: Vec<(usize, Hash)>) -> Option<Hash> {
    let total: usize = counts.iter().map(|c| c.0).sum();
    let (n, most) = counts
        .into_iter()
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.params().cmp(&b.1.params())))?;
    Some(if n * 2 > total {
        most
    } else {
        Hash::default_params()
    })
}

/// One warning per user whose parameters are not `dummy`'s (sorted by position,
/// at most [`MAX_WARNINGS`] and a count of the rest).
fn mixed_warnings(
    path: &Path,
    src: &str,
    dummy: &str,
    mut placed: Vec<(std::ops::Range<usize>, String, String)>,
) -> Vec<ConfigError> {
    placed.retain(|(_, _, params)| params != dummy);
    placed.sort_by_key(|(span, _, _)| span.start);
    let mut rep = Reporter::new(path, src);
    let label = |p: &str| p.trim_start_matches('$').to_owned();
    for (span, name, params) in placed.iter().take(MAX_WARNINGS) {
        rep.at(
            span.clone(),
            format!(
                "user `{name}`: password hash parameters {} differ from the dummy's {}                  (unknown usernames are checked against it): login time tells whether                  `{name}` exists; hash every password alike (`portcullis hash-password`)",
                label(params),
                label(dummy),
            ),
        );
    }
    if placed.len() > MAX_WARNINGS {
        let (span, _, _) = &placed[MAX_WARNINGS];
        rep.at(
            span.clone(),
            format!(
                "{} more users with hash parameters other than {}",
                placed.len() - MAX_WARNINGS,
                label(dummy)
            ),
        );
    }
    rep.errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOHN: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";

    #[test]
    fn parses_the_tutorial_user() {
        let src = format!(
            "[users.johndoe]\npassword_hash = \"{JOHN}\"\nfull_name = \"John Doe\"\n\
             email = \"johndoe@example.com\"\nscopes = [\"items:read\", \"me\"]\n\
             [users.alice]\npassword_hash = \"{JOHN}\"\ndisabled = true\n"
        );
        let u = parse(Path::new("users.toml"), &src).unwrap();
        assert_eq!(u.len(), 2);
        let j = u.get("johndoe").unwrap();
        assert_eq!(j.scopes, ["items:read", "me"]);
        assert_eq!(j.email.as_deref(), Some("johndoe@example.com"));
        assert!(!j.disabled);
        assert!(u.get("alice").unwrap().disabled);
        assert!(u.get("JohnDoe").is_none());
        assert!(matches!(u.template, Some(Hash::Bcrypt { cost: 12, .. })));
    }

    fn users_with_costs(costs: &[u32]) -> String {
        costs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let h = crate::password::hash_password(b"pw", false, *c).unwrap();
                format!("[users.u{i}]\npassword_hash = \"{h}\"\n")
            })
            .collect()
    }

    #[test]
    fn dummy_follows_a_majority_else_the_default() {
        let cost = |u: &Users| match &u.template {
            Some(Hash::Bcrypt { cost, .. }) => Some(*cost),
            _ => None,
        };
        let one = parse(Path::new("u.toml"), &users_with_costs(&[5])).unwrap();
        assert_eq!(cost(&one), Some(5));
        assert!(one.warnings().is_empty());
        let same = parse(Path::new("u.toml"), &users_with_costs(&[4, 4, 4])).unwrap();
        assert_eq!(cost(&same), Some(4));
        assert!(same.warnings().is_empty());
        // More than half at cost 4: the dummy is like them, the odd one is warned of.
        let most = parse(Path::new("u.toml"), &users_with_costs(&[4, 5, 4])).unwrap();
        assert_eq!(cost(&most), Some(4));
        assert_eq!(most.warnings().len(), 1);
        // Cost 4 is the most common but not a majority: `hash-password`'s default.
        let split = parse(Path::new("u.toml"), &users_with_costs(&[4, 4, 5, 6])).unwrap();
        assert_eq!(cost(&split), Some(12));
        assert_eq!(split.warnings().len(), 4);
        // A tie between bcrypt and argon2id: the default too.
        let a = crate::password::hash_password(b"pw", true, 0).unwrap();
        let src = format!(
            "{}[users.a]\npassword_hash = \"{a}\"\n",
            users_with_costs(&[12])
        );
        let tie = parse(Path::new("u.toml"), &src).unwrap();
        assert_eq!(cost(&tie), Some(12));
        assert_eq!(tie.warnings().len(), 1);
        assert!(tie.warnings()[0]
            .message
            .contains("argon2id$v=19$m=19456,t=2,p=1"));
        assert!(parse(Path::new("u.toml"), "").unwrap().template.is_none());
    }

    #[test]
    fn mixed_parameters_are_warned_at_the_hash() {
        let src = users_with_costs(&[4, 4, 5]);
        let u = parse(Path::new("users.toml"), &src).unwrap();
        let w = u.warnings();
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].line, w[0].col), (6, 17), "{}", w[0]);
        assert!(w[0].to_string().starts_with("users.toml:6:17: user `u2`: "));
        assert!(w[0]
            .message
            .contains("bcrypt:5 differ from the dummy's bcrypt:4"));
        // Many: ten listed, then a count.
        let many: Vec<u32> = std::iter::repeat_n(4, 13)
            .chain(std::iter::repeat_n(5, 12))
            .collect();
        let u = parse(Path::new("users.toml"), &users_with_costs(&many)).unwrap();
        assert_eq!(u.warnings().len(), 11);
        assert!(u.warnings()[10].message.starts_with("2 more users"));
    }

    #[test]
    fn errors_name_file_line_col() {
        let cases = [
            (
                "[users.a]\npassword_hash = \"x\"\n",
                2,
                17,
                "unknown hash format",
            ),
            (
                "[users.a]\npassword_hash = \"$2b$04$abc\"\n",
                2,
                17,
                "invalid bcrypt hash",
            ),
            (
                &format!("[users.a]\npassword_hash = \"{JOHN}\"\nadmin = true\n"),
                3,
                1,
                "unknown field `admin`",
            ),
            (
                &format!("[users.a]\npassword_hash = \"{JOHN}\"\nscopes = [\"a b\"]\n"),
                3,
                11,
                "invalid scope",
            ),
            (
                "[users.a]\nfull_name = \"A\"\n",
                1,
                1,
                "missing field `password_hash`",
            ),
            ("[people.a]\n", 1, 2, "unknown field `people`"),
        ];
        for (src, line, col, msg) in cases {
            let e = parse(Path::new("u.toml"), src).unwrap_err();
            let first = &e.0[0];
            assert!(first.message.contains(msg), "{src}: {}", first.message);
            assert_eq!((first.line, first.col), (line, col), "{src}: {e}");
            assert!(e.to_string().starts_with("u.toml:"), "{e}");
        }
    }
}
