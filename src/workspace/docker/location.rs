//! Where the engine is, seen from the runner: on this machine (its socket, or TCP to one of
//! this machine's own addresses), or on another host — GitLab's `docker:dind` service
//! (`DOCKER_HOST=tcp://docker:2375`), a remote daemon. On another host the sandbox's network
//! is not routable from here, so the run goes through a bridge container ([`super::bridge`]):
//! its port is published on the engine's address, and the relay binds the address this
//! runner uses to reach the engine (the one the engine's containers reach back through NAT).

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use crate::workspace::WorkspaceError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineLocation {
    /// This machine: its socket, or a TCP address that is one of this machine's.
    Local,
    /// Another host (or network namespace): `engine` is its address, `runner` this machine's
    /// address on the way to it.
    Remote { engine: IpAddr, runner: IpAddr },
}

/// Locates the engine `docker_host` names (`DOCKER_HOST`; `None` = the local socket).
pub fn locate(docker_host: Option<&str>) -> Result<EngineLocation, WorkspaceError> {
    let Some(target) = docker_host.and_then(tcp_target) else {
        return Ok(EngineLocation::Local);
    };
    let addr = resolve(&target)?;
    if is_own_address(addr.ip()) {
        return Ok(EngineLocation::Local);
    }
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| {
        WorkspaceError::Setup(format!(
            "docker: cannot reach the engine at {target} (DOCKER_HOST): {e}"
        ))
    })?;
    let runner = stream.local_addr().map_err(WorkspaceError::Io)?.ip();
    Ok(EngineLocation::Remote {
        engine: addr.ip(),
        runner,
    })
}

/// `host:port` of a `tcp://`, `http://` or `https://` DOCKER_HOST (the port defaulting as
/// the engine's does); `None` for sockets and anything else.
fn tcp_target(docker_host: &str) -> Option<String> {
    let (scheme, rest) = docker_host.split_once("://")?;
    let default_port = match scheme {
        "tcp" | "http" => 2375,
        "https" => 2376,
        _ => return None,
    };
    let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    })
}

fn resolve(target: &str) -> Result<SocketAddr, WorkspaceError> {
    let mut addrs = target.to_socket_addrs().map_err(|e| {
        WorkspaceError::Setup(format!(
            "docker: cannot resolve the engine's address {target} (DOCKER_HOST): {e}"
        ))
    })?;
    addrs.next().ok_or_else(|| {
        WorkspaceError::Setup(format!(
            "docker: the engine's address {target} (DOCKER_HOST) resolves to nothing"
        ))
    })
}

/// Loopback, or an address of one of this machine's interfaces (binding to it succeeds).
fn is_own_address(ip: IpAddr) -> bool {
    ip.is_loopback() || UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_targets_of_docker_host() {
        assert_eq!(
            tcp_target("tcp://docker:2375").as_deref(),
            Some("docker:2375")
        );
        assert_eq!(tcp_target("tcp://docker").as_deref(), Some("docker:2375"));
        assert_eq!(
            tcp_target("https://10.0.0.5/").as_deref(),
            Some("10.0.0.5:2376")
        );
        assert_eq!(tcp_target("unix:///var/run/docker.sock"), None);
        assert_eq!(tcp_target("npipe:////./pipe/docker_engine"), None);
        assert_eq!(tcp_target("tcp://"), None);
    }

    #[test]
    fn sockets_and_own_addresses_are_local() {
        assert_eq!(locate(None).unwrap(), EngineLocation::Local);
        assert_eq!(
            locate(Some("unix:///var/run/docker.sock")).unwrap(),
            EngineLocation::Local
        );
        // Nothing needs to listen: an own address is local without a connection.
        assert_eq!(
            locate(Some("tcp://127.0.0.1:1")).unwrap(),
            EngineLocation::Local
        );
    }

    #[test]
    fn an_unresolvable_engine_is_one_clear_error() {
        let err = locate(Some("tcp://no-such-engine.invalid:2375"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot resolve the engine's address no-such-engine.invalid:2375"),
            "{err}"
        );
    }
}
