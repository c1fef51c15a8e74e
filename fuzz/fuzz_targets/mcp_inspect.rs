//! The request inspector (body → JSON-RPC messages → policy decision) and the response
//! guard, over the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mcp_tunnel_fuzz::check_inspect(data);
    mcp_tunnel_fuzz::check_guard(data);
});
