//! All integration tests, in one binary for link time. Database tests run on SQLite and on
//! PostgreSQL (`TEST_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres), each
//! in its own database.

mod helpers;

mod alert_rules;
mod api;
mod bad_input;
mod cli;
mod cluster;
mod crash;
mod dashboard;
mod dashboard_ops;
mod dashboard_ops_browser;
mod fair_queue;
mod grafana;
mod group_commit;
mod hardening;
mod health;
mod house;
mod job_cancel;
mod jobs;
mod lifecycle;
mod login;
mod lookback;
mod meta;
mod meta_account;
mod meta_async;
mod meta_check;
mod meta_errors;
mod meta_lookback;
mod metrics;
mod openapi;
mod outage;
mod pipeline;
mod provider_metrics;
mod raw_partitions;
mod reads;
mod resilience;
mod retention;
mod scheduler;
mod schema;
mod secrets;
mod slow_provider;
mod timezones;
mod traces;
mod vm;
