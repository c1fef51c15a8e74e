//! The integration tests, one binary (linked once): each module is a suite that runs the
//! real edge, gateway and `mcp-tunnel` binary on loopback; `common` is the harness they
//! share (PKI, in-process stack, processes, HTTP clients, polling, configs).
//!
//! Run one suite with `cargo test --release --test it -- <module>::`.

mod common;

mod adversarial_edge;
mod adversarial_gateway;
mod adversarial_inspect;
mod adversarial_stdio;
mod approvals;
mod cli;
mod config_files;
mod control_kill;
mod control_plane;
mod dead_edge;
mod doctor;
mod edge_blind;
mod faults_process;
mod faults_public;
mod fuzz_regressions;
mod http_errors;
mod limits;
mod mcp_auth;
mod mcp_policy;
mod mcp_sdk;
mod mcp_stdio;
mod observability;
mod pinning;
mod readme_deploy;
mod rejections;
mod reload;
mod scale_out;
mod service_notify;
mod stdio_bridge;
mod transport_fallback;
