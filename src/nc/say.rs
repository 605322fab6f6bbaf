//! netcat's words on stderr, as netcat-openbsd prints them (pure: the
//! caller looks names up and prints). Scripts grep for these lines.

use std::io;
use std::net::IpAddr;

/// `Connection to HOST [(IP)] PORT port [PROTO/SERVICE] succeeded!` (`-v`,
/// and what `-z` reports for an open port). `service` is `None` with `-n`
/// or when the services database has no name: netcat shows `*`.
pub fn connected(
    host: &str,
    ip: Option<IpAddr>,
    port: u16,
    proto: &str,
    service: Option<&str>,
) -> String {
    let shown_ip = match ip {
        Some(ip) if ip.to_string() != host.trim_matches(|c| c == '[' || c == ']') => {
            format!(" ({ip})")
        }
        _ => String::new(),
    };
    format!(
        "Connection to {host}{shown_ip} {port} port [{proto}/{}] succeeded!",
        service.unwrap_or("*")
    )
}

/// `connect to HOST port PORT (PROTO) failed: REASON`, or `timed out:`
/// (after `nc: `, with `-v`).
pub fn connect_failed(host: &str, port: u16, proto: &str, e: &io::Error) -> String {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return format!(
            "connect to {host} port {port} ({proto}) timed out: Operation now in progress"
        );
    }
    format!(
        "connect to {host} port {port} ({proto}) failed: {}",
        strerror(e)
    )
}

/// `getaddrinfo for host "HOST" port PORT: REASON`.
pub fn no_address(host: &str, port: &str, reason: &str) -> String {
    format!("getaddrinfo for host \"{host}\" port {port}: {reason}")
}

/// The C library's words for an error (`Connection refused`), without
/// Rust's ` (os error N)`.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netcat_lines() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            connected("127.0.0.1", Some(lo), 22, "tcp", Some("ssh")),
            "Connection to 127.0.0.1 22 port [tcp/ssh] succeeded!"
        );
        assert_eq!(
            connected("localhost", Some(lo), 9, "udp", None),
            "Connection to localhost (127.0.0.1) 9 port [udp/*] succeeded!"
        );
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(
            connect_failed("127.0.0.1", 1, "tcp", &refused),
            "connect to 127.0.0.1 port 1 (tcp) failed: Connection refused"
        );
        assert_eq!(
            no_address("x", "80", "Name or service not known"),
            "getaddrinfo for host \"x\" port 80: Name or service not known"
        );
    }
}
