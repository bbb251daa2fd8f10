//! The `--mix` option: which kinds of payment a run's stream is made of,
//! as whole percentages (`succeeded=90,refund=10`), and how a run's N
//! payments are shared among them.
//!
//! A kind names what happens to one payment, not one event: a `refund`
//! payment is confirmed first and then refunded, so it is sent more events
//! than a `succeeded` one. A new kind is a new [`Kind`] variant; the
//! syntax, the checks and the sharing stay as they are.
//!
//! What it deliberately does not do: build or send events (see
//! [`crate::load`]), or accept fractions of a percent: a mix is read by
//! people, and whole percentages are what they write.

use std::fmt;
use std::str::FromStr;

use crate::rng::SplitMix64;

/// What happens to one payment of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Confirmed once by `payment_intent.succeeded`.
    Succeeded,
    /// A Stripe Checkout Session: marked pending with its `cs_...` id,
    /// confirmed by `checkout.session.completed` (paid), which also
    /// teaches payhook the session's PaymentIntent.
    Checkout,
    /// Confirmed, then refunded: one refund reported twice, by
    /// `refund.created` and by the `charge.refunded` running total.
    Refund,
    /// Confirmed, then disputed: `charge.dispute.created`, then
    /// `charge.dispute.closed`, won or lost.
    Dispute,
    /// Confirmed, and sent an event type payhook does not handle
    /// (`customer.created`), which must be answered `ignored` and not stored.
    NotHandled,
}

impl Kind {
    /// Every kind, in the order a mix is printed. Also their `Ord` order,
    /// which [`Mix`] sorts by, and the tie-break of [`Mix::counts`]: new
    /// kinds come after `succeeded`, so the runs of a `succeeded` and
    /// `refund` mix are what they were before them, draw for draw.
    pub const ALL: [Self; 5] = [
        Self::Succeeded,
        Self::Checkout,
        Self::Refund,
        Self::Dispute,
        Self::NotHandled,
    ];

    /// The name `--mix` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Checkout => "checkout",
            Self::Refund => "refund",
            Self::Dispute => "dispute",
            Self::NotHandled => "not_handled",
        }
    }

    /// The kind `--mix` calls `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a `--mix` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// Nothing was given.
    #[error("the mix is empty: give kind=percent pairs, such as succeeded=90,refund=10")]
    Empty,
    /// A part without `=`, or with nothing on one side of it.
    #[error("`{0}` is not kind=percent (such as refund=10)")]
    NotAPair(String),
    /// A kind this benchmark does not know.
    #[error("unknown kind `{0}`: the kinds are {known}", known = known_kinds())]
    UnknownKind(String),
    /// The same kind twice.
    #[error("{0} is given twice")]
    Repeated(Kind),
    /// A share that is not a whole number from 0 to 100.
    #[error("the share of {kind} must be a whole percent from 0 to 100, got `{share}`")]
    BadShare {
        /// Whose share.
        kind: Kind,
        /// What was written.
        share: String,
    },
    /// Shares that do not add up to 100.
    #[error("the shares add up to {0} %, not 100 %")]
    Total(u32),
}

/// `succeeded, checkout, refund, ...`, for error messages.
fn known_kinds() -> String {
    Kind::ALL.map(Kind::name).join(", ")
}

/// The shares of a run's payments by kind, in whole percent adding up to
/// 100. The default is every payment `succeeded`, the stream of the runs
/// before `--mix` existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Every kind given, in [`Kind::ALL`] order, zero shares included.
    shares: Vec<(Kind, u32)>,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            shares: vec![(Kind::Succeeded, 100)],
        }
    }
}

impl FromStr for Mix {
    type Err = MixError;

    /// Reads `kind=percent[,kind=percent...]`; spaces around the parts
    /// are allowed, kinds in any order, each once.
    fn from_str(text: &str) -> Result<Self, MixError> {
        if text.trim().is_empty() {
            return Err(MixError::Empty);
        }
        let mut shares: Vec<(Kind, u32)> = Vec::new();
        for part in text.split(',') {
            let (name, share) = part
                .split_once('=')
                .map(|(name, share)| (name.trim(), share.trim()))
                .filter(|(name, share)| !name.is_empty() && !share.is_empty())
                .ok_or_else(|| MixError::NotAPair(part.trim().to_owned()))?;
            let kind = Kind::from_name(name).ok_or_else(|| MixError::UnknownKind(name.into()))?;
            if shares.iter().any(|(given, _)| *given == kind) {
                return Err(MixError::Repeated(kind));
            }
            // Digits only: `u32::from_str` would also take `+10`.
            let percent = Some(share)
                .filter(|share| share.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|share| share.parse::<u32>().ok())
                .filter(|percent| *percent <= 100)
                .ok_or_else(|| MixError::BadShare {
                    kind,
                    share: share.to_owned(),
                })?;
            shares.push((kind, percent));
        }
        let total = shares.iter().map(|(_, percent)| percent).sum();
        if total != 100 {
            return Err(MixError::Total(total));
        }
        shares.sort_unstable();
        Ok(Self { shares })
    }
}

impl fmt::Display for Mix {
    /// The canonical form, which [`Mix::from_str`] reads back:
    /// `succeeded=80,refund=20`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .shares
            .iter()
            .map(|(kind, percent)| format!("{kind}={percent}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Mix {
    /// The share of `kind`, in percent (0 when not given).
    pub fn share(&self, kind: Kind) -> u32 {
        self.shares
            .iter()
            .find(|(given, _)| *given == kind)
            .map_or(0, |(_, percent)| *percent)
    }

    /// How many of `payments` payments each kind gets, in [`Kind::ALL`]
    /// order with every kind listed: each its share rounded down, then the
    /// payments left over one each to the kinds with the largest remainders
    /// (the earlier kind on a tie), so that the counts add up to `payments`
    /// and none is more than one away from its exact share.
    pub fn counts(&self, payments: usize) -> Vec<(Kind, usize)> {
        let exact: Vec<(Kind, usize, usize)> = Kind::ALL
            .into_iter()
            .map(|kind| {
                let scaled = payments * self.share(kind) as usize;
                (kind, scaled / 100, scaled % 100)
            })
            .collect();
        let assigned: usize = exact.iter().map(|(_, count, _)| count).sum();
        let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
        // Stable: equal remainders keep the order of Kind::ALL.
        by_remainder.sort_by_key(|&i| std::cmp::Reverse(exact[i].2));
        let mut counts: Vec<(Kind, usize)> = exact
            .iter()
            .map(|(kind, count, _)| (*kind, *count))
            .collect();
        for &i in by_remainder.iter().take(payments - assigned) {
            counts[i].1 += 1;
        }
        counts
    }

    /// The kind of each of `payments` payments: [`Mix::counts`] of each,
    /// in an order shuffled by `rng`, so that a run's kinds are spread over
    /// its payments (and their amounts) and reproducible from its seed.
    pub fn assign(&self, payments: usize, rng: &mut SplitMix64) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self
            .counts(payments)
            .into_iter()
            .flat_map(|(kind, count)| std::iter::repeat_n(kind, count))
            .collect();
        rng.shuffle(&mut kinds);
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(text: &str) -> Result<Mix, MixError> {
        text.parse()
    }

    #[test]
    fn a_mix_reads_kinds_in_any_order_and_prints_them_canonically() {
        let read = mix("refund=10, succeeded=90").unwrap();
        assert_eq!(read.share(Kind::Succeeded), 90);
        assert_eq!(read.share(Kind::Refund), 10);
        assert_eq!(read.to_string(), "succeeded=90,refund=10");
        assert_eq!(mix(&read.to_string()).unwrap(), read);
        assert_eq!(mix("refund=100").unwrap().share(Kind::Succeeded), 0);
        assert_eq!(
            mix("succeeded=100,refund=0").unwrap().share(Kind::Refund),
            0
        );
    }

    #[test]
    fn the_default_is_succeeded_only() {
        assert_eq!(Mix::default(), mix("succeeded=100").unwrap());
        assert_eq!(Mix::default().to_string(), "succeeded=100");
        assert_eq!(
            Mix::default().counts(20_000),
            [
                (Kind::Succeeded, 20_000),
                (Kind::Checkout, 0),
                (Kind::Refund, 0),
                (Kind::Dispute, 0),
                (Kind::NotHandled, 0)
            ]
        );
    }

    #[test]
    fn refused_mixes_say_why() {
        assert_eq!(mix(""), Err(MixError::Empty));
        assert_eq!(mix("  "), Err(MixError::Empty));
        assert_eq!(
            mix("succeeded=90,chargeback=10"),
            Err(MixError::UnknownKind("chargeback".into()))
        );
        assert_eq!(
            mix("succeeded=90,not-handled=10"),
            Err(MixError::UnknownKind("not-handled".into()))
        );
        assert_eq!(
            mix("Succeeded=100"),
            Err(MixError::UnknownKind("Succeeded".into()))
        );
        assert_eq!(mix("succeeded=90,refund=20"), Err(MixError::Total(110)));
        assert_eq!(mix("succeeded=90"), Err(MixError::Total(90)));
        assert_eq!(
            mix("succeeded=50,succeeded=50"),
            Err(MixError::Repeated(Kind::Succeeded))
        );
        assert_eq!(
            mix("succeeded"),
            Err(MixError::NotAPair("succeeded".into()))
        );
        assert_eq!(mix("succeeded=100,"), Err(MixError::NotAPair("".into())));
        assert_eq!(mix("=100"), Err(MixError::NotAPair("=100".into())));
        for share in ["-10", "+10", "9.5", "101", "ten", "99999999999"] {
            assert_eq!(
                mix(&format!("succeeded={share}")),
                Err(MixError::BadShare {
                    kind: Kind::Succeeded,
                    share: share.into()
                }),
                "{share}"
            );
        }
        let unknown = mix("chargeback=100").unwrap_err().to_string();
        assert!(
            unknown.contains("succeeded, checkout, refund, dispute, not_handled"),
            "{unknown}"
        );
        assert!(MixError::Total(110).to_string().contains("110"));
    }

    /// The counts of the kinds that have any.
    fn given(counts: Vec<(Kind, usize)>) -> Vec<(Kind, usize)> {
        counts.into_iter().filter(|(_, n)| *n > 0).collect()
    }

    #[test]
    fn counts_add_up_and_stay_within_one_of_the_exact_share() {
        let read = mix("succeeded=80,refund=20").unwrap();
        assert_eq!(
            given(read.counts(5_000)),
            [(Kind::Succeeded, 4_000), (Kind::Refund, 1_000)]
        );
        assert_eq!(read.counts(5_000).len(), Kind::ALL.len());
        // 7 * 0.33 = 2.31 and 7 * 0.67 = 4.69: the larger remainder rounds up.
        let thirds = mix("succeeded=67,refund=33").unwrap();
        assert_eq!(
            given(thirds.counts(7)),
            [(Kind::Succeeded, 5), (Kind::Refund, 2)]
        );
        // A tie goes to the earlier kind.
        let halves = mix("succeeded=50,refund=50").unwrap();
        assert_eq!(
            given(halves.counts(3)),
            [(Kind::Succeeded, 2), (Kind::Refund, 1)]
        );
        let issue = mix("succeeded=70,checkout=10,refund=10,dispute=5,not_handled=5").unwrap();
        assert_eq!(
            issue.counts(5_000),
            [
                (Kind::Succeeded, 3_500),
                (Kind::Checkout, 500),
                (Kind::Refund, 500),
                (Kind::Dispute, 250),
                (Kind::NotHandled, 250)
            ]
        );
        // 2.1, 0.3, 0.3, 0.15 and 0.15 of 3: the one payment left over goes
        // to the largest remainder, checkout's (tied with refund's, earlier).
        assert_eq!(
            given(issue.counts(3)),
            [(Kind::Succeeded, 2), (Kind::Checkout, 1)]
        );
        for payments in [0, 1, 2, 3, 99, 101, 200, 1_234] {
            for refund in [0, 1, 10, 33, 50, 99, 100] {
                let read = mix(&format!("succeeded={},refund={refund}", 100 - refund)).unwrap();
                let counts = read.counts(payments);
                assert_eq!(counts.iter().map(|(_, n)| n).sum::<usize>(), payments);
                for (kind, count) in counts {
                    let exact = payments as f64 * f64::from(read.share(kind)) / 100.0;
                    assert!((count as f64 - exact).abs() < 1.0, "{read} of {payments}");
                }
            }
        }
    }

    #[test]
    fn assign_shuffles_the_counts_reproducibly() {
        let read = mix("succeeded=80,refund=20").unwrap();
        let kinds = read.assign(200, &mut SplitMix64::new(7));
        assert_eq!(kinds.len(), 200);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Refund).count(), 40);
        assert_eq!(kinds, read.assign(200, &mut SplitMix64::new(7)));
        assert_ne!(kinds, read.assign(200, &mut SplitMix64::new(8)));
        // Spread, not bunched at one end.
        assert!(kinds[..100].contains(&Kind::Refund) && kinds[100..].contains(&Kind::Refund));
    }

    #[test]
    fn every_kind_is_read_by_its_name_and_shared() {
        let read = mix("not_handled=5, dispute=5,refund=10,checkout=10,succeeded=70").unwrap();
        assert_eq!(
            read.to_string(),
            "succeeded=70,checkout=10,refund=10,dispute=5,not_handled=5"
        );
        assert_eq!(mix(&read.to_string()).unwrap(), read);
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        let kinds = read.assign(1_000, &mut SplitMix64::new(3));
        for (kind, share) in [
            (Kind::Succeeded, 700),
            (Kind::Checkout, 100),
            (Kind::Refund, 100),
            (Kind::Dispute, 50),
            (Kind::NotHandled, 50),
        ] {
            assert_eq!(
                kinds.iter().filter(|k| **k == kind).count(),
                share,
                "{kind}"
            );
        }
        assert_eq!(mix("checkout=60,dispute=50"), Err(MixError::Total(110)));
        assert_eq!(
            mix("dispute=50,dispute=50"),
            Err(MixError::Repeated(Kind::Dispute))
        );
    }

    #[test]
    fn new_kinds_at_zero_leave_an_old_mix_as_it_was() {
        // The shuffle of a succeeded/refund mix, as it was with two kinds.
        let read = mix("succeeded=80,refund=20").unwrap();
        let mut old: Vec<Kind> = std::iter::repeat_n(Kind::Succeeded, 160)
            .chain(std::iter::repeat_n(Kind::Refund, 40))
            .collect();
        SplitMix64::new(11).shuffle(&mut old);
        assert_eq!(read.assign(200, &mut SplitMix64::new(11)), old);
    }
}
