//! Background work a shard does from its loop in slices, within a share of its time:
//! deleting the keys of slots the node lost (`slot_migration::trim_step`).
//!
//! Done flat out, such work took a small machine's CPUs from everything else: the
//! requests of the shard's own clients, and the other processes of a migration (the
//! next task's write pause). Redis runs its own background cycles (active expiry, the
//! active trim of 8.4) within 25% of the CPU; a [`Pace`] gives a quarter of each 10 ms,
//! in slices of at most half a millisecond, so the loop serves its connections in
//! between.

use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_millis(10);
const SHARE: Duration = Duration::from_micros(2_500);
const SLICE: Duration = Duration::from_micros(500);

/// One kind of background work's account of its time in the current period.
pub struct Pace {
    period_start: Instant,
    spent: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { period_start: Instant::now(), spent: Duration::ZERO }
    }
}

/// What a slice of background work needs from the shard's loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Nothing left.
    Idle,
    /// More to do now: the loop does not sleep.
    More,
    /// More to do from this instant on: the loop may sleep until then.
    At(Instant),
}

impl Step {
    /// The loop may sleep (until the instant, for `At`).
    pub fn lets_sleep(self) -> bool {
        self != Step::More
    }

    /// The instant the loop must be back, if any.
    pub fn wake_at(self) -> Option<Instant> {
        match self {
            Step::At(at) => Some(at),
            _ => None,
        }
    }
}

impl Pace {
    /// The end of the slice the work may take now, or (Err) when its next slice starts.
    pub fn slice(&mut self) -> Result<Instant, Instant> {
        let now = Instant::now();
        if now.duration_since(self.period_start) >= PERIOD {
            self.period_start = now;
            self.spent = Duration::ZERO;
        }
        if self.spent >= SHARE {
            return Err(self.period_start + PERIOD);
        }
        Ok(now + (SHARE - self.spent).min(SLICE))
    }

    /// Accounts a slice that began at `started`; `left`: the work is not done.
    pub fn done(&mut self, started: Instant, left: bool) -> Step {
        self.spent += started.elapsed();
        if !left {
            Step::Idle
        } else if self.spent >= SHARE {
            Step::At(self.period_start + PERIOD)
        } else {
            Step::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_ends_within_the_share_and_the_next_waits_for_the_period() {
        let mut p = Pace::default();
        let end = p.slice().expect("a fresh period has its whole share");
        assert!(end <= Instant::now() + SLICE);
        // Work that used up the share: the loop is told when the next slice starts.
        let started = Instant::now() - SHARE;
        let next = match p.done(started, true) {
            Step::At(at) => at,
            other => panic!("expected At, got {other:?}"),
        };
        assert_eq!(p.slice(), Err(next));
        assert_eq!(p.done(Instant::now(), false), Step::Idle);
    }

    #[test]
    fn a_new_period_gives_the_share_back() {
        let mut p = Pace { period_start: Instant::now() - PERIOD, spent: SHARE };
        assert!(p.slice().is_ok());
        assert_eq!(p.done(Instant::now(), true), Step::More);
    }
}
