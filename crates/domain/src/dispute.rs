//! The dispute (chargeback) of a completed payment, and the rule for
//! what a gateway's report of one changes.
//!
//! A payment has at most one current dispute. `won`, `lost` and `closed`
//! are final: a late `open` report of the same dispute is recorded, not
//! applied. A dispute never changes the payment's or the order's status:
//! the shop is told and decides (stop the shipment, send evidence).

use crate::money::Money;

/// Where a dispute stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisputeStatus {
    /// The customer's bank disputes the payment; the shop may answer
    /// (Stripe `needs_response`, `under_review` and their `warning_` forms).
    Open,
    /// Decided for the shop. Final.
    Won,
    /// Decided for the customer: the money was taken back. Final.
    Lost,
    /// An inquiry closed without a chargeback. Final.
    Closed,
}

impl DisputeStatus {
    /// Every status.
    pub const ALL: [DisputeStatus; 4] = [Self::Open, Self::Won, Self::Lost, Self::Closed];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Won => "won",
            Self::Lost => "lost",
            Self::Closed => "closed",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// True for `won`, `lost` and `closed`.
    pub fn is_final(self) -> bool {
        self != Self::Open
    }
}

/// A dispute as a gateway reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    /// The gateway's id of the dispute (`dp_...`, `PP-D-...`).
    pub dispute_id: String,
    /// Where it stands.
    pub status: DisputeStatus,
    /// The amount disputed.
    pub amount: Money,
    /// The gateway's reason code (`fraudulent`, `MERCHANDISE_OR_SERVICE_NOT_RECEIVED`, ...).
    pub reason: Option<String>,
}

/// What a dispute report does to the payment's current dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisputeChange {
    /// The payment's dispute becomes this one. `opened` / `closed` say
    /// which notification the shop gets: `payment.disputed` when a dispute
    /// opens, `payment.dispute_closed` when it reaches a final status.
    Applied {
        /// The dispute as it must be stored.
        dispute: Dispute,
        /// A dispute opened (a new one, or the first report of it).
        opened: bool,
        /// The dispute reached a final status with this report.
        closed: bool,
    },
    /// Nothing changes: the same report again, or a report about a
    /// dispute that is already final.
    Unchanged,
}

/// Decides what `report` does to the payment's `current` dispute.
///
/// - no dispute yet: the report becomes the dispute;
/// - the same dispute: a final one never changes; an open one takes the
///   report (status, amount, reason) when it differs;
/// - another dispute: it replaces the current one when that is final (a
///   new chargeback after the last ended) or when it is open itself; a
///   final report of another dispute does not hide an open one.
pub fn next_dispute(current: Option<&Dispute>, report: &Dispute) -> DisputeChange {
    let applied = |opened: bool| DisputeChange::Applied {
        dispute: report.clone(),
        opened,
        closed: report.status.is_final(),
    };
    match current {
        None => applied(true),
        Some(current) if current.dispute_id == report.dispute_id => {
            if current.status.is_final() || current == report {
                DisputeChange::Unchanged
            } else {
                applied(false)
            }
        }
        Some(current) if current.status.is_final() || !report.status.is_final() => applied(true),
        Some(_) => DisputeChange::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn dispute(id: &str, status: DisputeStatus) -> Dispute {
        Dispute {
            dispute_id: id.into(),
            status,
            amount: Money::from_minor(15000, Currency::parse("USD").unwrap()),
            reason: Some("fraudulent".into()),
        }
    }

    #[test]
    fn a_dispute_opens_is_won_and_a_late_open_does_not_reopen_it() {
        let open = dispute("dp_1", DisputeStatus::Open);
        let DisputeChange::Applied {
            dispute: first,
            opened: true,
            closed: false,
        } = next_dispute(None, &open)
        else {
            panic!("the first report opens the dispute");
        };
        let won = dispute("dp_1", DisputeStatus::Won);
        let DisputeChange::Applied {
            dispute: decided,
            opened: false,
            closed: true,
        } = next_dispute(Some(&first), &won)
        else {
            panic!("won closes it");
        };
        assert_eq!(
            next_dispute(Some(&decided), &open),
            DisputeChange::Unchanged
        );
        assert_eq!(next_dispute(Some(&decided), &won), DisputeChange::Unchanged);
        assert_eq!(
            next_dispute(Some(&decided), &dispute("dp_1", DisputeStatus::Lost)),
            DisputeChange::Unchanged
        );
    }

    #[test]
    fn a_new_dispute_replaces_a_final_one_but_a_final_report_does_not_hide_an_open_one() {
        let old = dispute("dp_1", DisputeStatus::Lost);
        let new = dispute("dp_2", DisputeStatus::Open);
        assert!(matches!(
            next_dispute(Some(&old), &new),
            DisputeChange::Applied { opened: true, .. }
        ));
        assert_eq!(next_dispute(Some(&new), &old), DisputeChange::Unchanged);
    }

    #[test]
    fn an_open_dispute_takes_updates_once() {
        let open = dispute("dp_1", DisputeStatus::Open);
        let mut updated = open.clone();
        updated.reason = Some("product_not_received".into());
        assert!(matches!(
            next_dispute(Some(&open), &updated),
            DisputeChange::Applied {
                opened: false,
                closed: false,
                ..
            }
        ));
        assert_eq!(
            next_dispute(Some(&updated), &updated),
            DisputeChange::Unchanged
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in DisputeStatus::ALL {
            assert_eq!(DisputeStatus::parse(status.as_str()), Some(status));
        }
    }
}
