//! The Nix database of a root, `<root>/nix/var/nix/db/db.sqlite`, written
//! directly (schema 10, what Nix 2.4 through today use; a newer Nix migrates
//! it on open), so the installed system's Nix sees every path valid with its
//! references and has nothing to do at first boot.
//!
//! Why not `nix-store --load-db`: the target has no Nix until the closure is
//! installed, and running the closure's own Nix would mean a chroot and a
//! second process per install; the schema is small, stable and documented in
//! Nix's `src/libstore/schema.sql`, and the result is checked by real Nix
//! (`nix-store --verify --check-contents --store ROOT`) in the tests.
//!
//! Invariants: a batch is registered in one transaction; every reference of
//! a registered path is itself registered (in the batch or before); hashes
//! are stored the way Nix stores them (`sha256:<base16>`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use landfall_proto::nar::{NarHash, PathInfo, StorePath};
use rusqlite::{params, Connection, OptionalExtension};

/// The schema version this module writes.
pub const SCHEMA_VERSION: u32 = 10;

const SCHEMA_SQL: &str = "
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer,
    sigs             text,
    ca               text
);
create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);
create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);
create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;
create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null,
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);
create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
";

/// Why the database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Creating `nix/var/nix/db` or writing its `schema` file failed.
    #[error("Cannot prepare {0}")]
    Prepare(PathBuf, #[source] io::Error),
    /// The existing database has a schema this code does not write.
    #[error("The Nix database in {dir} has schema {found}, expected {SCHEMA_VERSION}")]
    Schema {
        /// The database directory.
        dir: PathBuf,
        /// What its `schema` file says.
        found: String,
    },
    /// SQLite failed.
    #[error("Nix database {step} failed")]
    Sqlite {
        /// What was being done.
        step: &'static str,
        /// The failure.
        #[source]
        source: rusqlite::Error,
    },
    /// A path refers to a path that is neither valid nor in the batch.
    #[error("Cannot register {path}: its reference {reference} is not valid")]
    MissingReference {
        /// The referrer.
        path: StorePath,
        /// The reference that is missing.
        reference: StorePath,
    },
    /// A row holds something that is not a store path or hash.
    #[error("The Nix database holds a malformed row for {0}")]
    Malformed(String),
}

fn sql(step: &'static str) -> impl Fn(rusqlite::Error) -> DbError {
    move |source| DbError::Sqlite { step, source }
}

/// An open Nix database of one root.
pub struct NixDb {
    conn: Connection,
    /// `nix/var/nix/db`, opened without following links; SQLite reaches its
    /// files through `/proc/self/fd/N`, so this stays open with it.
    _dir: std::os::fd::OwnedFd,
}

/// `nix/var/nix/db` under `root`, one component at a time, no symlink
/// followed; `create` makes what is missing.
fn open_db_dir(root: &Path, create: bool) -> io::Result<std::os::fd::OwnedFd> {
    super::fsat::dir_chain_at(
        fs::File::open(root)?,
        &[b"nix", b"var", b"nix", b"db"],
        create,
    )
}

/// `<root>/nix/var/nix/db`.
pub fn db_dir(root: &Path) -> PathBuf {
    root.join("nix/var/nix/db")
}

impl NixDb {
    /// Opens the root's database, creating it (and the `schema` file) when absent.
    pub fn open(root: &Path) -> Result<Self, DbError> {
        let shown = db_dir(root);
        let fd = open_db_dir(root, true).map_err(|e| DbError::Prepare(shown.clone(), e))?;
        Self::open_in(fd, shown)
    }

    /// Opens the database in the directory `fd` (`shown` names it in errors).
    fn open_in(fd: std::os::fd::OwnedFd, shown: PathBuf) -> Result<Self, DbError> {
        let dir = super::fsat::fd_path(&fd);
        let schema_file = dir.join("schema");
        match fs::read_to_string(&schema_file) {
            Ok(s) if s.trim() == SCHEMA_VERSION.to_string() => {}
            Ok(s) => {
                return Err(DbError::Schema {
                    dir: shown,
                    found: s.trim().to_owned(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(DbError::Prepare(schema_file, e)),
        }
        let conn = Connection::open(dir.join("db.sqlite")).map_err(sql("open"))?;
        conn.execute_batch("pragma foreign_keys = on;")
            .map_err(sql("set pragmas"))?;
        conn.execute_batch(SCHEMA_SQL)
            .map_err(sql("create schema"))?;
        if !schema_file.exists() {
            fs::write(&schema_file, SCHEMA_VERSION.to_string())
                .map_err(|e| DbError::Prepare(schema_file.clone(), e))?;
        }
        Ok(Self { conn, _dir: fd })
    }

    /// Opens the database only if the root has one (no files are created).
    /// A link anywhere on the way (`nix`, `var`, …, `db.sqlite`) is refused.
    pub fn open_existing(root: &Path) -> Result<Option<Self>, DbError> {
        let shown = db_dir(root);
        let fd = match open_db_dir(root, false) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DbError::Prepare(shown, e)),
        };
        match super::fsat::kind_at(&fd, b"db.sqlite") {
            Ok(None) => Ok(None),
            Ok(Some(nix::sys::stat::SFlag::S_IFREG)) => Self::open_in(fd, shown).map(Some),
            Ok(Some(_)) => Err(DbError::Prepare(
                shown.join("db.sqlite"),
                io::Error::other("not a regular file"),
            )),
            Err(e) => Err(DbError::Prepare(shown.join("db.sqlite"), e)),
        }
    }

    /// The narHash recorded for `path`, or `None` when it is not valid.
    pub fn nar_hash_of(&self, path: &StorePath) -> Result<Option<NarHash>, DbError> {
        let hash: Option<String> = self
            .conn
            .prepare_cached("select hash from ValidPaths where path = ?1")
            .map_err(sql("prepare a lookup"))?
            .query_row(params![path.as_str()], |r| r.get(0))
            .optional()
            .map_err(sql("look up a path"))?;
        hash.map(|h| NarHash::parse(&h).map_err(|_| DbError::Malformed(path.to_string())))
            .transpose()
    }

    /// Whether `path` is registered valid.
    pub fn is_valid(&self, path: &StorePath) -> Result<bool, DbError> {
        self.id_of(path).map(|id| id.is_some())
    }

    fn id_of(&self, path: &StorePath) -> Result<Option<i64>, DbError> {
        self.conn
            .prepare_cached("select id from ValidPaths where path = ?1")
            .map_err(sql("prepare a lookup"))?
            .query_row(params![path.as_str()], |r| r.get(0))
            .optional()
            .map_err(sql("look up a path"))
    }

    /// Registers a batch of paths valid with their references, in one
    /// transaction. Re-registering a path updates its row. Every reference
    /// must be valid already or be in the batch.
    pub fn register(&mut self, infos: &[PathInfo]) -> Result<(), DbError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let tx = self.conn.transaction().map_err(sql("begin"))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca)
                     values (?1, ?2, ?3, ?4, ?5, null, ?6, ?7)
                     on conflict(path) do update set hash = excluded.hash,
                       registrationTime = excluded.registrationTime, deriver = excluded.deriver,
                       narSize = excluded.narSize, sigs = excluded.sigs, ca = excluded.ca",
                )
                .map_err(sql("prepare insert"))?;
            for info in infos {
                let sigs = (!info.signatures.is_empty()).then(|| info.signatures.join(" "));
                upsert
                    .execute(params![
                        info.path.as_str(),
                        info.nar_hash.to_base16(),
                        now,
                        info.deriver.as_ref().map(StorePath::as_str),
                        info.nar_size as i64,
                        sigs,
                        info.ca,
                    ])
                    .map_err(sql("insert a path"))?;
            }
            let mut id_of = tx
                .prepare_cached("select id from ValidPaths where path = ?1")
                .map_err(sql("prepare a lookup"))?;
            let mut add_ref = tx
                .prepare_cached("insert or ignore into Refs (referrer, reference) values (?1, ?2)")
                .map_err(sql("prepare reference insert"))?;
            for info in infos {
                let referrer: i64 = id_of
                    .query_row(params![info.path.as_str()], |r| r.get(0))
                    .map_err(sql("look up a path"))?;
                for reference in &info.references {
                    let id: Option<i64> = id_of
                        .query_row(params![reference.as_str()], |r| r.get(0))
                        .optional()
                        .map_err(sql("look up a reference"))?;
                    let Some(id) = id else {
                        return Err(DbError::MissingReference {
                            path: info.path.clone(),
                            reference: reference.clone(),
                        });
                    };
                    add_ref
                        .execute(params![referrer, id])
                        .map_err(sql("insert a reference"))?;
                }
            }
        }
        tx.commit().map_err(sql("commit"))
    }

    /// What the database records for `path`, or `None` when it is not valid.
    pub fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, DbError> {
        type Row = (
            i64,
            String,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = self
            .conn
            .query_row(
                "select id, hash, deriver, narSize, sigs, ca from ValidPaths where path = ?1",
                params![path.as_str()],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()
            .map_err(sql("read a path"))?;
        let Some((id, hash, deriver, nar_size, sigs, ca)) = row else {
            return Ok(None);
        };
        let bad = || DbError::Malformed(path.to_string());
        let mut stmt = self
            .conn
            .prepare_cached(
                "select p.path from Refs r join ValidPaths p on p.id = r.reference where r.referrer = ?1",
            )
            .map_err(sql("prepare reference query"))?;
        let mut references = stmt
            .query_map(params![id], |r| r.get::<_, String>(0))
            .map_err(sql("read references"))?
            .map(|r| {
                r.map_err(sql("read references"))
                    .and_then(|s| StorePath::parse(&s).map_err(|_| bad()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        references.sort();
        Ok(Some(PathInfo {
            path: path.clone(),
            nar_hash: NarHash::parse(&hash).map_err(|_| bad())?,
            nar_size: nar_size.ok_or_else(bad)? as u64,
            references,
            deriver: deriver
                .map(|d| StorePath::parse(&d).map_err(|_| bad()))
                .transpose()?,
            signatures: sigs
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            ca,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(c: char) -> StorePath {
        StorePath::parse(&format!("/nix/store/{}{c}-{c}", "0".repeat(31))).unwrap()
    }

    fn info(c: char, refs: &[char]) -> PathInfo {
        PathInfo {
            path: sp(c),
            nar_hash: NarHash([c as u8; 32]),
            nar_size: 1000 + c as u64,
            references: refs.iter().map(|&r| sp(r)).collect(),
            deriver: Some(
                StorePath::parse(&format!("/nix/store/{}-{c}.drv", "1".repeat(32))).unwrap(),
            ),
            signatures: vec!["k-1:sig".into(), "k-2:sig".into()],
            ca: None,
        }
    }

    #[test]
    fn registers_and_reads_back_with_references() {
        let tmp = tempfile::tempdir().unwrap();
        let mut db = NixDb::open(tmp.path()).unwrap();
        let batch = vec![info('a', &['a', 'b']), info('b', &[])];
        db.register(&batch).unwrap();
        assert_eq!(db.path_info(&sp('a')).unwrap().unwrap(), batch[0]);
        assert_eq!(db.path_info(&sp('b')).unwrap().unwrap(), batch[1]);
        assert!(db.is_valid(&sp('a')).unwrap());
        assert!(!db.is_valid(&sp('c')).unwrap());
        assert_eq!(
            fs::read_to_string(tmp.path().join("nix/var/nix/db/schema")).unwrap(),
            "10"
        );
        let hash: String = db
            .conn
            .query_row(
                "select hash from ValidPaths where path = ?1",
                [sp('a').as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
    }

    #[test]
    fn refuses_a_reference_that_is_not_valid_and_registers_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let mut db = NixDb::open(tmp.path()).unwrap();
        let err = db.register(&[info('a', &['z'])]).unwrap_err();
        assert!(matches!(err, DbError::MissingReference { .. }), "{err}");
        assert!(
            !db.is_valid(&sp('a')).unwrap(),
            "the transaction was rolled back"
        );
    }

    #[test]
    fn refuses_a_database_of_another_schema() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(db_dir(tmp.path())).unwrap();
        fs::write(db_dir(tmp.path()).join("schema"), "7").unwrap();
        assert!(matches!(
            NixDb::open(tmp.path()),
            Err(DbError::Schema { .. })
        ));
    }
}
