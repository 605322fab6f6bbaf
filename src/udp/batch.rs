//! Batched datagram I/O: `recvmmsg` and `sendmmsg`, so one syscall moves up
//! to a batch of datagrams. Receiving passes `MSG_TRUNC`, so the kernel
//! reports each datagram's real length even when the buffer was smaller:
//! that is how truncation is detected and reported instead of silently lost.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// One received datagram.
pub struct Datagram<'a> {
    /// The sender.
    pub from: SocketAddr,
    /// The datagram's real length; more than `data.len()` when truncated.
    pub len: usize,
    /// The bytes that fit the buffer.
    pub data: &'a [u8],
}

/// Reusable buffers for `recvmmsg`.
pub struct RecvBatch {
    /// One `size`-byte slot per datagram, back to back.
    bufs: Vec<u8>,
    /// Slot size: the receive buffer per datagram.
    size: usize,
    /// Sender addresses, one per slot.
    addrs: Vec<libc::sockaddr_storage>,
    /// One iovec per slot.
    iovs: Vec<libc::iovec>,
    /// The message headers handed to the kernel.
    hdrs: Vec<libc::mmsghdr>,
    /// How many slots the last call filled.
    filled: usize,
}

// SAFETY: the raw pointers inside point into this struct's own vectors and
// are rebuilt before every call; nothing is shared between threads.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Room for `count` datagrams of up to `size` bytes each.
    pub fn new(count: usize, size: usize) -> RecvBatch {
        let count = count.max(1);
        let size = size.max(1);
        // SAFETY: these C structs are plain data; all-zero is a valid value.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        RecvBatch {
            bufs: vec![0u8; count * size],
            size,
            addrs: vec![zero_addr; count],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                count
            ],
            hdrs: vec![zero_hdr; count],
            filled: 0,
        }
    }

    /// Blocks until at least one datagram arrives, then takes every one
    /// that is waiting (up to the batch size). Returns how many.
    ///
    /// # Errors
    /// The socket's error (`WouldBlock` after a read timeout, `Interrupted`
    /// on a signal, `ConnectionRefused` after ICMP port unreachable).
    pub fn recv(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        let count = self.hdrs.len();
        for i in 0..count {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.size..].as_mut_ptr().cast(),
                iov_len: self.size,
            };
            // SAFETY: zeroed msghdr is valid; we then point it at our own buffers.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // SAFETY: every header points into buffers that outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_WAITFORONE | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.filled = 0;
            return Err(io::Error::last_os_error());
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    /// Datagram `i` of the last batch.
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let h = &self.hdrs[i];
        let len = h.msg_len as usize;
        let start = i * self.size;
        let got = len.min(self.size);
        let from = socket_addr(&self.addrs[i], h.msg_hdr.msg_namelen)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Datagram {
            from,
            len,
            data: &self.bufs[start..start + got],
        }
    }
}

/// Reusable headers for `sendmmsg`.
pub struct SendBatch {
    /// Most datagrams per call.
    cap: usize,
}

impl SendBatch {
    /// Sends up to `cap` datagrams per syscall.
    pub fn new(cap: usize) -> SendBatch {
        SendBatch { cap: cap.max(1) }
    }

    /// Sends every payload to `to` (or the connected peer when `None`).
    ///
    /// # Errors
    /// The first send error.
    pub fn send_all(
        &mut self,
        sock: &UdpSocket,
        to: Option<SocketAddr>,
        items: &[&[u8]],
    ) -> io::Result<()> {
        let addr = to.map(SockAddr::from);
        let mut off = 0;
        while off < items.len() {
            let end = (off + self.cap).min(items.len());
            let addrs: Vec<Option<&SockAddr>> = vec![addr.as_ref(); end - off];
            off += send_chunk(sock, &items[off..end], &addrs)?;
        }
        Ok(())
    }

    /// Sends each payload to its own address.
    ///
    /// # Errors
    /// The first send error.
    pub fn send_to_all(
        &mut self,
        sock: &UdpSocket,
        items: &[(&[u8], SocketAddr)],
    ) -> io::Result<()> {
        let addrs: Vec<SockAddr> = items.iter().map(|(_, a)| SockAddr::from(*a)).collect();
        let mut off = 0;
        while off < items.len() {
            let end = (off + self.cap).min(items.len());
            let data: Vec<&[u8]> = items[off..end].iter().map(|(d, _)| *d).collect();
            let refs: Vec<Option<&SockAddr>> = addrs[off..end].iter().map(Some).collect();
            off += send_chunk(sock, &data, &refs)?;
        }
        Ok(())
    }
}

/// One `sendmmsg` call; returns how many datagrams went out (at least one).
fn send_chunk(sock: &UdpSocket, data: &[&[u8]], addrs: &[Option<&SockAddr>]) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = data
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(data.len());
    for (i, a) in addrs.iter().enumerate() {
        // SAFETY: zeroed msghdr is valid; we point it at live buffers.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        if let Some(a) = a {
            h.msg_name = a.as_ptr() as *mut libc::c_void;
            h.msg_namelen = a.len();
        }
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        hdrs.push(libc::mmsghdr {
            msg_hdr: h,
            msg_len: 0,
        });
    }
    loop {
        // SAFETY: headers, iovecs and addresses outlive the call.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                hdrs.len() as libc::c_uint,
                0,
            )
        };
        if n > 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if n < 0 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "sent nothing"));
        }
        return Err(e);
    }
}

/// The IP address the kernel wrote into `st` (`len` bytes of it).
fn socket_addr(st: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(st.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: an AF_INET address of that length is a sockaddr_in,
            // and sockaddr_storage is aligned for every address type.
            let a = unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for AF_INET6 and sockaddr_in6.
            let a = unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
