//! ads-stats: keeps advertising statistics for an e-commerce ads platform.
//!
//! Parts, in the direction knowledge flows: `http` → `jobs` → `pipeline` → `providers` / `db`.
//! `app` wires them into one process; `cli` is what the binary runs.

pub mod app;
pub mod auth;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod domain;
pub mod duration;
pub mod http;
pub mod jobs;
pub mod password;
pub mod pipeline;
pub mod providers;
pub mod telemetry;
