//! Latency histograms and min/median/max summaries.

use std::time::Duration;

/// Sub-buckets per power of two: values are kept to within 1/64 (about 1.6 %).
const SUB: u64 = 64;
const SUB_BITS: u32 = 6;

/// A log-linear histogram of durations in nanoseconds: constant memory, whatever the count.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; bucket(u64::MAX) + 1],
            total: 0,
            max: 0,
        }
    }
}

/// The bucket of `value`: exact below 2·SUB, then SUB buckets per power of two.
fn bucket(value: u64) -> usize {
    if value < 2 * SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let sub = (value >> (exponent - SUB_BITS)) & (SUB - 1);
    (2 * SUB + u64::from(exponent - SUB_BITS - 1) * SUB + sub) as usize
}

/// The smallest value of bucket `index`.
fn bucket_floor(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB {
        return index;
    }
    let exponent = (index - 2 * SUB) / SUB + u64::from(SUB_BITS) + 1;
    let sub = (index - 2 * SUB) % SUB;
    if exponent >= 64 {
        return u64::MAX;
    }
    (1 << exponent) | (sub << (exponent - u64::from(SUB_BITS)))
}

impl Histogram {
    pub(crate) fn record(&mut self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get_mut(bucket(nanos)) {
            *count += 1;
        }
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded, exactly.
    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The value at quantile `q` (0..=1), to within the bucket width.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let low = bucket_floor(index);
                let high = bucket_floor(index + 1).saturating_sub(1);
                return Duration::from_nanos((low + (high - low) / 2).min(self.max));
            }
        }
        self.max()
    }
}

/// Minimum, median and maximum of some values (the median of an even count is the mean of the
/// middle two).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) min: f64,
    pub(crate) median: f64,
    pub(crate) max: f64,
}

pub(crate) fn summarize(values: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        *sorted.get(mid)?
    } else {
        (sorted.get(mid - 1)? + sorted.get(mid)?) / 2.0
    };
    Some(Summary { min, median, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        for index in 0..bucket(u64::MAX) {
            assert_eq!(bucket(bucket_floor(index)), index);
            assert!(bucket_floor(index + 1) > bucket_floor(index));
        }
    }

    #[test]
    fn quantiles_are_within_the_bucket_width() {
        let mut histogram = Histogram::default();
        for micros in 1..=1000 {
            histogram.record(Duration::from_micros(micros));
        }
        let p50 = histogram.quantile(0.5).as_nanos() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.02, "{p50}");
        let p99 = histogram.quantile(0.99).as_nanos() as f64;
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(histogram.max(), Duration::from_micros(1000));
        assert_eq!(histogram.count(), 1000);
    }

    #[test]
    fn medians() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(summarize(&[1.0, 2.0, 4.0, 10.0]).unwrap().median, 3.0);
        assert!(summarize(&[]).is_none());
    }
}
