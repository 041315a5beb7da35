//! Event buses. The in-memory bus is the executor's own dispatch; Redis and PostgreSQL clients
//! come with the scale-out work. `config` validates and holds the bus configuration.

pub mod config;
