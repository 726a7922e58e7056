use axum::http::StatusCode;
use sqlx::postgres::PgSslMode;
use sqlx::{Connection, PgConnection};

use crate::helpers::TestApp;

async fn connect_verified(host: &str, port: i64, password: &str, ca: &std::path::Path) -> Result<(), String> {
    let opts = crate::helpers::node_options(port, "dbadmin", password, "defaultdb")
        .host(host)
        .ssl_mode(PgSslMode::VerifyFull)
        .ssl_root_cert(ca);
    let mut c = PgConnection::connect_with(&opts).await.map_err(|e| e.to_string())?;
    let ssl: bool = sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    assert!(ssl, "the session is encrypted");
    Ok(())
}

#[tokio::test]
async fn nodes_serve_tls_that_verifies_with_their_orgs_ca_only() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let ca = app.get(&format!("/api/v1/orgs/{org}/ca.pem")).cookie(&owner).send().await;
    assert_eq!(ca.status, StatusCode::OK);
    assert_eq!(ca.header("content-type"), Some("application/x-pem-file"));
    assert!(ca.text().starts_with("-----BEGIN CERTIFICATE-----"));
    let again = app.get(&format!("/api/v1/orgs/{org}/ca.pem")).cookie(&owner).send().await;
    assert_eq!(ca.body, again.body, "one CA per organization");
    let key_enc: Vec<u8> =
        sqlx::query_scalar("select key_enc from org_cas").fetch_one(&app.db).await.unwrap();
    assert!(!String::from_utf8_lossy(&key_enc).contains("PRIVATE KEY"), "the CA key is encrypted at rest");

    let ready = app.new_ready_store(&owner, "tls", 1).await;
    let (id, password, port) = (ready.id, ready.password.clone(), ready.port());

    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.pem");
    std::fs::write(&ours, &ca.body).unwrap();
    connect_verified("127.0.0.1", port, &password, &ours).await.expect("verify-full with the org's CA");
    connect_verified("localhost", port, &password, &ours).await.expect("the certificate names localhost too");

    let other = app.create_org(&owner, "Other").await;
    let other_ca = app.get(&format!("/api/v1/orgs/{other}/ca.pem")).cookie(&owner).send().await;
    assert_ne!(other_ca.body, ca.body);
    let theirs = dir.path().join("theirs.pem");
    std::fs::write(&theirs, &other_ca.body).unwrap();
    let e = connect_verified("127.0.0.1", port, &password, &theirs).await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate") || e.to_lowercase().contains("tls"), "{e}");

    app.delete_store(&owner, org, id).await;
}
