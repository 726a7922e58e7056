//! `berthctl api METHOD PATH [--data JSON]`: any call, authenticated like the rest; the body
//! printed as it came.

use serde_json::Value;

use crate::context::Ctx;
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// GET, POST, PATCH, PUT or DELETE.
    pub method: String,
    /// The path, e.g. `/api/v1/orgs`; `{org}` stands for the organization's id.
    pub path: String,
    /// A JSON body.
    #[arg(long, short = 'd')]
    pub data: Option<String>,
}

pub fn run(ctx: &Ctx, a: &ApiArgs) -> Result<()> {
    let data: Option<Value> = match &a.data {
        Some(d) => {
            Some(serde_json::from_str(d).map_err(|e| CliError::Usage(format!("--data is not JSON: {e}")))?)
        }
        None => None,
    };
    if !a.path.starts_with('/') {
        return Err(CliError::Usage(format!("the path must start with /: {}", a.path)));
    }
    let path = a.path.replace("{org}", &ctx.org);
    let (status, text) = ctx.client.call_raw(&a.method, &path, data.as_ref())?;
    if status >= 400 {
        return Err(CliError::from_response(status, &text));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => crate::output::print_json(&v),
        Err(_) if text.is_empty() => {}
        Err(_) => println!("{text}"),
    }
    Ok(())
}
