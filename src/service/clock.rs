//! The clock port: every "now" of the service (expiries, windows, timestamps written to SQL,
//! the in-process store's TTLs) comes from one `Clock`, so that tests can move time instead of
//! sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::domain::time::{Millis, ms};

/// The current time, as epoch milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

/// The operating system's clock: what every deployment uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        crate::domain::time::now_ms()
    }
}

/// A clock that runs with the system clock plus an offset that only grows, moved forward by
/// `advance` (tests: "let 2 minutes pass" without waiting them). Time never goes backwards.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_ms: AtomicI64,
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(ms(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        crate::domain::time::now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
}

/// The clock of a deployment.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_forward_only_when_told() {
        let clock = ManualClock::new();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now_ms();
        assert!(after - before >= 3_600_000, "{before} → {after}");
        assert!(after - before < 3_660_000, "{before} → {after}");
    }
}
