//! The edge's `[tunnels]` table: which hostnames each tunnel id serves. A name belongs to
//! one tunnel, and a tunnel may not take an exact name under another tunnel's wildcard
//! unless the operator allows it for that pair.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use toml::Spanned;

use super::{normalize_host_pattern, ConfigError, Source};
use crate::tls::identity::is_valid_tunnel_id;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTunnel {
    hostnames: Vec<Spanned<String>>,
    /// Tunnels whose `*.` wildcards this tunnel's exact names may sit under.
    #[serde(default)]
    allow_inside_wildcard_of: Vec<Spanned<String>>,
}

/// Validates the table into `tunnel id → hostname patterns`.
pub(super) fn tunnel_map(
    src: &Source,
    raw: &BTreeMap<Spanned<String>, RawTunnel>,
) -> Result<HashMap<String, Vec<String>>, ConfigError> {
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut tunnels = HashMap::new();
    for (id, t) in raw {
        let key = format!("tunnels.{}", id.get_ref());
        if !is_valid_tunnel_id(id.get_ref()) {
            return Err(src.invalid(&key, id, "tunnel ids use 1-63 characters of a-z, 0-9 and '-'"));
        }
        if t.hostnames.is_empty() {
            return Err(src.invalid(&key, id, "`hostnames` is empty; list at least one"));
        }
        let mut names = Vec::new();
        for (i, h) in t.hostnames.iter().enumerate() {
            let hkey = format!("{key}.hostnames[{i}]");
            let name = normalize_host_pattern(h.get_ref()).map_err(|why| src.invalid(&hkey, h, why))?;
            if let Some(other) = owner.insert(name.clone(), id.get_ref().clone()) {
                return Err(src.invalid(&hkey, h, format!("{name} is already served by tunnel {other:?}")));
            }
            names.push(name);
        }
        tunnels.insert(id.get_ref().clone(), names);
    }
    for (id, t) in raw {
        check_wildcards(src, id.get_ref(), t, &owner)?;
    }
    Ok(tunnels)
}

/// Refuses an exact name of tunnel `id` that another tunnel's `*.` wildcard covers (the
/// exact name would win and take that tenant's traffic, ACME challenges included),
/// unless `allow_inside_wildcard_of` names that tunnel.
fn check_wildcards(src: &Source, id: &str, t: &RawTunnel, owner: &HashMap<String, String>) -> Result<(), ConfigError> {
    let key = format!("tunnels.{id}");
    for (i, other) in t.allow_inside_wildcard_of.iter().enumerate() {
        let akey = format!("{key}.allow_inside_wildcard_of[{i}]");
        if other.get_ref() == id || !owner.values().any(|o| o == other.get_ref()) {
            return Err(src.invalid(&akey, other, format!("{:?} is not another configured tunnel", other.get_ref())));
        }
    }
    for (i, h) in t.hostnames.iter().enumerate() {
        // Normalised and checked in the first pass; wildcards match exactly one label.
        let Ok(name) = normalize_host_pattern(h.get_ref()) else { continue };
        let Some((_, parent)) = name.split_once('.').filter(|_| !name.starts_with("*.")) else { continue };
        let wildcard = format!("*.{parent}");
        let Some(holder) = owner.get(&wildcard).filter(|o| o.as_str() != id) else { continue };
        if !t.allow_inside_wildcard_of.iter().any(|a| a.get_ref() == holder) {
            return Err(src.invalid(
                &format!("{key}.hostnames[{i}]"),
                h,
                format!(
                    "{name} is inside tunnel {holder:?}'s {wildcard}; add allow_inside_wildcard_of = [{holder:?}] \
                     to [tunnels.{id}] if that is intended"
                ),
            ));
        }
    }
    Ok(())
}
