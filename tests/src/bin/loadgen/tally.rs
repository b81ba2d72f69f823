//! What the simulated fleet saw, counted while the night runs: every answered batch and
//! heartbeat with its latency, every failure by kind. The report at the end is made from
//! this alone, so what it says is what the devices experienced, not what central claims.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

/// The counters every device task adds to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    batch_ms: Mutex<Vec<f64>>,
    heartbeat_ms: Mutex<Vec<f64>>,
    batches_applied: AtomicU64,
    records_applied: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    last_ack: Mutex<Option<Instant>>,
}

impl Tally {
    /// A batch central acked after `took`; `applied` false is a replay (acked again, nothing
    /// changed), which counts for latency but adds no records.
    pub(crate) fn batch(&self, took: Duration, applied: bool, records: usize) {
        self.batch_ms.lock().push(millis(took));
        if applied {
            self.batches_applied.fetch_add(1, Ordering::Relaxed);
            self.records_applied
                .fetch_add(records as u64, Ordering::Relaxed);
        }
        *self.last_ack.lock() = Some(Instant::now());
    }

    /// A heartbeat central answered with 200 after `took`.
    pub(crate) fn heartbeat(&self, took: Duration) {
        self.heartbeat_ms.lock().push(millis(took));
    }

    /// `count` failures of `kind` (`batch_connect`, `heartbeat_http_503`, `unfinished`, …).
    pub(crate) fn error(&self, kind: &str, count: u64) {
        *self.errors.lock().entry(kind.to_owned()).or_default() += count;
    }

    pub(crate) fn batches_applied(&self) -> u64 {
        self.batches_applied.load(Ordering::Relaxed)
    }

    pub(crate) fn records_applied(&self) -> u64 {
        self.records_applied.load(Ordering::Relaxed)
    }

    pub(crate) fn heartbeats(&self) -> usize {
        self.heartbeat_ms.lock().len()
    }

    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }

    /// How long after `start` the last batch was acked: the span batch throughput is over.
    pub(crate) fn batch_span(&self, start: Instant) -> Option<Duration> {
        self.last_ack.lock().map(|at| at.duration_since(start))
    }

    pub(crate) fn batch_latency(&self) -> Percentiles {
        Percentiles::of(&self.batch_ms.lock())
    }

    pub(crate) fn heartbeat_latency(&self) -> Percentiles {
        Percentiles::of(&self.heartbeat_ms.lock())
    }
}

fn millis(took: Duration) -> f64 {
    took.as_secs_f64() * 1000.0
}

/// The median, the 99th percentile and the worst of a set of latencies, in milliseconds;
/// zeros when there were none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    fn of(samples: &[f64]) -> Percentiles {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample at or above the fraction of all samples.
        let rank = |fraction: f64| {
            let at = (fraction * sorted.len() as f64).ceil() as usize;
            sorted.get(at.saturating_sub(1)).copied().unwrap_or(0.0)
        };
        Percentiles {
            p50: rank(0.50),
            p99: rank(0.99),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }

    pub(crate) fn to_json(self) -> Value {
        let round = |ms: f64| (ms * 10.0).round() / 10.0;
        json!({"p50": round(self.p50), "p99": round(self.p99), "max": round(self.max)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_samples() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        let p = Percentiles::of(&samples);
        assert_eq!((p.p50, p.p99, p.max), (100.0, 198.0, 200.0));
    }

    #[test]
    fn no_samples_give_zero_percentiles() {
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
