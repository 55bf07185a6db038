//! The PostgreSQL backend's statements: one connection with its prepared statements, and
//! each write as an owned, resolved value that can run again (the journal of `pg.rs`).

use super::super::Deleted;
use postgres::{Client, Statement};
use std::collections::HashMap;

/// One connection and its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) stmts: HashMap<&'static str, Statement>,
}

impl Conn {
    pub(super) fn prep(
        &mut self,
        sql: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }

    pub(super) fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error> {
        let s = self.prep(sql)?;
        self.client.execute(&s, params)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> std::result::Result<Vec<postgres::Row>, postgres::Error> {
        let s = self.prep(sql)?;
        self.client.query(&s, params)
    }
}

/// A write, owned and resolved, so it can be replayed after a lost transaction.
pub(super) enum Op {
    RecordUser(String),
    /// Offline messages at known sequence numbers (a push).
    OfflineRows {
        user: String,
        seqs: Vec<i64>,
        stanzas: Vec<Vec<u8>>,
        /// Their message ids (`None`: none given).
        uids: Vec<Option<i64>>,
    },
    /// Messages put back in front of the queue (sequences below the oldest left).
    OfflineRestore {
        user: String,
        stanzas: Vec<Vec<u8>>,
    },
    OfflineDelete {
        user: String,
        first: i64,
        last: i64,
    },
    RosterSet {
        user: String,
        jid: String,
        item: String,
        version: i64,
    },
    RosterRemove {
        user: String,
        contact: String,
        version: i64,
    },
    Archive {
        owners: Vec<String>,
        ids: Vec<i64>,
        withs: Vec<String>,
        stanzas: Vec<Vec<u8>>,
        /// 0: none (stored as NULL).
        uids: Vec<i64>,
    },
    Prefs {
        owner: String,
        prefs: String,
    },
    RoomPut {
        jid: String,
        data: Vec<u8>,
    },
    RoomRemove(String),
    DeleteUser {
        user: String,
        bare: String,
    },
    Expire(i64),
}

impl Op {
    pub(super) fn bytes(&self) -> usize {
        let v = |v: &[Vec<u8>]| v.iter().map(|s| s.len() + 8).sum::<usize>();
        64 + match self {
            Op::RecordUser(s) | Op::RoomRemove(s) => s.len(),
            Op::OfflineRows { stanzas, .. } | Op::OfflineRestore { stanzas, .. } => v(stanzas),
            Op::RosterSet { item, .. } => item.len(),
            Op::Archive {
                owners,
                withs,
                stanzas,
                ..
            } => {
                v(stanzas)
                    + owners.iter().map(String::len).sum::<usize>()
                    + withs.iter().map(String::len).sum::<usize>()
            }
            Op::Prefs { prefs, .. } => prefs.len(),
            Op::RoomPut { data, .. } => data.len(),
            _ => 0,
        }
    }

    /// Runs the write; idempotent (but `OfflineRestore`, see `docs/postgres.md`).
    pub(super) fn exec(&self, c: &mut Conn) -> std::result::Result<u64, postgres::Error> {
        match self {
            Op::RecordUser(u) => c.exec(
                "INSERT INTO users (username) VALUES ($1) ON CONFLICT DO NOTHING",
                &[u],
            ),
            Op::OfflineRows {
                user,
                seqs,
                stanzas,
                uids,
            } => c.exec(
                "INSERT INTO offline (username, seq, stanza, uid) \
                 SELECT $1, s, t, d FROM unnest($2::int8[], $3::bytea[], $4::int8[]) \
                 AS u(s, t, d) ON CONFLICT DO NOTHING",
                &[user, seqs, stanzas, uids],
            ),
            Op::OfflineRestore { user, stanzas } => c.exec(
                "INSERT INTO offline (username, seq, stanza) \
                 SELECT $1, COALESCE((SELECT MIN(seq) FROM offline WHERE username = $1), 0) \
                        - cardinality($2::bytea[]) + o - 1, t \
                 FROM unnest($2::bytea[]) WITH ORDINALITY AS u(t, o)",
                &[user, stanzas],
            ),
            Op::OfflineDelete { user, first, last } => c.exec(
                "DELETE FROM offline WHERE username = $1 AND seq BETWEEN $2 AND $3",
                &[user, first, last],
            ),
            Op::RosterSet {
                user,
                jid,
                item,
                version,
            } => {
                c.exec(
                    "INSERT INTO roster_items (username, jid, item) VALUES ($1, $2, $3) \
                     ON CONFLICT (username, jid) DO UPDATE SET item = EXCLUDED.item",
                    &[user, jid, item],
                )?;
                set_version(c, user, *version)
            }
            Op::RosterRemove {
                user,
                contact,
                version,
            } => {
                c.exec(
                    "DELETE FROM roster_items WHERE username = $1 AND jid = $2",
                    &[user, contact],
                )?;
                set_version(c, user, *version)
            }
            Op::Archive {
                owners,
                ids,
                withs,
                stanzas,
                uids,
            } => c.exec(
                "INSERT INTO archive (owner, id, with_jid, stanza, uid) \
                 SELECT o, i, w, s, NULLIF(u, 0) \
                 FROM unnest($1::text[], $2::int8[], $3::text[], $4::bytea[], $5::int8[]) \
                     AS t(o, i, w, s, u) \
                 ON CONFLICT DO NOTHING",
                &[owners, ids, withs, stanzas, uids],
            ),
            Op::Prefs { owner, prefs } => c.exec(
                "INSERT INTO archive_prefs (owner, prefs) VALUES ($1, $2) \
                 ON CONFLICT (owner) DO UPDATE SET prefs = EXCLUDED.prefs",
                &[owner, prefs],
            ),
            Op::RoomPut { jid, data } => c.exec(
                "INSERT INTO rooms (jid, data) VALUES ($1, $2) \
                 ON CONFLICT (jid) DO UPDATE SET data = EXCLUDED.data",
                &[jid, data],
            ),
            Op::RoomRemove(jid) => c.exec("DELETE FROM rooms WHERE jid = $1", &[jid]),
            Op::DeleteUser { user, bare } => delete_user(c, user, bare).map(|_| 0),
            Op::Expire(before) => c.exec("DELETE FROM archive WHERE id < $1", &[before]),
        }
    }
}

fn set_version(
    c: &mut Conn,
    user: &str,
    version: i64,
) -> std::result::Result<u64, postgres::Error> {
    c.exec(
        "INSERT INTO roster_versions (username, version) VALUES ($1, $2) \
         ON CONFLICT (username) DO UPDATE SET version = EXCLUDED.version",
        &[&user, &version],
    )
}

pub(super) fn delete_user(
    c: &mut Conn,
    user: &str,
    bare: &str,
) -> std::result::Result<Deleted, postgres::Error> {
    let roster = c.exec("DELETE FROM roster_items WHERE username = $1", &[&user])?;
    let offline = c.exec("DELETE FROM offline WHERE username = $1", &[&user])?;
    let archive = c.exec("DELETE FROM archive WHERE owner = $1", &[&bare])?;
    let had = c.exec("DELETE FROM users WHERE username = $1", &[&user])?;
    c.exec("DELETE FROM archive_prefs WHERE owner = $1", &[&bare])?;
    // The version is a number, not data: kept and moved on (as fjall does).
    c.exec(
        "UPDATE roster_versions SET version = version + 1 WHERE username = $1 AND version > 0",
        &[&user],
    )?;
    Ok(Deleted {
        user: had > 0,
        roster: roster as usize,
        offline: offline as usize,
        archive: archive as usize,
    })
}
