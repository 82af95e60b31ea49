//! Logging: `tracing` to stderr, as text or JSON.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (`RUST_LOG` filters, `info` by default).
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    drop(installed);
}
