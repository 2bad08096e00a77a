//! The SSRF guard: which targets licensd delivers to. Only `http` and `https` URLs with a host,
//! no credentials in them; and no address that is link-local (`169.254.0.0/16`, `fe80::/10`,
//! which holds the cloud metadata endpoints `169.254.169.254` and `169.254.170.2`), a known
//! metadata address elsewhere (`fd00:ec2::254`, `100.100.100.200`), unspecified, broadcast or
//! multicast — unless the operator allows link-local targets
//! (`notification-allow-link-local = true`). Host names are checked when they are resolved, by
//! the client's own resolver ([`GuardedResolver`]), so a name that resolves to a refused
//! address is refused at connection time too (no DNS rebinding between check and connect).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Why a target is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not an absolute URL")]
    NotAUrl(String),
    #[error("only http and https URLs are delivered to, not {0}")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL carries credentials; put them in the path or the clientState instead")]
    Credentials,
    #[error("delivery to {0} is refused: a link-local or cloud metadata address (allow it with notification-allow-link-local)")]
    LinkLocal(IpAddr),
    #[error("delivery to {0} is refused: not a unicast address")]
    NotUnicast(IpAddr),
}

/// What the operator allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_link_local: bool,
}

const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
const METADATA_ALIBABA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

impl TargetPolicy {
    /// Whether licensd may connect to `address`.
    pub fn check_address(&self, address: IpAddr) -> Result<(), TargetError> {
        let address = match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        let not_unicast = match address {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        };
        if not_unicast {
            return Err(TargetError::NotUnicast(address));
        }
        let link_local = match address {
            IpAddr::V4(v4) => v4.is_link_local() || v4 == METADATA_ALIBABA,
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == METADATA_V6,
        };
        if link_local && !self.allow_link_local {
            return Err(TargetError::LinkLocal(address));
        }
        Ok(())
    }

    /// Parses and checks a target URL: scheme, host, no credentials, and an IP-literal host's
    /// address (names are checked when resolved, [`GuardedResolver`]).
    pub fn check_url(&self, text: &str) -> Result<Url, TargetError> {
        let url = Url::parse(text).map_err(|_| TargetError::NotAUrl(text.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(TargetError::Scheme(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        match url.host() {
            None => return Err(TargetError::NoHost),
            Some(url::Host::Ipv4(v4)) => self.check_address(IpAddr::V4(v4))?,
            Some(url::Host::Ipv6(v6)) => self.check_address(IpAddr::V6(v6))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }
}

/// The HTTP client's DNS resolver: the system's, with every refused address left out (a name
/// with only refused addresses fails to resolve, with the guard's reason).
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    pub policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match policy.check_address(address.ip()) {
                    Ok(()) => true,
                    Err(error) => {
                        refusal = Some(error);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> = match refusal {
                    Some(refusal) => Box::new(refusal),
                    None => format!("{host} has no address").into(),
                };
                return Err(error);
            }
            let addresses: Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

/// The client every outbound request goes through: the guard's resolver, no proxy (a proxy
/// would resolve names the guard never saw), no redirects (a redirect could lead anywhere).
pub fn guarded_client(policy: TargetPolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("licensd/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_refused_unless_allowed() {
        let policy = TargetPolicy::default();
        for refused in [
            "http://169.254.169.254/latest/meta-data",
            "http://169.254.170.2/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(
                matches!(policy.check_url(refused), Err(TargetError::LinkLocal(_))),
                "{refused}"
            );
            assert!(
                TargetPolicy {
                    allow_link_local: true
                }
                .check_url(refused)
                .is_ok(),
                "{refused}"
            );
        }
        for refused in ["http://0.0.0.0/", "http://255.255.255.255/", "http://[ff02::1]/"] {
            assert!(
                matches!(policy.check_url(refused), Err(TargetError::NotUnicast(_))),
                "{refused}"
            );
        }
        assert!(matches!(
            policy.check_url("ftp://example.com/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            policy.check_url("file:///etc/passwd"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            policy.check_url("http://u:p@example.com/"),
            Err(TargetError::Credentials)
        ));
        assert!(matches!(
            policy.check_url("not a url"),
            Err(TargetError::NotAUrl(_))
        ));
        assert!(policy.check_url("https://hooks.example.com/licensd").is_ok());
        assert!(policy.check_url("http://127.0.0.1:9000/hook").is_ok());
    }
}
