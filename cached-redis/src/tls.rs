//! TLS (`rediss://`) through rustls with the ring provider.

/// Makes ring rustls's process-wide crypto provider, unless one is installed already.
pub(crate) fn install_crypto_provider() {
    // Err means another provider is installed: that one serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
