//! The client side of DHCPv4 (RFC 2131 §4.4): DISCOVER → OFFER →
//! REQUEST → ACK as a state machine fed with packets and the time, with
//! retransmission backoff; it never touches a socket or a clock itself.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;

/// What the network gave us: everything needed to configure the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address.
    pub address: Ipv4Addr,
    /// Prefix length of the subnet (from the subnet mask; the address's
    /// class when the server sends none, as the kernel's ipconfig does).
    pub prefix_len: u8,
    /// The router from option 3. `None` is normal: QEMU's slirp with
    /// `restrict=on` sends none, and everything needed is on-link. Not the
    /// default route when there are [`classless_routes`](Lease::classless_routes):
    /// use [`routes`](Lease::routes).
    pub router: Option<Ipv4Addr>,
    /// DNS servers, most preferred first; may be empty (slirp `restrict=on`).
    pub dns: Vec<Ipv4Addr>,
    /// How long the lease lasts; `None` when the server gave no time or an infinite one.
    pub lease_time: Option<Duration>,
    /// The server that gave the lease.
    pub server: Ipv4Addr,
    /// The link's MTU (option 26); `None` when not sent or under 68, the
    /// least IPv4 allows (RFC 791), which could only break the link.
    pub mtu: Option<u16>,
    /// NTP servers, most preferred first (option 42).
    pub ntp: Vec<Ipv4Addr>,
    /// Domains to search for short names (option 119), without trailing dots.
    pub domain_search: Vec<String>,
    /// Classless static routes (option 121) as sent, but for those through
    /// a router no host can have (multicast, broadcast, loopback).
    pub classless_routes: Vec<Route>,
}

impl Lease {
    /// The routes to install. RFC 3442: when the server sends classless
    /// static routes, the client must ignore the router option; the default
    /// route, if any, is then the `0.0.0.0/0` among them. Otherwise the
    /// router, if any, gives the default route.
    pub fn routes(&self) -> Vec<Route> {
        if !self.classless_routes.is_empty() {
            return self.classless_routes.clone();
        }
        self.router.map(Route::default_via).into_iter().collect()
    }
}

/// What the caller should do after [`Client::on_packet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Broadcast these bytes to [`SERVER_PORT`] from [`CLIENT_PORT`].
    Send(Vec<u8>),
    /// A lease was acknowledged: configure the interface with it.
    Bound(Lease),
}

/// Where the client is in the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// [`Client::start`] not called yet.
    Init,
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST sent for an offered address, waiting for ACK or NAK.
    Requesting {
        address: Ipv4Addr,
        server: Ipv4Addr,
        /// REQUESTs sent so far for this offer.
        sent: u32,
    },
    /// Done.
    Bound(Lease),
}

/// First retransmission delay (RFC 2131 §4.1).
const FIRST_TIMEOUT: Duration = Duration::from_secs(4);
/// Delays double up to this (RFC 2131 §4.1).
const MAX_TIMEOUT: Duration = Duration::from_secs(64);
/// REQUESTs sent for one offer before starting over with a DISCOVER: the
/// offering server may have gone away, another may answer.
const MAX_REQUESTS: u32 = 4;

/// Options the client asks for. Classless routes come before the router
/// because RFC 3442 requires it of clients that ask for both.
const PARAMETERS: [u8; 10] = [
    code::SUBNET_MASK,
    code::CLASSLESS_ROUTES,
    code::ROUTER,
    code::DNS,
    code::HOSTNAME,
    code::DOMAIN_NAME,
    code::INTERFACE_MTU,
    code::NTP_SERVERS,
    code::LEASE_TIME,
    code::DOMAIN_SEARCH,
];

/// A DHCPv4 client for one Ethernet interface, driven by the caller.
///
/// The caller sends what [`start`](Client::start) returns, feeds every UDP
/// payload received on port 68 to [`on_packet`](Client::on_packet), and
/// calls [`on_timeout`](Client::on_timeout) when
/// [`next_timeout`](Client::next_timeout) has passed. `now` is any monotonic
/// clock (e.g. time since boot); only differences matter.
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    xid: u32,
    state: State,
    /// When this acquisition began, for the `secs` field.
    started: Duration,
    /// When to retransmit, if waiting.
    deadline: Option<Duration>,
    /// The delay that led to `deadline`; doubles on each retransmission.
    interval: Duration,
}

impl Client {
    /// A client for the interface with hardware address `mac`, using
    /// transaction id `xid` (the caller picks it at random so that several
    /// clients on one network tell their answers apart).
    pub fn new(mac: [u8; 6], xid: u32) -> Client {
        Client {
            mac,
            xid,
            state: State::Init,
            started: Duration::ZERO,
            deadline: None,
            interval: FIRST_TIMEOUT,
        }
    }

    /// The transaction id in use (it changes when the exchange starts over).
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The lease, once bound.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(l) => Some(l),
            _ => None,
        }
    }

    /// When [`on_timeout`](Client::on_timeout) should next be called; `None`
    /// when nothing is pending (not started, or bound).
    pub fn next_timeout(&self) -> Option<Duration> {
        self.deadline
    }

    /// Begins (or begins again) acquiring an address: the DISCOVER to broadcast.
    pub fn start(&mut self, now: Duration) -> Vec<u8> {
        self.started = now;
        self.state = State::Selecting;
        self.arm(now, FIRST_TIMEOUT);
        self.discover(now)
    }

    /// Handles one received UDP payload. Anything that is not a well-formed
    /// answer to this client's current question is ignored (`None`): other
    /// clients' traffic, other transactions, garbage.
    pub fn on_packet(&mut self, pkt: &[u8], now: Duration) -> Option<Action> {
        let msg = Message::decode(pkt).ok()?;
        if msg.op != BOOTREPLY
            || msg.xid != self.xid
            || msg.htype != HTYPE_ETHERNET
            || msg.hlen != 6
            || msg.chaddr[..6] != self.mac
        {
            return None;
        }
        let server_id = msg.options.server_id;
        match (&self.state, msg.options.message_type?) {
            (State::Selecting, MessageType::Offer) => {
                // RFC 2131 requires option 54 in an OFFER; siaddr is the
                // fallback for servers that forget it.
                let server = server_id.or(Some(msg.siaddr).filter(|a| !a.is_unspecified()))?;
                if !usable(msg.yiaddr) {
                    return None;
                }
                self.state = State::Requesting {
                    address: msg.yiaddr,
                    server,
                    sent: 1,
                };
                self.arm(now, FIRST_TIMEOUT);
                Some(Action::Send(self.request(now, msg.yiaddr, server)))
            }
            (State::Requesting { server, .. }, MessageType::Ack) => {
                let server = *server;
                if server_id.is_some_and(|s| s != server) || !usable(msg.yiaddr) {
                    return None;
                }
                let lease = lease_from(&msg, server);
                self.state = State::Bound(lease.clone());
                self.deadline = None;
                Some(Action::Bound(lease))
            }
            (State::Requesting { server, .. }, MessageType::Nak) => {
                if server_id.is_some_and(|s| s != *server) {
                    return None;
                }
                Some(Action::Send(self.restart(now)))
            }
            _ => None,
        }
    }

    /// Retransmits if the deadline has passed: the bytes to send, or `None`
    /// if it is not time yet (or nothing is pending). Delays go 4 s, 8 s,
    /// 16 s … up to 64 s; a REQUEST that stays unanswered
    /// [`MAX_REQUESTS`] times gives way to a new DISCOVER.
    pub fn on_timeout(&mut self, now: Duration) -> Option<Vec<u8>> {
        if now < self.deadline? {
            return None;
        }
        let interval = (self.interval * 2).min(MAX_TIMEOUT);
        match self.state.clone() {
            State::Selecting => {
                self.arm(now, interval);
                Some(self.discover(now))
            }
            State::Requesting { sent, .. } if sent >= MAX_REQUESTS => Some(self.restart(now)),
            State::Requesting {
                address,
                server,
                sent,
            } => {
                self.state = State::Requesting {
                    address,
                    server,
                    sent: sent + 1,
                };
                self.arm(now, interval);
                Some(self.request(now, address, server))
            }
            State::Init | State::Bound(_) => None,
        }
    }

    /// Starts over with a new transaction id, so late answers to the old
    /// exchange are ignored.
    fn restart(&mut self, now: Duration) -> Vec<u8> {
        self.xid = self.xid.wrapping_add(1);
        self.start(now)
    }

    fn arm(&mut self, now: Duration, interval: Duration) {
        self.interval = interval;
        self.deadline = Some(now.saturating_add(interval));
    }

    fn base(&self, now: Duration, kind: MessageType) -> Message {
        let mut chaddr = [0; 16];
        chaddr[..6].copy_from_slice(&self.mac);
        let mut client_id = vec![HTYPE_ETHERNET];
        client_id.extend_from_slice(&self.mac);
        let secs = now.saturating_sub(self.started).as_secs();
        Message {
            xid: self.xid,
            secs: u16::try_from(secs).unwrap_or(u16::MAX),
            flags: FLAG_BROADCAST,
            chaddr,
            options: Options {
                message_type: Some(kind),
                client_id: Some(client_id),
                parameter_request_list: PARAMETERS.to_vec(),
                ..Options::default()
            },
            ..Message::default()
        }
    }

    fn discover(&self, now: Duration) -> Vec<u8> {
        self.base(now, MessageType::Discover).encode()
    }

    fn request(&self, now: Duration, address: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
        let mut m = self.base(now, MessageType::Request);
        m.options.requested_ip = Some(address);
        m.options.server_id = Some(server);
        m.encode()
    }
}

/// The least MTU an IPv4 link may have (RFC 791, RFC 2132 §5.1).
const MIN_MTU: u16 = 68;

/// An address a server may hand out to a host.
fn usable(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

pub(super) fn lease_from(msg: &Message, server: Ipv4Addr) -> Lease {
    let o = &msg.options;
    let prefix_len = o
        .subnet_mask
        .and_then(mask_to_prefix)
        .unwrap_or_else(|| default_prefix_len(msg.yiaddr));
    Lease {
        address: msg.yiaddr,
        prefix_len,
        router: o.routers.iter().copied().find(|r| usable(*r)),
        dns: o.dns.iter().copied().filter(|d| usable(*d)).collect(),
        lease_time: o
            .lease_time
            .filter(|&t| t != u32::MAX)
            .map(|t| Duration::from_secs(t.into())),
        server: o.server_id.unwrap_or(server),
        mtu: o.mtu.filter(|&m| m >= MIN_MTU),
        ntp: o
            .ntp_servers
            .iter()
            .copied()
            .filter(|a| usable(*a))
            .collect(),
        domain_search: o.domain_search.clone(),
        classless_routes: o
            .classless_routes
            .iter()
            .copied()
            .filter(|r| r.is_on_link() || usable(r.gateway))
            .collect(),
    }
}
