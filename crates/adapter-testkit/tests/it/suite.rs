//! The suite on the toy adapter: a correct one passes, each broken one
//! fails the check that names its flaw, and only that one.

use std::panic::catch_unwind;

use payhook_adapter_testkit::{check, run, Check};

use crate::toy::{Flaw, ToyConformance, SIGNATURE_HEADER};

fn failed_checks(flaw: Flaw) -> Vec<Check> {
    match check(&ToyConformance::new(flaw)) {
        Ok(()) => Vec::new(),
        Err(report) => report.failed_checks(),
    }
}

#[test]
fn a_correct_adapter_passes_every_check() {
    assert_eq!(check(&ToyConformance::new(Flaw::None)), Ok(()));
}

#[test]
fn an_adapter_that_skips_the_signature_check_fails_the_suite() {
    let report = check(&ToyConformance::new(Flaw::SkipsSignature)).unwrap_err();
    assert_eq!(report.gateway(), "toy");
    assert_eq!(
        report.failed_checks(),
        [
            Check::BodyChangeRefused,
            Check::HeaderChangeRefused,
            Check::MissingHeaderRefused,
            Check::OtherKeyRefused,
            Check::StaleTimestampRefused,
        ]
    );
    let body = report
        .failures()
        .iter()
        .find(|failure| failure.check == Check::BodyChangeRefused)
        .unwrap();
    assert!(
        body.detail.starts_with("verify accepted 60 of 60 requests"),
        "{}",
        body.detail
    );
}

#[test]
fn run_panics_with_a_report_naming_the_failed_checks() {
    let panic = catch_unwind(|| run(&ToyConformance::new(Flaw::SkipsSignature))).unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .expect("run panics with the report's text");
    assert!(
        message.starts_with("adapter `toy` fails the conformance suite: body_change_refused, "),
        "{message}"
    );
    assert!(
        message.contains(
            "\n  - other_key_refused: an adapter configured with another key accepted the request"
        ),
        "{message}"
    );
}

#[test]
fn run_returns_quietly_for_a_correct_adapter() {
    run(&ToyConformance::new(Flaw::None));
}

#[test]
fn an_adapter_that_ignores_the_timestamp_fails_only_the_timestamp_check() {
    assert_eq!(
        failed_checks(Flaw::IgnoresTimestamp),
        [Check::StaleTimestampRefused]
    );
}

#[test]
fn a_scheme_without_a_timestamp_is_not_asked_for_one() {
    let mut suite = ToyConformance::new(Flaw::IgnoresTimestamp);
    suite.tolerance = None;
    assert_eq!(check(&suite), Ok(()));
}

#[test]
fn an_event_id_that_changes_per_delivery_fails_the_stability_check() {
    let report = check(&ToyConformance::new(Flaw::IdPerDelivery)).unwrap_err();
    assert_eq!(report.failed_checks(), [Check::EventIdStable]);
    assert!(
        report.failures()[0]
            .detail
            .contains("the store would apply the event twice"),
        "{report}"
    );
}

#[test]
fn unhandled_types_read_as_failures_fail_the_not_handled_check() {
    assert_eq!(
        failed_checks(Flaw::UnhandledAsFailed),
        [Check::UnhandledTypeNotHandled]
    );
}

#[test]
fn a_panic_on_hostile_input_is_caught_and_reported_with_the_input() {
    let report = check(&ToyConformance::new(Flaw::PanicsOnShortBody)).unwrap_err();
    assert_eq!(report.failed_checks(), [Check::ArbitraryInputNeverPanics]);
    let detail = &report.failures()[0].detail;
    assert!(
        detail.starts_with("parse panicked: index out of bounds"),
        "{detail}"
    );
    assert!(detail.contains("arbitrary input "), "{detail}");
}

#[test]
fn a_signature_header_that_sign_does_not_return_is_reported() {
    let mut suite = ToyConformance::new(Flaw::None);
    suite.signature_headers.push("Toy-Key-Id");
    let report = check(&suite).unwrap_err();
    assert_eq!(report.failed_checks(), [Check::HeaderChangeRefused]);
    assert_eq!(
        report.failures()[0].detail,
        "signature_headers names \"Toy-Key-Id\", which sign() does not return"
    );
}

#[test]
fn an_unprotected_header_listed_as_protected_is_reported() {
    // Content-Type is not signed: changing it is (rightly) accepted, so a
    // suite that claims otherwise is told which change got through.
    let mut suite = ToyConformance::new(Flaw::None);
    suite.signature_headers = vec![SIGNATURE_HEADER, "content-type"];
    let report = check(&suite).unwrap_err();
    assert_eq!(
        report.failed_checks(),
        [Check::HeaderChangeRefused, Check::MissingHeaderRefused]
    );
    assert!(
        report.failures()[0]
            .detail
            .contains("content-type: \"uext/plain\""),
        "{report}"
    );
}
