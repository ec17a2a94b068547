//! Input checks shared by every aggregate.

use crate::DomainError;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> DomainError {
    DomainError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Non-empty (unless allowed), at most `max` characters, and no control characters other than
/// line breaks and tabs (PostgreSQL text cannot hold NUL; none of them belongs in a message).
pub(crate) fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), DomainError> {
    if !allow_empty && text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            field,
            "must not contain control characters (other than line breaks and tabs)",
        ));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(invalid(
            field,
            format!("is {chars} characters long, the limit is {max}"),
        ));
    }
    Ok(())
}
