//! Value parsers for clap: sizes, rates, seconds, ports and service names,
//! `HOST[:PORT]`, certificate pins. Each returns a message clap shows.

use std::time::Duration;

use sockit::net::parse_port;

/// Parses a rate in bits per second (K/M/G are powers of 1000); 0 allowed.
pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000u64),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate like 100M or 0"))?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("{s:?} is not a rate like 100M or 0"));
    }
    let v = n * mult as f64;
    if v > 1e15 {
        return Err(format!("a rate of {s} is absurd"));
    }
    Ok(v as u64)
}

/// Parses a byte count with an optional K/M/G suffix (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => n
            .checked_mul(mult)
            .ok_or_else(|| format!("{s:?} is too large")),
        _ => Err(format!("{s:?} is not a positive size like 500K or 10M")),
    }
}

/// Splits `HOST[:PORT]` (or `[V6]:PORT`), with `default` when no port is given.
pub(crate) fn host_port(s: &str, default: u16) -> Result<(String, u16), String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip().to_string(), parse_port(&sa.port().to_string())?));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Ok((inner.to_string(), default));
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((s.to_string(), default));
    }
    let unbalanced = || format!("{s:?} has unbalanced [ ]; write [ADDR]:PORT");
    match s.rsplit_once(':') {
        Some((h, p)) => {
            let h = match h.strip_prefix('[') {
                Some(inner) => inner.strip_suffix(']').ok_or_else(unbalanced)?,
                None => h,
            };
            if h.contains(['[', ']']) {
                return Err(unbalanced());
            }
            Ok((h.to_string(), parse_port(p)?))
        }
        None if s.contains(['[', ']']) => Err(unbalanced()),
        None => Ok((s.to_string(), default)),
    }
}

/// Parses a certificate fingerprint for `--pin`.
pub(crate) fn parse_pin(s: &str) -> Result<String, String> {
    sockit::tls::parse_fingerprint(s)
        .ok_or_else(|| format!("{s:?} is not SHA256: followed by 64 hex digits"))
}

/// A port number, or a name from the services database for `proto`.
pub(crate) fn port_or_service(s: &str, proto: &str) -> Result<u16, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_port(s);
    }
    sockit::lookup::service(s, proto).map_err(|_| {
        format!("port {s:?} is neither a number from 1 to 65535 nor a {proto} service name")
    })
}

/// A TCP port number or service name.
pub(crate) fn parse_tcp_port(s: &str) -> Result<u16, String> {
    port_or_service(s, "tcp")
}

/// A UDP port number or service name.
pub(crate) fn parse_udp_port(s: &str) -> Result<u16, String> {
    port_or_service(s, "udp")
}

/// Parses a positive number of seconds.
pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Parses a number of seconds, zero allowed.
pub(crate) fn parse_secs_or_zero(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a number of seconds")),
    }
}
