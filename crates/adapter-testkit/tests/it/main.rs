//! The suite run against a toy gateway adapter written for these tests: the
//! correct toy passes, and each deliberately broken variant fails exactly
//! the check meant to catch its flaw.

mod suite;
mod toy;
