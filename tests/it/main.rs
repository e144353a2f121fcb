//! Integration tests: a real server on 127.0.0.1:0 (or the real binary)
//! and real clients. One test binary, so CI links the test dependencies
//! once instead of once per file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod announcements;
mod bad_input;
mod bulk_writes;
mod cli;
mod client;
mod compression;
mod crash;
mod demo;
mod durability;
mod export_reports;
mod flags;
mod fsync;
mod hostile;
mod limits;
mod metrics;
mod periods;
mod replicas;
mod revisions;
mod security;
mod snapshots;
mod stream_lifecycle;
mod stream_limit;
mod streams;
mod summary;
mod traces;
mod trade_record_validation;
mod trade_records;
