//! Optional TLS (`--tls-cert FILE --tls-key FILE`, both PEM): [`load_tls_config`] reads
//! the certificate chain and key, [`serve_tls`] serves a router over TLS with HTTP/1.1 and
//! HTTP/2 (ALPN `h2`, `http/1.1`) until a shutdown future completes.
//!
//! rustls with the `ring` provider, named explicitly so the choice does not depend on
//! which providers other crates in the build enable.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use fathom_core::{Error, Result};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client has to complete the TLS handshake before its connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`serve_tls`] waits, once told to stop, for connections to finish their
/// requests before it returns anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The *ring* crypto provider. rustls 0.23.48 deprecates it for its lack of post-quantum
/// key exchange (X25519MLKEM768, which its aws-lc-rs provider offers); it is used here on
/// purpose, for a build without aws-lc's C and assembly. Clients negotiate X25519 or P-256.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem_file(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "no such file".to_string()
        } else {
            e.to_string()
        };
        Error::invalid(format!("{flag} {}: cannot read it: {why}", path.display()))
    })
}

fn malformed(flag: &str, path: &Path, e: pem::Error) -> Error {
    Error::invalid(format!(
        "{flag} {}: malformed PEM ({e}); expected a PEM file",
        path.display()
    ))
}

/// Reads a PEM certificate chain (the server's certificate first, then any intermediates)
/// and a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) into a server configuration
/// offering HTTP/2 and HTTP/1.1.
///
/// Errors name the file (`--tls-cert` or `--tls-key`) and say what is wrong: it cannot be
/// read, it is not PEM, it holds no certificate or no private key, the key does not match
/// the certificate, or rustls refuses the pair.
pub fn load_tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let cert_pem = read_pem_file("--tls-cert", cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| malformed("--tls-cert", cert, e))?;
    if chain.is_empty() {
        return Err(Error::invalid(format!(
            "--tls-cert {}: holds no certificate; expected PEM `-----BEGIN CERTIFICATE-----` \
             blocks, the server's certificate first",
            cert.display()
        )));
    }
    let key_pem = read_pem_file("--tls-key", key)?;
    let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(Error::invalid(format!(
                "--tls-key {}: holds no private key; expected a PEM `BEGIN PRIVATE KEY`, \
                 `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block",
                key.display()
            )));
        }
        Err(e) => return Err(malformed("--tls-key", key, e)),
    };
    let mut config = ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("TLS: no usable protocol version: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            let what = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the key does not match the certificate (its public key is not the \
                     certificate's); expected the key the certificate was issued for"
                        .to_string()
                }
                other => format!("rustls refuses the certificate and key: {other}"),
            };
            Error::invalid(format!(
                "--tls-cert {} / --tls-key {}: {what}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` completes; then it stops
/// accepting, lets connections finish their requests (idle ones close at once) for up to
/// [`DRAIN_TIMEOUT`] and returns.
///
/// Each connection gets `TCP_NODELAY`, [`HANDSHAKE_TIMEOUT`] to finish its TLS handshake
/// (a silent client cannot hold a task), and HTTP/1.1 or HTTP/2 by what the client speaks.
/// A failed handshake closes that connection only. Requests see no `ConnectInfo`.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_tls_with(
        listener,
        router,
        config,
        shutdown,
        HANDSHAKE_TIMEOUT,
        DRAIN_TIMEOUT,
    )
    .await
}

async fn serve_tls_with(
    listener: TcpListener,
    router: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    handshake_timeout: Duration,
    drain_timeout: Duration,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A timer lets hyper close HTTP/1 connections that send no complete header in time.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(e) => {
                // Out of descriptors or a connection reset before it was accepted: the
                // listener is still good; pause so a persistent error cannot spin.
                eprintln!("fathom serve: accepting a TLS connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(router.clone());
        // Held from the start, so a stop waits for handshakes in progress too.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                // A failed or timed-out handshake: close this connection (dropping it).
                Ok(Err(_)) | Err(_) => return,
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .into_owned();
            // Errors here are the client's (reset, malformed request): nothing to do.
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain_timeout) => {
            eprintln!(
                "fathom serve: TLS connections still open after {} s; stopping without them",
                drain_timeout.as_secs()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::path::PathBuf;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::TlsConnector;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    fn client() -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(fixture("cert.pem")).unwrap();
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    fn router() -> Router {
        Router::new()
            .route("/x", get(|| async { "hello over tls" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "slow done"
                }),
            )
    }

    /// Starts a server; returns its address, the stop trigger and its task.
    async fn start(
        handshake: Duration,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let config = load_tls_config(&fixture("cert.pem"), &fixture("key.pem")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(serve_tls_with(
            listener,
            router(),
            config,
            stop,
            handshake,
            Duration::from_secs(5),
        ));
        (addr, tx, task)
    }

    async fn get_over_tls(addr: std::net::SocketAddr, name: &str, path: &str) -> String {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut tls = client().connect(server_name, tcp).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn serves_over_tls_and_stops_gracefully() {
        let (addr, stop, task) = start(HANDSHAKE_TIMEOUT).await;
        for name in ["localhost", "127.0.0.1"] {
            let answer = get_over_tls(addr, name, "/x").await;
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(answer.ends_with("\r\n\r\nhello over tls"), "{answer}");
        }
        let answer = get_over_tls(addr, "localhost", "/nope").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = plain.read_to_end(&mut buf).await;
        assert!(!buf.starts_with(b"HTTP/1.1 200"));

        // A request in flight when the stop comes still gets its answer.
        let slow = tokio::spawn(get_over_tls(addr, "localhost", "/slow"));
        tokio::time::sleep(Duration::from_millis(150)).await;
        stop.send(()).unwrap();
        let answer = slow.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("slow done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        // No longer accepting.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
        let (addr, stop, task) = start(Duration::from_millis(200)).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
            .await
            .expect("the server closes the connection")
            .unwrap_or(0);
        assert_eq!(n, 0);
        // The server is still serving others, and stops at once with no connection open.
        let answer = get_over_tls(addr, "localhost", "/x").await;
        assert!(answer.ends_with("hello over tls"), "{answer}");
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }

    #[test]
    fn config_errors_say_which_file_and_what() {
        let cert = fixture("cert.pem");
        let key = fixture("key.pem");
        let config = load_tls_config(&cert, &key).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let missing = fixture("missing.pem");
        let e = load_tls_config(&missing, &key).unwrap_err().to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("missing.pem") && e.contains("no such file"),
            "{e}"
        );
        let e = load_tls_config(&cert, &missing).unwrap_err().to_string();
        assert!(e.contains("--tls-key") && e.contains("missing.pem"), "{e}");

        // A key file holding only a certificate; a certificate file holding only a key.
        let e = load_tls_config(&cert, &cert).unwrap_err().to_string();
        assert!(
            e.contains("--tls-key") && e.contains("no private key"),
            "{e}"
        );
        let e = load_tls_config(&key, &key).unwrap_err().to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("no certificate"),
            "{e}"
        );

        let e = load_tls_config(&cert, &fixture("other-key.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let e = load_tls_config(&garbage, &key).unwrap_err().to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("malformed PEM"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = load_tls_config(&cert, &empty).unwrap_err().to_string();
        assert!(e.contains("no private key"), "{e}");
    }
}
