//! `frame::decode` as `Control` and as `Open`, and `frame::read` over the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcp_tunnel_fuzz::check_frame(data));
