//! Coalesced misses: concurrent requests for one cold key wait for one handler run.
//!
//! The first request to miss a key *leads*: it runs the handler. Requests that miss the
//! same key while it runs *follow*: they wait for its [`Outcome`]. A stored response is
//! handed to them (each checks that the response's `Vary` gives it the same key); a
//! response that was not stored sends each back to run its own handler. The leader's
//! [`Lead`] is a drop guard: a leader that is cancelled (its client went away) removes
//! its flight and wakes its followers, one of which leads in its place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderName;
use tokio::sync::watch;

use super::entry::Entry;

type Map = HashMap<String, (u64, watch::Receiver<Outcome>)>;

/// The flights of one layer or view, by stored key.
#[derive(Default)]
pub(crate) struct Flights(Arc<Mutex<Map>>);

/// A layer's clone starts with no flight of its own.
impl Clone for Flights {
    fn clone(&self) -> Self {
        Flights::default()
    }
}

/// How a flight ended.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The leader's handler is still running.
    Pending,
    /// The leader stored its response.
    Stored(Arc<Handoff>),
    /// The leader's response was not stored: each follower runs its own handler.
    NotStored,
}

/// A stored response, handed from the leader to its followers.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// The stored key it was stored under.
    pub(crate) key: String,
    /// The header names its `Vary` listed.
    pub(crate) learned: Vec<HeaderName>,
    pub(crate) entry: Entry,
}

/// What joining a flight made of this request.
pub(crate) enum Joined {
    Lead(Lead),
    Follow(Follow),
}

impl Flights {
    /// Joins the flight of `key`, starting it if none is running.
    pub(crate) fn join(&self, key: String) -> Joined {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A flight whose leader is gone (its guard always removes it; this is the belt to
        // those braces) is replaced rather than followed.
        if let Some((_, outcome)) = map.get(&key).filter(|(_, o)| o.has_changed().is_ok()) {
            return Joined::Follow(Follow(outcome.clone()));
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Outcome::Pending);
        map.insert(key.clone(), (id, rx));
        Joined::Lead(Lead {
            map: Arc::clone(&self.0),
            key,
            id,
            tx,
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The leader's hold on a flight: ends it when finished or dropped.
pub(crate) struct Lead {
    map: Arc<Mutex<Map>>,
    key: String,
    id: u64,
    tx: watch::Sender<Outcome>,
}

impl Lead {
    /// Tells the followers how the flight ended, and ends it.
    pub(crate) fn finish(self, outcome: Outcome) {
        self.tx.send_replace(outcome);
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
        // Dropping `tx` (after this) wakes followers still waiting: the leader is gone.
    }
}

/// A follower's wait for a flight.
pub(crate) struct Follow(watch::Receiver<Outcome>);

impl Follow {
    /// How the flight ended, or `None` when its leader went away without saying.
    pub(crate) async fn wait(mut self) -> Option<Outcome> {
        let ended = self
            .0
            .wait_for(|o| !matches!(o, Outcome::Pending))
            .await
            .ok()?;
        Some(ended.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(joined: Joined) -> Lead {
        match joined {
            Joined::Lead(lead) => lead,
            Joined::Follow(_) => panic!("expected to lead"),
        }
    }

    fn follow(joined: Joined) -> Follow {
        match joined {
            Joined::Follow(follow) => follow,
            Joined::Lead(_) => panic!("expected to follow"),
        }
    }

    #[tokio::test]
    async fn followers_get_the_outcome_and_the_flight_ends() {
        let flights = Flights::default();
        let leader = lead(flights.join("k".into()));
        let a = follow(flights.join("k".into()));
        let b = follow(flights.join("k".into()));
        let other = lead(flights.join("other".into()));
        assert_eq!(flights.len(), 2);
        leader.finish(Outcome::NotStored);
        assert_eq!(flights.len(), 1, "a finished flight is removed");
        assert!(matches!(a.wait().await, Some(Outcome::NotStored)));
        assert!(matches!(b.wait().await, Some(Outcome::NotStored)));
        drop(other);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_wakes_its_followers_and_leaves_nothing_behind() {
        let flights = Flights::default();
        let leader = lead(flights.join("k".into()));
        let waiting = tokio::spawn(follow(flights.join("k".into())).wait());
        tokio::task::yield_now().await;
        drop(leader);
        assert_eq!(flights.len(), 0);
        let woke = waiting.await.expect("the follower task");
        assert!(
            woke.is_none(),
            "the follower learns that the leader is gone"
        );
        // The next request leads a new flight.
        let _next = lead(flights.join("k".into()));
        assert_eq!(flights.len(), 1);
    }

    #[tokio::test]
    async fn a_stale_leader_does_not_remove_a_newer_flight() {
        let flights = Flights::default();
        let first = lead(flights.join("k".into()));
        // Simulate the first flight's entry being replaced (it ended and a new one began).
        flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let second = lead(flights.join("k".into()));
        drop(first);
        assert_eq!(flights.len(), 1, "the second flight is still running");
        drop(second);
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn a_flight_whose_leader_is_gone_is_led_anew() {
        let flights = Flights::default();
        // An entry whose sender is gone (as if a guard had not run).
        let (tx, rx) = watch::channel(Outcome::Pending);
        drop(tx);
        flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert("k".into(), (u64::MAX, rx));
        assert!(matches!(flights.join("k".into()), Joined::Lead(_)));
    }

    #[test]
    fn clones_do_not_share_flights() {
        let flights = Flights::default();
        let _held = lead(flights.join("k".into()));
        let clone = flights.clone();
        assert_eq!(clone.len(), 0);
    }
}
