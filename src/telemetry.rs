use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr, as text (`LOG_FORMAT=pretty`, the default) or JSON lines
/// (`LOG_FORMAT=json`), filtered by `RUST_LOG`. Stdout is kept for what the operator must read
/// once, like a generated password.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn,tower_sessions_core=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        _ => builder.init(),
    }
}
