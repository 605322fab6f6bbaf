//! `sockit proxy`: SOCKS5, SOCKS4/4a and HTTP (CONNECT and absolute-form)
//! on one port.
