//! The quota shared by every node: GCRA kept in Redis, one atomic script
//! per request (the algorithm of redis-cell and go-redis/redis_rate), so
//! a client spreading requests over nodes still has one quota.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::Decision;

/// Where the quotas live in Redis; a key per subject holds its
/// theoretical arrival time and expires once the bucket is full again.
const KEY_PREFIX: &str = "pytake:ratelimit:";

/// GCRA in one script. Reads the time from Redis (`TIME`), so nodes with
/// skewed clocks agree. KEYS[1]: the subject's key. ARGV[1]: the quota
/// per minute (the burst). ARGV[2]: the emission interval in µs. Returns
/// {allowed 0|1, remaining, retry_after µs, reset µs}.
const GCRA: &str = r"
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000000 + tonumber(now_t[2])
local limit = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local burst = limit * t
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + t
if new_tat - now > burst then
  return {0, 0, new_tat - now - burst, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, math.floor((now + burst - new_tat) / t), 0, new_tat - now}
";

/// The script, run by `EVALSHA` and loaded again by the crate when Redis
/// has lost it (a restart or `SCRIPT FLUSH` answers `NOSCRIPT`).
pub struct SharedQuota {
    gcra: Script,
}

impl Default for SharedQuota {
    fn default() -> SharedQuota {
        SharedQuota {
            gcra: Script::new(GCRA),
        }
    }
}

impl SharedQuota {
    /// Counts one request of `key` against `per_minute` in Redis.
    pub async fn check(
        &self,
        redis: &mut ConnectionManager,
        key: &str,
        per_minute: u32,
    ) -> redis::RedisResult<Decision> {
        let interval_us = super::local::interval(per_minute).as_micros() as u64;
        let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) = self
            .gcra
            .key(format!("{KEY_PREFIX}{key}"))
            .arg(per_minute)
            .arg(interval_us)
            .invoke_async(redis)
            .await?;
        let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
        Ok(Decision {
            allowed: allowed == 1,
            limit: per_minute,
            remaining: remaining.clamp(0, per_minute as i64) as u32,
            reset: micros(reset_us),
            retry_after: micros(retry_us),
        })
    }
}
