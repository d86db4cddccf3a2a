//! The state database: SQLite through rusqlite (bundled, WAL), behind this one module so a
//! replicated engine can replace it later without touching callers.
//!
//! Every object is one row of its table, keyed by `(project, name)` and holding the object's
//! API JSON, so listing any number of objects is one query. Schema changes are versioned
//! migrations (`PRAGMA user_version`); before a migration runs on an existing database a copy
//! is written to `database/local.db.bak.<version>`.

use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The object tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Projects (project column unused).
    Projects,
    /// Profiles per project.
    Profiles,
    /// Storage pools (project column unused).
    StoragePools,
    /// Images per project, keyed by fingerprint.
    Images,
    /// Image aliases per project.
    ImageAliases,
    /// Instances per project.
    Instances,
    /// Instance snapshots per project, keyed by `instance/snapshot`.
    Snapshots,
    /// Custom storage volumes per project, keyed by `pool/volume`.
    Volumes,
    /// Custom volume snapshots per project, keyed by `pool/volume/snapshot`.
    VolumeSnapshots,
    /// Managed networks (project column unused).
    Networks,
    /// Trusted client certificates by fingerprint (project column unused).
    Certificates,
    /// Actions under way on disks and database together, by a random key (project column
    /// unused): see `host::intents`.
    Intents,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Projects => "projects",
            Table::Profiles => "profiles",
            Table::StoragePools => "storage_pools",
            Table::Images => "images",
            Table::ImageAliases => "image_aliases",
            Table::Instances => "instances",
            Table::Snapshots => "snapshots",
            Table::Volumes => "volumes",
            Table::VolumeSnapshots => "volume_snapshots",
            Table::Networks => "networks",
            Table::Certificates => "certificates",
            Table::Intents => "intents",
        }
    }
}

/// Schema migrations, in order; `MIGRATIONS[i]` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the object tables and server config.
    "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE projects (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));
     CREATE TABLE profiles (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));
     CREATE TABLE storage_pools (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));
     CREATE TABLE images (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));
     CREATE TABLE image_aliases (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));
     CREATE TABLE instances (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));
     CREATE TABLE snapshots (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));",
    // 2: custom storage volumes and their snapshots.
    "CREATE TABLE volumes (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));
     CREATE TABLE volume_snapshots (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));",
    // 3: managed networks.
    "CREATE TABLE networks (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));",
    // 4: the trust store.
    "CREATE TABLE certificates (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));",
    // 5: the crash journal.
    "CREATE TABLE intents (project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, name));",
];

/// The database handle.
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn sql(e: rusqlite::Error) -> Error {
    Error::internal(format!("database: {e}"))
}

impl Db {
    /// Opens (or creates) `dir/local.db` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Db> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        let path = dir.join("local.db");
        let existed = path.exists();
        let conn = Connection::open(&path).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )
        .map_err(sql)?;
        let db = Db {
            conn: Mutex::new(conn),
            path,
        };
        db.migrate(MIGRATIONS, existed)?;
        Ok(db)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<usize> {
        let c = self.lock()?;
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    fn migrate(&self, migrations: &[&str], existed: bool) -> Result<()> {
        let current = self.schema_version()?;
        if current > migrations.len() {
            return Err(Error::internal(format!(
                "database schema {current} is newer than this engine ({})",
                migrations.len()
            )));
        }
        if current == migrations.len() {
            return Ok(());
        }
        if existed && current > 0 {
            let backup = self.path.with_extension(format!("db.bak.{current}"));
            let c = self.lock()?;
            c.execute("VACUUM INTO ?1", params![backup.display().to_string()])
                .map_err(sql)?;
        }
        let mut c = self.lock()?;
        for (i, m) in migrations.iter().enumerate().skip(current) {
            let tx = c.transaction().map_err(sql)?;
            tx.execute_batch(m).map_err(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::internal("database lock poisoned"))
    }

    /// One object, or `None`.
    pub fn get<T: DeserializeOwned>(
        &self,
        t: Table,
        project: &str,
        name: &str,
    ) -> Result<Option<T>> {
        let c = self.lock()?;
        let s: Option<String> = c
            .query_row(
                &format!("SELECT data FROM {} WHERE project=?1 AND name=?2", t.name()),
                params![project, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        s.map(|s| {
            serde_json::from_str(&s).map_err(|e| Error::internal(format!("database row: {e}")))
        })
        .transpose()
    }

    /// All objects of a project (or of every project with `None`), in name order, with their
    /// project: one query whatever their number.
    pub fn list<T: DeserializeOwned>(
        &self,
        t: Table,
        project: Option<&str>,
    ) -> Result<Vec<(String, T)>> {
        self.pairs(
            &format!(
                "SELECT project, data FROM {} WHERE ?1 IS NULL OR project=?1 ORDER BY project, name",
                t.name()
            ),
            params![project],
        )
    }

    /// All objects of one project with their names, in insertion order.
    pub fn list_keyed<T: DeserializeOwned>(
        &self,
        t: Table,
        project: &str,
    ) -> Result<Vec<(String, T)>> {
        self.pairs(
            &format!(
                "SELECT name, data FROM {} WHERE project=?1 ORDER BY rowid",
                t.name()
            ),
            params![project],
        )
    }

    /// Runs a query of (text, object JSON) rows.
    fn pairs<T: DeserializeOwned>(
        &self,
        query: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<(String, T)>> {
        let c = self.lock()?;
        let mut stmt = c.prepare_cached(query).map_err(sql)?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql)?;
        rows.map(|r| {
            let (key, s) = r.map_err(sql)?;
            let obj = serde_json::from_str(&s)
                .map_err(|e| Error::internal(format!("database row: {e}")))?;
            Ok((key, obj))
        })
        .collect()
    }

    /// Names in a table whose name starts with `prefix` (for snapshots of one instance).
    pub fn list_prefix<T: DeserializeOwned>(
        &self,
        t: Table,
        project: &str,
        prefix: &str,
    ) -> Result<Vec<T>> {
        let c = self.lock()?;
        let mut stmt = c
            .prepare_cached(&format!(
                "SELECT data FROM {} WHERE project=?1 AND substr(name, 1, length(?2))=?2 ORDER BY rowid",
                t.name()
            ))
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![project, prefix], |r| r.get::<_, String>(0))
            .map_err(sql)?;
        rows.map(|r| {
            let s = r.map_err(sql)?;
            serde_json::from_str(&s).map_err(|e| Error::internal(format!("database row: {e}")))
        })
        .collect()
    }

    /// Inserts a new object; `AlreadyExists` if the name is taken.
    pub fn insert<T: Serialize>(&self, t: Table, project: &str, name: &str, obj: &T) -> Result<()> {
        Writes(&*self.lock()?).insert(t, project, name, obj)
    }

    /// Replaces an existing object; `NotFound` if absent.
    pub fn update<T: Serialize>(&self, t: Table, project: &str, name: &str, obj: &T) -> Result<()> {
        Writes(&*self.lock()?).update(t, project, name, obj)
    }

    /// Removes an object; returns whether it existed.
    pub fn delete(&self, t: Table, project: &str, name: &str) -> Result<bool> {
        Writes(&*self.lock()?).delete(t, project, name)
    }

    /// Removes every object whose name starts with `prefix`.
    pub fn delete_prefix(&self, t: Table, project: &str, prefix: &str) -> Result<()> {
        Writes(&*self.lock()?).delete_prefix(t, project, prefix)
    }

    /// Renames an object (the JSON is rewritten by the caller with `update`).
    pub fn rename(&self, t: Table, project: &str, name: &str, new_name: &str) -> Result<()> {
        Writes(&*self.lock()?).rename(t, project, name, new_name)
    }

    /// Runs `f`'s writes in one transaction: they all take effect, or (when `f` or the commit
    /// fails, or the process dies first) none does.
    pub fn atomically<T>(&self, f: impl FnOnce(&Writes<'_>) -> Result<T>) -> Result<T> {
        let mut c = self.lock()?;
        let tx = c.transaction().map_err(sql)?;
        let out = f(&Writes(&tx))?;
        tx.commit().map_err(sql)?;
        Ok(out)
    }

    /// Server config.
    pub fn server_config(&self) -> Result<crate::api::ConfigMap> {
        let c = self.lock()?;
        let mut stmt = c
            .prepare_cached("SELECT key, value FROM config")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql)?;
        rows.map(|r| r.map_err(sql)).collect()
    }

    /// Replaces the server config.
    pub fn set_server_config(&self, config: &crate::api::ConfigMap) -> Result<()> {
        let mut c = self.lock()?;
        let tx = c.transaction().map_err(sql)?;
        tx.execute("DELETE FROM config", []).map_err(sql)?;
        for (k, v) in config {
            tx.execute(
                "INSERT INTO config (key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }
}

/// Writes on one connection: [`Db`]'s own (each on its own), or those of one
/// [`Db::atomically`] transaction.
pub struct Writes<'a>(&'a Connection);

impl std::fmt::Debug for Writes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes").finish_non_exhaustive()
    }
}

impl Writes<'_> {
    /// Inserts a new object; `AlreadyExists` if the name is taken.
    pub fn insert<T: Serialize>(&self, t: Table, project: &str, name: &str, obj: &T) -> Result<()> {
        let data = serde_json::to_string(obj).map_err(|e| Error::internal(e.to_string()))?;
        match self.0.execute(
            &format!(
                "INSERT INTO {} (project, name, data) VALUES (?1, ?2, ?3)",
                t.name()
            ),
            params![project, name, data],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::already_exists(format!("{name:?} already exists")))
            }
            Err(e) => Err(sql(e)),
        }
    }

    /// Replaces an existing object; `NotFound` if absent.
    pub fn update<T: Serialize>(&self, t: Table, project: &str, name: &str, obj: &T) -> Result<()> {
        let data = serde_json::to_string(obj).map_err(|e| Error::internal(e.to_string()))?;
        let n = self
            .0
            .execute(
                &format!(
                    "UPDATE {} SET data=?3 WHERE project=?1 AND name=?2",
                    t.name()
                ),
                params![project, name, data],
            )
            .map_err(sql)?;
        if n == 0 {
            return Err(Error::not_found(format!("{name:?} not found")));
        }
        Ok(())
    }

    /// Removes an object; returns whether it existed.
    pub fn delete(&self, t: Table, project: &str, name: &str) -> Result<bool> {
        let n = self
            .0
            .execute(
                &format!("DELETE FROM {} WHERE project=?1 AND name=?2", t.name()),
                params![project, name],
            )
            .map_err(sql)?;
        Ok(n > 0)
    }

    /// Removes every object whose name starts with `prefix`.
    pub fn delete_prefix(&self, t: Table, project: &str, prefix: &str) -> Result<()> {
        self.0
            .execute(
                &format!(
                    "DELETE FROM {} WHERE project=?1 AND substr(name, 1, length(?2))=?2",
                    t.name()
                ),
                params![project, prefix],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// Renames an object (the JSON is rewritten by the caller with `update`).
    pub fn rename(&self, t: Table, project: &str, name: &str, new_name: &str) -> Result<()> {
        match self.0.execute(
            &format!(
                "UPDATE {} SET name=?3 WHERE project=?1 AND name=?2",
                t.name()
            ),
            params![project, name, new_name],
        ) {
            Ok(0) => Err(Error::not_found(format!("{name:?} not found"))),
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::already_exists(format!(
                    "{new_name:?} already exists"
                )))
            }
            Err(e) => Err(sql(e)),
        }
    }

    /// Renames every object whose name starts with `prefix` to start with `new_prefix`.
    pub fn rename_prefix(
        &self,
        t: Table,
        project: &str,
        prefix: &str,
        new_prefix: &str,
    ) -> Result<()> {
        self.0
            .execute(
                &format!(
                    "UPDATE {} SET name=?3 || substr(name, length(?2) + 1) WHERE project=?1 AND substr(name, 1, length(?2))=?2",
                    t.name()
                ),
                params![project, prefix, new_prefix],
            )
            .map_err(sql)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_backs_up() {
        let t = tempfile::tempdir().expect("tempdir");
        let db = Db::open(t.path()).expect("open");
        assert_eq!(db.schema_version().expect("version"), MIGRATIONS.len());
        drop(db);
        // Reopening at the current version takes no backup.
        let db = Db::open(t.path()).expect("reopen");
        assert!(
            !t.path()
                .join(format!("local.db.bak.{}", MIGRATIONS.len()))
                .exists()
        );
        db.insert(Table::Instances, "default", "c1", &1)
            .expect("insert");
        // A newer engine with one more migration: a backup of the current version first.
        let n = MIGRATIONS.len();
        let mut next = MIGRATIONS.to_vec();
        next.push("CREATE TABLE extra (x INTEGER)");
        db.migrate(&next, true).expect("migrate");
        assert_eq!(db.schema_version().expect("version"), n + 1);
        let backup = t.path().join(format!("local.db.bak.{n}"));
        assert!(backup.exists(), "backup before the migration");
        let old = Db {
            conn: Mutex::new(Connection::open(&backup).expect("open backup")),
            path: backup,
        };
        assert_eq!(old.schema_version().expect("version"), n);
        assert_eq!(
            old.get::<i32>(Table::Instances, "default", "c1")
                .expect("get"),
            Some(1)
        );
        // An engine older than the database refuses to touch it.
        drop(db);
        assert!(
            Db::open(t.path()).is_err(),
            "a newer schema than this engine"
        );
    }

    #[test]
    fn crud_and_set_based_listing() {
        let t = tempfile::tempdir().expect("tempdir");
        let db = Db::open(t.path()).expect("open");
        for i in 0..50 {
            db.insert(Table::Instances, "default", &format!("c{i:02}"), &i)
                .expect("insert");
        }
        db.insert(Table::Instances, "other", "c00", &99)
            .expect("insert other project");
        let e = db
            .insert(Table::Instances, "default", "c00", &0)
            .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::AlreadyExists);
        let all: Vec<(String, i32)> = db.list(Table::Instances, Some("default")).expect("list");
        assert_eq!(all.len(), 50);
        assert_eq!(all[7].1, 7);
        let every: Vec<(String, i32)> = db.list(Table::Instances, None).expect("list all");
        assert_eq!(every.len(), 51);
        db.update(Table::Instances, "default", "c01", &100)
            .expect("update");
        assert_eq!(
            db.get::<i32>(Table::Instances, "default", "c01")
                .expect("get"),
            Some(100)
        );
        db.rename(Table::Instances, "default", "c01", "z")
            .expect("rename");
        assert!(db.rename(Table::Instances, "default", "c02", "z").is_err());
        assert!(db.delete(Table::Instances, "default", "z").expect("delete"));
        assert!(
            !db.delete(Table::Instances, "default", "z")
                .expect("delete again")
        );
        db.insert(Table::Snapshots, "default", "c1/s0", &1)
            .expect("snap");
        db.insert(Table::Snapshots, "default", "c1/s1", &2)
            .expect("snap");
        db.insert(Table::Snapshots, "default", "c10/s0", &3)
            .expect("snap");
        assert_eq!(
            db.list_prefix::<i32>(Table::Snapshots, "default", "c1/")
                .expect("prefix"),
            vec![1, 2]
        );
        // A transaction that fails part-way changes nothing.
        let failed = db.atomically(|w| {
            w.rename_prefix(Table::Snapshots, "default", "c1/", "d/")?;
            w.update(Table::Snapshots, "default", "missing", &0)
        });
        assert_eq!(
            failed.expect_err("update of a missing row").kind(),
            crate::ErrorKind::NotFound
        );
        assert_eq!(
            db.list_prefix::<i32>(Table::Snapshots, "default", "c1/")
                .expect("prefix"),
            vec![1, 2]
        );
        db.atomically(|w| w.rename_prefix(Table::Snapshots, "default", "c1/", "d/"))
            .expect("rename prefix");
        assert_eq!(
            db.list_prefix::<i32>(Table::Snapshots, "default", "d/")
                .expect("prefix")
                .len(),
            2
        );
        db.delete_prefix(Table::Snapshots, "default", "d/")
            .expect("delete prefix");
        assert_eq!(
            db.list_prefix::<i32>(Table::Snapshots, "default", "c10/")
                .expect("prefix"),
            vec![3]
        );
    }
}
