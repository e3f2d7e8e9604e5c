//! Serving TLS whose certificate, key and client CA can change while the server runs: handshakes with the configuration current when the connection arrives.
//!
//! tonic's own `ServerTlsConfig` is fixed once the server is built, so TLS is
//! done here and the finished streams are handed to tonic. They are
//! `tokio_rustls::server::TlsStream`s, for which tonic provides the connect
//! info that `Request::peer_certs()` reads: the client certificate mapping
//! (auth/mtls.rs) works unchanged.
//!
//! The whole rustls `ServerConfig` is rebuilt and swapped, not a certificate
//! resolver and a client verifier inside one config: the verifier hands out
//! its CA names (the hints a client uses to pick a certificate) by reference,
//! which a swappable verifier could not, and a rebuilt config is checked by
//! rustls as a whole (key against certificate) before it is used.
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};
use tokio_rustls::server::TlsStream;
use tokio_stream::{Stream, StreamExt};

use super::config::{check_certificates, check_private_key};
use super::reload::{RELOAD_INTERVAL, Reload, Watched};

/// A client that has not finished its handshake by then is dropped; until
/// then it costs a task, never the accept loop's time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for tonic to take them.
const READY_QUEUE: usize = 64;

/// The listener's TLS: the current rustls configuration, rebuilt from
/// `[mtls]`'s files when they change. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<Watched<ServerConfig>>,
    reload_interval: Duration,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads and checks the files now: a bad one is an error at start.
    pub(super) fn load(
        cert: PathBuf,
        key: PathBuf,
        client_ca: Option<PathBuf>,
    ) -> Result<Self, String> {
        let mut files = vec![
            ("[mtls] server_cert", cert.clone()),
            ("[mtls] server_key", key.clone()),
        ];
        if let Some(ca) = &client_ca {
            files.push(("[mtls] client_ca", ca.clone()));
        }
        let paths = Paths {
            cert,
            key,
            client_ca,
        };
        let config = Watched::load(
            "[mtls] TLS certificate, key and client CA",
            files,
            move |f| paths.build(f),
        )?;
        Ok(Self {
            config: Arc::new(config),
            reload_interval: RELOAD_INTERVAL,
        })
    }

    /// Compares the files every `interval` instead of [`RELOAD_INTERVAL`];
    /// zero: never.
    pub fn with_reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    pub(super) fn reloadable(&self) -> Arc<dyn Reload> {
        self.config.clone()
    }

    pub(super) fn reload_interval(&self) -> Duration {
        self.reload_interval
    }

    /// The TLS connections made over `tcp`'s connections. Handshakes run
    /// concurrently, each with the configuration current when its connection
    /// was accepted, for at most [`HANDSHAKE_TIMEOUT`]; a failed one is
    /// dropped (logged at debug: any client can cause it). Accept errors pass
    /// through, as tonic expects.
    pub fn accept<S>(&self, tcp: S) -> TlsIncoming
    where
        S: Stream<Item = io::Result<TcpStream>> + Send + 'static,
    {
        let (ready, rx) = mpsc::channel(READY_QUEUE);
        let config = self.config.clone();
        let driver = tokio::spawn(async move {
            let mut tcp = std::pin::pin!(tcp);
            // Dropped with the driver: pending handshakes end with it.
            let mut handshakes = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = tcp.next() => match accepted {
                        None => break,
                        Some(Err(e)) => {
                            if ready.send(Err(e)).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(stream)) => {
                            let acceptor = TlsAcceptor::from(config.current_full());
                            handshakes.spawn(tokio::time::timeout(
                                HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            ));
                        }
                    },
                    Some(done) = handshakes.join_next(), if !handshakes.is_empty() => {
                        match done {
                            Ok(Ok(Ok(tls))) => {
                                if ready.send(Ok(tls)).await.is_err() {
                                    break;
                                }
                            }
                            Ok(Ok(Err(e))) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Ok(Err(_)) => tracing::debug!(
                                timeout_seconds = HANDSHAKE_TIMEOUT.as_secs(),
                                "TLS handshake timed out"
                            ),
                            Err(e) => tracing::warn!(error = %e, "TLS handshake task failed"),
                        }
                    }
                }
            }
        });
        TlsIncoming {
            ready: rx,
            driver: AbortOnDrop(driver),
        }
    }
}

/// The accepted TLS connections, for `Server::serve_with_incoming*`. Dropping
/// it stops accepting and abandons handshakes in progress.
pub struct TlsIncoming {
    ready: mpsc::Receiver<io::Result<TlsStream<TcpStream>>>,
    #[allow(dead_code)] // held for its Drop
    driver: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsStream<TcpStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().ready.poll_recv(cx)
    }
}

/// Where `[mtls]`'s files are, for error messages.
struct Paths {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl Paths {
    /// A rustls configuration from the files' contents (certificate, key and,
    /// when configured, client CA, in that order), as tonic would build it:
    /// HTTP/2 by ALPN, client certificates required when there is a CA.
    fn build(&self, files: &[Vec<u8>]) -> Result<ServerConfig, String> {
        let (cert_pem, key_pem, ca_pem) = match (files, &self.client_ca) {
            ([cert, key], None) => (cert, key, None),
            ([cert, key, ca], Some(ca_path)) => (cert, key, Some((ca_path, ca))),
            _ => return Err("[mtls]: the files read do not match the config".to_owned()),
        };
        let certs = check_certificates("[mtls] server_cert", &self.cert, cert_pem, true)?;
        let key = check_private_key(&self.key, key_pem)?;
        let provider = Arc::new(crypto::ring::default_provider());
        let rejected = |e: &dyn fmt::Display| {
            format!(
                "[mtls]: rustls rejects the TLS settings (server_cert {}, server_key {}): {e}",
                self.cert.display(),
                self.key.display()
            )
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| rejected(&e))?;
        let builder = match ca_pem {
            None => builder.with_no_client_auth(),
            Some((ca_path, pem)) => {
                let shown = ca_path.display();
                let mut roots = RootCertStore::empty();
                for ca in check_certificates("[mtls] client_ca", ca_path, pem, false)? {
                    roots.add(ca).map_err(|e| {
                        format!("[mtls] client_ca {shown}: not usable as a trust anchor: {e}")
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| format!("[mtls] client_ca {shown}: rustls rejects it: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| rejected(&e))?;
        // gRPC is HTTP/2 only; clients that offer ALPN must be told so.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::reload::Checked;
    use crate::auth::test_support::Pki;

    fn write(dir: &std::path::Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    #[test]
    fn built_config_speaks_h2() {
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("dir");
        let (_, cert, key) = pki.leaf(&["localhost"]);
        let cert = write(dir.path(), "s.pem", &cert);
        let key = write(dir.path(), "s.key", &key);
        let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
        let tls = ServerTls::load(cert.clone(), key.clone(), Some(ca)).expect("valid");
        assert_eq!(
            tls.config.current_full().alpn_protocols,
            vec![b"h2".to_vec()]
        );
        let plain = ServerTls::load(cert, key, None).expect("valid");
        assert_eq!(
            plain.config.current_full().alpn_protocols,
            vec![b"h2".to_vec()]
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_and_the_old_config_kept() {
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("dir");
        let (_, cert, key) = pki.leaf(&["localhost"]);
        let (_, _, other_key) = pki.leaf(&["localhost"]);
        let cert_path = write(dir.path(), "s.pem", &cert);
        let key_path = write(dir.path(), "s.key", &key);
        let tls = ServerTls::load(cert_path, key_path.clone(), None).expect("valid");
        let before = tls.config.current_full();
        write(dir.path(), "s.key", &other_key);
        match tls.config.check() {
            Checked::Kept(reason) => {
                assert!(reason.contains("rustls rejects"), "{reason}");
                assert!(reason.contains(&key_path.display().to_string()), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(Arc::ptr_eq(&before, &tls.config.current_full()));
        write(dir.path(), "s.key", &key);
        assert_eq!(tls.config.check(), Checked::Reloaded);
        assert!(!Arc::ptr_eq(&before, &tls.config.current_full()));
    }
}
