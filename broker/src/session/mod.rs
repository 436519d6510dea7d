//! Sessions: the per-connection protocol state machine ([`Machine`]) and
//! the state that outlives connections ([`state`]).

mod auth_flow;
pub mod budget;
pub mod gate;
mod handlers;
mod machine;
mod outbound;
pub mod spill;
pub mod state;
pub mod wake;

pub use gate::LogPosition;
pub use machine::{Action, Close, Machine, MachineConfig};

#[cfg(test)]
mod spill_props;
