//! The refunds of a completed payment: a ledger per payment and the rule
//! that turns what the gateways report into one `refunded_amount`.
//!
//! Gateways report refunds in two ways, often both for the same refund:
//! one refund at a time, by the gateway's refund id (Stripe's `refund.*`,
//! PayPal's `PAYMENT.CAPTURE.REFUNDED`), and as a running total of
//! everything refunded so far (Stripe's `charge.refunded` carries
//! `amount_refunded`). They arrive late, twice and out of order. So the
//! ledger keeps, per refund id, the latest status reported for it, and the
//! latest running total (by the gateway's time), and the amount refunded is
//! the larger of the two views:
//!
//! - a refund id counts once, however often it is reported;
//! - only `succeeded` refunds count;
//! - `refunded_amount = max(sum of succeeded refunds, latest running total)`,
//!   so a refund reported both ways counts once (the total includes it) and
//!   an older total never lowers a newer one;
//! - a refund that succeeded and later failed or was canceled stops
//!   counting: it leaves the sum, and it is taken out of a running total
//!   reported after it succeeded and before it failed.
//!
//! Every merge here is a maximum over (time, rank), so the ledger a set of
//! reports leads to does not depend on their order or on repeats: the
//! property tests check exactly that. The ledger refuses (and changes
//! nothing for) a report in another currency than the payment's, or one
//! that would take `refunded_amount` above the amount received.

use chrono::{DateTime, Utc};

use crate::money::Money;

/// Where one refund stands at the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// Asked for, not done yet (Stripe `pending`/`requires_action`, PayPal
    /// `PENDING`). Does not count.
    Pending,
    /// The money went back to the customer. Counts.
    Succeeded,
    /// The refund failed (after succeeding, at times). Does not count.
    Failed,
    /// The refund was canceled before it was done. Does not count.
    Canceled,
}

impl RefundStatus {
    /// Every status.
    pub const ALL: [RefundStatus; 4] =
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Canceled];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Where the status comes in a refund's life: two reports of one
    /// instant are ordered by it, since a refund is pending before it
    /// succeeds and succeeds before it can fail.
    fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Succeeded => 1,
            Self::Failed | Self::Canceled => 2,
        }
    }

    fn is_undone(self) -> bool {
        matches!(self, Self::Failed | Self::Canceled)
    }
}

/// One refund as a gateway reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The gateway's id of the refund (`re_...`, a PayPal refund id, the
    /// generic gateway's `refund_id`).
    pub refund_id: String,
    /// How much this refund gives back.
    pub amount: Money,
    /// Where it stands.
    pub status: RefundStatus,
}

/// What one gateway event says about a payment's refunds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReport {
    /// The refunds the event names, each by its id.
    pub refunds: Vec<Refund>,
    /// The total refunded so far, when the event carries one.
    pub running_total: Option<Money>,
    /// When the gateway says this was true (its event time).
    pub reported_at: DateTime<Utc>,
}

/// A refund as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The refund as last reported (the latest by time, then by rank).
    pub refund: Refund,
    /// When that status was reported.
    pub status_at: DateTime<Utc>,
    /// The earliest report that said it succeeded, so that a running total
    /// reported between its success and its failure is known to include it.
    pub succeeded_at: Option<DateTime<Utc>>,
}

/// A running total and when the gateway reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningTotal {
    /// Everything refunded so far, as the gateway counted it.
    pub amount: Money,
    /// The gateway's time of the report.
    pub reported_at: DateTime<Utc>,
}

/// Every refund reported for one payment, and the latest running total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundLedger {
    /// One entry per refund id, in the order they were first reported.
    pub entries: Vec<LedgerEntry>,
    /// The latest running total, by the gateway's time.
    pub running_total: Option<RunningTotal>,
}

/// Why a refund report was refused; the ledger is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// The report is in another currency than the payment's.
    #[error("refund currency {refund} differs from the payment's {payment}")]
    Currency {
        /// The report's currency code.
        refund: &'static str,
        /// The payment's currency code.
        payment: &'static str,
    },
    /// The report would take the refunded amount above what was received.
    #[error("refunds of {refunded} would exceed the amount received, {received}")]
    AboveReceived {
        /// What the refunded amount would become.
        refunded: String,
        /// What the payment received.
        received: String,
    },
    /// A refund's amount is not positive, or a running total is negative.
    #[error("refund amount {0} is not positive")]
    NotPositive(String),
}

/// What applying a report changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerChange {
    /// The ledger afterwards.
    pub ledger: RefundLedger,
    /// `refunded_amount` before the report.
    pub refunded_before: Money,
    /// `refunded_amount` afterwards.
    pub refunded_after: Money,
    /// The refunds that had counted and stopped counting with this report
    /// (failed or canceled after succeeding): the shop is told of each.
    pub undone: Vec<Refund>,
}

impl RefundLedger {
    /// The amount refunded, in `currency` (the payment's): the larger of
    /// the succeeded refunds' sum and the latest running total, less the
    /// refunds that failed after that total was reported.
    pub fn refunded_amount(&self, currency: crate::money::Currency) -> Money {
        let succeeded: i64 = self
            .entries
            .iter()
            .filter(|entry| entry.refund.status == RefundStatus::Succeeded)
            .map(|entry| entry.refund.amount.minor())
            .fold(0, i64::saturating_add);
        let total = self.running_total.map_or(0, |total| {
            let undone_since: i64 = self
                .entries
                .iter()
                .filter(|entry| {
                    entry.refund.status.is_undone()
                        && entry.status_at > total.reported_at
                        && entry
                            .succeeded_at
                            .is_some_and(|succeeded| succeeded <= total.reported_at)
                })
                .map(|entry| entry.refund.amount.minor())
                .fold(0, i64::saturating_add);
            total.amount.minor().saturating_sub(undone_since).max(0)
        });
        Money::from_minor(succeeded.max(total), currency)
    }

    /// The entry of `refund_id`, if it was ever reported.
    pub fn entry(&self, refund_id: &str) -> Option<&LedgerEntry> {
        self.entries
            .iter()
            .find(|entry| entry.refund.refund_id == refund_id)
    }

    /// Applies `report` to the ledger of a payment that received
    /// `received`: the merged ledger and what changed, or why it is
    /// refused (then nothing changes).
    pub fn apply(
        &self,
        report: &RefundReport,
        received: Money,
    ) -> Result<LedgerChange, RefundError> {
        let currency = received.currency();
        let amounts = report
            .refunds
            .iter()
            .map(|refund| refund.amount)
            .chain(report.running_total);
        for amount in amounts {
            if amount.currency() != currency {
                return Err(RefundError::Currency {
                    refund: amount.currency().code(),
                    payment: currency.code(),
                });
            }
        }
        if let Some(refund) = report.refunds.iter().find(|r| !r.amount.is_positive()) {
            return Err(RefundError::NotPositive(refund.amount.amount_string()));
        }
        if let Some(total) = report.running_total.filter(|t| t.minor() < 0) {
            return Err(RefundError::NotPositive(total.amount_string()));
        }
        let mut next = self.clone();
        for refund in &report.refunds {
            next.merge_refund(refund, report.reported_at);
        }
        if let Some(amount) = report.running_total {
            next.merge_total(RunningTotal {
                amount,
                reported_at: report.reported_at,
            });
        }
        let refunded_before = self.refunded_amount(currency);
        let refunded_after = next.refunded_amount(currency);
        if refunded_after.minor() > received.minor() {
            return Err(RefundError::AboveReceived {
                refunded: refunded_after.amount_string(),
                received: received.amount_string(),
            });
        }
        let undone = next
            .entries
            .iter()
            .filter(|entry| entry.refund.status.is_undone())
            .filter(|entry| {
                self.entry(&entry.refund.refund_id)
                    .is_some_and(|before| before.refund.status == RefundStatus::Succeeded)
            })
            .map(|entry| entry.refund.clone())
            .collect();
        Ok(LedgerChange {
            ledger: next,
            refunded_before,
            refunded_after,
            undone,
        })
    }

    fn merge_refund(&mut self, refund: &Refund, at: DateTime<Utc>) {
        let succeeded_at = (refund.status == RefundStatus::Succeeded).then_some(at);
        match self
            .entries
            .iter_mut()
            .find(|entry| entry.refund.refund_id == refund.refund_id)
        {
            None => self.entries.push(LedgerEntry {
                refund: refund.clone(),
                status_at: at,
                succeeded_at,
            }),
            Some(entry) => {
                entry.succeeded_at = match (entry.succeeded_at, succeeded_at) {
                    (Some(known), Some(new)) => Some(known.min(new)),
                    (known, new) => known.or(new),
                };
                let newer = (at, refund.status.rank(), refund.amount.minor())
                    > (
                        entry.status_at,
                        entry.refund.status.rank(),
                        entry.refund.amount.minor(),
                    );
                if newer {
                    entry.refund = refund.clone();
                    entry.status_at = at;
                }
            }
        }
    }

    fn merge_total(&mut self, total: RunningTotal) {
        let newer = self.running_total.is_none_or(|current| {
            (total.reported_at, total.amount.minor())
                > (current.reported_at, current.amount.minor())
        });
        if newer {
            self.running_total = Some(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("USD").unwrap())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn refund(id: &str, minor: i64, status: RefundStatus) -> Refund {
        Refund {
            refund_id: id.into(),
            amount: usd(minor),
            status,
        }
    }

    fn one(refund: Refund, seconds: i64) -> RefundReport {
        RefundReport {
            refunds: vec![refund],
            running_total: None,
            reported_at: at(seconds),
        }
    }

    fn total(minor: i64, seconds: i64) -> RefundReport {
        RefundReport {
            refunds: Vec::new(),
            running_total: Some(usd(minor)),
            reported_at: at(seconds),
        }
    }

    fn run(reports: &[RefundReport]) -> Money {
        let mut ledger = RefundLedger::default();
        for report in reports {
            ledger = ledger.apply(report, usd(15000)).unwrap().ledger;
        }
        ledger.refunded_amount(usd(0).currency())
    }

    #[test]
    fn a_refund_reported_per_refund_and_as_a_running_total_counts_once() {
        let reports = [
            one(refund("re_1", 5000, RefundStatus::Succeeded), 10),
            total(5000, 11),
        ];
        assert_eq!(run(&reports), usd(5000));
        assert_eq!(run(&[reports[1].clone(), reports[0].clone()]), usd(5000));
    }

    #[test]
    fn an_older_running_total_never_lowers_a_newer_one() {
        assert_eq!(run(&[total(9000, 20), total(5000, 10)]), usd(9000));
    }

    #[test]
    fn a_refund_that_fails_after_succeeding_stops_counting_also_in_the_total() {
        let reports = [
            one(refund("re_1", 5000, RefundStatus::Succeeded), 10),
            total(5000, 11),
            one(refund("re_1", 5000, RefundStatus::Failed), 30),
        ];
        assert_eq!(run(&reports), usd(0));
        let mut ledger = RefundLedger::default();
        for report in &reports[..2] {
            ledger = ledger.apply(report, usd(15000)).unwrap().ledger;
        }
        let change = ledger.apply(&reports[2], usd(15000)).unwrap();
        assert_eq!(change.undone, [refund("re_1", 5000, RefundStatus::Failed)]);
        assert_eq!(change.refunded_before, usd(5000));
        assert_eq!(change.refunded_after, usd(0));
    }

    #[test]
    fn a_refund_that_succeeded_after_a_total_is_not_taken_out_of_it_when_it_fails() {
        // re_1 is known only through the total of second 20; re_2
        // succeeded at 30, after that total, and failed at 40.
        let reports = [
            total(5000, 20),
            one(refund("re_2", 2000, RefundStatus::Succeeded), 30),
            one(refund("re_2", 2000, RefundStatus::Failed), 40),
        ];
        assert_eq!(run(&reports), usd(5000));
    }

    #[test]
    fn a_late_succeeded_report_does_not_revive_a_failed_refund() {
        let reports = [
            one(refund("re_1", 5000, RefundStatus::Failed), 30),
            one(refund("re_1", 5000, RefundStatus::Succeeded), 10),
        ];
        assert_eq!(run(&reports), usd(0));
    }

    #[test]
    fn refusals_change_nothing() {
        let ledger = RefundLedger::default()
            .apply(
                &one(refund("re_1", 10000, RefundStatus::Succeeded), 1),
                usd(15000),
            )
            .unwrap()
            .ledger;
        let above = ledger.apply(
            &one(refund("re_2", 6000, RefundStatus::Succeeded), 2),
            usd(15000),
        );
        assert!(
            matches!(above, Err(RefundError::AboveReceived { .. })),
            "{above:?}"
        );
        let euro = Money::from_minor(100, Currency::parse("EUR").unwrap());
        let other = RefundReport {
            refunds: vec![Refund {
                refund_id: "re_3".into(),
                amount: euro,
                status: RefundStatus::Succeeded,
            }],
            running_total: None,
            reported_at: at(3),
        };
        assert!(matches!(
            ledger.apply(&other, usd(15000)),
            Err(RefundError::Currency {
                refund: "EUR",
                payment: "USD"
            })
        ));
        assert!(matches!(
            ledger.apply(
                &one(refund("re_4", 0, RefundStatus::Succeeded), 4),
                usd(15000)
            ),
            Err(RefundError::NotPositive(_))
        ));
    }

    #[test]
    fn statuses_round_trip() {
        for status in RefundStatus::ALL {
            assert_eq!(RefundStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RefundStatus::parse("SUCCEEDED"), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// One refund's life: its amount, when it succeeded, and when it
        /// failed (if it did), as offsets in a timeline of distinct seconds.
        #[derive(Debug, Clone)]
        struct Life {
            amount: i64,
            pending_at: Option<i64>,
            succeeded_at: i64,
            failed_at: Option<i64>,
        }

        fn lives() -> impl Strategy<Value = Vec<Life>> {
            prop::collection::vec(
                (
                    1_i64..=3000,
                    any::<bool>(),
                    0_i64..50,
                    prop::option::of(1_i64..50),
                ),
                1..5,
            )
            .prop_map(|raw| {
                raw.into_iter()
                    .enumerate()
                    .map(|(i, (amount, pending, start, fails_after))| {
                        // Distinct seconds per refund: i is the last digit.
                        let second = |n: i64| n * 10 + i64::try_from(i).unwrap();
                        Life {
                            amount,
                            pending_at: pending.then(|| second(start)),
                            succeeded_at: second(start + 1),
                            failed_at: fails_after.map(|after| second(start + 1 + after)),
                        }
                    })
                    .collect()
            })
        }

        /// What was refunded at second `t`: the refunds succeeded by then
        /// and not failed by then.
        fn true_total(lives: &[Life], t: i64) -> i64 {
            lives
                .iter()
                .filter(|l| l.succeeded_at <= t && l.failed_at.is_none_or(|f| f > t))
                .map(|l| l.amount)
                .sum()
        }

        /// Every report a gateway could send for these lives: each status
        /// change per refund, and running totals at chosen instants (the
        /// 5 in them keeps totals off the refunds' own seconds).
        fn reports(lives: &[Life], totals_at: &[i64]) -> Vec<RefundReport> {
            let mut all = Vec::new();
            for (i, life) in lives.iter().enumerate() {
                let id = format!("re_{i}");
                let mut push = |status, second: i64| {
                    all.push(one(refund(&id, life.amount, status), second));
                };
                if let Some(p) = life.pending_at {
                    push(RefundStatus::Pending, p);
                }
                push(RefundStatus::Succeeded, life.succeeded_at);
                if let Some(f) = life.failed_at {
                    push(RefundStatus::Failed, f);
                }
            }
            for t in totals_at {
                let t = t * 10 + 5;
                all.push(total(true_total(lives, t), t));
            }
            all
        }

        fn currency() -> Currency {
            Currency::parse("USD").unwrap()
        }

        proptest! {
            #[test]
            fn a_final_running_total_makes_up_for_missing_per_refund_reports(
                lives in lives(),
                totals_at in prop::collection::vec(0_i64..110, 0..4),
                dropped in prop::collection::vec(any::<bool>(), 12),
                order in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
            ) {
                // The gateway's last word is a total after every change;
                // per-refund reports may be lost, except failures (a lost
                // failure of a refund reported succeeded cannot be known).
                let mut totals_at = totals_at;
                totals_at.push(200);
                let mut delivery: Vec<RefundReport> = reports(&lives, &totals_at)
                    .into_iter()
                    .enumerate()
                    .filter(|(i, report)| {
                        let failure = report.refunds.iter().any(|r| r.status.is_undone());
                        failure || report.running_total.is_some() || !dropped[i % dropped.len()]
                    })
                    .map(|(_, report)| report)
                    .collect();
                for (i, index) in order.iter().enumerate() {
                    let len = delivery.len();
                    delivery.swap(i % len, index.index(len));
                }
                let mut ledger = RefundLedger::default();
                for report in &delivery {
                    ledger = ledger.apply(report, usd(15000)).expect("consistent").ledger;
                }
                let expected: i64 = lives
                    .iter()
                    .filter(|l| l.failed_at.is_none())
                    .map(|l| l.amount)
                    .sum();
                prop_assert_eq!(ledger.refunded_amount(currency()).minor(), expected);
            }

            #[test]
            fn any_interleaving_and_duplication_gives_the_same_refunded_amount(
                lives in lives(),
                totals_at in prop::collection::vec(0_i64..110, 0..4),
                order in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
                repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let reports = reports(&lives, &totals_at);
                // A shuffle of the reports, with some delivered twice.
                let mut delivery: Vec<RefundReport> = reports.clone();
                for index in &repeats {
                    delivery.push(index.get(&reports).clone());
                }
                for (i, index) in order.iter().enumerate() {
                    let len = delivery.len();
                    delivery.swap(i % len, index.index(len));
                }
                let received = usd(15000);
                let fails = lives.iter().any(|l| l.failed_at.is_some());
                let mut ledger = RefundLedger::default();
                for report in &delivery {
                    let change = ledger.apply(report, received).expect("consistent reports");
                    prop_assert!(change.refunded_after.minor() <= received.minor());
                    if !fails {
                        prop_assert!(
                            change.refunded_after.minor() >= change.refunded_before.minor(),
                            "decreased without a failed refund"
                        );
                    }
                    ledger = change.ledger;
                }
                let expected: i64 = lives
                    .iter()
                    .filter(|l| l.failed_at.is_none())
                    .map(|l| l.amount)
                    .sum();
                prop_assert_eq!(ledger.refunded_amount(currency()).minor(), expected);
                // In order, it is the same.
                let mut in_order = RefundLedger::default();
                for report in &reports {
                    in_order = in_order.apply(report, received).unwrap().ledger;
                }
                prop_assert_eq!(in_order.refunded_amount(currency()).minor(), expected);
            }

            #[test]
            fn a_refused_report_changes_nothing_and_the_amount_never_exceeds_received(
                lives in lives(),
                extra in 1_i64..20000,
            ) {
                let received = usd(15000);
                let mut ledger = RefundLedger::default();
                for report in reports(&lives, &[]) {
                    ledger = ledger.apply(&report, received).unwrap().ledger;
                }
                let before = ledger.clone();
                let refunded = ledger.refunded_amount(currency()).minor();
                let big = one(refund("re_big", extra, RefundStatus::Succeeded), 10_000);
                match ledger.apply(&big, received) {
                    Ok(change) => {
                        prop_assert!(refunded + extra <= received.minor());
                        prop_assert_eq!(change.refunded_after.minor(), refunded + extra);
                    }
                    Err(RefundError::AboveReceived { .. }) => {
                        prop_assert!(refunded + extra > received.minor());
                        prop_assert_eq!(&ledger, &before);
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
