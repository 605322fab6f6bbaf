//! The parsers of what users and scripts type: CIDR rules, port lists,
//! bind addresses, Unix addresses, forward's LISTEN and TARGET spellings,
//! the fault options and netcat's command line (`sockit nc`). Each gives a value or a sentence, never a panic, and a
//! value prints back to text that parses to the same value (the model).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::{arbitrary, fuzz_target};
use sockit::access::Cidr;
use sockit::diag::parse_ports;
use sockit::forward::{parse_listen, parse_target};
use sockit::nc::args::{port_spec, PortSpec};
use sockit::net::BindAddr;
use sockit::relay::fault::{FaultOpt, Faults};
use sockit::unix::UnixAddr;

const OPTS: [FaultOpt; 11] = [
    FaultOpt::Delay,
    FaultOpt::Rate,
    FaultOpt::Slice,
    FaultOpt::SliceDelay,
    FaultOpt::ResetAfter,
    FaultOpt::CloseAfter,
    FaultOpt::StallAfter,
    FaultOpt::SlowClose,
    FaultOpt::Loss,
    FaultOpt::Duplicate,
    FaultOpt::Reorder,
];

#[derive(Debug, arbitrary::Arbitrary)]
struct Case {
    text: String,
    probe: [u8; 16],
    opt: u8,
}

/// The reference for `contains`: the top `prefix` bits agree.
fn in_net(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    let unmap = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (unmap(net), unmap(ip)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fuzz_target!(|c: Case| {
    let s = c.text.as_str();
    if let Ok(cidr) = s.parse::<Cidr>() {
        let shown = cidr.to_string();
        let again: Cidr = shown.parse().expect("a printed CIDR parses");
        assert_eq!(again, cidr);
        let (net, prefix) = shown.split_once('/').unwrap();
        let net: IpAddr = net.parse().unwrap();
        let prefix: u8 = prefix.parse().unwrap();
        assert!(cidr.contains(net));
        let four = IpAddr::from([c.probe[0], c.probe[1], c.probe[2], c.probe[3]]);
        let six = IpAddr::from(c.probe);
        for ip in [four, six] {
            assert_eq!(cidr.contains(ip), in_net(net, prefix, ip), "{cidr} vs {ip}");
        }
    }
    // Service names come from /etc/services: local, no lookup traffic.
    if let Ok(ports) = parse_ports(s) {
        assert!(!ports.is_empty());
        assert!(ports.windows(2).all(|w| w[0] < w[1]) && ports[0] >= 1);
    }
    if let Ok(b) = s.parse::<BindAddr>() {
        let again: BindAddr = b.to_string().parse().expect("a printed address parses");
        assert_eq!(again, b);
    }
    if let Ok(u) = UnixAddr::parse(s) {
        let shown = u.to_string();
        let again = UnixAddr::parse(shown.strip_prefix("unix:").unwrap()).unwrap();
        assert_eq!(again, u);
    }
    let _ = parse_listen(s);
    // exec: looks the program up on PATH; that is a local file check.
    if let Ok(t) = parse_target(s) {
        assert!(!t.name().is_empty());
    }
    let mut f = Faults::default();
    let opt = OPTS[usize::from(c.opt) % OPTS.len()];
    if f.set(opt, s).is_ok() {
        let _ = f.describe();
        let _ = f.misfit(opt.for_datagrams());
        if let Some(conn) = f.for_conn(u64::from(c.opt), 7) {
            let _ = format!("{conn:?}");
        }
    }
    let _ = f.set_share(s);
    // netcat's command line, split on spaces: a value or nc's sentence.
    let argv: Vec<&str> = s.split(' ').collect();
    match sockit::nc::parse(&argv) {
        Ok(a) => {
            // What was read came from the line: operands are words of it.
            for o in &a.operands {
                assert!(argv.contains(&o.as_str()) || a.tls, "{o:?} not in {argv:?}");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(PortSpec::Numbers(v)) = port_spec(s) {
        // A range is in order, within 1..=65535, and covers what it says.
        assert!(!v.is_empty() && v[0] >= 1 && v.windows(2).all(|w| w[1] == w[0] + 1));
    }
});
