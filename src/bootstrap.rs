//! First run: the first organization and its owner.

use rand::Rng;
use rand::distributions::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};

use crate::app::AppState;
use crate::db;
use crate::domain::{Email, NewPassword};

/// What first-run set-up did.
#[derive(Debug)]
pub enum FirstRun {
    /// Users exist already: nothing was done.
    AlreadySetUp,
    /// The owner was created; `generated_password` is set when Berth chose the password.
    Created { email: String, generated_password: Option<SecretString> },
}

/// Creates the first organization and its owner when there are no users at all. Safe with
/// several instances starting at once: they take turns on an advisory lock.
pub async fn ensure_first_owner(
    state: &AppState,
    email: &str,
    password: Option<SecretString>,
    org_name: &str,
) -> anyhow::Result<FirstRun> {
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("BERTH_ADMIN_EMAIL {m}"))?;
    let mut tx = state.db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtext('berth.first_owner'))").execute(&mut *tx).await?;
    if db::users::any_exists(&mut *tx).await? {
        return Ok(FirstRun::AlreadySetUp);
    }
    let (password, generated) = match password {
        Some(p) => (NewPassword::parse(p).map_err(|m| anyhow::anyhow!("BERTH_ADMIN_PASSWORD {m}"))?, false),
        None => {
            let p: String = rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
            (NewPassword::parse(p.into()).map_err(|m| anyhow::anyhow!(m))?, true)
        }
    };
    let secret = password.into_secret();
    let hash = state.hasher.hash(secret.clone()).await?;
    let user_id = crate::domain::UserId::new();
    db::users::insert(
        &mut *tx,
        db::users::NewUser { id: user_id, email: &email, password_hash: &hash, must_change_password: false },
    )
    .await?;
    db::orgs::create(&mut tx, crate::domain::OrgId::new(), org_name, user_id).await?;
    tx.commit().await?;
    Ok(FirstRun::Created {
        email: email.to_string(),
        generated_password: generated.then(|| SecretString::from(secret.expose_secret().to_owned())),
    })
}
