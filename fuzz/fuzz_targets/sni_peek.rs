//! `edge::sni::parse_sni`: the ClientHello peek in front of every public connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_tunnel_fuzz::Prefixes;

fuzz_target!(|data: &[u8]| mcp_tunnel_fuzz::check_sni(data, Prefixes::Sample));
