//! The claims our JWTs carry. Access and refresh tokens are told apart by `type`, so one can
//! never stand in for the other.

use serde::{Deserialize, Serialize};

use super::{SessionId, TeamId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The user id, as a decimal string (JWT `sub` is a string).
    pub sub: String,
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
    pub sub: String,
    pub sid: SessionId,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(rename = "type")]
    pub token_type: TokenType,
}
