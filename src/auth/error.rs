//! Why a token was refused. Each reason maps to one row of the SPEC §4 table in
//! [`crate::deny`]; the description is a fixed string (never token content).

/// A token that failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON, or over the size cap.
    #[error("malformed token")]
    Malformed,
    /// `alg` is `none`, unknown, outside the allow-list, or not the key's family.
    #[error("algorithm not allowed")]
    AlgRefused,
    /// `crit` names extensions we do not understand.
    #[error("unsupported critical header")]
    Crit,
    /// `iss` missing or not a configured issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// No key with the token's `kid`.
    #[error("unknown key id")]
    UnknownKid,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// `exp` missing or not a number.
    #[error("missing or invalid exp")]
    MissingExp,
    /// `exp` is past (beyond leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `aud` does not name an accepted audience.
    #[error("invalid audience")]
    BadAudience,
    /// The identity claim is missing, not a string, or blank.
    #[error("missing identity claim")]
    NoIdentity,
    /// A built-in issuer's token whose `sub` is disabled or no longer in the users
    /// file (SPEC §5).
    #[error("user disabled or removed")]
    InactiveUser,
    /// The token's `jti` was revoked.
    #[error("token revoked")]
    Revoked,
}
