//! What can go wrong, and the exit code each means: 1 the API, the network or the local files,
//! 2 usage, 3 a wait that timed out or a job that did not succeed.

use std::fmt;

#[derive(Debug)]
pub enum CliError {
    /// The command line or the situation does not allow the command (exit 2).
    Usage(String),
    /// The server answered with a problem document (or another error status).
    Api { status: u16, title: String, detail: Option<String>, code: Option<String> },
    /// The server could not be reached, or answered something unreadable.
    Network(String),
    /// The credentials file or the profile.
    Config(String),
    /// A wait ran out of time, or the job failed or was cancelled (exit 3).
    Wait(String),
    /// Ctrl-C while waiting: the job goes on.
    Interrupted(String),
}

pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::Api { .. } | Self::Network(_) | Self::Config(_) => 1,
            Self::Wait(_) => 3,
            Self::Interrupted(_) => 130,
        }
    }

    /// A problem+json body (RFC 9457), or whatever else an error status came with.
    pub fn from_response(status: u16, body: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        // OAuth2's token endpoint answers RFC 6749 §5.2 bodies.
        let title = text("title").or_else(|| text("error")).unwrap_or_else(|| format!("HTTP {status}"));
        let detail = text("detail").or_else(|| text("error_description")).or_else(|| {
            (!body.trim().is_empty() && v.is_null()).then(|| body.trim().chars().take(300).collect())
        });
        Self::Api { status, title, detail, code: text("code").or_else(|| text("error")) }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api { status, title, detail, code } => {
                write!(f, "{title}")?;
                if let Some(d) = detail {
                    write!(f, ": {d}")?;
                }
                write!(f, " (HTTP {status}")?;
                if let Some(c) = code {
                    write!(f, ", code {c}")?;
                }
                write!(f, ")")
            }
            Self::Usage(m) | Self::Network(m) | Self::Config(m) | Self::Wait(m) | Self::Interrupted(m) => {
                f.write_str(m)
            }
        }
    }
}

impl From<reqwest::Error> for CliError {
    fn from(e: reqwest::Error) -> Self {
        Self::Network(format!("cannot reach the server: {e}"))
    }
}
