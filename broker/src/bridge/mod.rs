//! Bridges to remote brokers (`[[bridge]]`): the configuration
//! (`config.rs`); the durable outgoing queue and the connection follow.

pub mod config;

pub use config::{AddressOrder, BridgeConfig, BridgeProtocol, BridgeQueuePolicy, Direction, TopicRule};
