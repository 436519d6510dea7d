//! edgemq: an MQTT 3.1/3.1.1/5.0 broker for IoT and edge gateways.
//!
//! See ARCHITECTURE.md at the repository root for the data flow.

pub mod auth;
pub mod bridge;
pub mod clock;
pub mod config;
pub mod http;
pub mod import_cmd;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod passwd_cmd;
pub mod protocol;
pub mod ratelimit;
pub mod router;
pub mod server;
pub mod session;
pub mod store;
pub mod systemd;

pub use config::Config;
pub use server::Broker;
