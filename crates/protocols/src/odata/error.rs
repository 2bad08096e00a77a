//! Why the OData grammar refuses a query: Graph answers both kinds 400, a malformed query as
//! `Request_BadRequest` and a well-formed one licensd cannot answer exactly as
//! `Request_UnsupportedQuery`, each with a message saying what to change. The server maps a
//! [`QueryError`] to its error table in one `From` impl.

/// Which of Graph's two query refusals a [`QueryError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// Malformed, or naming a property or option that does not exist (`Request_BadRequest`).
    Invalid,
    /// Well-formed, but outside what licensd answers exactly (`Request_UnsupportedQuery`): a
    /// 400 rather than a silently wrong result.
    Unsupported,
}

/// A refused query option: its kind and the message the client reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub kind: QueryErrorKind,
    pub message: String,
}

impl QueryError {
    pub fn invalid(message: impl Into<String>) -> QueryError {
        QueryError {
            kind: QueryErrorKind::Invalid,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> QueryError {
        QueryError {
            kind: QueryErrorKind::Unsupported,
            message: message.into(),
        }
    }
}
