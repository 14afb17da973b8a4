//! The client side of DHCPv6 (RFC 8415 §18.2): Solicit → Advertise →
//! Request → Reply, or Information-request → Reply, as a state machine
//! fed with packets, the time and random numbers, with the retransmission
//! of RFC 8415 §15; it never touches a socket, a clock or an RNG itself.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::*;

/// What the network gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    /// `(address, preferred lifetime, valid lifetime)`, lifetimes in seconds
    /// (`u32::MAX` is infinite); empty for a stateless exchange. DHCPv6
    /// gives no prefix length: an address is a /128, the on-link prefix
    /// comes from the router advertisement.
    pub addresses: Vec<(Ipv6Addr, u32, u32)>,
    /// DNS servers, most preferred first (option 23).
    pub dns: Vec<Ipv6Addr>,
    /// DNS search domains (option 24).
    pub search: Vec<String>,
    /// NTP servers (option 56), then SNTP servers (option 31), without repeats.
    pub ntp: Vec<NtpServer6>,
    /// The DUID of the server that answered.
    pub server_id: Vec<u8>,
}

/// Which exchange to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Addresses and configuration: Solicit → Advertise → Request → Reply
    /// (routers set the M flag).
    Stateful,
    /// Configuration only: Information-request → Reply (routers set only the O flag).
    Stateless,
}

/// What the caller should do after [`Client::on_packet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to [`ALL_DHCP_RELAY_AGENTS_AND_SERVERS`] port
    /// [`SERVER_PORT`], from the link-local address, port [`CLIENT_PORT`].
    Send(Vec<u8>),
    /// The exchange is complete: configure the interface with this.
    Done(Lease6),
}

/// A server that offered addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Advert {
    server_id: Vec<u8>,
    preference: u8,
    addresses: Vec<Ipv6Addr>,
}

/// Where the client is in the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// [`Client::start`] not called yet.
    Init,
    /// Solicit sent. Until the first retransmission time is over, the best
    /// Advertise so far waits in `best` (RFC 8415 §18.2.1: collect, then
    /// choose); after it, the first usable one is taken at once.
    Soliciting {
        first_rt_over: bool,
        best: Option<Advert>,
    },
    /// Request sent to the chosen server, waiting for its Reply.
    Requesting {
        advert: Advert,
        /// Requests sent so far.
        sent: u32,
    },
    /// Information-request sent, waiting for a Reply.
    Informing,
    /// Done.
    Done(Lease6),
}

/// Retransmission parameters of RFC 8415 §7.6.
const SOL_TIMEOUT: Duration = Duration::from_secs(1);
const SOL_MAX_RT: Duration = Duration::from_secs(3600);
const REQ_TIMEOUT: Duration = Duration::from_secs(1);
const REQ_MAX_RT: Duration = Duration::from_secs(30);
const REQ_MAX_RC: u32 = 10;
const INF_TIMEOUT: Duration = Duration::from_secs(1);
const INF_MAX_RT: Duration = Duration::from_secs(3600);
/// The range a server's SOL_MAX_RT / INF_MAX_RT must be in to count (RFC 8415 §21.24).
const MAX_RT_RANGE: std::ops::RangeInclusive<u32> = 60..=86400;

/// Options asked for: DNS servers, search list, NTP, SNTP.
const WANTED: [u16; 4] = [
    code::DNS_SERVERS,
    code::DOMAIN_LIST,
    code::NTP_SERVER,
    code::SNTP_SERVERS,
];

/// Transaction ids are 24 bits.
const XID_MASK: u32 = 0x00ff_ffff;

/// `base` plus RAND × `base`, RAND from `rand` uniformly in [-0.1, 0.1]
/// (RFC 8415 §15), or in (0, 0.1] when `above` (the first Solicit RT must
/// exceed IRT so that Advertises can be collected for a full IRT).
fn randomize(base: Duration, rand: u32, above: bool) -> Duration {
    let ms = i64::try_from(base.as_millis()).unwrap_or(i64::MAX / 2);
    let r = i64::from(rand);
    let permille = if above {
        1 + ((r * 100) >> 32)
    } else {
        ((r * 201) >> 32) - 100
    };
    let ms = ms.saturating_add(ms.saturating_mul(permille) / 1000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The RT after `prev` (RFC 8415 §15): 2·RTprev + RAND·RTprev, capped
/// at MRT + RAND·MRT.
fn next_rt(prev: Duration, max: Duration, rand: u32) -> Duration {
    let rt = prev.saturating_add(randomize(prev, rand, false));
    if rt > max {
        randomize(max, rand, false)
    } else {
        rt
    }
}

/// A DHCPv6 client for one Ethernet interface, driven by the caller.
///
/// The caller sends what [`start`](Client::start) returns, feeds every UDP
/// payload received on port 546 to [`on_packet`](Client::on_packet), and
/// calls [`on_timeout`](Client::on_timeout) when
/// [`next_timeout`](Client::next_timeout) has passed, giving each call a
/// fresh random `u32` (retransmission times are randomized so that many
/// machines booting together do not retransmit in step). `now` is any
/// monotonic clock; only differences matter. Retransmission never gives
/// up on its own (RFC 8415 has no limit for Solicit and
/// Information-request): the caller decides how long a boot may wait.
///
/// RFC 8415 §18.2.1 says the first Solicit SHOULD be delayed by up to a
/// second; that delay is the caller's to make before `start`.
#[derive(Debug, Clone)]
pub struct Client {
    mode: Mode,
    /// DUID-LL (RFC 8415 §11.4): type 3, hardware type 1, the MAC.
    duid: Vec<u8>,
    iaid: u32,
    xid: u32,
    state: State,
    /// When the current transaction began, for the Elapsed Time option.
    started: Duration,
    /// When to retransmit, if waiting.
    deadline: Option<Duration>,
    /// The retransmission time that led to `deadline`.
    rt: Duration,
    /// SOL_MAX_RT, which a server may change (RFC 8415 §18.2.9).
    sol_max_rt: Duration,
}

impl Client {
    /// A client for the interface with hardware address `mac`, starting
    /// with transaction id `xid` (24 bits; the caller picks it at random).
    pub fn new(mac: [u8; 6], xid: u32, mode: Mode) -> Client {
        let mut duid = vec![0, 3, 0, 1];
        duid.extend_from_slice(&mac);
        Client {
            mode,
            duid,
            // The low 4 bytes of the MAC: stable across boots, distinct
            // per interface, as dhcpcd and systemd-networkd derive it.
            iaid: u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
            xid: xid & XID_MASK,
            state: State::Init,
            started: Duration::ZERO,
            deadline: None,
            rt: Duration::ZERO,
            sol_max_rt: SOL_MAX_RT,
        }
    }

    /// The Client Identifier sent: DUID-LL of the MAC.
    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    /// The IAID of the IA_NA sent.
    pub fn iaid(&self) -> u32 {
        self.iaid
    }

    /// The transaction id in use (each Solicit, Request or restart takes a new one).
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The result, once done.
    pub fn lease(&self) -> Option<&Lease6> {
        match &self.state {
            State::Done(l) => Some(l),
            _ => None,
        }
    }

    /// When [`on_timeout`](Client::on_timeout) should next be called; `None`
    /// when nothing is pending (not started, or done).
    pub fn next_timeout(&self) -> Option<Duration> {
        self.deadline
    }

    /// Begins (or begins again) the exchange: the Solicit or
    /// Information-request to send.
    pub fn start(&mut self, now: Duration, rand: u32) -> Vec<u8> {
        self.started = now;
        match self.mode {
            Mode::Stateful => {
                self.state = State::Soliciting {
                    first_rt_over: false,
                    best: None,
                };
                self.arm(now, randomize(SOL_TIMEOUT, rand, true));
                self.solicit(now)
            }
            Mode::Stateless => {
                self.state = State::Informing;
                self.arm(now, randomize(INF_TIMEOUT, rand, false));
                self.information_request(now)
            }
        }
    }

    /// Handles one received UDP payload. Anything that is not a well-formed
    /// answer to this client's current question is ignored (`None`): other
    /// clients' traffic, other transactions, garbage, unusable offers.
    pub fn on_packet(&mut self, pkt: &[u8], now: Duration, rand: u32) -> Option<Action> {
        let msg = Message::decode(pkt).ok()?;
        // RFC 8415 §16.3, §16.10: our transaction, our Client Identifier,
        // and a Server Identifier.
        if msg.xid != self.xid || msg.options.client_id.as_deref() != Some(self.duid.as_slice()) {
            return None;
        }
        let server_id = msg.options.server_id.clone()?;
        match (&self.state, msg.kind) {
            (
                State::Soliciting {
                    first_rt_over,
                    best,
                },
                MessageType::Advertise,
            ) => {
                if let Some(t) = msg.options.sol_max_rt.filter(|t| MAX_RT_RANGE.contains(t)) {
                    self.sol_max_rt = Duration::from_secs(t.into());
                }
                let advert = self.advert(&msg, server_id)?;
                if advert.preference == u8::MAX || *first_rt_over {
                    return Some(Action::Send(self.begin_request(now, advert, rand)));
                }
                // The first of equal preference wins: it answered fastest.
                if best
                    .as_ref()
                    .is_none_or(|b| advert.preference > b.preference)
                {
                    self.state = State::Soliciting {
                        first_rt_over: false,
                        best: Some(advert),
                    };
                }
                None
            }
            (State::Requesting { advert, .. }, MessageType::Reply) => {
                if server_id != advert.server_id {
                    return None;
                }
                match msg.options.status.as_ref().map(|s| s.code) {
                    None | Some(status::SUCCESS) => {}
                    // The link is not where the server thought: ask again.
                    Some(status::NOT_ON_LINK) => {
                        return Some(Action::Send(self.restart(now, rand)))
                    }
                    // UnspecFail and the like: the retransmission will retry.
                    Some(_) => return None,
                }
                let lease = self.lease_from(&msg, server_id);
                if lease.addresses.is_empty() {
                    // NoAddrsAvail after all: another server may have some.
                    return Some(Action::Send(self.restart(now, rand)));
                }
                Some(self.finish(lease))
            }
            (State::Informing, MessageType::Reply) => {
                if msg
                    .options
                    .status
                    .as_ref()
                    .is_some_and(|s| s.code != status::SUCCESS)
                {
                    return None;
                }
                let mut lease = self.lease_from(&msg, server_id);
                lease.addresses.clear();
                Some(self.finish(lease))
            }
            _ => None,
        }
    }

    /// Retransmits if the deadline has passed: the bytes to send, or `None`
    /// if it is not time yet (or nothing is pending). At the end of the
    /// first Solicit RT, the best Advertise collected is requested instead.
    /// A Request unanswered REQ_MAX_RC (10) times gives way to a new Solicit.
    pub fn on_timeout(&mut self, now: Duration, rand: u32) -> Option<Vec<u8>> {
        if now < self.deadline? {
            return None;
        }
        match self.state.clone() {
            State::Soliciting {
                best: Some(advert), ..
            } => Some(self.begin_request(now, advert, rand)),
            State::Soliciting { best: None, .. } => {
                self.state = State::Soliciting {
                    first_rt_over: true,
                    best: None,
                };
                self.arm(now, next_rt(self.rt, self.sol_max_rt, rand));
                Some(self.solicit(now))
            }
            State::Requesting { sent, .. } if sent >= REQ_MAX_RC => Some(self.restart(now, rand)),
            State::Requesting { advert, sent } => {
                self.arm(now, next_rt(self.rt, REQ_MAX_RT, rand));
                let bytes = self.request(now, &advert);
                self.state = State::Requesting {
                    advert,
                    sent: sent + 1,
                };
                Some(bytes)
            }
            State::Informing => {
                self.arm(now, next_rt(self.rt, INF_MAX_RT, rand));
                Some(self.information_request(now))
            }
            State::Init | State::Done(_) => None,
        }
    }

    /// An Advertise this client can request from: a Status of success (or
    /// none), and addresses in an IA_NA of ours.
    fn advert(&self, msg: &Message, server_id: Vec<u8>) -> Option<Advert> {
        if msg
            .options
            .status
            .as_ref()
            .is_some_and(|s| s.code != status::SUCCESS)
        {
            return None;
        }
        let addresses: Vec<Ipv6Addr> = self
            .lease_from(msg, Vec::new())
            .addresses
            .iter()
            .map(|a| a.0)
            .collect();
        if addresses.is_empty() {
            return None;
        }
        Some(Advert {
            server_id,
            preference: msg.options.preference.unwrap_or(0),
            addresses,
        })
    }

    /// What an Advertise or Reply gives, keeping only usable addresses:
    /// in an IA_NA with our IAID whose status is success, with a status of
    /// success themselves, valid for more than 0 s, preferred no longer
    /// than valid (RFC 8415 §18.2.10.1 says to discard the others).
    fn lease_from(&self, msg: &Message, server_id: Vec<u8>) -> Lease6 {
        let ok = |s: &Option<Status>| s.as_ref().is_none_or(|s| s.code == status::SUCCESS);
        let o = &msg.options;
        let addresses = o
            .ia_na
            .iter()
            .filter(|ia| ia.iaid == self.iaid && ok(&ia.status))
            .flat_map(|ia| &ia.addresses)
            .filter(|a| ok(&a.status) && a.valid > 0 && a.preferred <= a.valid && usable(a.addr))
            .map(|a| (a.addr, a.preferred, a.valid))
            .collect();
        let mut ntp: Vec<NtpServer6> = Vec::new();
        for s in o
            .ntp
            .iter()
            .cloned()
            .chain(o.sntp.iter().map(|a| NtpServer6::Address(*a)))
        {
            if !ntp.contains(&s) {
                ntp.push(s);
            }
        }
        Lease6 {
            addresses,
            dns: o.dns.iter().copied().filter(|a| usable(*a)).collect(),
            search: o.search.clone(),
            ntp,
            server_id,
        }
    }

    fn finish(&mut self, lease: Lease6) -> Action {
        self.state = State::Done(lease.clone());
        self.deadline = None;
        Action::Done(lease)
    }

    /// A new transaction: a new id, so late answers to the old one are ignored.
    fn next_transaction(&mut self, now: Duration) {
        self.xid = self.xid.wrapping_add(1) & XID_MASK;
        self.started = now;
    }

    fn begin_request(&mut self, now: Duration, advert: Advert, rand: u32) -> Vec<u8> {
        self.next_transaction(now);
        self.arm(now, randomize(REQ_TIMEOUT, rand, false));
        let bytes = self.request(now, &advert);
        self.state = State::Requesting { advert, sent: 1 };
        bytes
    }

    /// Starts over with a Solicit in a new transaction.
    fn restart(&mut self, now: Duration, rand: u32) -> Vec<u8> {
        self.next_transaction(now);
        self.start(now, rand)
    }

    fn arm(&mut self, now: Duration, rt: Duration) {
        self.rt = rt;
        self.deadline = Some(now.saturating_add(rt));
    }

    fn base(&self, now: Duration, kind: MessageType, oro: &[u16]) -> Message {
        // Hundredths of a second, 0xffff for anything longer (RFC 8415 §21.9).
        let centis = now.saturating_sub(self.started).as_millis() / 10;
        Message {
            kind,
            xid: self.xid,
            options: Options {
                client_id: Some(self.duid.clone()),
                elapsed_time: Some(u16::try_from(centis).unwrap_or(u16::MAX)),
                oro: oro.to_vec(),
                ..Options::default()
            },
        }
    }

    fn ia_na(&self, addresses: &[Ipv6Addr]) -> IaNa {
        IaNa {
            iaid: self.iaid,
            t1: 0,
            t2: 0,
            // Lifetimes 0 from a client: the server decides (RFC 8415 §21.6).
            addresses: addresses
                .iter()
                .map(|&addr| IaAddr {
                    addr,
                    preferred: 0,
                    valid: 0,
                    status: None,
                })
                .collect(),
            status: None,
        }
    }

    fn solicit(&self, now: Duration) -> Vec<u8> {
        // The ORO of a Solicit must ask for SOL_MAX_RT (RFC 8415 §18.2.1).
        let mut oro = WANTED.to_vec();
        oro.push(code::SOL_MAX_RT);
        let mut m = self.base(now, MessageType::Solicit, &oro);
        m.options.ia_na = vec![self.ia_na(&[])];
        m.encode()
    }

    fn request(&self, now: Duration, advert: &Advert) -> Vec<u8> {
        let mut m = self.base(now, MessageType::Request, &WANTED);
        m.options.server_id = Some(advert.server_id.clone());
        m.options.ia_na = vec![self.ia_na(&advert.addresses)];
        m.encode()
    }

    fn information_request(&self, now: Duration) -> Vec<u8> {
        // The ORO of an Information-request must ask for INF_MAX_RT (RFC 8415 §18.2.6).
        let mut oro = WANTED.to_vec();
        oro.push(code::INF_MAX_RT);
        self.base(now, MessageType::InformationRequest, &oro)
            .encode()
    }
}

/// An address a server may hand out to a host, or name as a DNS server.
fn usable(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
}
