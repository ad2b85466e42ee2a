//! Counts in Redis (`REDIS_URL`), so every instance shares them. Keys are
//! `{RATE_LIMIT_KEY_PREFIX}:rl:{scope}:{period seconds}:{ip:ADDRESS | user:NAME}`; each is one atomic script call.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Counter, Window};
use crate::rate_limit::limit::Limit;
use crate::rate_limit::scope::Scope;

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

/// Counts in Redis.
pub struct RedisCounter {
    manager: ConnectionManager,
    prefix: String,
    script: redis::Script,
    peek_script: redis::Script,
}

impl RedisCounter {
    /// Counters in Redis at `url`, keys starting with `prefix`. Nothing connects until the first hit; a call
    /// gives up after 500 ms, so an unreachable Redis costs each request little.
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            manager,
            prefix: prefix.to_string(),
            script: redis::Script::new(HIT_SCRIPT),
            peek_script: redis::Script::new(PEEK_SCRIPT),
        })
    }
}

impl Counter for RedisCounter {
    type Error = redis::RedisError;

    async fn count(&self, scope: Scope, key: &str, limit: Limit, add: bool) -> redis::RedisResult<Window> {
        let key = format!("{}:rl:{}:{}:{}", self.prefix, scope.as_str(), limit.period.as_secs(), key);
        let mut connection = self.manager.clone();
        let script = if add { &self.script } else { &self.peek_script };
        let (count, ttl_ms): (u64, i64) =
            script.key(key).arg(limit.period.as_millis() as u64).invoke_async(&mut connection).await?;
        Ok(Window { count, remaining: Duration::from_millis(ttl_ms.max(0) as u64) })
    }
}
