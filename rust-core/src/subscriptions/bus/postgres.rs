//! The PostgreSQL bus: every event is a row of an events table (`fraiseql_events` for the
//! default prefix), and the transaction that inserts it also sends one payload-less NOTIFY on a
//! single PostgreSQL channel named after the table. Each process LISTENs on that one channel and,
//! when woken, reads the new rows of the app channels it has local subscribers for (kept in a
//! temporary table on its listening connection, so thousands of app channels cost one indexed
//! lookup per new row, not a parameter per channel per read). Payloads live in the table, so
//! NOTIFY's 8000-byte limit does not apply, and a row is only ever read once its transaction has
//! committed: a rolled-back publish is never delivered.
//!
//! Which rows are new is decided by transaction visibility, not by comparing ids. Ids come from
//! a sequence before commit, so a row with a smaller id can become visible after a larger one:
//! a reader that remembers "the last id seen" jumps past it and loses it (the classic outbox
//! bug). Each row instead records the id of the transaction that wrote it (`xid`), and the reader
//! remembers the snapshot (`pg_current_snapshot()`) its last read was taken with. The next read
//! returns exactly the rows visible now but not visible in that snapshot: the transactions that
//! were still running then, or started since. Every committed row is thus delivered once, in the
//! first read that can see it; rows from transactions still running are picked up when they
//! commit, however small their ids. Unlike waiting for `pg_snapshot_xmin` to pass a row (the other
//! common fix), an unrelated long transaction elsewhere in the database never holds delivery
//! back, and unlike re-checking id gaps for a while, nothing is lost when a transaction stays
//! open longer than that while.
//!
//! The order is commit order between transactions (as each process observes it: transactions
//! that commit within one read of each other come out in transaction id order) and id order
//! within a transaction; one publishing process commits its batches one after another, so its
//! events arrive everywhere in the order it published them.
//!
//! After the listening connection drops (or its backend is killed), the listener reconnects
//! with backoff, LISTENs again and reads from the snapshot it kept: everything committed
//! meanwhile arrives, in order, once, as long as it has not been pruned. Pruning (`{prefix}_prune`,
//! run about once a minute by one process at a time) only deletes rows whose transaction had
//! committed in a snapshot recorded at least the retention ago (`DEFAULT_RETENTION` unless
//! configured), so an outage shorter than the retention loses nothing, even for events of
//! transactions that were open for longer.
//!
//! TLS follows libpq's `sslmode` and `sslrootcert` (see `tls`); the default, as in libpq, is
//! `prefer`.
//!
//! Publishing queues the event (bounded); a task inserts queued events in batches, one
//! transaction and one NOTIFY per batch, two round trips, committed asynchronously (see
//! `PublishConn::open`). When the connection fails at commit, the batch's transaction id tells
//! (through `pg_xact_status`, after reconnecting) whether it committed, so a retried batch is
//! never published twice. The SQL function `{prefix}_publish(channel,
//! event_type, data, tenant_id, user_id)` writes the same wire form from any transaction or
//! trigger.
//!
//! Requirements: PostgreSQL 13 or later; a direct connection or session pooling (LISTEN and the
//! temporary table need a session of their own, so not a transaction-pooling PgBouncer); the
//! TEMP privilege on the database (PUBLIC has it by default); and, unless the schema was
//! created beforehand (see `schema_sql`), the right to create tables and functions in the
//! connection's current schema. The table and functions live in that schema (so `search_path`
//! can separate applications too, though they then share NOTIFY wake-ups; a prefix separates
//! those as well).

use super::super::position::{self as positions, BusKind};
use super::config::mask_password;
use super::logging;
use super::tls::{self, PgConnector, PgTls};
use super::{runtime, Bus, BusMessage, Inbound, MetricValue, ReplayRequest};
use futures_util::StreamExt;
use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Config, Row, Statement};

/// How long a committed event stays in the table unless configured otherwise: the longest outage
/// a process can recover from without losing events.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);
/// Events queued for publishing while PostgreSQL is unreachable; beyond that publish() fails.
pub const PUBLISH_QUEUE: usize = 10_000;
/// The prefix of the table and SQL functions when none is given.
pub const DEFAULT_PREFIX: &str = "fraiseql";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A statement that takes longer means a dead or wedged connection: reconnect.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Rows and bytes per read: a backlog after an outage arrives in pages this big.
const READ_ROWS: i64 = 5000;
const READ_BYTES: i64 = 16 << 20;
/// Rows and bytes per publishing transaction.
const BATCH_ROWS: usize = 1000;
const BATCH_BYTES: usize = 8 << 20;
/// Received events waiting for the event loop beyond which the listener stops reading: the
/// backlog then waits in the table, not in memory.
const INBOUND_HIGH_WATER: usize = 100_000;
/// Pruning runs this often, or every half retention when that is shorter (but at most once a
/// second).
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_EVERY_MIN: Duration = Duration::from_secs(1);
const PRUNE_BATCH: i64 = 10_000;
/// Also a read now and then without a notification: keeps the kept snapshot recent (the window
/// a reconnect must cover) even when none of this process's channels has events.
const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// Stored as the table's comment once the schema is complete; bumped when the SQL changes.
const SCHEMA_VERSION: &str = "fraiseql bus schema 3";

/// The names of everything the bus creates for one prefix.
#[derive(Debug, Clone)]
struct Names {
    /// The events table, also the PostgreSQL NOTIFY channel.
    table: String,
    marks: String,
    publish_fn: String,
    prune_fn: String,
    /// The temporary table of the app channels a listening connection reads.
    listened: String,
}

impl Names {
    fn new(prefix: &str) -> Result<Self, String> {
        let mut chars = prefix.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            // The longest derived name ("_event_marks") must fit PostgreSQL's 63-byte limit.
            && prefix.len() <= 40;
        if !valid {
            return Err(format!(
                "PostgreSQL bus prefix {prefix:?} must be 1 to 40 characters of a-z, 0-9 and _, \
                 not starting with a digit"
            ));
        }
        Ok(Self {
            table: format!("{prefix}_events"),
            marks: format!("{prefix}_event_marks"),
            publish_fn: format!("{prefix}_publish"),
            prune_fn: format!("{prefix}_prune"),
            listened: format!("{prefix}_listened"),
        })
    }
}

/// The SQL that creates (idempotently) the events table, its index, the prune marks and the
/// `{prefix}_publish` / `{prefix}_prune` functions. The bus runs it at start when they are
/// missing or outdated; it is public so it can be shown or run by hand (e.g. by a migration
/// when the application's role may not create tables).
pub fn schema_sql(prefix: &str) -> Result<String, String> {
    Ok(schema_sql_for(&Names::new(prefix)?))
}

/// Checks a table and function prefix (the names `schema_sql` would derive from it).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    Names::new(prefix).map(drop)
}

fn schema_sql_for(n: &Names) -> String {
    let Names {
        table,
        marks,
        publish_fn,
        prune_fn,
        ..
    } = n;
    // `xid` is the writing transaction's id (top-level, so rows written in savepoints carry the
    // id that commits), stored as bigint: 64-bit xids never wrap, and bigint needs no casts on
    // the client. `created_at` uses the clock, not the transaction start, so it tells when the
    // row was written. The index on (xid, id) serves reads ("transactions not visible in my last
    // snapshot", in delivery order, so a read is an ordered index range scan that stops at its
    // page size) and pruning.
    format!(
        r#"CREATE TABLE IF NOT EXISTS {table} (
    id bigserial PRIMARY KEY,
    channel text NOT NULL,
    payload text NOT NULL,
    xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS {table}_xid_id_idx ON {table} (xid, id);
CREATE TABLE IF NOT EXISTS {marks} (
    taken_at timestamptz PRIMARY KEY DEFAULT clock_timestamp(),
    snap pg_snapshot NOT NULL
);

-- Publishes an event from SQL (a trigger, any transaction): delivered to subscribers of
-- `channel` in every process once the transaction commits, never if it rolls back. `data` is
-- the event's data (what a subscription without resolver returns); tenant_id / user_id
-- restrict who may receive it. Returns the event's row id.
CREATE OR REPLACE FUNCTION {publish_fn}(
    channel text, event_type text, data jsonb,
    tenant_id text DEFAULT NULL, user_id text DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
DECLARE
    event_id bigint;
BEGIN
    IF $1 IS NULL OR $2 IS NULL THEN
        RAISE EXCEPTION '{publish_fn}: channel and event_type must not be null';
    END IF;
    INSERT INTO {table} (channel, payload)
    VALUES ($1, (jsonb_build_object('event_type', $2, 'data', $3,
                                    'ts', extract(epoch FROM clock_timestamp()))
                 || CASE WHEN $4 IS NULL THEN '{{}}'::jsonb
                         ELSE jsonb_build_object('tenant_id', $4) END
                 || CASE WHEN $5 IS NULL THEN '{{}}'::jsonb
                         ELSE jsonb_build_object('user_id', $5) END)::text)
    RETURNING id INTO event_id;
    PERFORM pg_notify('{table}', '');
    RETURN event_id;
END
$fn$;

-- Deletes up to `batch` events committed more than `retention` ago; returns how many. Commit
-- time is known through snapshots recorded here on each call: a row visible in a snapshot taken
-- at least `retention` ago had committed by then (one every half retention, between 1 and 10
-- seconds apart). One caller at a time; others return 0.
CREATE OR REPLACE FUNCTION {prune_fn}(
    retention interval DEFAULT '1 hour', batch integer DEFAULT 10000
) RETURNS bigint LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
DECLARE
    horizon_at timestamptz;
    horizon pg_snapshot;
    deleted bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('{table}:prune')) THEN
        RETURN 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM {marks}
                   WHERE taken_at > clock_timestamp()
                                    - greatest(interval '1 second',
                                               least(interval '10 seconds', retention / 2))) THEN
        INSERT INTO {marks} (snap) VALUES (pg_current_snapshot());
    END IF;
    SELECT taken_at, snap INTO horizon_at, horizon FROM {marks}
    WHERE taken_at <= clock_timestamp() - retention ORDER BY taken_at DESC LIMIT 1;
    IF horizon IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM {marks} WHERE taken_at < horizon_at;
    DELETE FROM {table} WHERE id IN (
        SELECT id FROM {table}
        WHERE xid < pg_snapshot_xmax(horizon)::text::bigint
          AND pg_visible_in_snapshot(xid::text::xid8, horizon)
        ORDER BY xid, id LIMIT batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$fn$;

COMMENT ON TABLE {table} IS '{SCHEMA_VERSION}';
"#
    )
}

/// A `pg_snapshot`: transactions below `xmin` had ended when it was taken, those from `xmax` on
/// had not started, and those in `xip` were running. A committed row is visible in it exactly
/// when `sees(row.xid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    xmin: i64,
    xmax: i64,
    xip: Vec<i64>,
}

impl Snapshot {
    /// Parses the text form `xmin:xmax:xip,xip,...`.
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("unexpected snapshot {text:?} from the server");
        let mut parts = text.splitn(3, ':');
        let mut number =
            || -> Result<i64, String> { parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad) };
        let (xmin, xmax) = (number()?, number()?);
        let list = parts.next().ok_or_else(bad)?;
        let xip = if list.is_empty() {
            Vec::new()
        } else {
            list.split(',')
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<Vec<i64>, String>>()?
        };
        // The SQL below relies on these (running transactions lie in [xmin, xmax)).
        if xmin > xmax || xip.iter().any(|&x| x < xmin || x >= xmax) {
            return Err(bad());
        }
        Ok(Self { xmin, xmax, xip })
    }

    /// The text form `parse` reads.
    fn text(&self) -> String {
        let xip: Vec<String> = self.xip.iter().map(i64::to_string).collect();
        format!("{}:{}:{}", self.xmin, self.xmax, xip.join(","))
    }

    /// Whether every transaction this snapshot sees as committed, `other` sees too (conservative:
    /// false may also mean "cannot tell").
    fn within(&self, other: &Snapshot) -> bool {
        other.xmax >= self.xmax
            && other
                .xip
                .iter()
                .all(|x| *x >= self.xmax || self.xip.contains(x))
    }

    /// The Rust twin of the visibility test the SQL below spells out (for tests).
    #[cfg(test)]
    fn sees(&self, xid: i64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.xip.contains(&xid))
    }
}

/// The most partial terms a cursor a client sends back may have (one per page cut since its
/// base; a few at most in practice).
const MAX_PARTIAL_TERMS: usize = 64;

/// Where a row stands in delivery order: by transaction, then by id. (Rows of one transaction
/// stay together, and a single publisher's transactions follow each other, so its events keep
/// their order.) The events table's index on (xid, id) serves this order and the "new
/// transactions" ranges of a read at once, whatever the planner's statistics say.
type Position = (i64, i64);

/// The set of rows a listener has delivered (or chose to skip: history before it started):
/// every row visible in `base`, plus, for each `(snapshot, position)` in `partial`, the rows
/// visible in that snapshot up to that position. A read that hits its page limit delivers only
/// a prefix (in position order) of what its snapshot shows, hence the partial terms; a read that
/// completes replaces everything by its snapshot. Snapshots only grow over time, so a later term
/// with a larger bound covers an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    base: Snapshot,
    partial: Vec<(Snapshot, Position)>,
}

impl Cursor {
    fn new(base: Snapshot) -> Self {
        Self {
            base,
            partial: Vec::new(),
        }
    }

    /// Whether a committed row is in the set (the Rust twin of `undelivered_sql`, for tests).
    #[cfg(test)]
    fn delivered(&self, xid: i64, id: i64) -> bool {
        self.base.sees(xid)
            || self
                .partial
                .iter()
                .any(|(s, last)| s.sees(xid) && (xid, id) <= *last)
    }

    /// Records a read taken with `snapshot` that delivered, in position order, every row in it
    /// not yet delivered (`full` false), or only those up to `last` (`full`: the page was cut).
    fn advance(&mut self, snapshot: Snapshot, last: Option<Position>, full: bool) {
        match (full, last) {
            (true, Some(last)) => {
                self.partial.retain(|(_, l)| *l > last);
                self.partial.push((snapshot, last));
            }
            _ => {
                self.base = snapshot;
                self.partial.clear();
            }
        }
    }

    /// This set plus the rows of `later` up to `last` (in position order): the position of the
    /// row at `last` when this was the set before the read that delivered it.
    fn up_to(&self, later: &Cursor, last: Position) -> Cursor {
        let mut out = self.clone();
        out.add_term(later.base.clone(), last);
        for (snapshot, bound) in &later.partial {
            out.add_term(snapshot.clone(), last.min(*bound));
        }
        out
    }

    /// Adds the rows visible in `snapshot` up to `last`, keeping only terms no other covers.
    fn add_term(&mut self, snapshot: Snapshot, last: Position) {
        let covered = snapshot.within(&self.base)
            || self
                .partial
                .iter()
                .any(|(s, l)| last <= *l && snapshot.within(s));
        if covered {
            return;
        }
        self.partial
            .retain(|(s, l)| !(*l <= last && s.within(&snapshot)));
        self.partial.push((snapshot, last));
    }

    /// Whether every row in this set is in `other` (conservative).
    fn within(&self, other: &Cursor) -> bool {
        other.partial.is_empty()
            && self.base.within(&other.base)
            && self.partial.iter().all(|(s, _)| s.within(&other.base))
    }

    /// The offset of a PostgreSQL cursor: the base snapshot, then `_snapshot@xid/id` per
    /// partial term.
    fn text(&self) -> String {
        let mut out = self.base.text();
        for (snapshot, (xid, id)) in &self.partial {
            out.push('_');
            out.push_str(&snapshot.text());
            out.push_str(&format!("@{xid}/{id}"));
        }
        out
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split('_');
        let base = Snapshot::parse(parts.next().unwrap_or_default())?;
        let mut partial = Vec::new();
        for part in parts {
            if partial.len() == MAX_PARTIAL_TERMS {
                return Err("a cursor with too many terms".to_owned());
            }
            let bad = || format!("unexpected cursor term {part:?}");
            let (snapshot, position) = part.split_once('@').ok_or_else(bad)?;
            let (xid, id) = position.split_once('/').ok_or_else(bad)?;
            let position = (
                xid.parse().map_err(|_| bad())?,
                id.parse().map_err(|_| bad())?,
            );
            partial.push((Snapshot::parse(snapshot)?, position));
        }
        Ok(Self { base, partial })
    }

    /// A condition on the events table (alias `t`) true for rows not in the set, apart from the
    /// base snapshot's part (which `read_sql` spells as two index ranges); "true" when none.
    fn partial_sql(&self, params: &mut Params) -> String {
        let terms: Vec<String> = self
            .partial
            .iter()
            .map(|(snapshot, (xid, id))| {
                format!(
                    "NOT ({} AND (t.xid, t.id) <= ({}::bigint, {}::bigint))",
                    visible_sql(snapshot, params),
                    params.add(*xid),
                    params.add(*id)
                )
            })
            .collect();
        if terms.is_empty() {
            "true".to_owned()
        } else {
            terms.join(" AND ")
        }
    }

    /// The read of the rows not in the set (`read_sql`), its parameters added to `params`.
    fn read_filter(&self, params: &mut Params) -> ReadFilter {
        ReadFilter {
            xmax: params.add(self.base.xmax),
            xip: params.add(self.base.xip.clone()),
            extra: self.partial_sql(params),
        }
    }

    /// The whole condition: true for rows (alias `t`) not in the set.
    fn undelivered_sql(&self, params: &mut Params) -> String {
        // Not visible in a snapshot: at or above its xmax, or among its running transactions
        // (which all lie in [xmin, xmax)).
        format!(
            "((t.xid >= {} OR t.xid = ANY({}::bigint[])) AND {})",
            params.add(self.base.xmax),
            params.add(self.base.xip.clone()),
            self.partial_sql(params)
        )
    }
}

/// True for rows (alias `t`) whose transaction `snapshot` sees as committed.
fn visible_sql(snapshot: &Snapshot, params: &mut Params) -> String {
    format!(
        "(t.xid < {}::bigint OR (t.xid < {}::bigint AND t.xid <> ALL({}::bigint[])))",
        params.add(snapshot.xmin),
        params.add(snapshot.xmax),
        params.add(snapshot.xip.clone())
    )
}

/// Query parameters collected while building a statement's text.
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds a parameter; returns its placeholder.
    fn add(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Which app channels a read covers.
enum ChannelFilter<'a> {
    /// Those in the connection's temporary table.
    Listened,
    /// Those in this array parameter (placeholder).
    Any(&'a str),
}

/// The rows a read looks at: those not visible in the snapshot whose `xmax` and `xip` are
/// these placeholders (written as two ranges of the (xid, id) index, each already in delivery
/// order, so the plan is an ordered index scan whatever the table's statistics), that also
/// satisfy `extra`.
struct ReadFilter {
    xmax: String,
    xip: String,
    extra: String,
}

/// A read of the events table: the statement's snapshot (always, in a row of its own when
/// there are no events), then up to `READ_ROWS` rows / about `READ_BYTES` bytes matching
/// `filter`, in delivery order, with each row's age and the page size before the byte cut (to
/// tell whether the page is complete). One statement, so its snapshot is the one the rows were
/// read with.
fn read_sql(n: &Names, filter: &ReadFilter, channels: ChannelFilter<'_>) -> String {
    let channel_filter = match channels {
        ChannelFilter::Listened => format!(
            "EXISTS (SELECT 1 FROM pg_temp.{} l WHERE l.channel = t.channel)",
            n.listened
        ),
        ChannelFilter::Any(placeholder) => format!("t.channel = ANY({placeholder}::text[])"),
    };
    let ReadFilter { xmax, xip, extra } = filter;
    let branch = |range: String| {
        format!(
            "(SELECT t.xid, t.id, t.channel, t.payload, t.created_at FROM {table} t \
              WHERE {range} AND {extra} AND {channel_filter} \
              ORDER BY t.xid, t.id LIMIT {READ_ROWS})",
            table = n.table
        )
    };
    format!(
        "SELECT s.snap, e.xid, e.id, e.channel, e.payload, e.age_ms, e.page \
         FROM (SELECT pg_current_snapshot()::text AS snap) s \
         LEFT JOIN LATERAL ( \
           SELECT w.xid, w.id, w.channel, w.payload, w.age_ms, w.page FROM ( \
             SELECT p.xid, p.id, p.channel, p.payload, \
               (extract(epoch FROM clock_timestamp() - p.created_at) * 1000)::bigint AS age_ms, \
               count(*) OVER () AS page, \
               sum(octet_length(p.payload)) OVER (ORDER BY p.xid, p.id ROWS UNBOUNDED PRECEDING) \
                 - octet_length(p.payload) AS before \
             FROM (SELECT u.* FROM ({running} UNION ALL {newer}) u \
                   ORDER BY u.xid, u.id LIMIT {READ_ROWS}) p \
           ) w WHERE w.before < {READ_BYTES} \
         ) e ON true \
         ORDER BY e.xid, e.id",
        running = branch(format!("t.xid = ANY({xip}::bigint[])")),
        newer = branch(format!("t.xid >= {xmax}::bigint")),
    )
}

/// What one read returned.
#[derive(Debug)]
struct Page {
    snapshot: Snapshot,
    messages: Vec<BusMessage>,
    /// Each message's position.
    positions: Vec<Position>,
    last: Option<Position>,
    /// The page was cut (row or byte limit): more rows may follow.
    full: bool,
    max_age_ms: Option<i64>,
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, String> {
    row.try_get(i)
        .map_err(|e| format!("unexpected result from the server: {}", describe(&e)))
}

fn parse_page(rows: &[Row]) -> Result<Page, String> {
    let first = rows
        .first()
        .ok_or_else(|| "unexpected empty result from the server".to_owned())?;
    let snapshot = Snapshot::parse(column::<&str>(first, 0)?)?;
    let mut messages = Vec::with_capacity(rows.len());
    let mut positions = Vec::with_capacity(rows.len());
    let (mut last, mut page_rows, mut max_age) = (None, 0i64, None::<i64>);
    for row in rows {
        let (Some(xid), Some(id)) = (
            column::<Option<i64>>(row, 1)?,
            column::<Option<i64>>(row, 2)?,
        ) else {
            continue;
        };
        let channel: String = column(row, 3)?;
        let payload: String = column(row, 4)?;
        let age: Option<i64> = column(row, 5)?;
        page_rows = column::<Option<i64>>(row, 6)?.unwrap_or(0);
        max_age = max_age.max(age);
        last = Some((xid, id));
        positions.push((xid, id));
        messages.push(BusMessage::new(channel, payload.into_bytes()));
    }
    let full = page_rows >= READ_ROWS || (messages.len() as i64) < page_rows;
    Ok(Page {
        snapshot,
        messages,
        positions,
        last,
        full,
        max_age_ms: max_age,
    })
}

/// Applies listen (true) / unlisten (false) requests to `active`; returns the channels that
/// were added and removed, net: a channel dropped and taken again before this call was never
/// out of `active`, and one taken and dropped again was never in.
fn apply_changes(
    active: &mut FxHashSet<Box<str>>,
    changes: Vec<(Box<str>, bool)>,
) -> (FxHashSet<Box<str>>, FxHashSet<Box<str>>) {
    let mut added = FxHashSet::default();
    let mut removed = FxHashSet::default();
    for (channel, listen) in changes {
        if listen {
            if active.insert(channel.clone()) && !removed.remove(&channel) {
                added.insert(channel);
            }
        } else if active.remove(&channel) && !added.remove(&channel) {
            removed.insert(channel);
        }
    }
    (added, removed)
}

/// The server(s) a configuration points at, as `host:port` (for error messages).
fn server_name(config: &Config) -> String {
    let ports = config.get_ports();
    // tokio-postgres: one port applies to every host, else one port per host; 5432 by default.
    let port = |i: usize| {
        ports
            .get(i)
            .or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            })
            .copied()
            .unwrap_or(5432)
    };
    let mut names: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", port(i)),
            Host::Tcp(h) => format!("{h}:{}", port(i)),
            Host::Unix(path) => format!("{}/.s.PGSQL.{}", path.display(), port(i)),
        })
        .collect();
    if names.is_empty() {
        names = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| match addr {
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", port(i)),
                std::net::IpAddr::V4(a) => format!("{a}:{}", port(i)),
            })
            .collect();
    }
    names.join(", ")
}

/// A tokio-postgres error with its cause ("db error: FATAL: password authentication failed ...").
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// Bounds a statement; a timeout counts as a failure of the connection.
async fn bounded<T>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match timeout(QUERY_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {}", describe(&e))),
        Err(_) => Err(format!("{what}: no answer within {QUERY_TIMEOUT:?}")),
    }
}

/// Waits before reconnect attempt `attempt` (50 ms doubling to 2 s); false on shutdown.
async fn backoff(attempt: &mut u32, shutdown: &mut watch::Receiver<bool>) -> bool {
    let delay = BACKOFF_FIRST
        .saturating_mul(1u32 << (*attempt).min(6))
        .min(BACKOFF_MAX);
    *attempt = attempt.saturating_add(1);
    tokio::select! {
        _ = tokio::time::sleep(delay) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}

/// What the tasks share with the bus handle.
#[derive(Default)]
struct State {
    listen_connected: AtomicBool,
    publish_connected: AtomicBool,
    reconnects: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    replayed: AtomicU64,
    lag_ms: AtomicU64,
    /// Accepted by publish() and not yet committed.
    queued: AtomicU64,
    /// A full publish queue was logged (once until a batch gets through again).
    queue_full_logged: AtomicBool,
    /// App channels the listener reads (as applied by it).
    listening: AtomicU64,
    last_error: Mutex<Option<String>>,
    channels: Mutex<Channels>,
    channels_changed: Notify,
    /// Replays asked by resuming subscriptions, not yet served (see `Listener::serve_replay`).
    replays: Mutex<Vec<ReplayRequest>>,
}

impl State {
    fn error(&self, error: String) {
        *self.last_error.lock() = Some(error);
    }
}

/// The app channels with local subscribers, and the changes the listener has not applied yet.
#[derive(Default)]
struct Channels {
    wanted: FxHashSet<Box<str>>,
    changes: Vec<(Box<str>, bool)>,
    /// Too many changes piled up (the listener is not running, or far behind): they were
    /// dropped, and the listener compares `wanted` with what it listens to instead.
    resync: bool,
}

/// Changes kept for the listener before it has to resync instead (bounds memory while it is
/// not running).
const MAX_PENDING_CHANGES: usize = 100_000;

impl Channels {
    fn record(&mut self, channel: &str, listen: bool) {
        if self.changes.len() >= MAX_PENDING_CHANGES {
            self.changes = Vec::new();
            self.resync = true;
        }
        if !self.resync {
            self.changes.push((channel.into(), listen));
        }
    }

    /// The changes since the last call, as listen (true) / unlisten (false) requests against
    /// `active`.
    fn take(&mut self, active: &FxHashSet<Box<str>>) -> Vec<(Box<str>, bool)> {
        if !std::mem::take(&mut self.resync) {
            return std::mem::take(&mut self.changes);
        }
        let dropped = active.iter().filter(|c| !self.wanted.contains(*c));
        let joined = self.wanted.iter().filter(|c| !active.contains(*c));
        dropped
            .map(|c| (c.clone(), false))
            .chain(joined.map(|c| (c.clone(), true)))
            .collect()
    }
}

/// Drives a connection: hands notifications to `notified` (coalesced: one pending wake-up at
/// most) and ends with the reason the connection closed.
fn spawn_driver<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notified: Arc<Notify>,
) -> JoinHandle<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => notified.notify_one(),
                Ok(_) => {}
                Err(e) => return describe(&e),
            }
        }
        "connection closed".to_owned()
    })
}

/// A connected client and the task driving its connection (stopped when this is dropped).
struct Connection {
    client: Client,
    driver: JoinHandle<String>,
    notified: Arc<Notify>,
}

impl Connection {
    /// Why a statement failed: when the connection has ended, the driver's reason (e.g.
    /// "terminating connection due to administrator command") says more than the statement's
    /// "connection closed".
    async fn closed_reason(&mut self, error: String) -> String {
        if !self.driver.is_finished() {
            return error;
        }
        match (&mut self.driver).await {
            Ok(reason) => format!("{error} ({reason})"),
            Err(_) => error,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn connect(config: &Config, tls: &PgConnector) -> Result<Connection, String> {
    let (client, connection) = match timeout(CONNECT_TIMEOUT, config.connect(tls.clone())).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(describe(&e)),
        Err(_) => return Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    };
    let notified = Arc::new(Notify::new());
    let driver = spawn_driver(connection, notified.clone());
    Ok(Connection {
        client,
        driver,
        notified,
    })
}

/// Creates the table and functions unless they are there already, in their current version.
/// Checked first so that a running deployment (where a long transaction may hold a lock on the
/// table, or the role may not own it) never waits on DDL.
async fn ensure_schema(client: &mut Client, n: &Names) -> Result<(), String> {
    let row = bounded(
        "checking the events table",
        client.query_one(
            "SELECT current_setting('server_version_num')::int, \
               current_setting('server_version'), \
               coalesce(obj_description(to_regclass($1), 'pg_class') = $2, false) \
               AND to_regprocedure($3) IS NOT NULL AND to_regprocedure($4) IS NOT NULL",
            &[
                &n.table,
                &SCHEMA_VERSION,
                &format!("{}(text,text,jsonb,text,text)", n.publish_fn),
                &format!("{}(interval,integer)", n.prune_fn),
            ],
        ),
    )
    .await?;
    // pg_current_xact_id, xid8 and pg_snapshot arrived in PostgreSQL 13.
    if column::<i32>(&row, 0)? < 130_000 {
        let version: String = column(&row, 1)?;
        return Err(format!(
            "the PostgreSQL bus needs PostgreSQL 13 or later; the server runs {version}"
        ));
    }
    if column::<bool>(&row, 2)? {
        return Ok(());
    }
    let what = format!("creating the events table {}", n.table);
    let tx = bounded(&what, client.transaction()).await?;
    // The advisory lock serializes processes starting together (concurrent CREATE ... IF NOT
    // EXISTS can still collide); the lock timeout keeps a blocked start from hanging.
    let sql = format!(
        "SET LOCAL lock_timeout = '4s'; SELECT pg_advisory_xact_lock(hashtext('{}:schema')); {}",
        n.table,
        schema_sql_for(n)
    );
    bounded(&what, tx.batch_execute(&sql)).await?;
    bounded(&what, tx.commit()).await
}

/// The publishing connection, with its prepared batch insert.
struct PublishConn {
    conn: Connection,
    insert: Statement,
}

impl PublishConn {
    async fn open(config: &Config, tls: &PgConnector, n: &Names) -> Result<Self, String> {
        let mut conn = connect(config, tls).await?;
        ensure_schema(&mut conn.client, n).await?;
        // The bus's own batches commit without waiting for the WAL flush: publish() returns
        // before the commit anyway (its events wait in memory first), so waiting would only add
        // latency; a database crash can lose the last fraction of a second of them, a clean
        // restart nothing. A setting chosen for this role, database or connection is kept, and
        // transactions publishing through the SQL function keep their own.
        bounded(
            "configuring the publishing connection",
            conn.client.batch_execute(
                "SELECT set_config('synchronous_commit', 'off', false) FROM pg_settings \
                 WHERE name = 'synchronous_commit' \
                   AND source IN ('default', 'configuration file')",
            ),
        )
        .await?;
        // One statement: the rows in order (ids follow the array order), one NOTIFY, and the
        // transaction id, known before COMMIT is sent so a failed commit can be checked. (A
        // data-modifying WITH runs to completion whether or not the query reads it.)
        let sql = format!(
            "WITH ins AS (INSERT INTO {table} (channel, payload) \
               SELECT u.channel, u.payload \
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(channel, payload, n) \
               ORDER BY u.n RETURNING 1) \
             SELECT pg_current_xact_id()::text::bigint, pg_notify('{table}', '')::text",
            table = n.table
        );
        let insert = bounded("preparing the publish statement", conn.client.prepare(&sql)).await?;
        Ok(Self { conn, insert })
    }

    /// Inserts and commits one batch. On failure, the transaction id when COMMIT may have been
    /// sent (the batch may or may not have been published).
    async fn send(&self, batch: &[BusMessage]) -> Result<(), (String, Option<i64>)> {
        let channels: Vec<&str> = batch.iter().map(|m| m.channel.as_str()).collect();
        // publish() accepted only UTF-8 payloads.
        let payloads: Vec<&str> = batch
            .iter()
            .map(|m| std::str::from_utf8(&m.payload).unwrap_or_default())
            .collect();
        let mut xid = None;
        let result = timeout(QUERY_TIMEOUT, async {
            // BEGIN and the insert go out together (tokio-postgres pipelines requests polled
            // together, in order): one round trip, then COMMIT once the transaction id is
            // known. Should BEGIN fail while the insert succeeds (autocommit), the insert's
            // transaction id is known all the same and checked like a failed commit.
            let client = &self.conn.client;
            let (begun, row) = futures_util::future::join(
                client.batch_execute("BEGIN"),
                client.query_one(&self.insert, &[&channels, &payloads]),
            )
            .await;
            xid = Some(row?.try_get::<_, i64>(0)?);
            begun?;
            client.batch_execute("COMMIT").await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err((format!("publish: {}", describe(&e)), xid)),
            Err(_) => Err((format!("publish: no answer within {QUERY_TIMEOUT:?}"), xid)),
        }
    }

    /// Whether transaction `xid` committed; waits while it is still in progress (the server may
    /// not have finished with the dropped connection yet).
    async fn committed(&self, xid: i64) -> Result<bool, String> {
        let deadline = Instant::now() + QUERY_TIMEOUT;
        loop {
            let status: Option<String> = bounded(
                "checking a batch's transaction",
                self.conn
                    .client
                    .query_one("SELECT pg_xact_status($1::text::xid8)", &[&xid.to_string()]),
            )
            .await?
            .try_get(0)
            .map_err(|e| describe(&e))?;
            match status.as_deref() {
                Some("committed") => return Ok(true),
                Some("in progress") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Some("in progress") => {
                    return Err(format!("transaction {xid} still in progress"));
                }
                // Aborted; or so old its status is gone, which a batch from moments ago cannot
                // be: publishing it again is the safe side.
                _ => return Ok(false),
            }
        }
    }
}

struct Publisher {
    config: Config,
    tls: PgConnector,
    /// The server, for log records (password masked).
    server: String,
    names: Names,
    state: Arc<State>,
}

impl Publisher {
    async fn run(
        self,
        conn: PublishConn,
        mut queue: mpsc::Receiver<BusMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut conn = Some(conn);
        let mut batch: Vec<BusMessage> = Vec::new();
        // The transaction of a batch whose COMMIT got no answer.
        let mut uncertain: Option<i64> = None;
        let mut attempt = 0u32;
        loop {
            let stopping = *shutdown.borrow();
            let Some(c) = conn.as_mut() else {
                if stopping || !backoff(&mut attempt, &mut shutdown).await {
                    return;
                }
                match PublishConn::open(&self.config, &self.tls, &self.names).await {
                    Ok(c) => {
                        logging::info(format!(
                            "reconnected the publishing connection to {} after {attempt} attempts",
                            self.server
                        ));
                        conn = Some(c);
                        attempt = 0;
                        self.state.reconnects.fetch_add(1, Ordering::Relaxed);
                        self.state.publish_connected.store(true, Ordering::Release);
                    }
                    Err(e) => {
                        logging::debug(format!("reconnecting to {} failed: {e}", self.server));
                        self.state.error(format!("publish: {e}"));
                    }
                }
                continue;
            };
            if let Some(xid) = uncertain {
                match c.committed(xid).await {
                    Ok(true) => self.done(&mut batch),
                    Ok(false) => {}
                    Err(e) => {
                        self.failed(&mut conn, e);
                        continue;
                    }
                }
                uncertain = None;
            }
            if batch.is_empty() {
                if stopping {
                    // Flush what was queued before stop(), then end.
                    fill(&mut batch, &mut queue);
                    if batch.is_empty() {
                        return;
                    }
                } else {
                    tokio::select! {
                        first = queue.recv() => match first {
                            Some(message) => {
                                batch.push(message);
                                fill(&mut batch, &mut queue);
                            }
                            None => return,
                        },
                        reason = &mut c.conn.driver => {
                            self.failed(&mut conn, format!("publish: {}", reason.unwrap_or_else(|e| e.to_string())));
                            continue;
                        }
                        _ = shutdown.changed() => continue,
                    }
                }
            }
            match c.send(&batch).await {
                Ok(()) => self.done(&mut batch),
                Err((error, xid)) => {
                    uncertain = xid;
                    let reason = c.conn.closed_reason(error).await;
                    self.failed(&mut conn, reason);
                }
            }
        }
    }

    fn done(&self, batch: &mut Vec<BusMessage>) {
        let n = batch.len() as u64;
        self.state.published.fetch_add(n, Ordering::Relaxed);
        self.state.queued.fetch_sub(n, Ordering::AcqRel);
        self.state.queue_full_logged.store(false, Ordering::Relaxed);
        batch.clear();
    }

    fn failed(&self, conn: &mut Option<PublishConn>, error: String) {
        logging::warning(format!(
            "lost the publishing connection to {}: {error}; reconnecting",
            self.server
        ));
        self.state.publish_connected.store(false, Ordering::Release);
        self.state.error(error);
        *conn = None;
    }
}

/// Adds queued messages to `batch` without waiting, up to the batch limits.
fn fill(batch: &mut Vec<BusMessage>, queue: &mut mpsc::Receiver<BusMessage>) {
    let mut bytes: usize = batch.iter().map(|m| m.payload.len()).sum();
    while batch.len() < BATCH_ROWS && bytes < BATCH_BYTES {
        match queue.try_recv() {
            Ok(message) => {
                bytes += message.payload.len();
                batch.push(message);
            }
            Err(_) => break,
        }
    }
}

/// The listening connection: LISTEN on the table's channel, the temporary table of app
/// channels, and the prepared statements.
struct ListenConn {
    conn: Connection,
    /// The history's epoch: the database's and the events table's object ids (a table made
    /// anew starts another history).
    epoch: String,
    read: Statement,
    add: Statement,
    remove: Statement,
}

impl ListenConn {
    async fn open(
        config: &Config,
        tls: &PgConnector,
        n: &Names,
        active: &FxHashSet<Box<str>>,
    ) -> Result<Self, String> {
        let conn = connect(config, tls).await?;
        let client = &conn.client;
        // Custom plans: the read's best plan depends on its parameters (a recent xid is a short
        // index range; a generic plan could walk the primary key instead).
        let setup = format!(
            "SET plan_cache_mode = force_custom_plan; \
             CREATE TEMP TABLE {listened} (channel text PRIMARY KEY); \
             LISTEN \"{table}\";",
            listened = n.listened,
            table = n.table
        );
        bounded(
            "setting up the listening connection",
            client.batch_execute(&setup),
        )
        .await?;
        let filter = ReadFilter {
            xmax: "$1".to_owned(),
            xip: "$2".to_owned(),
            extra: "true".to_owned(),
        };
        let read_sql = read_sql(n, &filter, ChannelFilter::Listened);
        let read = bounded("preparing the read", client.prepare(&read_sql)).await?;
        let add_sql = format!(
            "INSERT INTO pg_temp.{} (channel) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            n.listened
        );
        let add = bounded("preparing statements", client.prepare(&add_sql)).await?;
        let remove_sql = format!(
            "DELETE FROM pg_temp.{} WHERE channel = ANY($1::text[])",
            n.listened
        );
        let remove = bounded("preparing statements", client.prepare(&remove_sql)).await?;
        let epoch_sql = format!(
            "SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::bigint, \
                    '{}'::regclass::oid::bigint",
            n.table
        );
        let row = bounded(
            "reading the epoch",
            client.query_one(epoch_sql.as_str(), &[]),
        )
        .await?;
        let epoch = format!("{}-{}", column::<i64>(&row, 0)?, column::<i64>(&row, 1)?);
        let this = Self {
            conn,
            epoch,
            read,
            add,
            remove,
        };
        this.set_channels(active, true).await?;
        Ok(this)
    }

    async fn set_channels<'a>(
        &self,
        channels: impl IntoIterator<Item = &'a Box<str>>,
        listen: bool,
    ) -> Result<(), String> {
        let list: Vec<&str> = channels.into_iter().map(|c| &**c).collect();
        if list.is_empty() {
            return Ok(());
        }
        let statement = if listen { &self.add } else { &self.remove };
        bounded(
            "updating the listened channels",
            self.conn.client.execute(statement, &[&list]),
        )
        .await
        .map(drop)
    }

    async fn snapshot(&self) -> Result<Snapshot, String> {
        let row = bounded(
            "reading the current snapshot",
            self.conn
                .client
                .query_one("SELECT pg_current_snapshot()::text", &[]),
        )
        .await?;
        Snapshot::parse(column(&row, 0)?)
    }
}

struct Listener {
    config: Config,
    tls: PgConnector,
    /// The server, for log records (password masked).
    server: String,
    names: Names,
    state: Arc<State>,
    inbound: Arc<Inbound>,
    /// What has been delivered, and what had been before the latest read (for channels that
    /// join: see `catch_up`).
    cursor: Cursor,
    before_last_read: Cursor,
    active: FxHashSet<Box<str>>,
    /// Channels added whose catch-up read has not succeeded yet.
    joining: FxHashSet<Box<str>>,
    /// Reads since the last reconnect until one completes are a replay.
    replaying: bool,
    /// Events replayed since the last reconnect (for the log).
    replayed: u64,
    /// The epoch of the history (see `ListenConn::epoch`).
    epoch: String,
    /// How long events stay in the table (whether a resume's cursor may have been pruned).
    retention: Duration,
}

impl Listener {
    async fn run(mut self, conn: ListenConn, mut shutdown: watch::Receiver<bool>) {
        let mut conn = Some(conn);
        let mut attempt = 0u32;
        let mut must_read = false;
        let mut refresh = tokio::time::interval_at(Instant::now() + REFRESH_EVERY, REFRESH_EVERY);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let Some(c) = conn.as_mut() else {
                if !backoff(&mut attempt, &mut shutdown).await {
                    return;
                }
                match ListenConn::open(&self.config, &self.tls, &self.names, &self.active).await {
                    Ok(c) => {
                        logging::info(format!(
                            "reconnected the listening connection to {} after {attempt} \
                             attempts; reading the events missed meanwhile",
                            self.server
                        ));
                        // A table made anew meanwhile starts another history.
                        self.epoch.clone_from(&c.epoch);
                        conn = Some(c);
                        attempt = 0;
                        must_read = true;
                        self.replaying = true;
                        self.replayed = 0;
                        self.state.reconnects.fetch_add(1, Ordering::Relaxed);
                        self.state.listen_connected.store(true, Ordering::Release);
                    }
                    Err(e) => {
                        logging::debug(format!("reconnecting to {} failed: {e}", self.server));
                        self.state.error(format!("listen: {e}"));
                    }
                }
                continue;
            };
            if !must_read {
                tokio::select! {
                    _ = c.conn.notified.notified() => must_read = true,
                    _ = self.state.channels_changed.notified() => {}
                    _ = refresh.tick() => must_read = true,
                    reason = &mut c.conn.driver => {
                        self.failed(&mut conn, reason.unwrap_or_else(|e| e.to_string()));
                        continue;
                    }
                    _ = shutdown.changed() => continue,
                }
            }
            // A slow event loop: let the backlog wait in the table rather than in memory
            // (channel changes still apply meanwhile).
            let paused = must_read && self.inbound.pending() >= INBOUND_HIGH_WATER;
            if paused {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    _ = shutdown.changed() => {}
                }
            }
            match self.step(c, must_read && !paused).await {
                Ok(more) => must_read = more || paused,
                Err(e) => {
                    let reason = c.conn.closed_reason(e).await;
                    self.failed(&mut conn, reason);
                    must_read = true;
                }
            }
        }
    }

    fn failed(&self, conn: &mut Option<ListenConn>, error: String) {
        logging::warning(format!(
            "lost the listening connection to {}: {error}; reconnecting",
            self.server
        ));
        self.state.listen_connected.store(false, Ordering::Release);
        self.state.error(format!("listen: {error}"));
        *conn = None;
    }

    /// Applies channel changes, catches up joining channels, then (when `read`) reads one page;
    /// returns whether another page is waiting.
    async fn step(&mut self, c: &ListenConn, read: bool) -> Result<bool, String> {
        // Replays first: a replay's channel was listened to before it was asked for, so its
        // change is taken below, and its catch-up (live events, which the resuming
        // subscription passes by) comes before the replay, never after.
        let mut replays = std::mem::take(&mut *self.state.replays.lock());
        let result = self.step_with(c, read, &mut replays).await;
        if result.is_err() && !replays.is_empty() {
            // Served (from where they got to) after the reconnect.
            let mut pending = self.state.replays.lock();
            let later = std::mem::replace(&mut *pending, replays);
            pending.extend(later);
        }
        result
    }

    async fn step_with(
        &mut self,
        c: &ListenConn,
        read: bool,
        replays: &mut Vec<ReplayRequest>,
    ) -> Result<bool, String> {
        let changes = self.state.channels.lock().take(&self.active);
        if !changes.is_empty() {
            let (added, removed) = apply_changes(&mut self.active, changes);
            self.state
                .listening
                .store(self.active.len() as u64, Ordering::Relaxed);
            for channel in &removed {
                self.joining.remove(channel);
            }
            self.joining.extend(added.iter().cloned());
            c.set_channels(&removed, false).await?;
            c.set_channels(&added, true).await?;
        }
        if self.before_last_read == self.cursor {
            // No read since the channels joined: nothing to catch up on.
            self.joining.clear();
        }
        if !self.joining.is_empty() {
            self.catch_up(c).await?;
        }
        if replays.is_empty() {
            return if read { self.read(c).await } else { Ok(false) };
        }
        self.serve_replays(c, replays).await.map(|()| false)
    }

    /// Reads until nothing is waiting (so the replays end where the live events begin), then
    /// serves each replay; those left (after an error) are the ones not served to their end.
    async fn serve_replays(
        &mut self,
        c: &ListenConn,
        replays: &mut Vec<ReplayRequest>,
    ) -> Result<(), String> {
        while self.read(c).await? {}
        while let Some(request) = replays.first_mut() {
            self.serve_replay(c, request).await?;
            replays.remove(0);
        }
        Ok(())
    }

    /// A resuming subscription's replay: the rows of its channel after its cursor that this
    /// listener has delivered (live events after that reach it as they come), or a gap when
    /// the cursor is from another epoch or rows after it may have been pruned.
    async fn serve_replay(
        &self,
        c: &ListenConn,
        request: &mut ReplayRequest,
    ) -> Result<(), String> {
        let client = Cursor::parse(&request.offset).ok();
        let Some(client) = client.filter(|_| request.epoch == self.epoch) else {
            self.inbound.push([request.end(true)]);
            return Ok(());
        };
        // Pruning deletes rows visible in a mark at least the retention old: covered when the
        // newest such mark is within the cursor's set.
        let horizon_sql = format!(
            "SELECT snap::text FROM {} WHERE taken_at <= clock_timestamp() - $1::text::interval \
             ORDER BY taken_at DESC LIMIT 1",
            self.names.marks
        );
        let retention = format!("{} milliseconds", self.retention.as_millis().max(1));
        let horizon = bounded(
            "reading the prune horizon",
            c.conn.client.query_opt(horizon_sql.as_str(), &[&retention]),
        )
        .await?;
        if let Some(row) = horizon {
            if !Snapshot::parse(column(&row, 0)?)?.within(&client.base) {
                self.inbound.push([request.end(true)]);
                return Ok(());
            }
        }
        let upto = &self.cursor;
        let ends_within = client.within(upto);
        let mut after: Position = (0, 0);
        loop {
            let mut params = Params::default();
            let sql = format!(
                "SELECT t.xid, t.id, t.payload FROM {table} t \
                 WHERE t.channel = {channel} AND t.xid >= {xmin}::bigint AND {undelivered} \
                   AND NOT {delivered} AND (t.xid, t.id) > ({a}::bigint, {b}::bigint) \
                 ORDER BY t.xid, t.id LIMIT {READ_ROWS}",
                table = self.names.table,
                channel = params.add(request.channel.clone()),
                xmin = params.add(client.base.xmin),
                undelivered = client.undelivered_sql(&mut params),
                delivered = upto.undelivered_sql(&mut params),
                a = params.add(after.0),
                b = params.add(after.1),
            );
            let refs = params.refs();
            let rows =
                bounded("replaying events", c.conn.client.query(sql.as_str(), &refs)).await?;
            let complete = (rows.len() as i64) < READ_ROWS;
            let mut batch = Vec::with_capacity(rows.len());
            let mut reached = None;
            for (i, row) in rows.iter().enumerate() {
                after = (column(row, 0)?, column(row, 1)?);
                let payload: String = column(row, 2)?;
                let set = if complete && i + 1 == rows.len() && ends_within {
                    upto.clone()
                } else {
                    client.up_to(upto, after)
                };
                batch.push(request.event(payload.into_bytes(), self.cursor_text(&set)));
                reached = Some(set);
            }
            self.state
                .replayed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.inbound.push(batch);
            if let Some(set) = reached {
                // Served again after a reconnect, it goes on from here.
                request.offset = set.text();
            }
            if complete {
                break;
            }
        }
        self.inbound.push([request.end(false)]);
        Ok(())
    }

    fn cursor_text(&self, set: &Cursor) -> String {
        positions::cursor(BusKind::PostgreSQL, &self.epoch, &set.text())
    }

    /// Reads one page of new events; returns whether another is waiting.
    async fn read(&mut self, c: &ListenConn) -> Result<bool, String> {
        let page = if self.cursor.partial.is_empty() {
            let (xmax, xip) = (self.cursor.base.xmax, &self.cursor.base.xip);
            let params: [&(dyn ToSql + Sync); 2] = [&xmax, xip];
            let rows = c.conn.client.query(&c.read, &params);
            parse_page(&bounded("reading events", rows).await?)?
        } else {
            let mut params = Params::default();
            let filter = self.cursor.read_filter(&mut params);
            let sql = read_sql(&self.names, &filter, ChannelFilter::Listened);
            let refs = params.refs();
            let rows = c.conn.client.query(sql.as_str(), &refs);
            parse_page(&bounded("reading events", rows).await?)?
        };
        self.before_last_read = self.cursor.clone();
        self.cursor
            .advance(page.snapshot.clone(), page.last, page.full);
        let n = page.messages.len() as u64;
        if self.replaying {
            self.state.replayed.fetch_add(n, Ordering::Relaxed);
            self.replayed += n;
            self.replaying = page.full;
            if !self.replaying {
                logging::info(format!(
                    "replayed {} events from {} after reconnecting",
                    self.replayed, self.server
                ));
            }
        }
        let more = page.full;
        self.deliver(page, true);
        Ok(more)
    }

    /// The channels that joined since the latest read were not in its filter, yet it may have
    /// seen their events: a listen() reaches this task asynchronously, so an event published
    /// right after a subscription can commit before the channel is in the temporary table and
    /// still fall in the read that followed. Reading the joining channels over the range of
    /// that read (delivered now, not before it) closes the gap. Events a little older than the
    /// subscription may come with it; none newer is lost.
    async fn catch_up(&mut self, c: &ListenConn) -> Result<(), String> {
        let joining: Vec<String> = self.joining.iter().map(|ch| ch.to_string()).collect();
        let mut after: Position = (0, 0);
        loop {
            let mut params = Params::default();
            let mut filter = self.before_last_read.read_filter(&mut params);
            filter.extra = format!(
                "{} AND NOT {} AND (t.xid, t.id) > ({}::bigint, {}::bigint)",
                filter.extra,
                self.cursor.undelivered_sql(&mut params),
                params.add(after.0),
                params.add(after.1)
            );
            let channels = params.add(joining.clone());
            let sql = read_sql(&self.names, &filter, ChannelFilter::Any(&channels));
            let refs = params.refs();
            let rows = c.conn.client.query(sql.as_str(), &refs);
            let page = parse_page(&bounded("reading events", rows).await?)?;
            // The range is fixed (both bounds are past reads), so paging by position is
            // consistent.
            let (full, last) = (page.full, page.last);
            self.deliver(page, false);
            match (full, last) {
                (true, Some(last)) => after = last,
                _ => break,
            }
        }
        self.joining.clear();
        Ok(())
    }

    /// Hands a page's events to the loop, each with its position: the rows delivered before
    /// the read plus those of this read up to it (the whole new set for the last row of a read
    /// that completed, `read`).
    fn deliver(&self, mut page: Page, read: bool) {
        if page.messages.is_empty() {
            return;
        }
        let whole = read && !page.full;
        let n = page.messages.len();
        for (i, (message, at)) in page.messages.iter_mut().zip(&page.positions).enumerate() {
            let set = if whole && i + 1 == n {
                self.cursor.clone()
            } else {
                self.before_last_read.up_to(&self.cursor, *at)
            };
            message.position = Some(self.cursor_text(&set).into());
        }
        if let Some(age) = page.max_age_ms {
            self.state
                .lag_ms
                .store(u64::try_from(age).unwrap_or(0), Ordering::Relaxed);
        }
        self.state
            .received
            .fetch_add(page.messages.len() as u64, Ordering::Relaxed);
        self.inbound.push(page.messages);
    }
}

/// Deletes events past the retention about once a minute, on a connection of its own (opened
/// for the purpose) so that deleting a large backlog never delays reads or publishes.
struct Pruner {
    config: Config,
    tls: PgConnector,
    /// The server, for log records (password masked).
    server: String,
    names: Names,
    retention: Duration,
}

async fn prune_loop(p: Pruner, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let sql = format!(
        "SELECT {}($1::text::interval, $2::integer)",
        p.names.prune_fn
    );
    let retention = format!("{} milliseconds", p.retention.as_millis().max(1));
    let every = (p.retention / 2).clamp(PRUNE_EVERY_MIN, PRUNE_EVERY);
    let batch = PRUNE_BATCH as i32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let result = async {
            let conn = connect(&p.config, &p.tls).await?;
            // Bounded per round; the rest waits for the next one.
            for _ in 0..100 {
                if *shutdown.borrow() {
                    break;
                }
                let row = bounded(
                    "pruning events",
                    conn.client.query_one(sql.as_str(), &[&retention, &batch]),
                )
                .await?;
                let deleted: i64 = column(&row, 0)?;
                if deleted < PRUNE_BATCH {
                    break;
                }
            }
            Ok::<(), String>(())
        }
        .await;
        if let Err(e) = result {
            logging::warning(format!("pruning old events on {} failed: {e}", p.server));
            state.error(format!("prune: {e}"));
        }
    }
}

struct Running {
    outgoing: mpsc::Sender<BusMessage>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A PostgreSQL event bus client (see the module documentation).
pub struct PostgresBus {
    /// The parsed connection string (without its TLS options), or why it does not parse.
    config: Result<Config, String>,
    /// Its `sslmode` and `sslrootcert`.
    tls: PgTls,
    retention: Duration,
    /// The connection string with any password masked, for messages.
    masked: String,
    names: Result<Names, String>,
    state: Arc<State>,
    running: Mutex<Option<Running>>,
    /// Serializes start() calls without holding `running` while connecting.
    starting: Mutex<()>,
}

impl PostgresBus {
    /// A bus on the default prefix (`fraiseql_events`, `fraiseql_publish`).
    pub fn new(connection_string: &str) -> Self {
        Self::build(connection_string, Names::new(DEFAULT_PREFIX))
    }

    /// A bus whose table and functions are named `{prefix}_events`, `{prefix}_publish`, ...:
    /// two applications on one database stay apart with different prefixes.
    pub fn with_prefix(connection_string: &str, prefix: &str) -> Result<Self, String> {
        Ok(Self::build(connection_string, Ok(Names::new(prefix)?)))
    }

    /// Keeps events for `retention` (instead of `DEFAULT_RETENTION`).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn build(connection_string: &str, names: Result<Names, String>) -> Self {
        let masked = mask_password(connection_string);
        let invalid =
            |reason: String| format!("invalid PostgreSQL connection string '{masked}': {reason}");
        let parsed = tls::split_pg_tls(connection_string)
            .map_err(invalid)
            .and_then(|(rest, tls)| {
                let mut config = Config::from_str(&rest).map_err(|e| invalid(describe(&e)))?;
                config.ssl_mode(tls.tokio_mode());
                Ok((config, tls))
            });
        let (config, tls) = match parsed {
            Ok((config, tls)) => (Ok(config), tls),
            Err(e) => (Err(e), PgTls::default()),
        };
        Self {
            config,
            tls,
            retention: DEFAULT_RETENTION,
            masked,
            names,
            state: Arc::new(State::default()),
            running: Mutex::new(None),
            starting: Mutex::new(()),
        }
    }

    fn describe(&self) -> String {
        match &self.config {
            Ok(config) => format!("PostgreSQL at {} ('{}')", server_name(config), self.masked),
            Err(_) => format!("PostgreSQL ('{}')", self.masked),
        }
    }

    /// The configuration of one of the bus's connections: named (visible in
    /// `pg_stat_activity.application_name` as `<application_name or fraiseql>-bus-<role>`),
    /// failing fast, and with TCP keepalives that notice a vanished server within about 25 s.
    fn role_config(config: &Config, role: &str) -> Config {
        let mut config = config.clone();
        let base = config
            .get_application_name()
            .unwrap_or("fraiseql")
            .to_owned();
        config
            .application_name(format!("{base}-bus-{role}"))
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        config
    }
}

impl Drop for PostgresBus {
    fn drop(&mut self) {
        // Without stop(): end the tasks anyway (they hold connections), without blocking.
        if let Some(running) = self.running.get_mut().take() {
            let _ = running.shutdown.send(true);
            for task in running.tasks {
                task.abort();
            }
        }
    }
}

impl Bus for PostgresBus {
    fn start(&self, inbound: Arc<Inbound>) -> Result<(), String> {
        let _starting = self.starting.lock();
        if self.running.lock().is_some() {
            return Ok(());
        }
        let config = self.config.clone()?;
        let names = self.names.clone()?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("the PostgreSQL bus must be started off the async runtime".to_owned());
        }
        let rt = runtime()?;
        let connector = self
            .tls
            .connector()
            .map_err(|e| format!("cannot connect to {}: {e}", self.describe()))?;
        let listen_config = Self::role_config(&config, "listen");
        let publish_config = Self::role_config(&config, "publish");
        // The listener takes the channels wanted so far; later changes reach it as changes.
        let active = {
            let mut channels = self.state.channels.lock();
            channels.changes.clear();
            channels.resync = false;
            channels.wanted.clone()
        };
        // Everything (connect, schema, LISTEN, first snapshot) within one bound, so a bad
        // configuration fails here, naming the server, rather than at the first event.
        let setup = rt.block_on(async {
            timeout(CONNECT_TIMEOUT, async {
                let publisher = PublishConn::open(&publish_config, &connector, &names).await?;
                let listener =
                    ListenConn::open(&listen_config, &connector, &names, &active).await?;
                let snapshot = listener.snapshot().await?;
                Ok::<_, String>((publisher, listener, snapshot))
            })
            .await
        });
        let (publisher, listener, snapshot) = match setup {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => return Err(format!("cannot connect to {}: {e}", self.describe())),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {}: no answer within {CONNECT_TIMEOUT:?}",
                    self.describe()
                ))
            }
        };
        let server = self.describe();
        logging::info(format!("connected to {server}"));
        let state = &self.state;
        state.listen_connected.store(true, Ordering::Release);
        state.publish_connected.store(true, Ordering::Release);
        state
            .listening
            .store(active.len() as u64, Ordering::Relaxed);

        let (outgoing, outgoing_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (shutdown, shutdown_rx) = watch::channel(false);
        // A new start sees events from now on: history stays in the table.
        let cursor = Cursor::new(snapshot);
        let listen_task = Listener {
            config: listen_config,
            tls: connector.clone(),
            server: server.clone(),
            names: names.clone(),
            state: state.clone(),
            inbound,
            before_last_read: cursor.clone(),
            cursor,
            active,
            joining: FxHashSet::default(),
            replaying: false,
            replayed: 0,
            epoch: listener.epoch.clone(),
            retention: self.retention,
        };
        let publish_task = Publisher {
            config: publish_config.clone(),
            tls: connector.clone(),
            server: server.clone(),
            names: names.clone(),
            state: state.clone(),
        };
        let mut prune_config = publish_config;
        prune_config.application_name(format!(
            "{}-bus-prune",
            config.get_application_name().unwrap_or("fraiseql")
        ));
        let tasks = vec![
            rt.spawn(listen_task.run(listener, shutdown_rx.clone())),
            rt.spawn(publish_task.run(publisher, outgoing_rx, shutdown_rx.clone())),
            rt.spawn(prune_loop(
                Pruner {
                    config: prune_config,
                    tls: connector,
                    server,
                    names,
                    retention: self.retention,
                },
                state.clone(),
                shutdown_rx,
            )),
        ];
        *self.running.lock() = Some(Running {
            outgoing,
            shutdown,
            tasks,
        });
        Ok(())
    }

    fn listen(&self, channel: &str) {
        let mut channels = self.state.channels.lock();
        if channels.wanted.insert(channel.into()) {
            channels.record(channel, true);
            drop(channels);
            self.state.channels_changed.notify_one();
        }
    }

    fn unlisten(&self, channel: &str) {
        let mut channels = self.state.channels.lock();
        if channels.wanted.remove(channel) {
            channels.record(channel, false);
            drop(channels);
            self.state.channels_changed.notify_one();
        }
    }

    fn replay(&self, request: ReplayRequest) {
        self.state.replays.lock().push(request);
        self.state.channels_changed.notify_one();
    }

    fn publish(&self, message: BusMessage) -> Result<(), String> {
        // Checked here: the server would refuse these, and a refused batch must not block
        // the queue behind it.
        if message.channel.contains('\0') {
            return Err(format!(
                "cannot publish to {:?}: a PostgreSQL channel name cannot contain NUL",
                message.channel
            ));
        }
        if std::str::from_utf8(&message.payload).is_err() || message.payload.contains(&0) {
            return Err(format!(
                "cannot publish to {:?}: the payload is not NUL-free UTF-8",
                message.channel
            ));
        }
        let guard = self.running.lock();
        let Some(running) = guard.as_ref() else {
            return Err(format!("the bus to {} is not started", self.describe()));
        };
        // Counted before sending so the publisher never uncounts an event not counted yet.
        self.state.queued.fetch_add(1, Ordering::AcqRel);
        running.outgoing.try_send(message).map_err(|e| {
            self.state.queued.fetch_sub(1, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(m) => {
                    let error = format!(
                        "cannot publish to {:?}: {} is not answering and {PUBLISH_QUEUE} events \
                         already wait for it (last error: {})",
                        m.channel,
                        self.describe(),
                        self.state.last_error.lock().as_deref().unwrap_or("none")
                    );
                    if !self.state.queue_full_logged.swap(true, Ordering::Relaxed) {
                        logging::warning(format!("publish queue full: {error}"));
                    }
                    error
                }
                mpsc::error::TrySendError::Closed(m) => format!(
                    "cannot publish to {:?}: the bus to {} has stopped",
                    m.channel,
                    self.describe()
                ),
            }
        })
    }

    fn metrics(&self) -> Vec<(&'static str, MetricValue)> {
        let s = &self.state;
        let connected = self.running.lock().is_some()
            && s.listen_connected.load(Ordering::Acquire)
            && s.publish_connected.load(Ordering::Acquire);
        let int = |v: &AtomicU64| MetricValue::Int(v.load(Ordering::Relaxed));
        vec![
            ("bus_connected", MetricValue::Bool(connected)),
            ("bus_reconnects", int(&s.reconnects)),
            (
                "bus_last_error",
                MetricValue::Text(s.last_error.lock().clone()),
            ),
            ("bus_published", int(&s.published)),
            ("bus_received", int(&s.received)),
            ("bus_replayed", int(&s.replayed)),
            ("bus_lag_ms", int(&s.lag_ms)),
            ("bus_publish_queue", int(&s.queued)),
            ("bus_channels", int(&s.listening)),
        ]
    }

    fn stop(&self) {
        let Some(running) = self.running.lock().take() else {
            return;
        };
        let _ = running.shutdown.send(true);
        // The publisher flushes what is queued if it can; then everything is aborted.
        let on_runtime = tokio::runtime::Handle::try_current().is_ok();
        if let (Ok(rt), false) = (runtime(), on_runtime) {
            let mut tasks = running.tasks;
            rt.block_on(async {
                let deadline = Instant::now() + Duration::from_secs(2);
                for task in &mut tasks {
                    let _ = tokio::time::timeout_at(deadline, task).await;
                }
            });
            for task in tasks {
                task.abort();
            }
        } else {
            for task in running.tasks {
                task.abort();
            }
        }
        self.state.listen_connected.store(false, Ordering::Release);
        self.state.publish_connected.store(false, Ordering::Release);
        logging::info(format!("disconnected from {} (stopped)", self.describe()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(xmin: i64, xmax: i64, xip: &[i64]) -> Snapshot {
        Snapshot {
            xmin,
            xmax,
            xip: xip.to_vec(),
        }
    }

    #[test]
    fn snapshot_text_and_visibility() {
        assert_eq!(Snapshot::parse("10:14:10,12"), Ok(snap(10, 14, &[10, 12])));
        assert_eq!(Snapshot::parse("14:14:"), Ok(snap(14, 14, &[])));
        for bad in [
            "",
            "1:2",
            "x:2:",
            "3:2:",
            "10:14:9",
            "10:14:14",
            "10:14:a",
            "10:14:11,",
        ] {
            assert!(Snapshot::parse(bad).is_err(), "{bad}");
        }
        let s = snap(10, 14, &[10, 12]);
        let seen: Vec<i64> = (8..16).filter(|&x| s.sees(x)).collect();
        assert_eq!(seen, vec![8, 9, 11, 13]);
    }

    #[test]
    fn cursor_keeps_only_needed_partial_terms() {
        let mut c = Cursor::new(snap(5, 5, &[]));
        c.advance(snap(5, 9, &[6]), Some((7, 100)), true);
        c.advance(snap(5, 10, &[6]), Some((7, 90)), true);
        assert_eq!(
            c.partial.len(),
            2,
            "a smaller bound does not cover the older term"
        );
        c.advance(snap(6, 11, &[6]), Some((8, 1)), true);
        assert_eq!(c.partial, vec![(snap(6, 11, &[6]), (8, 1))]);
        assert!(c.delivered(7, 500) && c.delivered(8, 1) && !c.delivered(8, 2));
        assert!(!c.delivered(6, 1) && !c.delivered(11, 0));
        c.advance(snap(12, 12, &[]), Some((11, 130)), false);
        assert_eq!(c, Cursor::new(snap(12, 12, &[])));
        let mut params = Params::default();
        let mut c = Cursor::new(snap(5, 8, &[6]));
        c.advance(snap(6, 9, &[6]), Some((7, 3)), true);
        assert_eq!(
            c.undelivered_sql(&mut params),
            "((t.xid >= $1 OR t.xid = ANY($2::bigint[])) AND NOT ((t.xid < $3::bigint OR \
             (t.xid < $4::bigint AND t.xid <> ALL($5::bigint[]))) AND (t.xid, t.id) <= \
             ($6::bigint, $7::bigint)))"
        );
        assert_eq!(params.0.len(), 7);
    }

    /// A tiny deterministic generator (no dependency needed for a simulation).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Tx {
        Running,
        Committed,
        Aborted,
    }

    /// Transactions interleave (ids allocated before commit, commits in any order, some
    /// rollbacks, some long-running) while a reader with a small page size reads now and then:
    /// every committed row is delivered exactly once, no rolled-back row ever.
    #[test]
    fn simulated_reads_deliver_each_committed_row_once() {
        for seed in 1..200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut txs: Vec<Tx> = Vec::new(); // index = xid - 1000
            let mut rows: Vec<(i64, i64)> = Vec::new(); // (id, xid)
            let snapshot_now = |txs: &[Tx]| {
                let xmax = 1000 + txs.len() as i64;
                let xip: Vec<i64> = (0..txs.len())
                    .filter(|&i| txs[i] == Tx::Running)
                    .map(|i| 1000 + i as i64)
                    .collect();
                Snapshot {
                    xmin: xip.first().copied().unwrap_or(xmax),
                    xmax,
                    xip,
                }
            };
            let mut cursor = Cursor::new(snapshot_now(&txs));
            let mut delivered: Vec<i64> = Vec::new();
            // Each delivered row's position, as `Listener::deliver` gives it.
            let mut positions: Vec<Cursor> = Vec::new();
            let limit = 1 + rng.below(4) as usize;
            let mut read = |txs: &[Tx], rows: &[(i64, i64)], cursor: &mut Cursor| {
                let before = cursor.clone();
                let s = snapshot_now(txs);
                let mut new: Vec<Position> = rows
                    .iter()
                    .filter(|&&(id, xid)| {
                        txs[(xid - 1000) as usize] == Tx::Committed
                            && s.sees(xid)
                            && !cursor.delivered(xid, id)
                    })
                    .map(|&(id, xid)| (xid, id))
                    .collect();
                new.sort_unstable();
                let full = new.len() >= limit;
                new.truncate(limit);
                cursor.advance(s, new.last().copied(), full);
                delivered.extend(new.iter().map(|r| r.1));
                for (i, at) in new.iter().enumerate() {
                    let set = if !full && i + 1 == new.len() {
                        cursor.clone()
                    } else {
                        before.up_to(cursor, *at)
                    };
                    assert_eq!(Cursor::parse(&set.text()).as_ref(), Ok(&set));
                    positions.push(set);
                }
                full
            };
            for _ in 0..300 {
                match rng.below(10) {
                    0 | 1 => txs.push(Tx::Running),
                    2..=4 => {
                        let running: Vec<usize> =
                            (0..txs.len()).filter(|&i| txs[i] == Tx::Running).collect();
                        if let Some(&i) =
                            running.get(rng.below(running.len().max(1) as u64) as usize)
                        {
                            rows.push((rows.len() as i64 + 1, 1000 + i as i64));
                        }
                    }
                    5 | 6 => {
                        let running: Vec<usize> =
                            (0..txs.len()).filter(|&i| txs[i] == Tx::Running).collect();
                        if let Some(&i) =
                            running.get(rng.below(running.len().max(1) as u64) as usize)
                        {
                            txs[i] = if rng.below(5) == 0 {
                                Tx::Aborted
                            } else {
                                Tx::Committed
                            };
                        }
                    }
                    _ => {
                        read(&txs, &rows, &mut cursor);
                    }
                }
            }
            for tx in txs.iter_mut().filter(|t| **t == Tx::Running) {
                *tx = Tx::Committed;
            }
            while read(&txs, &rows, &mut cursor) {}
            let mut expected: Vec<i64> = rows
                .iter()
                .filter(|&&(_, xid)| txs[(xid - 1000) as usize] == Tx::Committed)
                .map(|r| r.0)
                .collect();
            let mut got = delivered.clone();
            got.sort_unstable();
            expected.sort_unstable();
            assert_eq!(got, expected, "seed {seed}: each committed row once");
            // A resume from a row's position replays exactly the rows delivered after it.
            let xid_of = |id: i64| rows[(id - 1) as usize].1;
            for (k, set) in positions.iter().enumerate() {
                for (j, &id) in delivered.iter().enumerate() {
                    assert_eq!(
                        set.delivered(xid_of(id), id),
                        j <= k,
                        "seed {seed}: position {k} and row {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn within_is_sound_and_knows_a_later_snapshot() {
        let mut rng = Rng(0x5DEE_CE66_D1CE_5EED);
        for _ in 0..5000 {
            let mut random = || {
                let xmin = 100 + rng.below(10) as i64;
                let xmax = xmin + rng.below(6) as i64;
                let xip: Vec<i64> = (xmin..xmax).filter(|_| rng.below(2) == 0).collect();
                Snapshot { xmin, xmax, xip }
            };
            let (a, b) = (random(), random());
            if a.within(&b) {
                assert!(
                    (90..130).all(|x| !a.sees(x) || b.sees(x)),
                    "{a:?} within {b:?}"
                );
            }
        }
        let earlier = snap(100, 105, &[101, 103]);
        let later = snap(101, 107, &[103, 105]);
        assert!(earlier.within(&later) && !later.within(&earlier));
        assert!(earlier.within(&earlier));
    }

    #[test]
    fn cursor_text_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            base: snap(100, 105, &[101, 103]),
            partial: vec![(snap(101, 107, &[]), (104, 9))],
        };
        assert_eq!(cursor.text(), "100:105:101,103_101:107:@104/9");
        assert_eq!(Cursor::parse(&cursor.text()), Ok(cursor));
        for bad in ["", "1:2", "5:1:", "1:5:3_1:5:", "1:5:_1:5:@x/1", "1:5:9"] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn channel_changes_are_net() {
        let mut active: FxHashSet<Box<str>> = ["a", "b"].into_iter().map(Into::into).collect();
        let change = |c: &str, l: bool| (Box::<str>::from(c), l);
        let (added, removed) = apply_changes(
            &mut active,
            vec![
                change("a", false),
                change("a", true), // back before the listener noticed: never left
                change("c", true),
                change("d", true),
                change("d", false), // came and went: never joined
                change("b", false),
                change("c", true), // already added
            ],
        );
        let sorted = |s: FxHashSet<Box<str>>| {
            let mut v: Vec<String> = s.into_iter().map(String::from).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(added), vec!["c"]);
        assert_eq!(sorted(removed), vec!["b"]);
        assert_eq!(sorted(active), vec!["a", "c"]);
    }

    #[test]
    fn too_many_pending_changes_turn_into_a_resync() {
        let mut channels = Channels::default();
        let active: FxHashSet<Box<str>> = ["gone", "kept"].into_iter().map(Into::into).collect();
        channels.wanted.insert("kept".into());
        for i in 0..=MAX_PENDING_CHANGES {
            let name = format!("c{i}");
            channels.wanted.insert(name.as_str().into());
            channels.record(&name, true);
            if i % 2 == 0 {
                channels.wanted.remove(name.as_str());
                channels.record(&name, false);
            }
        }
        assert!(channels.resync && channels.changes.is_empty());
        let changes = channels.take(&active);
        let mut active = active;
        let (added, removed) = apply_changes(&mut active, changes);
        assert_eq!(removed.len(), 1);
        assert_eq!(added.len(), MAX_PENDING_CHANGES / 2);
        assert_eq!(active, channels.wanted);
        assert!(!channels.resync && channels.take(&active).is_empty());
    }

    #[test]
    fn names_and_schema() {
        assert!(Names::new("fraiseql").is_ok());
        assert!(Names::new("app_2").is_ok());
        for bad in [
            "",
            "2app",
            "App",
            "a-b",
            "a b",
            "x\"; DROP",
            &"a".repeat(41),
        ] {
            assert!(Names::new(bad).is_err(), "{bad}");
        }
        let sql = schema_sql("app").unwrap_or_default();
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS app_events ("));
        assert!(sql.contains("FUNCTION app_publish("));
        assert!(sql.contains("pg_notify('app_events', '')"));
        assert!(sql.contains("FUNCTION app_prune("));
        assert!(!sql.contains("fraiseql_"));
        assert!(schema_sql("Bad").is_err());
    }

    #[test]
    fn server_names() {
        let name = |dsn: &str| {
            Config::from_str(dsn)
                .map(|c| server_name(&c))
                .unwrap_or_default()
        };
        assert_eq!(
            name("postgresql://u:pw@db.internal/app"),
            "db.internal:5432"
        );
        assert_eq!(name("host=a,b port=6000 dbname=x"), "a:6000, b:6000");
        assert_eq!(name("host=a,b port=6000,6001"), "a:6000, b:6001");
        assert_eq!(
            name("host=/run/postgresql"),
            "/run/postgresql/.s.PGSQL.5432"
        );
        assert_eq!(name("hostaddr=::1 port=5433"), "[::1]:5433");
        let bus = PostgresBus::new("postgresql://u:hunter2@127.0.0.1:1/db");
        let text = bus.describe();
        assert!(
            text.contains("127.0.0.1:1") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn publish_checks_input_and_start() {
        let bus = PostgresBus::new("postgresql://127.0.0.1:1/db");
        let message =
            |channel: &str, payload: &[u8]| BusMessage::new(channel.into(), payload.to_vec());
        assert!(bus.publish(message("a\0b", b"{}")).is_err());
        assert!(bus.publish(message("a", b"\xff")).is_err());
        let not_started = bus.publish(message("a", b"{}")).err().unwrap_or_default();
        assert!(not_started.contains("not started"), "{not_started}");
        // Listening before start is remembered (the listener starts from it).
        bus.listen("a");
        bus.listen("a");
        assert_eq!(bus.state.channels.lock().wanted.len(), 1);
        bus.unlisten("a");
        assert!(bus.state.channels.lock().wanted.is_empty());
    }
}
