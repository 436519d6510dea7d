//! Durable storage of broker state (work in progress: the write-ahead log
//! is done and tested; records and recovery of sessions follow).

pub mod log;
