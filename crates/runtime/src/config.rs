//! Server configuration: defaults that need no setup, an optional TOML file, and the
//! `LICENSD_DATABASE_URL` variable; command-line flags override both (the binary merges them).
//! The settings of the HTTP side (TLS files, connection limits, the public URL) are plain values
//! here; the server turns them into its listener and links.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything `licensd serve` needs to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// `sqlite://path`, a plain path, or `postgres://...`.
    pub database_url: String,
    pub listen: SocketAddr,
    /// Users evaluated per processing transaction.
    pub processing_batch_size: usize,
    /// How long the processor sleeps when no tenant has queued users (a write that queues users
    /// wakes it earlier, unless `processing_wake_on_write` is off).
    pub processing_idle_interval: Duration,
    /// Whether a write that queues users wakes the processor at once. Off only to measure the
    /// polling it replaced (the benchmarks' reference).
    pub processing_wake_on_write: bool,
    /// How long a processing lease lasts without renewal (another instance takes over after).
    pub processing_lease: Duration,
    /// Identifies this process among several instances on one database.
    pub instance_id: String,
    /// The Global Administrator token of the default tenant, created on first start when no
    /// token exists yet (`LICENSD_BOOTSTRAP_TOKEN`); `None` lets the server generate one and print
    /// it once.
    pub bootstrap_token: Option<String>,
    /// Requests each token may make (per instance); `per_second = 0` turns limiting off.
    pub rate_limit: crate::access::RateLimit,
    /// Failed authentications each client address may cause (per instance) before its requests
    /// with tokens not recently verified are answered 429 without a database lookup;
    /// `per_second = 0` turns this limit off. Default: 10 per second, bursts of 50.
    pub authentication_failure_limit: crate::access::RateLimit,
    /// Timeouts, the connection cap and the shutdown drain (see [`ConnectionLimits`]).
    pub connections: ConnectionLimits,
    /// How long audit records are kept; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// The address clients reach the server at (`https://licensd.example.com`), used for every
    /// absolute link (`@odata.nextLink`, `@odata.deltaLink`, `@odata.context`, `Location`);
    /// without it links follow the request's `Host`.
    pub public_url: Option<String>,
    /// Peers whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed (reverse proxies);
    /// from anyone else these headers are ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// How often the processor moves products whose subscription passed a lifecycle date.
    pub lifecycle_check_interval: Duration,
    /// A second address serving `/metrics` of every tenant without a token (for Prometheus on
    /// the monitoring network); `None` serves metrics only on the API address, per tenant.
    pub metrics_listen: Option<SocketAddr>,
    /// Change notifications and other webhooks: where they may go and how they are retried.
    pub notifications: NotificationSettings,
    /// How often the processor writes the engine snapshot of each tenant it processes whose
    /// version moved since, so that a start reads the snapshot and the change log since instead
    /// of the tenant's tables. A clean shutdown always writes one; `None` (the default, or
    /// `engine-snapshot-interval-s = 0`) writes none while running. Taking one copies the
    /// engine under its lock (copy-on-write), then encodes and writes it on the
    /// processor's thread without the lock; the store's connection is held for the row's write.
    pub engine_snapshot_interval: Option<Duration>,
    /// Which tenants this instance holds in memory. `None` (the default): every tenant, loaded
    /// at start. `Some(idle)` (`tenant-idle-eviction-s`): only the tenants its processor owns
    /// and those requests asked about, loaded at the first request and evicted after `idle`
    /// without one — for several instances sharing many tenants (see
    /// [`crate::tenants::Residency`]).
    pub tenant_idle_eviction: Option<Duration>,
}

/// How the delivery worker sends webhooks (change notifications, alerts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationSettings {
    /// Deliver to link-local addresses (`169.254.0.0/16`, `fe80::/10`) and cloud metadata
    /// endpoints too. Off by default: a subscriber must not make licensd fetch
    /// `http://169.254.169.254/` (SSRF).
    pub allow_link_local_targets: bool,
    /// The first retry's delay; each further retry waits twice as long, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Attempts before a delivery is abandoned (a `missed` lifecycle notification follows).
    pub max_attempts: u32,
    /// How long an endpoint has to answer one delivery.
    pub request_timeout: Duration,
    /// Abandoned deliveries in a row after which a subscription is removed
    /// (`subscriptionRemoved`).
    pub removal_after_abandoned: u32,
    /// How long delivered and abandoned deliveries stay listed.
    pub delivery_retention: Duration,
}

impl Default for NotificationSettings {
    /// Link-local targets refused; retries after 1 s, 2 s, 4 s, ... up to 10 minutes, 10
    /// attempts; 5 s to answer; removal after 3 abandoned deliveries; 7 days of history.
    fn default() -> NotificationSettings {
        NotificationSettings {
            allow_link_local_targets: false,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            max_attempts: 10,
            request_timeout: Duration::from_secs(5),
            removal_after_abandoned: 3,
            delivery_retention: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// The certificate and key files of `--tls-cert` / `--tls-key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// What one client may hold, and how long shutdown waits (the server's accept loop enforces them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the moment a connection waits for a request (a new connection, or a keep-alive one
    /// after its previous response) until the request's head (line and headers) is complete;
    /// also the TLS handshake's limit. A connection over it is closed.
    pub header_read_timeout: Duration,
    /// From the moment a request's head is read until its whole body is received; a body still
    /// incomplete then is answered 400 and the connection closed.
    pub body_read_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight before dropping their connections.
    pub shutdown_drain: Duration,
}

impl Default for ConnectionLimits {
    /// Heads in 10 s, bodies in 30 s, 1,024 connections, 10 s of drain.
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1_024,
            shutdown_drain: Duration::from_secs(10),
        }
    }
}

/// The configuration file's shape; every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub processing_batch_size: Option<usize>,
    pub processing_idle_interval_ms: Option<u64>,
    pub processing_lease_ms: Option<u64>,
    pub instance_id: Option<String>,
    /// Requests per second each token may make; 0 turns rate limiting off.
    pub rate_limit_per_second: Option<u32>,
    /// Requests a token may make in a burst above its rate.
    pub rate_limit_burst: Option<u32>,
    /// Failed authentications per second a client address may cause; 0 turns the limit off.
    pub authentication_failures_per_second: Option<u32>,
    /// Failed authentications a client address may cause in a burst.
    pub authentication_failure_burst: Option<u32>,
    /// Milliseconds a client has to send a request's head (also the keep-alive idle limit).
    pub header_read_timeout_ms: Option<u64>,
    /// Milliseconds a client has to send a request's body once its head is read.
    pub body_read_timeout_ms: Option<u64>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Milliseconds shutdown waits for requests in flight.
    pub shutdown_drain_ms: Option<u64>,
    /// Days audit records are kept; 0 keeps them forever.
    pub audit_retention_days: Option<u64>,
    /// Seconds between engine snapshots of a tenant that changed; 0 (the default) writes them
    /// only at a clean shutdown.
    pub engine_snapshot_interval_s: Option<u64>,
    /// Seconds a tenant no request asked about stays in memory on an instance that does not
    /// process it; 0 (the default) holds every tenant, loaded at start.
    pub tenant_idle_eviction_s: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The address clients reach the server at, for absolute links.
    pub public_url: Option<String>,
    /// Addresses of reverse proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Option<Vec<IpAddr>>,
    /// A second address serving every tenant's `/metrics` without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// Deliver webhooks to link-local and cloud-metadata addresses too (refused by default).
    pub notification_allow_link_local: Option<bool>,
    /// Milliseconds before a failed delivery's first retry (doubling after each failure).
    pub notification_retry_base_ms: Option<u64>,
    /// The longest wait between two attempts, in milliseconds.
    pub notification_retry_max_ms: Option<u64>,
    /// Attempts before a delivery is abandoned.
    pub notification_max_attempts: Option<u32>,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
    }
}

impl ServerConfig {
    /// The zero-configuration defaults: `./licensd.db` (SQLite) in `data_dir`, `127.0.0.1:8080`.
    pub fn defaults(data_dir: &Path) -> ServerConfig {
        ServerConfig {
            database_url: format!("sqlite://{}", data_dir.join("licensd.db").display()),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            processing_batch_size: 2_000,
            processing_idle_interval: Duration::from_millis(50),
            processing_wake_on_write: true,
            processing_lease: Duration::from_secs(10),
            instance_id: format!("licensd-{}", std::process::id()),
            bootstrap_token: None,
            rate_limit: crate::access::RateLimit::default(),
            authentication_failure_limit: crate::access::RateLimit {
                per_second: 10,
                burst: 50,
            },
            connections: ConnectionLimits::default(),
            audit_retention: Some(Duration::from_secs(90 * 24 * 60 * 60)),
            tls: None,
            public_url: None,
            trusted_proxies: Vec::new(),
            lifecycle_check_interval: Duration::from_secs(60),
            metrics_listen: None,
            notifications: NotificationSettings::default(),
            engine_snapshot_interval: None,
            tenant_idle_eviction: None,
        }
    }

    /// Applies a configuration file over the defaults.
    pub fn with_file(mut self, file: &ConfigFile) -> Result<ServerConfig, ConfigError> {
        if let Some(data_dir) = &file.data_dir {
            self.database_url = format!("sqlite://{}", data_dir.join("licensd.db").display());
        }
        if let Some(url) = &file.database_url {
            self.database_url = url.clone();
        }
        if let Some(listen) = file.listen {
            self.listen = listen;
        }
        if let Some(size) = file.processing_batch_size {
            if size == 0 {
                return Err(ConfigError::Invalid(
                    "processing-batch-size must be at least 1".into(),
                ));
            }
            self.processing_batch_size = size;
        }
        if let Some(ms) = file.processing_idle_interval_ms {
            self.processing_idle_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = file.processing_lease_ms {
            self.processing_lease = Duration::from_millis(ms.max(100));
        }
        if let Some(instance_id) = &file.instance_id {
            self.instance_id = instance_id.clone();
        }
        if let Some(per_second) = file.rate_limit_per_second {
            self.rate_limit.per_second = per_second;
        }
        if let Some(burst) = file.rate_limit_burst {
            self.rate_limit.burst = burst;
        }
        if let Some(per_second) = file.authentication_failures_per_second {
            self.authentication_failure_limit.per_second = per_second;
        }
        if let Some(burst) = file.authentication_failure_burst {
            self.authentication_failure_limit.burst = burst;
        }
        let positive = |name: &str, value: u64| -> Result<Duration, ConfigError> {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
            Ok(Duration::from_millis(value))
        };
        if let Some(ms) = file.header_read_timeout_ms {
            self.connections.header_read_timeout = positive("header-read-timeout-ms", ms)?;
        }
        if let Some(ms) = file.body_read_timeout_ms {
            self.connections.body_read_timeout = positive("body-read-timeout-ms", ms)?;
        }
        if let Some(ms) = file.shutdown_drain_ms {
            self.connections.shutdown_drain = Duration::from_millis(ms);
        }
        if let Some(count) = file.max_connections {
            if count == 0 {
                return Err(ConfigError::Invalid("max-connections must be at least 1".into()));
            }
            self.connections.max_connections = count;
        }
        if let Some(allow) = file.notification_allow_link_local {
            self.notifications.allow_link_local_targets = allow;
        }
        if let Some(ms) = file.notification_retry_base_ms {
            self.notifications.retry_base = positive("notification-retry-base-ms", ms)?;
        }
        if let Some(ms) = file.notification_retry_max_ms {
            self.notifications.retry_max = positive("notification-retry-max-ms", ms)?;
        }
        if let Some(attempts) = file.notification_max_attempts {
            if attempts == 0 {
                return Err(ConfigError::Invalid(
                    "notification-max-attempts must be at least 1".into(),
                ));
            }
            self.notifications.max_attempts = attempts;
        }
        if let Some(seconds) = file.engine_snapshot_interval_s {
            self.engine_snapshot_interval = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        if let Some(seconds) = file.tenant_idle_eviction_s {
            self.tenant_idle_eviction = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        if let Some(days) = file.audit_retention_days {
            self.audit_retention = (days > 0).then(|| Duration::from_secs(days * 24 * 60 * 60));
        }
        match (&file.tls_cert, &file.tls_key) {
            (Some(certificate), Some(private_key)) => {
                self.tls = Some(TlsFiles {
                    certificate: certificate.clone(),
                    private_key: private_key.clone(),
                })
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Invalid(
                    "tls-cert and tls-key go together: give both or neither".into(),
                ))
            }
        }
        if let Some(url) = &file.public_url {
            self.public_url = Some(parse_public_url(url)?);
        }
        if let Some(proxies) = &file.trusted_proxies {
            self.trusted_proxies = proxies.clone();
        }
        if let Some(address) = file.metrics_listen {
            self.metrics_listen = Some(address);
        }
        Ok(self)
    }

    /// Whether the database is PostgreSQL (several instances may share it).
    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://") || self.database_url.starts_with("postgresql://")
    }
}

/// Checks `--public-url`: an absolute `http` or `https` URL without query or fragment; a trailing
/// slash is dropped so links join with `/v1.0/...`.
pub fn parse_public_url(text: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid(format!("public-url '{text}' {reason}"));
    let trimmed = text.trim().trim_end_matches('/');
    if trimmed.is_empty() || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("is not a URL"));
    }
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Err(invalid("must start with http:// or https://"));
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(invalid("must start with http:// or https://"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // `user@host:port`: the host is what remains without the credentials and the port.
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_and_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or("", |(host, _)| host),
        None => host_and_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(invalid("has no host"));
    }
    if let Some((_, port)) = host_and_port
        .rsplit_once(':')
        .filter(|_| !host_and_port.ends_with(']'))
    {
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(invalid("is not a URL"));
        }
    }
    if trimmed.contains('?') || trimmed.contains('#') {
        return Err(invalid("must not have a query or fragment"));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_setup_and_a_file_overrides_them() {
        let defaults = ServerConfig::defaults(Path::new("/srv/licensd"));
        assert_eq!(defaults.database_url, "sqlite:///srv/licensd/licensd.db");
        assert_eq!(defaults.listen.to_string(), "127.0.0.1:8080");
        let file: ConfigFile = toml::from_str(
            "database-url = \"postgres://postgres@127.0.0.1/test\"\nlisten = \"0.0.0.0:9000\"\nprocessing-batch-size = 10\n",
        )
        .expect("valid file");
        let config = defaults.with_file(&file).expect("valid config");
        assert!(config.is_postgres());
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.processing_batch_size, 10);
        let limits: ConfigFile = toml::from_str(
            "header-read-timeout-ms = 500\nbody-read-timeout-ms = 700\nmax-connections = 3\nshutdown-drain-ms = 900\nauthentication-failures-per-second = 2\nauthentication-failure-burst = 4\n",
        )
        .expect("valid file");
        let limited = config.with_file(&limits).expect("valid limits");
        assert_eq!(
            limited.connections.header_read_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(limited.connections.body_read_timeout, Duration::from_millis(700));
        assert_eq!(limited.connections.max_connections, 3);
        assert_eq!(limited.connections.shutdown_drain, Duration::from_millis(900));
        assert_eq!(limited.authentication_failure_limit.per_second, 2);
        assert_eq!(limited.authentication_failure_limit.burst, 4);
        let zero: ConfigFile = toml::from_str("max-connections = 0").expect("valid file");
        assert!(ServerConfig::defaults(Path::new(".")).with_file(&zero).is_err());
    }

    #[test]
    fn public_urls_are_checked_and_proxies_read() {
        let file: ConfigFile = toml::from_str(
            "public-url = \"https://licensd.example.com/\"\ntrusted-proxies = [\"10.0.0.1\", \"::1\"]\n",
        )
        .expect("valid file");
        let config = ServerConfig::defaults(Path::new("."))
            .with_file(&file)
            .expect("valid config");
        assert_eq!(config.public_url.as_deref(), Some("https://licensd.example.com"));
        assert_eq!(config.trusted_proxies.len(), 2);
        for wrong in ["licensd.example.com", "ftp://x", "https://x/?a=b", "https://"] {
            let error = parse_public_url(wrong).expect_err(wrong);
            assert!(error.to_string().contains("public-url"), "{error}");
        }
    }

    #[test]
    fn every_tenant_is_held_unless_an_idle_eviction_is_configured() {
        let defaults = ServerConfig::defaults(Path::new("."));
        assert_eq!(defaults.tenant_idle_eviction, None);
        let eviction = |text: &str| {
            let file: ConfigFile = toml::from_str(text).expect("configuration");
            ServerConfig::defaults(Path::new("."))
                .with_file(&file)
                .expect("valid")
                .tenant_idle_eviction
        };
        assert_eq!(
            eviction("tenant-idle-eviction-s = 600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(eviction("tenant-idle-eviction-s = 0"), None);
    }

    #[test]
    fn engine_snapshots_are_written_only_at_shutdown_unless_an_interval_is_configured() {
        let defaults = ServerConfig::defaults(Path::new("."));
        assert_eq!(defaults.engine_snapshot_interval, None);
        let every = |text: &str| {
            let file: ConfigFile = toml::from_str(text).expect("configuration");
            ServerConfig::defaults(Path::new("."))
                .with_file(&file)
                .expect("valid")
                .engine_snapshot_interval
        };
        assert_eq!(
            every("engine-snapshot-interval-s = 30"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(every("engine-snapshot-interval-s = 0"), None);
    }

    #[test]
    fn unknown_keys_and_zero_batches_are_refused() {
        assert!(toml::from_str::<ConfigFile>("databse-url = \"x\"").is_err());
        let file = ConfigFile {
            processing_batch_size: Some(0),
            ..Default::default()
        };
        let error = ServerConfig::defaults(Path::new("."))
            .with_file(&file)
            .expect_err("zero");
        assert!(error.to_string().contains("processing-batch-size"));
    }
}
