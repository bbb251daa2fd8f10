//! The `report` column of `webhook_events`: the refunds or the dispute a
//! gateway event reported, as JSON, so that an event applied again later (a
//! replay, a re-delivery of a refused refund, a refund kept until its
//! payment completes) carries them as it did the first time.
//!
//! The domain's types have no serde derives (the domain does not choose a
//! storage format), so this private DTO mirrors them. Money is minor units
//! and a currency code, statuses their stored names, times RFC 3339: the
//! same vocabulary as the columns. It is a storage format, not an API: it
//! is read only by this crate.

use chrono::{DateTime, Utc};
use payhook_domain::{
    Currency, Dispute, DisputeStatus, GatewayEvent, Money, Refund, RefundReport, RefundStatus,
    Report,
};
use serde::{Deserialize, Serialize};

use crate::models::stored_precision;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ReportJson {
    Refund {
        refunds: Vec<RefundJson>,
        running_total: Option<MoneyJson>,
        reported_at: DateTime<Utc>,
    },
    Dispute {
        dispute_id: String,
        status: String,
        amount: MoneyJson,
        reason: Option<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyJson {
    minor: i64,
    currency: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundJson {
    refund_id: String,
    amount: MoneyJson,
    status: String,
}

impl From<Money> for MoneyJson {
    fn from(money: Money) -> Self {
        Self {
            minor: money.minor(),
            currency: money.currency().code().to_owned(),
        }
    }
}

impl TryFrom<MoneyJson> for Money {
    type Error = String;
    fn try_from(json: MoneyJson) -> Result<Self, String> {
        let currency = Currency::parse(&json.currency).map_err(|e| e.to_string())?;
        Ok(Money::from_minor(json.minor, currency))
    }
}

/// `report` as stored in `webhook_events.report`.
pub(crate) fn to_json(report: &Report) -> String {
    let json = match report {
        Report::Refund(report) => ReportJson::Refund {
            refunds: report
                .refunds
                .iter()
                .map(|refund| RefundJson {
                    refund_id: refund.refund_id.clone(),
                    amount: refund.amount.into(),
                    status: refund.status.as_str().to_owned(),
                })
                .collect(),
            running_total: report.running_total.map(MoneyJson::from),
            reported_at: stored_precision(report.reported_at),
        },
        Report::Dispute(dispute) => ReportJson::Dispute {
            dispute_id: dispute.dispute_id.clone(),
            status: dispute.status.as_str().to_owned(),
            amount: dispute.amount.into(),
            reason: dispute.reason.clone(),
        },
    };
    // Strings, integers and a time: serialising this cannot fail.
    serde_json::to_string(&json).unwrap_or_default()
}

/// Reads `webhook_events.report` back; the error says why it does not
/// describe a report (the row is then corrupt).
pub(crate) fn from_json(text: &str) -> Result<Report, String> {
    let json: ReportJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(match json {
        ReportJson::Refund {
            refunds,
            running_total,
            reported_at,
        } => Report::Refund(RefundReport {
            refunds: refunds
                .into_iter()
                .map(|refund| {
                    Ok(Refund {
                        status: RefundStatus::parse(&refund.status)
                            .ok_or_else(|| format!("unknown refund status {:?}", refund.status))?,
                        amount: refund.amount.try_into()?,
                        refund_id: refund.refund_id,
                    })
                })
                .collect::<Result<_, String>>()?,
            running_total: running_total.map(Money::try_from).transpose()?,
            reported_at,
        }),
        ReportJson::Dispute {
            dispute_id,
            status,
            amount,
            reason,
        } => Report::Dispute(Dispute {
            dispute_id,
            status: DisputeStatus::parse(&status)
                .ok_or_else(|| format!("unknown dispute status {status:?}"))?,
            amount: amount.try_into()?,
            reason,
        }),
    })
}

/// `event` with its refund report's time cut to the stored precision, when
/// it has finer: the ledger's times are stored in microseconds, and a
/// report must compare with them the same way on its first delivery as
/// when it is read back. `None` when nothing needs cutting (gateways report
/// whole seconds), so the common event is not copied.
pub(crate) fn at_stored_precision(event: &GatewayEvent) -> Option<GatewayEvent> {
    let Some(Report::Refund(report)) = &event.report else {
        return None;
    };
    let cut = stored_precision(report.reported_at);
    if cut == report.reported_at {
        return None;
    }
    let mut event = event.clone();
    if let Some(Report::Refund(report)) = &mut event.report {
        report.reported_at = cut;
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("USD").unwrap())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn every_report_reads_back_as_it_was_written() {
        let reports = [
            Report::Refund(RefundReport {
                refunds: RefundStatus::ALL
                    .into_iter()
                    .enumerate()
                    .map(|(n, status)| Refund {
                        refund_id: format!("re_{n}"),
                        amount: usd(100 + i64::try_from(n).unwrap()),
                        status,
                    })
                    .collect(),
                running_total: Some(usd(5000)),
                reported_at: at(7),
            }),
            Report::Refund(RefundReport {
                refunds: Vec::new(),
                running_total: Some(Money::from_minor(1500, Currency::parse("JPY").unwrap())),
                reported_at: at(8),
            }),
            Report::Refund(RefundReport {
                refunds: vec![Refund {
                    refund_id: "re_only".into(),
                    amount: usd(1),
                    status: RefundStatus::Succeeded,
                }],
                running_total: None,
                reported_at: at(9),
            }),
        ]
        .into_iter()
        .chain(DisputeStatus::ALL.into_iter().map(|status| {
            Report::Dispute(Dispute {
                dispute_id: "dp_1".into(),
                status,
                amount: Money::from_minor(1500, Currency::parse("KWD").unwrap()),
                reason: (status == DisputeStatus::Open).then(|| "fraudulent".to_owned()),
            })
        }));
        for report in reports {
            let text = to_json(&report);
            assert_eq!(from_json(&text), Ok(report), "{text}");
        }
    }

    #[test]
    fn a_text_that_is_no_report_is_refused() {
        for text in [
            "",
            "{}",
            r#"{"type":"refund"}"#,
            r#"{"type":"chargeback","dispute_id":"dp_1"}"#,
            r#"{"type":"dispute","dispute_id":"dp_1","status":"reopened","amount":{"minor":1,"currency":"USD"},"reason":null}"#,
            r#"{"type":"dispute","dispute_id":"dp_1","status":"open","amount":{"minor":1,"currency":"XXXX"},"reason":null}"#,
            r#"{"type":"refund","refunds":[{"refund_id":"re_1","amount":{"minor":1,"currency":"USD"},"status":"done"}],"running_total":null,"reported_at":"2027-01-15T08:00:00Z"}"#,
        ] {
            assert!(from_json(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_report_time_finer_than_microseconds_is_cut_like_the_ledger_columns() {
        let fine = at(3) + TimeDelta::nanoseconds(1_234_567);
        let event = GatewayEvent {
            gateway: "stripe".into(),
            event_id: "evt_1".into(),
            event_type: "charge.refunded".into(),
            kind: payhook_domain::EventKind::Refund,
            references: payhook_domain::References::default(),
            amount: None,
            report: Some(Report::Refund(RefundReport {
                refunds: Vec::new(),
                running_total: Some(usd(10)),
                reported_at: fine,
            })),
        };
        let cut = at_stored_precision(&event).expect("cut");
        let Some(Report::Refund(report)) = &cut.report else {
            panic!("still a refund report");
        };
        assert_eq!(report.reported_at, at(3) + TimeDelta::microseconds(1_234));
        assert_eq!(at_stored_precision(&cut), None, "already cut");
        let Ok(Report::Refund(stored)) = from_json(&to_json(event.report.as_ref().unwrap())) else {
            panic!("reads back");
        };
        assert_eq!(stored.reported_at, report.reported_at);
    }
}
