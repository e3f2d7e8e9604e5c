//! AIP-158 paging: page sizes and opaque page tokens bound to their request.
use crate::error::{Error, FieldViolation};

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;

/// 0 means the default, more than the maximum means the maximum, negative is
/// INVALID_ARGUMENT.
pub fn page_size(requested: i32) -> Result<usize, FieldViolation> {
    match usize::try_from(requested) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
        Err(_) => Err(FieldViolation::new("page_size", "must not be negative")),
    }
}

/// A token carries the request it belongs to (`scope`, e.g. the parent) and
/// where the previous page ended. Hex keeps it opaque-looking and URL-safe;
/// it is not a secret: it only moves within what the caller may list anyway.
pub fn encode_token(kind: &str, scope: &str, cursor: &str) -> String {
    format!("{kind}|{scope}|{cursor}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cursor of a token made by `encode_token` for the same kind and scope.
pub fn decode_token(token: &str, kind: &str, scope: &str) -> Result<String, Error> {
    let invalid = || {
        Error::invalid_field(
            "page_token",
            "is not a page token of this request; send the next_page_token of the previous page with the same other fields",
        )
    };
    if !token.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(s), Some(cursor)) if k == kind && s == scope => Ok(cursor.to_owned()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(5000), Ok(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn tokens_are_bound_to_their_request() {
        let t = encode_token("users", "partners/acme", "123|abc");
        assert_eq!(
            decode_token(&t, "users", "partners/acme").as_deref(),
            Ok("123|abc")
        );
        assert!(decode_token(&t, "users", "partners/other").is_err());
        assert!(decode_token(&t, "revisions", "partners/acme").is_err());
        for bad in ["zz", "abc", "", "é1"] {
            assert!(
                decode_token(bad, "users", "partners/acme").is_err(),
                "{bad}"
            );
        }
    }
}
