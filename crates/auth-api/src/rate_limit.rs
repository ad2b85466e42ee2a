//! Rate limits: a fixed window that opens at a subject's first hit (as Flask-Limiter's fixed window does), counted
//! in Redis when `REDIS_URL` is set, so every instance shares the counts, and in memory otherwise.
//!
//! A subject is a client address or a user name ([`Subject`]). Addresses are counted the way an attacker cannot
//! cheaply multiply them: an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is its IPv4 address, and an IPv6 address
//! counts as its /64, the block one subscriber or host is normally given (every address in it was a fresh quota).
//!
//! When Redis cannot be reached, the hit is counted in memory instead: the limit still holds per instance, the
//! service stays up, and an error is logged once per outage (and the recovery once).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// At most `count` requests per `period`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed in one window.
    pub count: u32,
    /// The window's length.
    pub period: Duration,
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs())
    }
}

impl FromStr for Limit {
    type Err = String;

    /// `3/minute`, `3 per minute`, `100/hour`, `10/second`, `1000/day` (units may be plural).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a limit like 3/minute, 5 per minute or 100/hour");
        let s_lower = s.trim().to_ascii_lowercase();
        let (count, unit) = s_lower
            .split_once('/')
            .or_else(|| s_lower.split_once(" per "))
            .map(|(c, u)| (c.trim(), u.trim()))
            .ok_or_else(bad)?;
        let count: u32 = count.parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("{s:?} allows no request at all; the smallest limit is 1 per period"));
        }
        let seconds = match unit.trim_end_matches('s') {
            "second" | "sec" => 1,
            "minute" | "min" => 60,
            "hour" => 3600,
            "day" => 86_400,
            _ => return Err(bad()),
        };
        Ok(Limit { count, period: Duration::from_secs(seconds) })
    }
}

/// What a hit is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit.
    Allowed,
    /// Over it; the client may try again after this long (at least one second, for `Retry-After`).
    Limited {
        /// Until the window closes.
        retry_after: Duration,
    },
}

/// Which counter a hit belongs to: one per limited route. A new limited route is one variant here and one row in
/// [`Scope::SETTINGS`]; the limiter, the settings and the README's table follow from that row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `POST /login`, per client.
    Login,
    /// Failed logins per user name, whatever the client: slows a password guess spread over many addresses.
    LoginFailures,
    /// `GET /protected`, per client.
    Protected,
    /// `POST /refresh`, per client.
    Refresh,
    /// `POST /logout`, per client.
    Logout,
}

impl Scope {
    /// Every scope, with its key in counters, its variable and its default limit.
    pub const SETTINGS: [(Scope, &'static str, &'static str, &'static str); 5] = [
        (Scope::Login, "login", "RATE_LIMIT_LOGIN", "3/minute"),
        (Scope::LoginFailures, "login-failures", "RATE_LIMIT_LOGIN_FAILURES_PER_USER", "10/minute"),
        (Scope::Protected, "protected", "RATE_LIMIT_PROTECTED", "5/minute"),
        (Scope::Refresh, "refresh", "RATE_LIMIT_REFRESH", "10/minute"),
        (Scope::Logout, "logout", "RATE_LIMIT_LOGOUT", "10/minute"),
    ];

    fn row(self) -> (Scope, &'static str, &'static str, &'static str) {
        Self::SETTINGS.into_iter().find(|row| row.0 == self).unwrap_or(Self::SETTINGS[0])
    }

    /// Its name in counter keys.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The variable that sets its limit.
    pub fn variable(self) -> &'static str {
        self.row().2
    }
}

/// Whose hits a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A client address (normalised: see the module doc).
    Ip(IpAddr),
    /// A user name.
    User(&'a str),
}

impl Subject<'_> {
    /// The counter key: `ip:1.2.3.4`, `ip:2001:db8:1:2::/64`, `user:alice`.
    fn key(self) -> String {
        match self {
            Subject::Ip(ip) => format!("ip:{}", counted_address(ip)),
            Subject::User(name) => format!("user:{name}"),
        }
    }
}

/// The address a hit is counted against: IPv4 as is, an IPv4-mapped IPv6 address as its IPv4 address, any other
/// IPv6 address as its /64.
pub fn counted_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The limit of every scope.
#[derive(Clone, PartialEq, Eq)]
pub struct Limits(HashMap<Scope, Limit>);

impl Limits {
    /// Each scope's limit from its variable (through `get`), or its default; the error names the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, (&'static str, String)> {
        let mut limits = HashMap::new();
        for (scope, _, variable, default) in Scope::SETTINGS {
            let raw = get(variable).unwrap_or_else(|| default.into());
            limits.insert(scope, raw.parse().map_err(|reason| (variable, reason))?);
        }
        Ok(Self(limits))
    }

    /// The limit of `scope`.
    pub fn get(&self, scope: Scope) -> Limit {
        self.0.get(&scope).copied().unwrap_or(Limit { count: 1, period: Duration::from_secs(60) })
    }
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (scope, _, _, _) in Scope::SETTINGS {
            map.entry(&scope.as_str(), &self.get(scope));
        }
        map.finish()
    }
}

/// Counts hits per scope and client, each scope against its own limit.
pub struct RateLimiter {
    limits: Limits,
    memory: MemoryCounter,
    redis: Option<RedisCounter>,
}

impl RateLimiter {
    /// In-memory counters only.
    pub fn in_memory(limits: Limits) -> Self {
        Self { limits, memory: MemoryCounter::default(), redis: None }
    }

    /// Counters in Redis at `url` (keys start with `prefix`), in memory while Redis is unreachable. Nothing
    /// connects until the first hit.
    pub fn with_redis(limits: Limits, url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            limits,
            memory: MemoryCounter::default(),
            redis: Some(RedisCounter {
                manager,
                prefix: prefix.to_string(),
                script: redis::Script::new(HIT_SCRIPT),
                peek_script: redis::Script::new(PEEK_SCRIPT),
                healthy: AtomicBool::new(true),
            }),
        })
    }

    /// Counts one hit of `subject` on `scope` and says whether it is within the scope's limit.
    pub async fn hit(&self, scope: Scope, subject: Subject<'_>) -> Decision {
        self.count(scope, subject, true).await
    }

    /// Says whether one more hit of `subject` on `scope` would be within the limit, without counting it.
    pub async fn peek(&self, scope: Scope, subject: Subject<'_>) -> Decision {
        self.count(scope, subject, false).await
    }

    async fn count(&self, scope: Scope, subject: Subject<'_>, add: bool) -> Decision {
        let limit = self.limits.get(scope);
        let key = subject.key();
        // A peek sees the count as it would be with this hit, so it says "limited" exactly when a hit would.
        let decide = |window: Window| if add { window } else { Window { count: window.count + 1, ..window } };
        if let Some(redis) = &self.redis {
            match redis.count(scope, &key, limit, add).await {
                Ok(window) => {
                    if !redis.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!("rate limiting: Redis answers again; counting there");
                    }
                    return decide(window).decide(limit);
                }
                Err(e) => {
                    if redis.healthy.swap(false, Ordering::Relaxed) {
                        tracing::error!("rate limiting: Redis is unreachable ({e}); counting in memory meanwhile");
                    }
                }
            }
        }
        decide(self.memory.count(scope, key, limit, add)).decide(limit)
    }
}

/// A window's count so far (this hit included) and the time left in it.
struct Window {
    count: u64,
    remaining: Duration,
}

impl Window {
    fn decide(&self, limit: Limit) -> Decision {
        if self.count <= u64::from(limit.count) {
            Decision::Allowed
        } else {
            // Retry-After is in whole seconds; round up so the client never comes back early.
            let secs = self.remaining.as_millis().div_ceil(1000).max(1) as u64;
            Decision::Limited { retry_after: Duration::from_secs(secs) }
        }
    }
}

/// Windows in this process: when each opened, its length and its count. Closed windows are dropped when the map
/// grows, so memory stays bounded by the clients seen within one period.
#[derive(Default)]
struct MemoryCounter {
    windows: Mutex<HashMap<(Scope, String), OpenWindow>>,
}

/// When a window opened, its length, and the hits in it.
type OpenWindow = (Instant, Duration, u64);

impl MemoryCounter {
    const PRUNE_ABOVE: usize = 10_000;

    fn count(&self, scope: Scope, key: String, limit: Limit, add: bool) -> Window {
        let now = Instant::now();
        // A poisoned lock only means another hit panicked mid-update; the counts are still usable.
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > Self::PRUNE_ABOVE {
            windows.retain(|_, (opened, period, _)| now.duration_since(*opened) < *period);
        }
        let (opened, period, count) = windows.entry((scope, key)).or_insert((now, limit.period, 0));
        if now.duration_since(*opened) >= *period {
            (*opened, *period, *count) = (now, limit.period, 0);
        }
        if add {
            *count += 1;
        }
        Window { count: *count, remaining: period.saturating_sub(now.duration_since(*opened)) }
    }
}

/// INCR the window's counter; the first hit opens the window (sets its expiry). Returns the count and the
/// milliseconds left. One round trip, atomic on the server.
const HIT_SCRIPT: &str = r#"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"#;

/// The window's count and the milliseconds left, without counting.
const PEEK_SCRIPT: &str = r#"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {count, ttl}
"#;

struct RedisCounter {
    manager: ConnectionManager,
    prefix: String,
    script: redis::Script,
    peek_script: redis::Script,
    healthy: AtomicBool,
}

impl RedisCounter {
    async fn count(&self, scope: Scope, key: &str, limit: Limit, add: bool) -> redis::RedisResult<Window> {
        let key = format!("{}:rl:{}:{}:{}", self.prefix, scope.as_str(), limit.period.as_secs(), key);
        let mut connection = self.manager.clone();
        let script = if add { &self.script } else { &self.peek_script };
        let (count, ttl_ms): (u64, i64) =
            script.key(key).arg(limit.period.as_millis() as u64).invoke_async(&mut connection).await?;
        Ok(Window { count, remaining: Duration::from_millis(ttl_ms.max(0) as u64) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        assert_eq!("3/minute".parse::<Limit>().unwrap(), Limit { count: 3, period: Duration::from_secs(60) });
        assert_eq!("5 per minute".parse::<Limit>().unwrap(), Limit { count: 5, period: Duration::from_secs(60) });
        assert_eq!("100/Hours".parse::<Limit>().unwrap(), Limit { count: 100, period: Duration::from_secs(3600) });
        assert_eq!("10/second".parse::<Limit>().unwrap(), Limit { count: 10, period: Duration::from_secs(1) });
        assert_eq!("1/day".parse::<Limit>().unwrap(), Limit { count: 1, period: Duration::from_secs(86_400) });
        for bad in ["", "3", "x/minute", "3/fortnight", "-1/minute", "0/minute", "3//minute"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn every_scope_has_a_setting_and_a_default() {
        let limits = Limits::from_lookup(|_| None).unwrap();
        assert_eq!(limits.get(Scope::Login), "3/minute".parse().unwrap());
        assert_eq!(limits.get(Scope::Protected), "5/minute".parse().unwrap());
        let e = Limits::from_lookup(|v| (v == "RATE_LIMIT_PROTECTED").then(|| "lots".into())).unwrap_err();
        assert_eq!(e.0, "RATE_LIMIT_PROTECTED");
        assert_eq!(Scope::Protected.variable(), "RATE_LIMIT_PROTECTED");
    }

    #[tokio::test]
    async fn memory_counts_per_scope_and_client() {
        let limits = Limits::from_lookup(|_| Some("2/minute".into())).unwrap();
        let limiter = RateLimiter::in_memory(limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
        match limiter.hit(Scope::Login, Subject::Ip(a)).await {
            Decision::Limited { retry_after } => {
                assert!(retry_after >= Duration::from_secs(59) && retry_after <= Duration::from_secs(60))
            }
            other => panic!("third hit: {other:?}"),
        }
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(b)).await, Decision::Allowed, "another client");
        assert_eq!(limiter.hit(Scope::Protected, Subject::Ip(a)).await, Decision::Allowed, "another scope");
    }

    #[test]
    fn addresses_are_counted_as_an_attacker_cannot_multiply_them() {
        let counted = |ip: &str| counted_address(ip.parse().unwrap());
        assert_eq!(counted("127.0.0.1"), "127.0.0.1");
        assert_eq!(counted("::ffff:127.0.0.1"), "127.0.0.1");
        assert_eq!(counted("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(counted("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
        assert_ne!(counted("2001:db8:1:3::1"), counted("2001:db8:1:2::1"));
        assert_eq!(counted("::1"), "::/64");
    }

    #[tokio::test]
    async fn a_peek_counts_nothing() {
        let limits = Limits::from_lookup(|_| Some("1/minute".into())).unwrap();
        let limiter = RateLimiter::in_memory(limits);
        let bob = Subject::User("bob");
        assert_eq!(limiter.peek(Scope::LoginFailures, bob).await, Decision::Allowed);
        assert_eq!(limiter.peek(Scope::LoginFailures, bob).await, Decision::Allowed);
        assert_eq!(limiter.hit(Scope::LoginFailures, bob).await, Decision::Allowed);
        assert!(matches!(limiter.peek(Scope::LoginFailures, bob).await, Decision::Limited { .. }));
    }

    #[tokio::test]
    async fn a_window_closes() {
        let mut limits = Limits::from_lookup(|_| None).unwrap();
        limits.0.insert(Scope::Login, Limit { count: 1, period: Duration::from_millis(200) });
        let limiter = RateLimiter::in_memory(limits);
        let a: IpAddr = "::1".parse().unwrap();
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
        assert!(matches!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Limited { .. }));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
    }
}
