//! payhook's load benchmark, as a library behind two binaries:
//!
//! - `payhook-loadgen` drives a payhook server on this machine (running, or
//!   started by it) through the management API and the Stripe webhook
//!   endpoint, measures throughput, latency and the server's memory, then
//!   checks that every payment was confirmed exactly once (and, for the
//!   shares `--mix` gives other kinds, refunded, disputed or ignored
//!   exactly as planned: [`mix`], [`plan`]); or, with `--duration`, soaks
//!   the server at a steady rate ([`pace`]) with a row of figures per
//!   minute, a CSV file and an SVG plot, then the same checks ([`soak`]);
//! - `sqlite-ceiling` runs payhook's per-event transaction directly on a
//!   SQLite file, one commit (one fsync) per event: the rate the embedded
//!   store could reach without batching.
//!
//! `payhook-loadgen --preload COUNT` first fills the database it owns with
//! COUNT finished payments ([`preload`]), to measure against big tables.
//!
//! What it deliberately does not do: it never talks to anything but the
//! loopback interface ([`target::LoopbackUrl`] refuses other hosts), every
//! run is bounded in count and time (a soak in time, at most 6 h), and
//! nothing here is a dependency of the server. It is a tool: its errors
//! are `anyhow` chains printed once.

pub mod db;
pub mod load;
pub mod mix;
pub mod multi;
pub mod pace;
pub mod plan;
pub mod preload;
pub mod proc_stats;
pub mod rng;
pub mod server;
pub mod soak;
pub mod stats;
pub mod stripe;
pub mod target;
