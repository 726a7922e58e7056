//! Backups and restores of the local driver's nodes: base backups with their WAL, logical dumps,
//! and restoring either in place, keeping the data replaced until the restore has succeeded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlx::{Connection, PgConnection};

use super::layout::ignore_not_found;
use super::users::chown_tree;
use super::{BASEBACKUP_TIMEOUT, LocalDriver, REPLACED};
use crate::pg::Server;
use crate::provision::sql::{execute_formatted, logical_restore_names, swap_in};
use crate::provision::{NodeSpec, Provisioner};

impl LocalDriver {
    /// Unpacks a `.tar.gz` archive (one Berth made) into `dir`, which then belongs to the
    /// server's user. The archive may be another store's (a fork), which that user cannot read:
    /// Berth unpacks it itself.
    async fn unpack(&self, server: &Server, archive: &Path, dir: &Path) -> anyhow::Result<()> {
        let mut tar = tokio::process::Command::new("tar");
        tar.arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(dir)
            .arg("--no-same-owner")
            .stdin(std::process::Stdio::null());
        crate::pg::run_for(tar, "tar", BASEBACKUP_TIMEOUT).await.context("unpacking the backup")?;
        if let Some(run_as) = &server.run_as {
            chown_tree(dir, run_as)?;
        }
        Ok(())
    }

    /// For a fork, as root: a copy of another store's archived WAL, next to the store's own, for
    /// the server's user to replay (it cannot read the other store's). `None`: `wal` is readable.
    async fn copy_foreign_wal(
        &self,
        server: &Server,
        spec: &NodeSpec,
        wal: &Path,
    ) -> anyhow::Result<Option<PathBuf>> {
        let (Some(run_as), Some(own)) = (&server.run_as, &spec.wal_archive) else { return Ok(None) };
        if wal == own.as_path() {
            return Ok(None);
        }
        let copy = own.with_file_name("restore-wal");
        self.wal_dir(server, own)?;
        let _ = std::fs::remove_dir_all(&copy);
        server.private_dir(&copy)?;
        let mut cp = tokio::process::Command::new("cp");
        cp.arg("-r").arg(format!("{}/.", wal.display())).arg(&copy).stdin(std::process::Stdio::null());
        crate::pg::run_for(cp, "cp", BASEBACKUP_TIMEOUT).await.context("copying the archived WAL")?;
        chown_tree(&copy, run_as)?;
        Ok(Some(copy))
    }

    /// The store's folder of backups (`backups/<store>`, holding its archives and its `wal/`)
    /// private to the server's user, which writes there: no other store's user can enter it.
    fn store_backups(&self, server: &Server, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        server.private_dir(dir)
    }

    /// The store's WAL archive (`backups/<store>/wal`), private to the server's user.
    pub(super) fn wal_dir(&self, server: &Server, wal: &Path) -> anyhow::Result<()> {
        self.store_backups(server, wal.parent().context("WAL folder without a parent")?)?;
        server.private_dir(wal)
    }

    pub(super) async fn physical_backup(
        &self,
        spec: &NodeSpec,
        dest: &Path,
    ) -> anyhow::Result<crate::provision::BaseBackup> {
        let server = self.existing_server(spec);
        let parent = dest.parent().context("backup file without a folder")?;
        self.store_backups(&server, parent)?;
        // Assembled in a private folder next to the destination, moved there only when complete.
        let work =
            parent.join(format!(".{}.partial", dest.file_name().unwrap_or_default().to_string_lossy()));
        let _ = std::fs::remove_dir_all(&work);
        server.private_dir(&work)?;
        let taken = async {
            let mut conn = PgConnection::connect_with(&server.connect_options("postgres")).await?;
            const LSN: &str = "select (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text";
            let start_lsn: String = sqlx::query_scalar(LSN).fetch_one(&mut conn).await?;
            let mut cmd = server.command("pg_basebackup");
            cmd.arg("-h")
                .arg(&server.socket_dir)
                .args(["-p", &server.port.to_string(), "-U", crate::pg::SUPERUSER, "-D"])
                .arg(&work)
                // gzip at level 1: three times faster than the default level here (1 GiB in 11 s
                // against 35 s) for an archive 2 % larger.
                .args(["-F", "tar", "-Z", "1", "-X", "fetch", "-c", "fast"])
                .current_dir(&work);
            crate::pg::run_for(cmd, "pg_basebackup", BASEBACKUP_TIMEOUT)
                .await
                .with_context(|| format!("backing up node {} of store {}", spec.node_id, spec.store_id))?;
            let end_lsn: String = sqlx::query_scalar(LSN).fetch_one(&mut conn).await?;
            std::fs::rename(work.join("base.tar.gz"), dest)
                .with_context(|| format!("moving the backup to {}", dest.display()))?;
            anyhow::Ok(crate::provision::BaseBackup { start_lsn, end_lsn })
        }
        .await;
        // Whatever the outcome: a backup that failed (for good, perhaps) leaves no partial copy.
        let _ = std::fs::remove_dir_all(&work);
        taken
    }

    pub(super) async fn physical_restore(
        &self,
        spec: &NodeSpec,
        archive: &Path,
        wal: &Path,
        target: crate::provision::RestoreTarget,
    ) -> anyhow::Result<()> {
        let server = self.prepared(spec).await?;
        let staging = server.fresh_staging()?;
        self.unpack(&server, archive, &staging).await?;
        let copied_wal = self.copy_foreign_wal(&server, spec, wal).await?;
        let w = copied_wal.as_deref().unwrap_or(wal).to_string_lossy().replace('\'', "");
        let mut recovery = vec![("restore_command", format!("cp '{w}/%f' '%p'"))];
        match target {
            crate::provision::RestoreTarget::EndOfBackup => {
                recovery.push(("recovery_target", "immediate".to_owned()))
            }
            crate::provision::RestoreTarget::Time(t) => {
                // PostgreSQL's own timestamp syntax, in UTC, to the microsecond.
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]+00"
                );
                let utc = t.to_offset(time::UtcOffset::UTC);
                recovery.push(("recovery_target_time", utc.format(&fmt).context("formatting the target")?));
            }
        }
        recovery.push(("recovery_target_action", "promote".to_owned()));
        // While the node still runs, everything written up to now is archived, to be replayed.
        self.archive_current_wal(spec).await?;
        let staged = Server { pgdata: staging.clone(), ..server.clone() };
        self.configure_with(&staged, spec, &recovery)?;
        staged.write_file("recovery.signal", "")?;
        // A backup taken from a replica carries standby.signal: the restored node is a primary.
        let _ = std::fs::remove_file(staging.join("standby.signal"));
        // The current data steps aside (kept until the restore succeeds) and the backup takes its
        // place. If data is aside already, an earlier attempt died after setting it there: that is
        // the data to keep, and what is in place is that attempt's copy.
        server.stop("fast").await?;
        let aside = server.pgdata.with_file_name("data.before-restore");
        let failed = server.pgdata.with_file_name("data.failed-restore");
        if aside.exists() {
            if server.pgdata.exists() {
                ignore_not_found(std::fs::remove_dir_all(&failed))?;
                std::fs::rename(&server.pgdata, &failed)
                    .context("setting an earlier attempt's copy aside")?;
            }
        } else if server.exists() {
            std::fs::rename(&server.pgdata, &aside).context("setting the old data aside")?;
        }
        server.put_in_place(&staging)?;
        let log = server.pgdata.with_file_name("server.log");
        let started = async {
            server.start(&log).await?;
            let mut conn = server.connect_when_ready("postgres", Duration::from_secs(300)).await?;
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            loop {
                let recovering: bool =
                    sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut conn).await?;
                if !recovering {
                    break;
                }
                anyhow::ensure!(std::time::Instant::now() < deadline, "recovery did not finish within 300 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = started {
            // Put the old data back: a failed restore loses nothing.
            let _ = server.stop("immediate").await;
            let _ = std::fs::remove_dir_all(&failed);
            let _ = std::fs::rename(&server.pgdata, &failed);
            if aside.exists() {
                std::fs::rename(&aside, &server.pgdata)?;
                self.run_node(&server, spec).await?;
            }
            return Err(e.context("the restored node did not come up; the previous data is back in place"));
        }
        // Recovered: the normal configuration again, without the recovery settings.
        self.configure(&server, spec)?;
        let mut conn = server.connect_when_ready("postgres", Duration::from_secs(30)).await?;
        sqlx::query("select pg_reload_conf()").execute(&mut conn).await?;
        conn.close().await?;
        // A backup from before a change of the privilege model brings its roles back as they were.
        crate::provision::sql::enforce_privilege_model(self, spec).await?;
        // The replaced data goes in the background, under a name of its own (a next restore
        // sets data aside under the usual one): the node is already serving.
        let trash = server.pgdata.with_file_name(format!("{REPLACED}{}", uuid::Uuid::new_v4().simple()));
        if std::fs::rename(&aside, &trash).is_ok() {
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&trash));
        }
        ignore_not_found(std::fs::remove_dir_all(&failed)).context("removing an earlier attempt's copy")?;
        if let Some(copy) = copied_wal {
            ignore_not_found(std::fs::remove_dir_all(&copy)).context("removing the copied WAL")?;
        }
        Ok(())
    }

    pub(super) async fn flush_wal(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let server = self.existing_server(spec);
        let Ok(mut conn) = PgConnection::connect_with(&server.connect_options("postgres")).await else {
            return Ok(());
        };
        let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut conn).await?;
        if recovering {
            return Ok(());
        }
        let segment: String =
            sqlx::query_scalar("select pg_walfile_name(pg_switch_wal())").fetch_one(&mut conn).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let archived: Option<String> =
                sqlx::query_scalar("select last_archived_wal from pg_stat_archiver")
                    .fetch_one(&mut conn)
                    .await?;
            // Segment names sort in WAL order (a later timeline's sort after).
            if archived.as_deref().is_some_and(|a| a.get(8..) >= segment.get(8..)) {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "WAL segment {segment} was not archived within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) async fn dump(&self, spec: &NodeSpec, dest: &Path) -> anyhow::Result<()> {
        let server = self.existing_server(spec);
        let parent = dest.parent().context("backup file without a folder")?;
        self.store_backups(&server, parent)?;
        let name = dest.file_name().unwrap_or_default().to_string_lossy().into_owned();
        // Dumped into a folder of the servers' user, packed aside, renamed into place whole.
        let work = parent.join(format!(".{name}.dumps"));
        let packed = parent.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&work);
        server.private_dir(&work)?;
        let dumped = async {
            let mut conn = PgConnection::connect_with(&server.connect_options("postgres")).await?;
            let databases: Vec<String> = sqlx::query_scalar(
                "select datname from pg_database where datallowconn and not datistemplate and datname <> 'postgres' \
                 order by datname",
            )
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            let mut manifest = vec![];
            for (i, database) in databases.iter().enumerate() {
                // Files are numbered: database names may hold any character.
                let file = format!("{i}.dump");
                let mut cmd = server.command("pg_dump");
                cmd.arg("-h")
                    .arg(&server.socket_dir)
                    .args(["-p", &server.port.to_string(), "-U", crate::pg::SUPERUSER, "-F", "custom", "-f"])
                    .arg(work.join(&file))
                    .arg("-d")
                    .arg(database)
                    .current_dir(&work);
                crate::pg::run_for(cmd, "pg_dump", BASEBACKUP_TIMEOUT)
                    .await
                    .with_context(|| format!("dumping database {database:?} of node {}", spec.node_id))?;
                manifest.push(serde_json::json!({"database": database, "file": file}));
            }
            let manifest = serde_json::json!({"format": "berth-logical-1", "databases": manifest});
            std::fs::write(work.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
            let mut tar = tokio::process::Command::new("tar");
            tar.arg("-czf").arg(&packed).arg("-C").arg(&work).arg(".").stdin(std::process::Stdio::null());
            crate::pg::run_for(tar, "tar", BASEBACKUP_TIMEOUT).await.context("packing the dumps")?;
            std::fs::rename(&packed, dest).with_context(|| format!("moving the backup to {}", dest.display()))?;
            anyhow::Ok(())
        }
        .await;
        // Whatever the outcome: a backup that failed (for good, perhaps) leaves no partial copy.
        let _ = std::fs::remove_dir_all(&work);
        let _ = std::fs::remove_file(&packed);
        dumped
    }

    pub(super) async fn load_dump(&self, spec: &NodeSpec, archive: &Path) -> anyhow::Result<()> {
        let server = self.server(spec)?;
        let work = server.pgdata.with_file_name("logical-restore");
        let _ = std::fs::remove_dir_all(&work);
        server.private_dir(&work)?;
        self.unpack(&server, archive, &work).await?;
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(work.join("manifest.json")).context("the archive is not a logical backup")?,
        )?;
        let databases = manifest["databases"].as_array().context("the manifest lists no databases")?;
        let mut conn = self.superuser(spec, "postgres").await?;
        for entry in databases {
            let database = entry["database"].as_str().context("a manifest entry without a database")?;
            let file = entry["file"].as_str().context("a manifest entry without a file")?;
            anyhow::ensure!(
                !file.contains('/') && !file.starts_with('.'),
                "the manifest names a file outside the archive"
            );
            // Restored into a database of its own, put in place only once whole: a failed restore
            // leaves the existing database as it was.
            let (staging, replaced) = logical_restore_names(database);
            execute_formatted(&mut conn, "drop database if exists %I with (force)", &[&staging]).await?;
            execute_formatted(&mut conn, "create database %I owner %I", &[&staging, &spec.admin_user])
                .await?;
            let mut cmd = server.command("pg_restore");
            cmd.arg("-h")
                .arg(&server.socket_dir)
                .args(["-p", &server.port.to_string(), "-U", crate::pg::SUPERUSER])
                .args(["--no-owner", "--no-privileges", "--exit-on-error", "--role"])
                .arg(&spec.admin_user)
                .arg("-d")
                .arg(&staging)
                .arg(work.join(file))
                .current_dir(&work);
            if let Err(e) = crate::pg::run_for(cmd, "pg_restore", BASEBACKUP_TIMEOUT).await {
                execute_formatted(&mut conn, "drop database if exists %I with (force)", &[&staging]).await?;
                return Err(e.context(format!(
                    "restoring database {database:?} into node {}; the database is as it was",
                    spec.node_id
                )));
            }
            swap_in(&mut conn, database, &staging, &replaced).await?;
        }
        conn.close().await?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    }
}
