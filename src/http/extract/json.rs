//! JSON bodies whose every rejection is a clear 4xx in the `{"detail","code"}` shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::service::Error;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => Error::Validation {
                    field: "body",
                    message: e.body_text(),
                },
                JsonRejection::JsonSyntaxError(e) => Error::BadRequest(e.body_text()),
                JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType,
                JsonRejection::BytesRejection(e)
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    Error::PayloadTooLarge
                }
                other => Error::BadRequest(other.body_text()),
            }),
        }
    }
}
