//! `berthctl version`, and the check every command makes against `GET /api/version`.

use berth::version::{self as v, Compatibility, Semver};
use serde_json::{Value, json};

use crate::client::{Auth, Client};
use crate::context::Globals;
use crate::endpoints;
use crate::error::{CliError, Result};

fn server_version(client: &Client) -> Result<Value> {
    client.call::<()>(endpoints::VERSION, &[], &[], None)
}

/// Warns when the server asks for a newer client; refuses a server of another major version.
pub fn check(client: &Client) -> Result<Value> {
    let server = server_version(client)?;
    let text = |k: &str| server[k].as_str().unwrap_or_default().to_string();
    let client_v = Semver::parse(v::VERSION).expect("our own version parses");
    let Some(server_v) = Semver::parse(&text("version")) else {
        return Ok(server);
    };
    match v::compatibility(client_v, server_v, Semver::parse(&text("min_client_version"))) {
        Compatibility::Compatible => Ok(server),
        Compatibility::ClientTooOld => {
            eprintln!(
                "warning: this berthctl is {}, older than the server's minimum client version {}; upgrade berthctl",
                v::VERSION,
                text("min_client_version")
            );
            Ok(server)
        }
        Compatibility::MajorMismatch => Err(CliError::Config(format!(
            "this berthctl ({}) cannot work with a Berth of another major version ({}); use a berthctl {}.x",
            v::VERSION,
            text("version"),
            server_v.major
        ))),
    }
}

pub fn run(g: &Globals) -> Result<()> {
    let client_info = json!({
        "version": v::VERSION,
        "git_commit": v::GIT_COMMIT,
        "build_date": v::BUILD_DATE,
        "api_version": v::API_VERSION,
    });
    let (url, _) = crate::context::server(g)?;
    let server = match url {
        Some(u) => Some(check(&Client::new(&u, Auth::None)?)?),
        None => None,
    };
    if g.output().json() {
        crate::output::print_json(&json!({ "client": client_info, "server": server }));
        return Ok(());
    }
    println!("Client version: {} (commit {}, built {})", v::VERSION, v::GIT_COMMIT, v::BUILD_DATE);
    match server {
        Some(s) => println!(
            "Server version: {} (commit {}, built {}, API version {}, minimum client version {})",
            s["version"].as_str().unwrap_or("?"),
            s["git_commit"].as_str().unwrap_or("?"),
            s["build_date"].as_str().unwrap_or("?"),
            s["api_version"].as_str().unwrap_or("?"),
            s["min_client_version"].as_str().unwrap_or("?"),
        ),
        None => println!("Server version: unknown (no server: give --url or sign in)"),
    }
    Ok(())
}
