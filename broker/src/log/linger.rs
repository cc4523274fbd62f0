//! When the group committer lingers for more appends, and when it does not.
//!
//! Lingering (waiting up to `GROUP_LINGER_MAX` before a group is written)
//! pays off for *closed-loop* appenders: each waits for its answer, then
//! appends again within microseconds, so a short wait lets one fsync cover
//! all of them instead of splitting them over two alternating groups. For an
//! *open-loop* stream (producers sending at their own pace, whatever the
//! answers) it is pure latency: the appends it waits for arrive at the
//! stream's rate, not right after the answers, so the wait runs out every
//! time. [`LingerBackoff`] tells the two apart from the outcome: a linger
//! that gathered its target keeps lingering on; one that ran out is not
//! tried again for a number of cycles that doubles with each further miss
//! (up to [`SKIP_CYCLES_MAX`]), and one success resets it.

/// Most commit cycles skipped after repeated lingers that ran out: bounds
/// how long a load that turns closed-loop goes without lingering (1024
/// cycles: about 0.25 s at a sync every 0.25 ms). Each probe of an
/// open-loop stream costs its group up to the linger budget: at 64, a
/// 50,000 msg/s stream under `fsync = always` had a publish-to-receive p99
/// about 0.1 ms higher (6 alternating pairs: 1.34 against 1.24 ms), with
/// closed-loop throughput the same within noise.
pub(crate) const SKIP_CYCLES_MAX: u32 = 1024;

/// Back-off state of one log's committer (kept under its queue lock).
#[derive(Debug, Default)]
pub(crate) struct LingerBackoff {
    /// Lingers that ran out in a row.
    misses: u32,
    /// Cycles left to commit without lingering.
    skip: u32,
}

impl LingerBackoff {
    /// Whether this cycle may linger; a skipped cycle counts down.
    pub(crate) fn may_linger(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// Records a linger's outcome: `gathered` if the target arrived before
    /// the wait ran out.
    pub(crate) fn record(&mut self, gathered: bool) {
        if gathered {
            self.misses = 0;
            self.skip = 0;
        } else {
            self.misses = self.misses.saturating_add(1);
            self.skip = 1u32
                .checked_shl(self.misses)
                .unwrap_or(u32::MAX)
                .min(SKIP_CYCLES_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cycles skipped before the next linger is allowed.
    fn skipped(b: &mut LingerBackoff) -> u32 {
        let mut n = 0;
        while !b.may_linger() {
            n += 1;
        }
        n
    }

    #[test]
    fn lingers_every_cycle_while_lingers_gather() {
        let mut b = LingerBackoff::default();
        for _ in 0..100 {
            assert!(b.may_linger());
            b.record(true);
        }
    }

    #[test]
    fn misses_back_off_exponentially_up_to_the_cap() {
        let mut b = LingerBackoff::default();
        let mut seen = Vec::new();
        for _ in 0..13 {
            b.record(false);
            seen.push(skipped(&mut b));
        }
        assert_eq!(
            seen,
            [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024, 1024]
        );
    }

    #[test]
    fn one_gathered_linger_resets_the_back_off() {
        let mut b = LingerBackoff::default();
        for _ in 0..5 {
            b.record(false);
        }
        b.record(true);
        assert!(b.may_linger());
        b.record(false);
        assert_eq!(skipped(&mut b), 2);
    }

    #[test]
    fn many_misses_do_not_overflow() {
        let mut b = LingerBackoff::default();
        for _ in 0..100 {
            b.record(false);
        }
        assert_eq!(skipped(&mut b), SKIP_CYCLES_MAX);
    }
}
