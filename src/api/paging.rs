//! AIP-158 paging: page sizes, opaque page tokens bound to their request,
//! and fetching one page.
use std::future::Future;

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

/// Where a page starts: `None` for the first page (no token), else the
/// cursor that `parse` reads from a token of this `kind` and `scope`.
pub fn start_of_page<C>(
    token: &str,
    kind: &str,
    scope: &str,
    parse: impl FnOnce(&str) -> Option<C>,
) -> Result<Option<C>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let cursor = decode_token(token, kind, scope)?;
    parse(&cursor)
        .map(Some)
        .ok_or_else(|| Error::invalid_field("page_token", "is not a page token of this request"))
}

/// One page of a list response, and the token of the next page (empty on
/// the last one).
#[derive(Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// Fetches a page of `size` items with `fetch(limit)`. One item more is asked
/// for: whether it comes back tells that another page follows, without a
/// count. The next token resumes after the last item kept (`cursor_of`).
pub async fn fetch_page<T, F>(
    size: usize,
    kind: &str,
    scope: &str,
    fetch: impl FnOnce(usize) -> F,
    cursor_of: impl FnOnce(&T) -> String,
) -> Result<Page<T>, Error>
where
    F: Future<Output = Result<Vec<T>, Error>>,
{
    let mut items = fetch(size + 1).await?;
    let next_page_token = if items.len() > size {
        items.truncate(size);
        items.last().map_or_else(String::new, |last| {
            encode_token(kind, scope, &cursor_of(last))
        })
    } else {
        String::new()
    };
    Ok(Page {
        items,
        next_page_token,
    })
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

    #[tokio::test]
    async fn a_page_asks_for_one_more_and_resumes_after_its_last_item() {
        let listed = |n: usize| async move { Ok((0..n.min(5)).collect::<Vec<usize>>()) };
        let page = fetch_page(3, "k", "s", listed, |i| i.to_string())
            .await
            .expect("page");
        assert_eq!(page.items, [0, 1, 2]);
        assert_eq!(
            decode_token(&page.next_page_token, "k", "s").as_deref(),
            Ok("2")
        );
        let last = fetch_page(5, "k", "s", listed, |i| i.to_string())
            .await
            .expect("page");
        assert_eq!(last.items.len(), 5);
        assert_eq!(last.next_page_token, "");
    }

    #[test]
    fn a_page_starts_at_its_tokens_cursor() {
        let parse = |c: &str| c.parse::<i64>().ok();
        assert_eq!(start_of_page("", "k", "s", parse), Ok(None));
        let token = encode_token("k", "s", "42");
        assert_eq!(start_of_page(&token, "k", "s", parse), Ok(Some(42)));
        let err =
            start_of_page(&encode_token("k", "s", "x"), "k", "s", parse).expect_err("not a number");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        assert!(start_of_page(&token, "k", "other", parse).is_err());
    }
}
