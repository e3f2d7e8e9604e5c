//! Database URLs: which file a `sqlite:` URL names, and how a URL is shown in
//! logs (never with its credentials).
/// The file path of a `sqlite:` URL, or `None` for in-memory and other URLs.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Creates the directory a SQLite database file will live in.
pub fn prepare_sqlite_dir(url: &str) -> Result<(), String> {
    let Some(parent) = sqlite_path(url).and_then(|p| std::path::Path::new(p).parent()) else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))
}

/// A database URL fit for logs: no user name or password.
pub fn describe_url(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        return format!("sqlite {path}");
    }
    if url.starts_with("sqlite:") {
        return "sqlite in memory".to_owned();
    }
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_and_db = host_and_db.split('?').next().unwrap_or(host_and_db);
    format!("postgres {host_and_db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_described_without_credentials() {
        assert_eq!(
            describe_url("postgres://app:s3cret@db.internal:5432/contacts?sslmode=require"),
            "postgres db.internal:5432/contacts"
        );
        assert_eq!(
            describe_url("sqlite:data/partner-contacts.sqlite3"),
            "sqlite data/partner-contacts.sqlite3"
        );
        assert_eq!(describe_url("sqlite::memory:"), "sqlite in memory");
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db")
        );
    }
}
