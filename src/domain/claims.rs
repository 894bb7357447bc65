//! The claims our JWTs carry. Access and refresh tokens are told apart by `type`, so one can
//! never stand in for the other.

use serde::{Deserialize, Serialize};

use super::{SessionId, TeamId, UserId};

/// JWT `sub` is a string; ours always holds a user id. It is parsed once, when a token is
/// read, so a token whose `sub` is not a user id never verifies.
mod sub_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::UserId;

    pub fn serialize<S: Serializer>(id: &UserId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UserId, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The user id (a decimal string in the token).
    #[serde(with = "sub_as_string")]
    pub sub: UserId,
    pub team_id: TeamId,
    /// Informational only: authorisation resolves the role from SQL on every request.
    pub role: String,
    pub sid: SessionId,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(rename = "type")]
    pub token_type: TokenType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshClaims {
    #[serde(with = "sub_as_string")]
    pub sub: UserId,
    pub sid: SessionId,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(rename = "type")]
    pub token_type: TokenType,
}
