//! Event bus configuration: which bus carries subscription events, validated when it is built.
//!
//! Redis URLs go through the redis crate's own parser and PostgreSQL strings through
//! `tokio_postgres::Config`, so a configuration that validates here is one the clients accept.
//! Passwords never appear in error messages, `Debug`, `Display` or `__repr__`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use redis::IntoConnectionInfo;

const REDIS_SCHEMES: [&str; 4] = ["redis", "rediss", "unix", "redis+unix"];
const POSTGRES_SCHEMES: [&str; 2] = ["postgresql", "postgres"];
const MASK: &str = "***";

/// Where subscription events travel between workers.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum EventBusConfig {
    /// In-process only; a single worker. Keeps the last `history` events of each channel for
    /// at most `history_age`, for subscriptions that resume.
    Memory {
        history: usize,
        history_age: Duration,
    },
    /// Redis streams, read through a consumer group.
    Redis {
        url: String,
        consumer_group: String,
        /// PEM file of the CA certificates a rediss:// server is verified against, instead of
        /// the system's trusted roots.
        tls_ca_file: Option<String>,
    },
    /// PostgreSQL LISTEN/NOTIFY.
    PostgreSQL {
        connection_string: String,
        /// Names the events table and SQL functions (`{prefix}_events`, `{prefix}_publish`):
        /// two applications on one database stay apart with different prefixes.
        channel_prefix: String,
        /// How long events stay in the table: the longest outage a process recovers from.
        retention: Duration,
    },
}

/// Events the in-memory bus keeps per channel, and for how long, unless configured.
pub const DEFAULT_HISTORY: usize = 1000;
pub const DEFAULT_HISTORY_AGE: Duration = Duration::from_secs(120);

impl EventBusConfig {
    /// The in-memory bus with the default history.
    pub fn memory() -> Self {
        EventBusConfig::Memory {
            history: DEFAULT_HISTORY,
            history_age: DEFAULT_HISTORY_AGE,
        }
    }

    /// "memory", "redis" or "postgresql".
    pub fn bus_type(&self) -> &'static str {
        match self {
            EventBusConfig::Memory { .. } => "memory",
            EventBusConfig::Redis { .. } => "redis",
            EventBusConfig::PostgreSQL { .. } => "postgresql",
        }
    }

    /// A Redis bus; `url` must be a redis://, rediss://, unix:// or redis+unix:// URL, and
    /// `tls_ca_file` (a PEM file, read now to check it) needs a rediss:// one.
    pub fn redis(
        url: &str,
        consumer_group: &str,
        tls_ca_file: Option<&str>,
    ) -> Result<Self, String> {
        validate_redis_url(url)?;
        if consumer_group.is_empty() {
            return Err("Redis consumer group must not be empty".to_owned());
        }
        if let Some(path) = tls_ca_file {
            if url_scheme(url).is_none_or(|s| !s.eq_ignore_ascii_case("rediss")) {
                return Err(format!(
                    "tls_ca_file '{path}' needs a rediss:// URL, not '{}'",
                    mask_password(url)
                ));
            }
            super::tls::redis_ca(Path::new(path))?;
        }
        Ok(EventBusConfig::Redis {
            url: url.to_owned(),
            consumer_group: consumer_group.to_owned(),
            tls_ca_file: tls_ca_file.map(str::to_owned),
        })
    }

    /// A PostgreSQL bus; `connection_string` is a postgresql:// / postgres:// URL or a libpq
    /// key=value DSN naming a host (with libpq's `sslmode` and `sslrootcert`, whose file is read
    /// now to check it); `retention` must be positive.
    pub fn postgresql(
        connection_string: &str,
        channel_prefix: &str,
        retention: Duration,
    ) -> Result<Self, String> {
        validate_postgres(connection_string)?;
        super::postgres::check_prefix(channel_prefix)?;
        if retention.is_zero() {
            return Err("PostgreSQL bus retention must be positive".to_owned());
        }
        Ok(EventBusConfig::PostgreSQL {
            connection_string: connection_string.to_owned(),
            channel_prefix: channel_prefix.to_owned(),
            retention,
        })
    }
}

// Hand-written so that logging a config never prints a password.
impl fmt::Debug for EventBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventBusConfig::Memory {
                history,
                history_age,
            } => f
                .debug_struct("Memory")
                .field("history", history)
                .field("history_age", history_age)
                .finish(),
            EventBusConfig::Redis {
                url,
                consumer_group,
                tls_ca_file,
            } => f
                .debug_struct("Redis")
                .field("url", &mask_password(url))
                .field("consumer_group", consumer_group)
                .field("tls_ca_file", tls_ca_file)
                .finish(),
            EventBusConfig::PostgreSQL {
                connection_string,
                channel_prefix,
                retention,
            } => f
                .debug_struct("PostgreSQL")
                .field("connection_string", &mask_password(connection_string))
                .field("channel_prefix", channel_prefix)
                .field("retention", retention)
                .finish(),
        }
    }
}

impl fmt::Display for EventBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventBusConfig::Memory { .. } => f.write_str("memory bus"),
            EventBusConfig::Redis {
                url,
                consumer_group,
                ..
            } => write!(
                f,
                "redis bus at {} (consumer group {consumer_group})",
                mask_password(url)
            ),
            EventBusConfig::PostgreSQL {
                connection_string, ..
            } => {
                write!(f, "postgresql bus at {}", mask_password(connection_string))
            }
        }
    }
}

/// The scheme of `text` when it starts like a URL (`scheme://`), as written.
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_is_scheme = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (starts_with_letter && rest_is_scheme).then_some(scheme)
}

fn validate_redis_url(url: &str) -> Result<(), String> {
    let accepted = "redis://, rediss://, unix:// or redis+unix://";
    if url.trim().is_empty() {
        return Err(format!("Redis URL is empty; expected a {accepted} URL"));
    }
    let masked = mask_password(url);
    let Some(scheme) = url_scheme(url) else {
        return Err(format!(
            "Redis URL '{masked}' has no scheme; expected a {accepted} URL"
        ));
    };
    // The url crate lower-cases schemes, so the client treats REDIS:// as redis://.
    let scheme_lower = scheme.to_ascii_lowercase();
    if !REDIS_SCHEMES.contains(&scheme_lower.as_str()) {
        return Err(format!(
            "Redis URL '{masked}' has unsupported scheme '{scheme}'; expected {accepted}"
        ));
    }
    let tls = scheme_lower == "rediss";
    let tcp = scheme_lower == "redis" || tls;
    // Checked before parsing because the url crate's error for this ("empty host") is lost.
    if tcp && url_host(url, scheme.len() + 3).is_empty() {
        return Err(format!("Redis URL '{masked}' has no host"));
    }
    let Some(parsed) = redis::parse_redis_url(url) else {
        return Err(format!("Invalid Redis URL '{masked}': not a valid URL"));
    };
    if tcp {
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("Redis URL '{masked}' has no host"));
        }
        // The client only understands this one fragment on TLS URLs.
        if tls && parsed.fragment().is_some_and(|f| f != "insecure") {
            return Err(format!(
                "Invalid Redis URL '{masked}': only #insecure is supported as a rediss:// fragment"
            ));
        }
    }
    url.into_connection_info().map(drop).map_err(|e| {
        // RedisError's Display puts the error kind in the middle of the text; drop it.
        let reason = e.to_string().replacen(" - InvalidClientConfig", "", 1);
        format!("Invalid Redis URL '{masked}': {reason}")
    })
}

/// The host part of a URL's authority (between user info and port), as written.
fn url_host(url: &str, authority_start: usize) -> &str {
    let rest = url.get(authority_start..).unwrap_or_default();
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.starts_with('[') {
        // Bracketed IPv6 literal: its colons are not a port separator.
        return host_port;
    }
    host_port.split(':').next().unwrap_or_default()
}

fn validate_postgres(connection_string: &str) -> Result<(), String> {
    let accepted = "a postgresql:// or postgres:// URL or a key=value DSN \
                    such as 'host=localhost dbname=app user=app'";
    if connection_string.trim().is_empty() {
        return Err(format!(
            "PostgreSQL connection string is empty; expected {accepted}"
        ));
    }
    let masked = mask_password(connection_string);
    if let Some(scheme) = url_scheme(connection_string) {
        // tokio-postgres matches these prefixes case-sensitively, so this check does too.
        if !POSTGRES_SCHEMES.contains(&scheme) {
            return Err(format!(
                "PostgreSQL connection string '{masked}' has unsupported scheme '{scheme}'; \
                 expected {accepted}"
            ));
        }
    }
    let invalid =
        |reason: String| format!("Invalid PostgreSQL connection string '{masked}': {reason}");
    let (rest, tls) = super::tls::split_pg_tls(connection_string).map_err(invalid)?;
    tls.check().map_err(invalid)?;
    let config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
        let detail = match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        format!("Invalid PostgreSQL connection string '{masked}': {detail}")
    })?;
    // tokio-postgres's connect refuses a config without either, unlike libpq's local default.
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(format!(
            "PostgreSQL connection string '{masked}' names no host; \
             add host=... or use postgresql://HOST/..."
        ));
    }
    Ok(())
}

/// `text` with any password replaced by `***`: the password in a URL's user info, the value of
/// `password`/`pass` query parameters, and the value of a `password=` key in a key=value DSN.
pub fn mask_password(text: &str) -> String {
    match text.find("://") {
        Some(at) if url_scheme(text).is_some() => mask_url(text, at + 3),
        _ => mask_dsn(text),
    }
}

fn mask_url(url: &str, authority_start: usize) -> String {
    let rest = &url[authority_start..];
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..authority_start]);
    // The last '@' before the query ends the user info even when a raw password contains '/' or
    // '@'; masking a path that happens to hold '@' is the price of never leaking.
    let after_userinfo = match rest[..query_start].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            at + 1
        }
        None => 0,
    };
    out.push_str(&rest[after_userinfo..query_start]);
    let tail = &rest[query_start..];
    let (query, fragment) = match tail.find('#') {
        Some(hash) => tail.split_at(hash),
        None => (tail, ""),
    };
    if let Some(params) = query.strip_prefix('?') {
        out.push('?');
        let masked: Vec<String> = params
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_password_key(key) => format!("{key}={MASK}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&masked.join("&"));
    } else {
        out.push_str(query);
    }
    out.push_str(fragment);
    out
}

fn is_password_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("pass")
}

/// One `key=value` entry of a libpq key=value string, as byte ranges into it.
pub(super) struct DsnEntry<'a> {
    pub key: &'a str,
    /// The whole entry, from its key to the end of its value.
    pub start: usize,
    pub end: usize,
    /// The value as written (with its quotes, if quoted).
    raw: &'a str,
    quoted: bool,
}

impl DsnEntry<'_> {
    /// The value with quotes and backslash escapes resolved.
    pub fn value(&self) -> String {
        let inner = if self.quoted {
            let body = &self.raw[1..];
            body.strip_suffix('\'').unwrap_or(body)
        } else {
            self.raw
        };
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// The entries of a libpq key=value string, following its quoting rules (values may be
/// single-quoted, and a backslash escapes the next character). Stops at the first part that is
/// not key=value (the parser rejects it).
pub(super) fn dsn_entries(dsn: &str) -> Vec<DsnEntry<'_>> {
    let mut entries = Vec::new();
    let mut chars = dsn.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(key_start, _)) = chars.peek() else {
            break;
        };
        let mut key_end = dsn.len();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                key_end = i;
                break;
            }
            chars.next();
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            break;
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(value_start, first)) = chars.peek() else {
            break;
        };
        let quoted = first == '\'';
        if quoted {
            chars.next();
        }
        let mut value_end = dsn.len();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next();
            } else if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                value_end = if quoted { i + c.len_utf8() } else { i };
                break;
            }
        }
        entries.push(DsnEntry {
            key: &dsn[key_start..key_end],
            start: key_start,
            end: value_end,
            raw: &dsn[value_start..value_end],
            quoted,
        });
    }
    entries
}

/// Masks `password=` values in a libpq key=value string.
fn mask_dsn(dsn: &str) -> String {
    let mut out = String::with_capacity(dsn.len());
    let mut copied_to = 0;
    for entry in dsn_entries(dsn) {
        if is_password_key(entry.key) {
            let value_start = entry.end - entry.raw.len();
            out.push_str(&dsn[copied_to..value_start]);
            out.push_str(if entry.quoted { "'***'" } else { MASK });
            copied_to = entry.end;
        }
    }
    out.push_str(&dsn[copied_to..]);
    out
}

/// Python view of an [`EventBusConfig`] (immutable).
#[pyclass(
    name = "PyEventBusConfig",
    module = "fraiseql_core_rs",
    frozen,
    eq,
    hash
)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyEventBusConfig {
    pub config: EventBusConfig,
}

impl From<EventBusConfig> for PyEventBusConfig {
    fn from(config: EventBusConfig) -> Self {
        PyEventBusConfig { config }
    }
}

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

fn py_str_repr(py: Python<'_>, text: &str) -> PyResult<String> {
    Ok(PyString::new(py, text).repr()?.to_str()?.to_owned())
}

fn path_text(path: PathBuf) -> PyResult<String> {
    path.into_os_string()
        .into_string()
        .map_err(|p| PyValueError::new_err(format!("path {p:?} is not valid UTF-8")))
}

/// A retention given as seconds (int or float) or a `datetime.timedelta`.
#[derive(FromPyObject)]
enum Retention {
    Delta(Duration),
    Seconds(f64),
}

impl Retention {
    /// One hour, the default.
    const DEFAULT: Retention = Retention::Seconds(3600.0);

    fn duration(self) -> PyResult<Duration> {
        let secs = match self {
            Retention::Delta(d) => return Ok(d),
            Retention::Seconds(secs) => secs,
        };
        if secs.is_nan() || secs <= 0.0 {
            return Err(value_error(format!(
                "PostgreSQL bus retention must be positive, not {secs} seconds"
            )));
        }
        Duration::try_from_secs_f64(secs).map_err(|_| {
            value_error(format!(
                "PostgreSQL bus retention of {secs} seconds is too long"
            ))
        })
    }
}

#[pymethods]
impl PyEventBusConfig {
    #[staticmethod]
    #[pyo3(
        signature = (history=DEFAULT_HISTORY, history_seconds=DEFAULT_HISTORY_AGE.as_secs_f64()),
        text_signature = "(history=1000, history_seconds=120.0)"
    )]
    fn memory(history: usize, history_seconds: f64) -> PyResult<Self> {
        if !(history_seconds.is_finite() && history_seconds >= 0.0) {
            return Err(value_error(format!(
                "history_seconds must be a non-negative number of seconds, not {history_seconds}"
            )));
        }
        let history_age = Duration::try_from_secs_f64(history_seconds)
            .map_err(|_| value_error(format!("history_seconds {history_seconds} is too long")))?;
        Ok(EventBusConfig::Memory {
            history,
            history_age,
        }
        .into())
    }

    /// In-memory bus: events kept per channel for resuming subscriptions.
    #[getter]
    fn history(&self) -> Option<usize> {
        match &self.config {
            EventBusConfig::Memory { history, .. } => Some(*history),
            _ => None,
        }
    }

    /// In-memory bus: seconds an event is kept for resuming subscriptions.
    #[getter]
    fn history_seconds(&self) -> Option<f64> {
        match &self.config {
            EventBusConfig::Memory { history_age, .. } => Some(history_age.as_secs_f64()),
            _ => None,
        }
    }

    #[staticmethod]
    #[pyo3(signature = (url, consumer_group="fraiseql-subscriptions", tls_ca_file=None))]
    fn redis(url: &str, consumer_group: &str, tls_ca_file: Option<PathBuf>) -> PyResult<Self> {
        let tls_ca_file = tls_ca_file.map(path_text).transpose()?;
        EventBusConfig::redis(url, consumer_group, tls_ca_file.as_deref())
            .map(Self::from)
            .map_err(value_error)
    }

    #[staticmethod]
    #[pyo3(
        signature = (connection_string, channel_prefix="fraiseql", retention=Retention::DEFAULT),
        text_signature = "(connection_string, channel_prefix='fraiseql', retention=3600.0)"
    )]
    fn postgresql(
        connection_string: &str,
        channel_prefix: &str,
        retention: Retention,
    ) -> PyResult<Self> {
        EventBusConfig::postgresql(connection_string, channel_prefix, retention.duration()?)
            .map(Self::from)
            .map_err(value_error)
    }

    #[getter]
    fn bus_type(&self) -> &'static str {
        self.config.bus_type()
    }

    #[getter]
    fn url(&self) -> Option<&str> {
        match &self.config {
            EventBusConfig::Redis { url, .. } => Some(url),
            _ => None,
        }
    }

    #[getter]
    fn consumer_group(&self) -> Option<&str> {
        match &self.config {
            EventBusConfig::Redis { consumer_group, .. } => Some(consumer_group),
            _ => None,
        }
    }

    #[getter]
    fn connection_string(&self) -> Option<&str> {
        match &self.config {
            EventBusConfig::PostgreSQL {
                connection_string, ..
            } => Some(connection_string),
            _ => None,
        }
    }

    /// The PostgreSQL table and function prefix; None for other buses.
    #[getter]
    fn channel_prefix(&self) -> Option<&str> {
        match &self.config {
            EventBusConfig::PostgreSQL { channel_prefix, .. } => Some(channel_prefix),
            _ => None,
        }
    }

    /// The Redis CA file; None when not given and for other buses.
    #[getter]
    fn tls_ca_file(&self) -> Option<&str> {
        match &self.config {
            EventBusConfig::Redis { tls_ca_file, .. } => tls_ca_file.as_deref(),
            _ => None,
        }
    }

    /// The PostgreSQL retention in seconds; None for other buses.
    #[getter]
    fn retention(&self) -> Option<f64> {
        match &self.config {
            EventBusConfig::PostgreSQL { retention, .. } => Some(retention.as_secs_f64()),
            _ => None,
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match &self.config {
            EventBusConfig::Memory { .. } if self.config == EventBusConfig::memory() => {
                "PyEventBusConfig.memory()".to_owned()
            }
            EventBusConfig::Memory {
                history,
                history_age,
            } => format!(
                "PyEventBusConfig.memory(history={history}, history_seconds={:?})",
                history_age.as_secs_f64()
            ),
            EventBusConfig::Redis {
                url,
                consumer_group,
                tls_ca_file,
            } => format!(
                "PyEventBusConfig.redis(url={}, consumer_group={}, tls_ca_file={})",
                py_str_repr(py, &mask_password(url))?,
                py_str_repr(py, consumer_group)?,
                match tls_ca_file {
                    Some(path) => py_str_repr(py, path)?,
                    None => "None".to_owned(),
                }
            ),
            EventBusConfig::PostgreSQL {
                connection_string,
                channel_prefix,
                retention,
            } => format!(
                "PyEventBusConfig.postgresql(connection_string={}, channel_prefix={}, \
                 retention={:?})",
                py_str_repr(py, &mask_password(connection_string))?,
                py_str_repr(py, channel_prefix)?,
                retention.as_secs_f64()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn redis_err(url: &str) -> String {
        match EventBusConfig::redis(url, "group", None) {
            Ok(config) => panic!("expected an error for {url}, got {config:?}"),
            Err(e) => e,
        }
    }

    fn pg_err(conn: &str) -> String {
        match EventBusConfig::postgresql(conn, "fraiseql", HOUR) {
            Ok(config) => panic!("expected an error for {conn}, got {config:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn memory() {
        assert_eq!(EventBusConfig::memory().bus_type(), "memory");
        assert_eq!(
            format!("{:?}", EventBusConfig::memory()),
            "Memory { history: 1000, history_age: 120s }"
        );
    }

    #[test]
    fn redis_accepts_supported_urls() {
        for url in [
            "redis://localhost:6379",
            "redis://localhost",
            "redis://127.0.0.1:6379/2",
            "redis://user:secret@cache.internal:6380/0",
            "redis://:secret@[::1]:6379",
            "redis://localhost/?protocol=resp3",
            "REDIS://localhost",
            "rediss://cache.example.com:6380",
            "rediss://cache.example.com/#insecure",
            "unix:///run/redis.sock",
            "redis+unix:///run/redis.sock?db=1",
        ] {
            let config = EventBusConfig::redis(url, "workers", None);
            assert_eq!(
                config,
                Ok(EventBusConfig::Redis {
                    url: url.to_owned(),
                    consumer_group: "workers".to_owned(),
                    tls_ca_file: None,
                }),
                "{url}"
            );
        }
        assert_eq!(
            EventBusConfig::redis("redis://localhost", "g", None).map(|c| c.bus_type()),
            Ok("redis")
        );
    }

    #[test]
    fn redis_rejects_other_schemes() {
        assert_eq!(
            redis_err("http://localhost:6379"),
            "Redis URL 'http://localhost:6379' has unsupported scheme 'http'; expected \
             redis://, rediss://, unix:// or redis+unix://"
        );
        assert!(redis_err("valkey://localhost").contains("unsupported scheme 'valkey'"));
        assert_eq!(
            redis_err("localhost:6379"),
            "Redis URL 'localhost:6379' has no scheme; expected a redis://, rediss://, unix:// \
             or redis+unix:// URL"
        );
        assert_eq!(
            redis_err(""),
            "Redis URL is empty; expected a redis://, rediss://, unix:// or redis+unix:// URL"
        );
    }

    #[test]
    fn redis_rejects_bad_urls_and_masks_passwords() {
        assert_eq!(redis_err("redis://"), "Redis URL 'redis://' has no host");
        assert_eq!(
            redis_err("redis://:hunter2@/0"),
            "Redis URL 'redis://:***@/0' has no host"
        );
        let e = redis_err("redis://user:hunter2@localhost:6379/notanumber");
        assert!(e.starts_with("Invalid Redis URL 'redis://user:***@localhost:6379/notanumber': "));
        assert!(e.ends_with("': Invalid database number"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = redis_err("redis://localhost:99999");
        assert!(
            e.starts_with("Invalid Redis URL 'redis://localhost:99999'"),
            "{e}"
        );
        assert_eq!(
            redis_err("redis://localhost/?protocol=resp9"),
            "Invalid Redis URL 'redis://localhost/?protocol=resp9': Invalid protocol version: resp9"
        );
        let e = redis_err("redis://0.0.0.0:6379");
        assert!(e.contains("wildcard"), "{e}");
        let e = redis_err("rediss://host/#other");
        assert!(e.contains("only #insecure"), "{e}");
        assert_eq!(
            redis_err("unix://"),
            "Invalid Redis URL 'unix://': Missing path"
        );
        let e = redis_err("unix:///run/redis.sock?db=x&pass=hunter2");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("pass=***"), "{e}");
    }

    #[test]
    fn redis_requires_consumer_group() {
        assert_eq!(
            EventBusConfig::redis("redis://localhost", "", None),
            Err("Redis consumer group must not be empty".to_owned())
        );
    }

    #[test]
    fn postgresql_accepts_urls_and_dsns() {
        for conn in [
            "postgresql://localhost/test",
            "postgres://user:secret@db.internal:5432/app?sslmode=disable",
            "postgresql://user@%2Frun%2Fpostgresql/db",
            "host=127.0.0.1 dbname=test user=postgres",
            "host=/run/postgresql dbname=test",
            "hostaddr=127.0.0.1 dbname=test password='a b'",
            "postgresql://h/db?sslmode=verify-full&sslrootcert=system",
            "host=h sslmode=require dbname=x",
            "host=h sslmode=disable",
        ] {
            assert_eq!(
                EventBusConfig::postgresql(conn, "fraiseql", HOUR),
                Ok(EventBusConfig::PostgreSQL {
                    connection_string: conn.to_owned(),
                    channel_prefix: "fraiseql".to_owned(),
                    retention: HOUR,
                }),
                "{conn}"
            );
        }
    }

    #[test]
    fn postgresql_rejects_bad_input() {
        assert_eq!(
            pg_err(""),
            "PostgreSQL connection string is empty; expected a postgresql:// or postgres:// URL \
             or a key=value DSN such as 'host=localhost dbname=app user=app'"
        );
        assert!(pg_err("   ").starts_with("PostgreSQL connection string is empty"));
        assert_eq!(
            pg_err("mysql://root:hunter2@localhost/db"),
            "PostgreSQL connection string 'mysql://root:***@localhost/db' has unsupported \
             scheme 'mysql'; expected a postgresql:// or postgres:// URL or a key=value DSN \
             such as 'host=localhost dbname=app user=app'"
        );
        let e = pg_err("host=localhost bogus=1 password=hunter2");
        assert_eq!(
            e,
            "Invalid PostgreSQL connection string 'host=localhost bogus=1 password=***': \
             invalid connection string: unknown option `bogus`"
        );
        let e = pg_err("postgresql://u:hunter2@localhost:notaport/db");
        assert!(e.contains("invalid value for option `port`"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = pg_err("localhost");
        assert!(
            e.starts_with("Invalid PostgreSQL connection string 'localhost': "),
            "{e}"
        );
        assert_eq!(
            pg_err("dbname=test password=hunter2"),
            "PostgreSQL connection string 'dbname=test password=***' names no host; add \
             host=... or use postgresql://HOST/..."
        );
        assert!(pg_err("postgresql://").contains("names no host"));
    }

    #[test]
    fn masking() {
        assert_eq!(mask_password("redis://localhost"), "redis://localhost");
        assert_eq!(
            mask_password("redis://user:pw@host:1/0"),
            "redis://user:***@host:1/0"
        );
        assert_eq!(mask_password("redis://:pw@host"), "redis://:***@host");
        assert_eq!(mask_password("redis://user@host"), "redis://user@host");
        assert_eq!(
            mask_password("redis://:p/w@s@host/0"),
            "redis://:***@host/0"
        );
        assert_eq!(
            mask_password("postgresql://h/db?user=u&password=pw&sslmode=require#frag"),
            "postgresql://h/db?user=u&password=***&sslmode=require#frag"
        );
        assert_eq!(
            mask_password("unix:///s.sock?pass=pw&db=1"),
            "unix:///s.sock?pass=***&db=1"
        );
        assert_eq!(
            mask_password("host=h password=pw user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            mask_password("host=h PASSWORD = 'p w\\' x' user=u"),
            "host=h PASSWORD = '***' user=u"
        );
        assert_eq!(mask_password("password='unterminated"), "password='***'");
        assert_eq!(mask_password("password="), "password=");
        assert_eq!(mask_password("host=h garbage"), "host=h garbage");
        assert_eq!(
            mask_password("héllo=wörld password=é"),
            "héllo=wörld password=***"
        );
    }

    #[test]
    fn debug_and_display_mask() {
        let config = EventBusConfig::Redis {
            url: "redis://:hunter2@h".into(),
            consumer_group: "g".into(),
            tls_ca_file: None,
        };
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("***"),
            "{debug}"
        );
        let display = config.to_string();
        assert!(!display.contains("hunter2"), "{display}");
        let config = EventBusConfig::PostgreSQL {
            connection_string: "host=h password=hunter2".into(),
            channel_prefix: "fraiseql".into(),
            retention: HOUR,
        };
        assert!(!format!("{config:?} {config}").contains("hunter2"));
        assert_eq!(config.bus_type(), "postgresql");
    }

    #[test]
    fn python_default_prefix_is_the_default() {
        // The binding's signature spells the default as a literal (for stubs and
        // introspection); it must stay the bus's default.
        assert_eq!(super::super::postgres::DEFAULT_PREFIX, "fraiseql");
        // The same for the retention (also spelled in the text signature).
        assert!(matches!(
            Retention::DEFAULT.duration(),
            Ok(d) if d == super::super::postgres::DEFAULT_RETENTION
        ));
    }

    /// A CA file of the test's own (the certificate is only parsed, never used to connect).
    fn ca_file(name: &str) -> String {
        // A self-signed CA certificate (openssl req -x509 -newkey ec -pkeyopt
        // ec_paramgen_curve:P-256 -subj /CN=fraiseql-test-ca -days 36500 -nodes).
        const PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjTCCATOgAwIBAgIUZ9MyKW7bV4VNjlkU0l+0TZpmFTUwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQZnJhaXNlcWwtdGVzdC1jYTAgFw0yNjEyMDExMDEwMDlaGA8y
MTI2MTEwNzEwMTAwOVowGzEZMBcGA1UEAwwQZnJhaXNlcWwtdGVzdC1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABJ/AIdcwFpzHFxGUnNQQNMz6SP21FG/eS47G
zdBRFe6lYwwyFkZnJtfbvDWtovDJAo8EO/B42NrMnyl7gsd2tnCjUzBRMB0GA1Ud
DgQWBBTUPAVhUoRneeZ6cLohHJzXcy8cCTAfBgNVHSMEGDAWgBTUPAVhUoRneeZ6
cLohHJzXcy8cCTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDV
9nexG/J/UwlDfnKmif3S4KN/SjjVWtHhZTLlFsR3qAIgQfu2UT443mfORvBbWRHz
bG0+M0dDBs6ELpjX0LbZ77w=
-----END CERTIFICATE-----
";
        let path = std::env::temp_dir().join(format!("fraiseql-{}-{name}", std::process::id()));
        if let Err(e) = std::fs::write(&path, PEM) {
            panic!("cannot write {}: {e}", path.display());
        }
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn redis_tls_ca_file() {
        let ca = ca_file("redis-ca.pem");
        let config = EventBusConfig::redis("rediss://cache:6380", "g", Some(&ca));
        assert!(
            matches!(&config, Ok(EventBusConfig::Redis { tls_ca_file: Some(f), .. }) if *f == ca),
            "{config:?}"
        );
        let e = EventBusConfig::redis("rediss://h", "g", Some("/nonexistent/ca.pem"))
            .err()
            .unwrap_or_default();
        assert!(
            e.starts_with("cannot read CA file '/nonexistent/ca.pem': "),
            "{e}"
        );
        let e = EventBusConfig::redis("redis://:pw@h", "g", Some(&ca))
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            format!("tls_ca_file '{ca}' needs a rediss:// URL, not 'redis://:***@h'")
        );
        let not_pem = ca_file("not-pem.txt");
        let _ = std::fs::write(&not_pem, "hello");
        let e = EventBusConfig::redis("rediss://h", "g", Some(&not_pem))
            .err()
            .unwrap_or_default();
        assert!(e.contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn postgresql_tls_options() {
        let e = pg_err("host=h sslmode=verify_full password=hunter2");
        assert_eq!(
            e,
            "Invalid PostgreSQL connection string 'host=h sslmode=verify_full password=***': \
             invalid sslmode 'verify_full'; expected disable, prefer, require, verify-ca or \
             verify-full"
        );
        let e =
            pg_err("postgresql://u:hunter2@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        assert!(
            e.starts_with(
                "Invalid PostgreSQL connection string \
                 'postgresql://u:***@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem': \
                 cannot read CA file '/nonexistent/ca.pem'"
            ),
            "{e}"
        );
        let ca = ca_file("pg-ca.pem");
        for conn in [
            format!("host=h sslmode=verify-full sslrootcert='{ca}'"),
            format!("postgresql://h/db?sslmode=verify-ca&sslrootcert={ca}"),
        ] {
            assert!(
                EventBusConfig::postgresql(&conn, "fraiseql", HOUR).is_ok(),
                "{conn}"
            );
        }
        // Other libpq TLS options are not taken: tokio-postgres refuses them by name.
        assert!(pg_err("host=h sslcert=/c.pem").contains("unknown option `sslcert`"));
    }

    #[test]
    fn postgresql_retention_must_be_positive() {
        assert_eq!(
            EventBusConfig::postgresql("host=h", "fraiseql", Duration::ZERO),
            Err("PostgreSQL bus retention must be positive".to_owned())
        );
    }
}
