//! Step-up as an extractor: `StepUp<AuthSession>` or `StepUp<TeamGuard<P>>` in a handler's
//! signature means "as the inner extractor, and the session authenticated within
//! `STEP_UP_MAX_AGE_MINUTES`" (otherwise 403 `reauth_required`). The inner checks (membership,
//! permission, CSRF) come first, so a caller who may not act at all is told that, not to reauth.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{AuthSession, Requirement, TeamGuard};
use crate::domain::SessionId;
use crate::http::AppState;
use crate::service::Error;

/// An extractor that names the session it authenticated.
pub trait SessionBound {
    fn session_id(&self) -> SessionId;
}

impl SessionBound for AuthSession {
    fn session_id(&self) -> SessionId {
        self.claims.sid
    }
}

impl<R: Requirement> SessionBound for TeamGuard<R> {
    fn session_id(&self) -> SessionId {
        self.session.claims.sid
    }
}

pub struct StepUp<T>(pub T);

impl<T> FromRequestParts<AppState> for StepUp<T>
where
    T: FromRequestParts<AppState, Rejection = Error> + SessionBound + Send,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let inner = T::from_request_parts(parts, state).await?;
        state.auth.require_recent_auth(inner.session_id()).await?;
        Ok(StepUp(inner))
    }
}
