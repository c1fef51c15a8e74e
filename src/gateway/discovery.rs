//! OAuth discovery documents (RFC 9728 protected-resource metadata, RFC 8414
//! authorization-server metadata). Their well-known paths sit outside a route's path
//! prefix (`/.well-known/oauth-protected-resource/mcp` describes `/mcp`), so they are
//! matched to the route of the resource path they name, before ordinary routing:
//! - a route that authenticates at the gateway gets the gateway's own metadata document;
//! - a pass-through route's request goes to its upstream, which runs its own OAuth.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};

use super::outcome::{Refusal, Shape};
use super::respond::{full, ClientBody};
use super::route::{Route, RouteTable};
use crate::auth::{protected_resource_metadata, resource_url};

const PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";
const AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";

/// What to do with a discovery request.
pub enum Discovery {
    /// The gateway answers itself.
    Serve(Response<ClientBody>),
    /// Forward to this route's upstream, at this path.
    Forward(Arc<Route>, String),
}

/// `None` when `path` is not a discovery document of a routed resource.
pub fn route_for(routes: &RouteTable, host: &str, path: &str) -> Option<Discovery> {
    let (doc, rest) = [PROTECTED_RESOURCE, AUTHORIZATION_SERVER]
        .into_iter()
        .find_map(|d| path.strip_prefix(d).filter(|r| r.is_empty() || r.starts_with('/')).map(|r| (d, r)))?;
    let resource_path = if rest.is_empty() { "/" } else { rest };
    let route = routes.lookup(host, resource_path)?.clone();
    if route.controls.auth.is_some() {
        if doc != PROTECTED_RESOURCE {
            // The gateway checks tokens; it does not issue them.
            // Unaudited, as every discovery answer: no exchange (and no trail) exists yet.
            let refusal = Refusal::Shape(Shape {
                status: StatusCode::NOT_FOUND,
                reason: "not_found",
                message: "this route's tokens come from the authorization servers in its protected-resource metadata",
                allow: None,
            });
            return Some(Discovery::Serve(refusal.response(None)));
        }
        let resource = resource_url(host, (!rest.is_empty()).then_some(rest).or(route.path_prefix.as_deref()));
        let c = &route.controls;
        let doc = protected_resource_metadata(&resource, &c.authorization_servers, &c.scopes);
        return Some(Discovery::Serve(full(StatusCode::OK, "application/json", Bytes::from(doc.to_string()))));
    }
    let upstream_resource = route.upstream_path(resource_path);
    let path = if upstream_resource == "/" { doc.to_owned() } else { format!("{doc}{upstream_resource}") };
    Some(Discovery::Forward(route, path))
}
