//! What one subscription received, checked against ids 0..expected-1 as they come (the Python
//! client's `Tally`).

#[derive(Debug, Clone)]
pub struct Tally {
    pub expected: u64,
    pub received: u64,
    next_id: i64,
    /// Ids skipped over (missing unless they come later, then also repeats).
    gaps: u64,
    /// Ids at or below one already seen: duplicates or out of order.
    pub repeats: u64,
    pub last_at: Option<f64>,
}

impl Tally {
    pub fn new(expected: u64) -> Self {
        Tally {
            expected,
            received: 0,
            next_id: 0,
            gaps: 0,
            repeats: 0,
            last_at: None,
        }
    }

    /// Counts one `next`; true when this completes the subscription.
    pub fn record(&mut self, value_id: Option<i64>, now: f64) -> bool {
        self.received += 1;
        self.last_at = Some(now);
        match value_id {
            Some(id) if id == self.next_id => self.next_id += 1,
            Some(id) if id > self.next_id => {
                self.gaps = self.gaps.saturating_add(id.abs_diff(self.next_id));
                self.next_id = id.saturating_add(1);
            }
            _ => self.repeats += 1,
        }
        self.received == self.expected
    }

    pub fn missing(&self) -> u64 {
        let unreached = i128::from(self.expected) - i128::from(self.next_id);
        self.gaps
            .saturating_add(u64::try_from(unreached.max(0)).unwrap_or(u64::MAX))
    }

    pub fn ok(&self) -> bool {
        self.received == self.expected && self.missing() == 0 && self.repeats == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    fn check(ids: &[Option<i64>], expected: u64) -> (u64, u64, u64) {
        let mut tally = Tally::new(expected);
        for id in ids {
            tally.record(*id, 0.0);
        }
        (tally.missing(), tally.repeats, tally.received)
    }

    #[test]
    fn finds_gaps_and_repeats() {
        assert_eq!(check(&[Some(0), Some(1), Some(2)], 3), (0, 0, 3));
        let ids = [Some(0), Some(2), Some(1), Some(1), None];
        assert_eq!(check(&ids, 5), (3, 3, 5));
        assert_eq!(check(&[Some(0), Some(1)], 4), (2, 0, 2));
    }
}
