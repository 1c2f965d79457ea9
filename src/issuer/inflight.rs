//! Password checks in flight per client address (SPEC §5): one address cannot
//! monopolise the hashing pool. A login holds a slot of its address from before it
//! queues for a hashing slot until its check has finished on the blocking pool, so
//! a burst from one address waits behind at most [`ADDR_MAX_CHECKS`] of its own
//! checks per other address, instead of everyone waiting behind the burst.
//!
//! Guarantees: at most [`ADDR_MAX_CHECKS`] checks per address are queued or running;
//! over it the login is refused at once (429, `Retry-After: 1`) without hashing;
//! the table holds only addresses with a check in flight (an entry goes with its last
//! slot). IPv6 addresses count per /64, the block one subscriber usually holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Password checks one client address may have queued or running at once.
pub const ADDR_MAX_CHECKS: usize = 4;

/// Checks in flight, by address.
#[derive(Debug, Default)]
pub struct InFlight {
    by_addr: Mutex<HashMap<IpAddr, usize>>,
}

/// One check's slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    table: Arc<InFlight>,
    addr: IpAddr,
}

/// The address a limit is counted under: IPv4 as is, IPv6 by its /64
/// (an IPv4-mapped IPv6 address as the IPv4 address).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

impl InFlight {
    /// A slot for a check from `ip`, or `None` when that address already has
    /// [`ADDR_MAX_CHECKS`] in flight.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let addr = key(ip);
        // A poisoned lock: the counts may be off by a panicked holder's slot; carry on.
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(addr).or_insert(0);
        if *n >= ADDR_MAX_CHECKS {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: self.clone(),
            addr,
        })
    }

    /// Checks in flight from `ip` (its /64 for IPv6).
    pub fn count(&self, ip: IpAddr) -> usize {
        let map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.table.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_limit() {
        let t = Arc::new(InFlight::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<Slot> = (0..ADDR_MAX_CHECKS)
            .map(|_| t.acquire(a).unwrap())
            .collect();
        assert!(t.acquire(a).is_none());
        // Another address is not affected.
        let other = t.acquire(b).unwrap();
        drop(held);
        assert_eq!(t.count(a), 0);
        assert!(t.by_addr.lock().unwrap().get(&a).is_none(), "entry kept");
        assert!(t.acquire(a).is_some());
        drop(other);
        assert!(t.by_addr.lock().unwrap().is_empty());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = Arc::new(InFlight::default());
        let _held: Vec<Slot> = (0..ADDR_MAX_CHECKS)
            .map(|i| {
                t.acquire(format!("2001:db8::{i}").parse().unwrap())
                    .unwrap()
            })
            .collect();
        assert!(t.acquire("2001:db8::ffff:1".parse().unwrap()).is_none());
        assert!(t.acquire("2001:db8:0:1::1".parse().unwrap()).is_some());
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        let _s = t.acquire(mapped).unwrap();
        assert_eq!(t.count("192.0.2.9".parse().unwrap()), 1);
    }
}
