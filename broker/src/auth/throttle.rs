//! Failed logins per client address: after `auth_failures_per_address_max`
//! failed password checks from one address within
//! `auth_failure_window_ms`, password logins from that address are refused
//! without a check until the window (which starts at its first failure) ends. This
//! bounds password guessing across connections, which the per-connection
//! `auth_failures_max` alone does not: a guesser can open a new connection
//! for every three guesses.
//!
//! An address is an IPv4 address, or an IPv6 address's /64 prefix (one host
//! usually holds a whole /64, so counting single IPv6 addresses would let
//! it rotate through them). A success does not reset the count: one valid
//! account must not let its holder guess at others. At most
//! [`ADDRESSES_TRACKED_MAX`] addresses are tracked; when more have failed
//! within their windows, the one with the fewest failures (the oldest of
//! those) is dropped to make room, so blocked addresses go last. Making room
//! scans the table; failures come at most as fast as password checks run
//! (`auth_checks_concurrent_max` argon2 runs at a time), which bounds that
//! cost. Tokens are not counted: 256 random bits cannot be guessed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most client addresses whose failures are remembered at once (about 40
/// bytes each).
pub const ADDRESSES_TRACKED_MAX: usize = 10_000;

/// The part of a client's IP address failures are counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AddressKey {
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl AddressKey {
    fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(u32::from(v4)),
                None => AddressKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// One address's failures in its current window.
#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failed-login counts per client address (see the module doc).
#[derive(Debug)]
pub struct LoginThrottle {
    /// 0: no limit.
    failures_max: u32,
    window: Duration,
    windows: Mutex<HashMap<AddressKey, Window>>,
}

impl LoginThrottle {
    /// A throttle allowing `failures_max` failures per address per
    /// `window` (`failures_max` 0: no limit, nothing is tracked).
    pub fn new(failures_max: u32, window: Duration) -> LoginThrottle {
        LoginThrottle {
            failures_max,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` if `ip` has used up its failed logins for the
    /// window running at `now`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.failures_max == 0 {
            return Ok(());
        }
        let windows = self.lock();
        match windows.get(&AddressKey::of(ip)) {
            Some(w) if w.failures >= self.failures_max => {
                let elapsed = now.saturating_duration_since(w.started);
                match self.window.checked_sub(elapsed) {
                    Some(left) if !left.is_zero() => Err(left),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed password check from `ip` at `now`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        if self.failures_max == 0 {
            return;
        }
        let key = AddressKey::of(ip);
        let mut windows = self.lock();
        if !windows.contains_key(&key) && windows.len() >= ADDRESSES_TRACKED_MAX {
            self.make_room(&mut windows, now);
        }
        let fresh = Window {
            started: now,
            failures: 1,
        };
        windows
            .entry(key)
            .and_modify(|w| {
                if now.saturating_duration_since(w.started) >= self.window {
                    *w = fresh;
                } else {
                    w.failures = w.failures.saturating_add(1);
                }
            })
            .or_insert(fresh);
    }

    /// Addresses whose failures are remembered now (for tests).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Drops ended windows, and if none has ended the one with the fewest
    /// failures (the oldest of those).
    fn make_room(&self, windows: &mut HashMap<AddressKey, Window>, now: Instant) {
        windows.retain(|_, w| now.saturating_duration_since(w.started) < self.window);
        if windows.len() >= ADDRESSES_TRACKED_MAX
            && let Some(least) = windows
                .iter()
                .min_by_key(|(_, w)| (w.failures, w.started))
                .map(|(k, _)| *k)
        {
            windows.remove(&least);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AddressKey, Window>> {
        // Every update leaves the map consistent: a panic elsewhere while
        // it was held cannot have broken it.
        crate::poison::lock(&self.windows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const WINDOW: Duration = Duration::from_secs(60);

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let t = LoginThrottle::new(3, WINDOW);
        let start = Instant::now();
        for i in 0..3 {
            assert_eq!(t.check(v4(1), start), Ok(()), "failure {i}");
            t.record_failure(v4(1), start + Duration::from_secs(i));
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(t.check(v4(1), later), Err(Duration::from_secs(40)));
        assert_eq!(t.check(v4(2), later), Ok(()), "another address");
        assert_eq!(t.check(v4(1), start + WINDOW), Ok(()), "window over");
        // A failure after the window starts a new one.
        t.record_failure(v4(1), start + WINDOW);
        assert_eq!(t.check(v4(1), start + WINDOW), Ok(()));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let t = LoginThrottle::new(2, WINDOW);
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        t.record_failure(a, now);
        t.record_failure(b, now);
        assert!(t.check(a, now).is_err());
        assert!(t.check(b, now).is_err());
        assert_eq!(t.check(other, now), Ok(()));
        // An IPv4-mapped address counts as its IPv4 address.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        t.record_failure(mapped, now);
        t.record_failure(v4(7), now);
        assert!(t.check(v4(7), now).is_err());
        assert!(t.check(IpAddr::V6(Ipv6Addr::LOCALHOST), now).is_ok());
    }

    #[test]
    fn zero_means_no_limit_and_nothing_tracked() {
        let t = LoginThrottle::new(0, WINDOW);
        let now = Instant::now();
        for _ in 0..100 {
            t.record_failure(v4(1), now);
        }
        assert_eq!(t.check(v4(1), now), Ok(()));
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let t = LoginThrottle::new(1, WINDOW);
        let start = Instant::now();
        let addr = |i: usize| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
        for i in 0..ADDRESSES_TRACKED_MAX {
            t.record_failure(addr(i), start + Duration::from_millis(i as u64));
        }
        assert_eq!(t.tracked(), ADDRESSES_TRACKED_MAX);
        let now = start + Duration::from_secs(30);
        t.record_failure(addr(ADDRESSES_TRACKED_MAX), now);
        assert_eq!(t.tracked(), ADDRESSES_TRACKED_MAX);
        assert_eq!(t.check(addr(0), now), Ok(()), "the oldest window went");
        assert!(t.check(addr(1), now).is_err());
        assert!(t.check(addr(ADDRESSES_TRACKED_MAX), now).is_err());
        // Once windows have ended, they make room first.
        let after = start + WINDOW + Duration::from_secs(11);
        t.record_failure(v4(200), after);
        assert_eq!(t.tracked(), 2);

        // A blocked address is kept over ones with fewer failures.
        let t = LoginThrottle::new(2, WINDOW);
        t.record_failure(v4(1), start);
        t.record_failure(v4(1), start);
        for i in 1..ADDRESSES_TRACKED_MAX + 5 {
            t.record_failure(addr(i), start + Duration::from_millis(i as u64));
        }
        assert_eq!(t.tracked(), ADDRESSES_TRACKED_MAX);
        assert!(t.check(v4(1), now).is_err(), "still blocked");
    }
}
