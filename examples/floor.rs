//! The floor for `bench/run.sh`: the least an HTTP request that reads Postgres can cost here.
//! Bare axum + sqlx, one indexed `select` per request, no auth, no middleware, same pool size as
//! Berth's default. Not part of the product.
//!
//! `FLOOR_DATABASE_URL=postgres://berth@localhost/berth?host=/tmp/x/run FLOOR_LISTEN=127.0.0.1:8090
//!  cargo run --release --example floor`

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const ROWS: i32 = 10_000;

async fn item(State(db): State<PgPool>, Path(id): Path<i32>) -> Result<Json<String>, StatusCode> {
    sqlx::query_scalar("select v from floor_items where id = $1")
        .bind(id)
        .fetch_optional(&db)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("FLOOR_DATABASE_URL").context("FLOOR_DATABASE_URL is not set")?;
    let listen = std::env::var("FLOOR_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());
    // Berth's own default pool size for a server on the same host, unless told otherwise.
    let max_connections = match std::env::var("FLOOR_MAX_CONNECTIONS") {
        Ok(n) => n.parse().context("FLOOR_MAX_CONNECTIONS")?,
        Err(_) => berth::config::local_pool_size(),
    };
    let db = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(&url)
        .await
        .context("connecting to FLOOR_DATABASE_URL")?;

    sqlx::query("create table if not exists floor_items (id int primary key, v text not null)")
        .execute(&db)
        .await?;
    sqlx::query(
        "insert into floor_items (id, v) select i, md5(i::text) from generate_series(1, $1) i
         on conflict (id) do nothing",
    )
    .bind(ROWS)
    .execute(&db)
    .await?;

    let app = Router::new().route("/floor/{id}", get(item)).with_state(db);
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    println!("floor listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
