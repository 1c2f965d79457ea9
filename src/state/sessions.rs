//! Browser sessions in memory (`[login] session_store = "state"` with the memory
//! backend, SPEC §9): sealed values by key with an expiry, swept as the map grows,
//! at most `[state] max_entries` of them (the soonest to expire go first over it).

use super::StateError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Sealed sessions by key, with their expiry.
type Map = HashMap<String, (String, Instant)>;

/// The sessions of the memory backend.
pub struct MemorySessions {
    map: Mutex<Map>,
    cap: usize,
}

impl MemorySessions {
    /// An empty map holding at most `cap` sessions.
    pub fn new(cap: usize) -> Self {
        MemorySessions {
            map: Mutex::default(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Map>, StateError> {
        self.map
            .lock()
            .map_err(|_| StateError("memory store lock poisoned".into()))
    }

    /// Stores `value` under `key` for `ttl`.
    pub fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StateError> {
        let mut m = self.lock()?;
        let now = Instant::now();
        if m.len() >= self.cap {
            m.retain(|_, (_, end)| *end > now);
        }
        while m.len() >= self.cap {
            let soonest = m
                .iter()
                .min_by_key(|(_, (_, end))| *end)
                .map(|(k, _)| k.clone());
            match soonest {
                Some(k) => m.remove(&k),
                None => break,
            };
        }
        m.insert(key.to_owned(), (value.to_owned(), now + ttl));
        Ok(())
    }

    /// The value under `key`, unless expired.
    pub fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        let now = Instant::now();
        Ok(self
            .lock()?
            .get(key)
            .filter(|(_, end)| *end > now)
            .map(|(v, _)| v.clone()))
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &str) -> Result<(), StateError> {
        self.lock()?.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_expire_and_cap() {
        let s = MemorySessions::new(2);
        s.put("a", "1", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some("1"));
        s.delete("a").unwrap();
        assert_eq!(s.get("a").unwrap(), None);
        s.put("gone", "x", Duration::ZERO).unwrap();
        assert_eq!(s.get("gone").unwrap(), None);
        s.put("b", "2", Duration::from_secs(10)).unwrap();
        s.put("c", "3", Duration::from_secs(60)).unwrap();
        s.put("d", "4", Duration::from_secs(60)).unwrap();
        assert_eq!(s.get("b").unwrap(), None, "the soonest to expire went");
        assert_eq!(s.get("d").unwrap().as_deref(), Some("4"));
    }
}
