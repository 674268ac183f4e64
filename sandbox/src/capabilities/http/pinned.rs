//! Sending a granted request to the very address that was checked.
//!
//! `wasmtime_wasi_http::default_send_request` takes the request's `host:port` and resolves it
//! again to connect. Between our check and that second lookup a rebinding DNS server can
//! answer with 127.0.0.1 or a cloud metadata address. So the connection is opened here, to
//! the socket address the policy approved, while TLS still verifies the certificate against
//! the name the plugin asked for.

use super::Response;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// How long connecting and the TLS and HTTP handshakes may take when the plugin does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first byte of the response may take when the plugin does not say; the call's
/// own deadline bounds everything after it.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(600);

/// Where a checked request goes: the address and the name the certificate must carry.
pub(super) struct Destination {
    pub(super) addr: SocketAddr,
    /// The host as the plugin wrote it (a DNS name or an IP literal).
    pub(super) host: String,
    pub(super) tls: bool,
}

/// Sends `request` over a new HTTP/1.1 connection to `to.addr`.
pub(super) async fn send(
    to: Destination,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Response, Error> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(FIRST_BYTE_TIMEOUT);
    let handshake = async {
        let tcp = TcpStream::connect(to.addr).await.map_err(Error::Connect)?;
        if to.tls {
            let name = ServerName::try_from(to.host.clone()).map_err(Error::InvalidDnsNameError)?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(Error::Tls)?;
            http1(Box::new(tls)).await
        } else {
            http1(Box::new(tcp)).await
        }
    };
    let (mut sender, connection) = tokio::time::timeout(connect_timeout, handshake)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    // Not talking to a proxy: the request line carries the path only (Host is a header).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    // The connection runs beside the exchange; wasi:http awaits it as the request's I/O.
    let io = tokio::spawn(connection);
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let io = async move {
        match io.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(_) => Err(Error::HttpProtocolError),
        }
    };
    Ok((
        response.map(|body| body.map_err(Error::from).boxed_unsync()),
        Box::new(io),
    ))
}

/// Either a plain or a TLS stream.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

type Connection = hyper::client::conn::http1::Connection<TokioIo<Box<dyn Stream>>, WasiBody>;

async fn http1(
    stream: Box<dyn Stream>,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<WasiBody>,
        Connection,
    ),
    Error,
> {
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::from)
}

/// The web PKI roots wasmtime's own sender trusts, built once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
            )
        })
        .clone()
}
