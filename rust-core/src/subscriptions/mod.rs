//! The subscription engine. Pure-Rust modules (no Python) hold the logic and are unit-tested with
//! `cargo test`; `bindings` and the `py_*` modules are the only ones that touch Python objects.

pub mod bindings;
pub mod bus;
pub mod envelope;
pub mod event;
pub mod executor;
pub mod filter;
pub mod message;
pub mod metrics;
pub mod native;
pub mod plan;
pub mod position;
pub mod projection;
pub mod py_value;
pub mod queue;
pub mod schema;
pub mod security;
pub mod throttle;
