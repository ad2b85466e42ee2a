//! The one place where a failure becomes an HTTP status (and so `x-fc-status`): an unreachable store is a 503,
//! so FC and an operator see "try again later"; every other store failure is a 500.

use axum::http::StatusCode;

use crate::store::ErrorKind;

/// The status of an answer to a store failure of `kind`.
pub fn of_store_failure(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Auth | ErrorKind::Query | ErrorKind::Protocol | ErrorKind::Contract => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}
