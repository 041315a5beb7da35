//! TLS for the bus clients (rustls with the ring provider).
//!
//! Redis uses redis-rs's own TLS; this module only loads the CA file for it. PostgreSQL takes
//! libpq's `sslmode` and `sslrootcert` as users write them for psycopg. tokio-postgres's parser
//! knows neither `verify-ca` / `verify-full` nor `sslrootcert`, so both are taken out of the
//! connection string here (`split_pg_tls`) and applied by the rustls connector below:
//! `disable` plain text; `prefer` TLS when the server offers it, unverified; `require` TLS,
//! unverified (verified like `verify-ca` when a root certificate is given, as libpq does);
//! `verify-ca` the certificate chain; `verify-full` the chain and the host name.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// The crypto provider of every TLS connection the buses make. Also installed as the process
/// default, which redis-rs's `ClientConfig::builder()` relies on.
fn provider() -> Arc<CryptoProvider> {
    // Fails only when a default is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file; an error names the file and says what is wrong.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read CA file '{shown}': {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file '{shown}' is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("CA file '{shown}' holds no PEM certificate"));
    }
    Ok(certs)
}

/// A Redis CA file's contents, checked (redis-rs parses it again when it connects).
pub fn redis_ca(path: &Path) -> Result<Vec<u8>, String> {
    load_certificates(path)?;
    std::fs::read(path).map_err(|e| format!("cannot read CA file '{}': {e}", path.display()))
}

/// Makes sure redis-rs finds a crypto provider.
pub fn prepare_redis() {
    provider();
}

/// libpq's `sslmode` (all but `allow`, which tokio-postgres cannot do: plain text first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => {
                return Err("sslmode 'allow' is not supported; use 'prefer' or 'disable'".into())
            }
            other => {
                return Err(format!(
                    "invalid sslmode '{other}'; expected disable, prefer, require, verify-ca \
                     or verify-full"
                ))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the system's trust store.
    System,
}

/// The TLS part of a PostgreSQL connection string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PgTls {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
}

impl Default for PgTls {
    /// libpq's default: `sslmode=prefer`.
    fn default() -> Self {
        Self {
            mode: SslMode::Prefer,
            root_cert: None,
        }
    }
}

/// Splits `sslmode` and `sslrootcert` out of a URL or key=value connection string: returns the
/// rest (for tokio-postgres's parser) and the TLS settings. Errors do not quote the string (the
/// caller names it, masked).
pub fn split_pg_tls(connection_string: &str) -> Result<(String, PgTls), String> {
    let mut tls = PgTls::default();
    let mut set = |key: &str, value: String| -> Result<(), String> {
        match key {
            "sslmode" => tls.mode = SslMode::parse(&value)?,
            _ if value == "system" => tls.root_cert = Some(RootCert::System),
            _ if value.is_empty() => tls.root_cert = None,
            _ => tls.root_cert = Some(RootCert::File(PathBuf::from(value))),
        }
        Ok(())
    };
    let is_tls_key = |key: &str| key == "sslmode" || key == "sslrootcert";
    let rest = if connection_string.starts_with("postgresql://")
        || connection_string.starts_with("postgres://")
    {
        let (before_fragment, fragment) = match connection_string.find('#') {
            Some(i) => connection_string.split_at(i),
            None => (connection_string, ""),
        };
        match before_fragment.split_once('?') {
            None => connection_string.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if is_tls_key(key) {
                        set(key, percent_decode(value))?;
                    } else {
                        kept.push(pair);
                    }
                }
                let query = if kept.is_empty() {
                    String::new()
                } else {
                    format!("?{}", kept.join("&"))
                };
                format!("{base}{query}{fragment}")
            }
        }
    } else {
        let mut rest = String::with_capacity(connection_string.len());
        let mut copied_to = 0;
        for entry in super::config::dsn_entries(connection_string) {
            if is_tls_key(entry.key) {
                set(entry.key, entry.value())?;
                rest.push_str(&connection_string[copied_to..entry.start]);
                copied_to = entry.end;
            }
        }
        rest.push_str(&connection_string[copied_to..]);
        rest
    };
    Ok((rest, tls))
}

/// `%XX` escapes decoded (as the URL form of a connection string allows); invalid ones kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's default root certificate file, `~/.postgresql/root.crt`.
fn default_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".postgresql").join("root.crt"))
}

impl PgTls {
    /// What tokio-postgres should do: whether to ask for TLS, and insist on it.
    pub fn tokio_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Mode;
        match self.mode {
            SslMode::Disable => Mode::Disable,
            SslMode::Prefer => Mode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Mode::Require,
        }
    }

    /// The root certificates to verify against (reading the files), or None when the server
    /// is not verified. As in libpq, `require` verifies the chain when a root certificate is
    /// given, and the `verify-*` modes fall back on `~/.postgresql/root.crt`.
    fn roots(&self) -> Result<Option<RootCertStore>, String> {
        let verifies = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull);
        let root = match (&self.root_cert, self.mode) {
            (_, SslMode::Disable | SslMode::Prefer) => return Ok(None),
            (Some(root), _) => root.clone(),
            (None, _) => match default_root_cert().filter(|p| p.exists()) {
                Some(path) => RootCert::File(path),
                None if verifies => {
                    return Err(format!(
                        "sslmode={} needs root certificates: set sslrootcert to a CA file \
                         (or to 'system' for the system's trusted roots); \
                         ~/.postgresql/root.crt does not exist",
                        self.mode.name()
                    ))
                }
                None => return Ok(None),
            },
        };
        let mut store = RootCertStore::empty();
        match root {
            RootCert::File(path) => {
                for cert in load_certificates(&path)? {
                    store.add(cert).map_err(|e| {
                        format!("CA file '{}': unusable certificate: {e}", path.display())
                    })?;
                }
            }
            RootCert::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err("sslrootcert=system: no system root certificates found".into());
                }
            }
        }
        Ok(Some(store))
    }

    /// Checks what `connector` would fail on (the root certificate files), for validation.
    pub fn check(&self) -> Result<(), String> {
        self.roots().map(drop)
    }

    /// The connector for tokio-postgres (reads the root certificate files now).
    pub fn connector(&self) -> Result<PgConnector, String> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let roots = self.roots()?;
        let verify_host = self.mode == SslMode::VerifyFull;
        let config = match roots {
            Some(roots) if verify_host => builder.with_root_certificates(roots),
            Some(roots) => {
                let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("TLS setup: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
        }
        .with_no_client_auth();
        Ok(PgConnector {
            config: Arc::new(config),
            verify_host,
        })
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require`: encrypted, any certificate accepted (the handshake's signatures are
/// still checked).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres's TLS connector over tokio-rustls.
#[derive(Clone)]
pub struct PgConnector {
    config: Arc<ClientConfig>,
    verify_host: bool,
}

impl<S> MakeTlsConnect<S> for PgConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<PgTlsConnect> {
        let name = match ServerName::try_from(domain.to_owned()) {
            Ok(name) => name,
            // Only verify-full compares the name; the others need one for the handshake.
            Err(_) if !self.verify_host => ServerName::from(std::net::Ipv4Addr::LOCALHOST),
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("sslmode=verify-full: {domain:?} is not a host name to verify: {e}"),
                ))
            }
        };
        Ok(PgTlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
        })
    }
}

pub struct PgTlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.connect(self.name, stream).await?;
            Ok(PgTlsStream(stream))
        })
    }
}

pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> (String, PgTls) {
        match split_pg_tls(text) {
            Ok(parts) => parts,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn splits_url_parameters() {
        let (rest, tls) =
            split("postgresql://u:pw@h/db?sslmode=verify-full&application_name=a&sslrootcert=%2Ftmp%2Fca.pem");
        assert_eq!(rest, "postgresql://u:pw@h/db?application_name=a");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(
            tls.root_cert,
            Some(RootCert::File(PathBuf::from("/tmp/ca.pem")))
        );
        let (rest, tls) = split("postgres://h/db?sslmode=require");
        assert_eq!(
            (rest.as_str(), tls.mode),
            ("postgres://h/db", SslMode::Require)
        );
        let (rest, tls) = split("postgresql://h/db");
        assert_eq!(
            (rest.as_str(), tls),
            ("postgresql://h/db", PgTls::default())
        );
        let (_, tls) = split("postgresql://h/db?sslrootcert=system&sslmode=verify-ca");
        assert_eq!(tls.root_cert, Some(RootCert::System));
    }

    #[test]
    fn splits_dsn_entries() {
        let (rest, tls) = split("host=h sslmode = verify-ca sslrootcert='/a b/c\\'s.pem' dbname=x");
        assert_eq!(rest, "host=h   dbname=x");
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(
            tls.root_cert,
            Some(RootCert::File(PathBuf::from("/a b/c's.pem")))
        );
        let (rest, tls) = split("host=h password='s sslmode=x'");
        assert_eq!(rest, "host=h password='s sslmode=x'");
        assert_eq!(tls, PgTls::default());
    }

    #[test]
    fn rejects_unknown_modes() {
        let e = split_pg_tls("host=h sslmode=verify_full")
            .err()
            .unwrap_or_default();
        assert!(e.contains("invalid sslmode 'verify_full'"), "{e}");
        let e = split_pg_tls("postgresql://h/?sslmode=allow")
            .err()
            .unwrap_or_default();
        assert!(e.contains("'allow' is not supported"), "{e}");
    }

    #[test]
    fn verify_modes_need_roots_and_files_must_exist() {
        let tls = PgTls {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert::File("/nonexistent/ca.pem".into())),
        };
        let e = tls.check().err().unwrap_or_default();
        assert!(
            e.contains("cannot read CA file '/nonexistent/ca.pem'"),
            "{e}"
        );
        let no_verify = PgTls {
            mode: SslMode::Require,
            root_cert: None,
        };
        if default_root_cert().is_none_or(|p| !p.exists()) {
            assert!(no_verify.check().is_ok());
            let e = PgTls {
                mode: SslMode::VerifyCa,
                root_cert: None,
            }
            .check()
            .err()
            .unwrap_or_default();
            assert!(
                e.contains("sslmode=verify-ca needs root certificates"),
                "{e}"
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2Fa%20b%zz%4"), "/a b%zz%4");
    }
}
