//! TLS server setup: the configured certificate, or a self-signed one generated on first start and
//! kept in the data dir so phones that pin it keep working across restarts.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error("certificate and key do not form a usable TLS config: {0}")]
    Config(String),
}

/// Where the certificate comes from.
pub enum CertificateSource<'a> {
    Files { cert: &'a Path, key: &'a Path },
    /// Generate (once) into this directory, for these host names and addresses.
    SelfSigned { dir: &'a Path, names: Vec<String> },
}

/// The acceptor for the `tls` and `wss` listeners: `[sip.tls]`'s files, else the generated
/// self-signed certificate for the gateway's names.
pub fn acceptor_for(config: &crate::config::Config) -> Result<TlsAcceptor, TlsError> {
    acceptor(certificate_source(config, &config.sip.tls))
}

/// The configured files, or the self-signed certificate in the data dir (one for SIP and HTTPS),
/// named for localhost, the advertised address and the local domain.
pub fn certificate_source<'a>(config: &'a crate::config::Config, tls_config: &'a crate::config::TlsConfig) -> CertificateSource<'a> {
    match (&tls_config.cert_file, &tls_config.key_file) {
        (Some(cert), Some(key)) => CertificateSource::Files { cert, key },
        _ => {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
            names.extend(config.sip.advertised_address.clone());
            names.extend(config.profiles.iter().filter_map(|p| p.domain.clone()));
            CertificateSource::SelfSigned { dir: &config.general.data_dir, names }
        }
    }
}

pub fn acceptor(source: CertificateSource<'_>) -> Result<TlsAcceptor, TlsError> {
    let (cert_path, key_path) = certificate_files(source)?;
    acceptor_from_files(&cert_path, &key_path)
}

/// The certificate and key files a source names, generating the self-signed pair if need be.
pub fn certificate_files(source: CertificateSource<'_>) -> Result<(PathBuf, PathBuf), TlsError> {
    match source {
        CertificateSource::Files { cert, key } => Ok((cert.to_path_buf(), key.to_path_buf())),
        CertificateSource::SelfSigned { dir, names } => ensure_self_signed(dir, names),
    }
}

/// Reads the files now (a SIGHUP reload calls this again).
pub fn acceptor_from_files(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs = read_certs(cert_path)?;
    let key = read_key(key_path)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn ensure_self_signed(dir: &Path, names: Vec<String>) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("sip-tls-cert.pem");
    let key_path = dir.join("sip-tls-key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_path_buf(), source })?;
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key_path, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, generated.cert.pem()).map_err(|source| TlsError::Write { path: cert_path.clone(), source })?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| TlsError::Write { path: path.to_path_buf(), source })?;
    file.write_all(contents).map_err(|source| TlsError::Write { path: path.to_path_buf(), source })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice()).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Empty { path: path.to_path_buf(), what: "PEM certificate" });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Empty { path: path.to_path_buf(), what: "PEM private key" })
}
