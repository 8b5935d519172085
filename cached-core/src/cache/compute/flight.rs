//! Single flight: concurrent callers of one missing key in one process share one
//! computation, and cancellation is a code path.
//!
//! The first caller of a key becomes its *leader* and gets a [`Leader`] guard; later
//! callers are *followers* and wait on a [`watch`] channel for the leader's
//! [`Outcome`]. Whatever happens to the leader, its guard's `Drop` removes the flight
//! from the map and tells the followers:
//!
//! | the leader | followers get | and then |
//! |---|---|---|
//! | finished with a value | [`Outcome::Value`] | return it |
//! | finished with an error | [`Outcome::Failed`] | each runs its own body at once, so N callers of a failing body take about two body times, not N |
//! | was dropped (client gone, timeout, abort) | [`Outcome::Abandoned`] | join again: one of them leads |
//!
//! A body that calls back into its own key (same cache, key and value type) from the
//! same task would wait for itself forever; the task-local [`HELD`] list of flights the
//! current task leads detects it, and the inner call runs uncached.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// One flight's identity: its cache's flight map, stored key and value type.
type FlightKey = (String, TypeId);

/// What the followers of a flight learn.
#[derive(Clone)]
pub(crate) enum Outcome<T> {
    /// The leader is still computing.
    Running,
    /// The leader's value.
    Value(T),
    /// The leader's body failed (its error is the leader's alone).
    Failed,
    /// The leader was dropped before it finished.
    Abandoned,
}

/// In-flight computations of one cache (shared by its versioned views), by stored key
/// and value type.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<FlightKey, Arc<dyn Any + Send + Sync>>>,
}

/// How a caller joined a flight.
pub(crate) enum Joined<T: Clone + Send + Sync + 'static> {
    /// No flight ran: this caller computes, and must finish or drop the guard.
    Leader(Leader<T>),
    /// Another caller computes: wait with [`follow`].
    Follower(watch::Receiver<Outcome<T>>),
    /// This task already leads this very flight (the body re-entered its own key).
    Reentered,
}

/// The leader's obligation: publish an outcome. Dropping it unfinished publishes
/// [`Outcome::Abandoned`] and removes the flight, so nothing leaks and no follower
/// waits for a computation that no longer runs.
pub(crate) struct Leader<T: Clone + Send + Sync + 'static> {
    flights: Arc<Flights>,
    key: FlightKey,
    tx: Arc<watch::Sender<Outcome<T>>>,
    done: bool,
}

tokio::task_local! {
    /// The flights the current task leads, innermost last: `(flight map, key)`.
    static HELD: Vec<(usize, FlightKey)>;
}

impl Flights {
    /// Joins the flight of `key` for values of type `T`, creating it if none runs.
    pub(crate) fn join<T: Clone + Send + Sync + 'static>(self: &Arc<Self>, key: &str) -> Joined<T> {
        let id = (key.to_owned(), TypeId::of::<T>());
        if self.held_by_this_task(&id) {
            return Joined::Reentered;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = map.get(&id) {
            // The TypeId in the key makes this downcast succeed.
            if let Ok(tx) = Arc::clone(existing).downcast::<watch::Sender<Outcome<T>>>() {
                return Joined::Follower(tx.subscribe());
            }
        }
        let (tx, _) = watch::channel(Outcome::Running);
        let tx = Arc::new(tx);
        map.insert(id.clone(), Arc::clone(&tx) as Arc<dyn Any + Send + Sync>);
        Joined::Leader(Leader {
            flights: Arc::clone(self),
            key: id,
            tx,
            done: false,
        })
    }

    fn held_by_this_task(&self, id: &FlightKey) -> bool {
        let me = self.id();
        HELD.try_with(|held| held.iter().any(|(map, key)| *map == me && key == id))
            .unwrap_or(false)
    }

    /// Identifies this map (the address of its allocation) in [`HELD`].
    fn id(&self) -> usize {
        self as *const Flights as usize
    }

    fn remove(&self, id: &FlightKey, tx: &Arc<dyn Any + Send + Sync>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(id).is_some_and(|current| Arc::ptr_eq(current, tx)) {
            map.remove(id);
        }
    }

    /// How many flights are registered (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl<T: Clone + Send + Sync + 'static> Leader<T> {
    /// Runs `body` as this flight's computation: a call inside it that joins the same
    /// flight from this task is [`Joined::Reentered`] instead of waiting for itself.
    pub(crate) async fn run<F: Future>(&self, body: F) -> F::Output {
        let mut held = HELD.try_with(Clone::clone).unwrap_or_default();
        held.push((self.flights.id(), self.key.clone()));
        HELD.scope(held, body).await
    }

    /// Publishes the leader's value (`Some`) or failure (`None`) and ends the flight.
    pub(crate) fn finish(mut self, value: Option<T>) {
        self.done = true;
        self.end(match value {
            Some(v) => Outcome::Value(v),
            None => Outcome::Failed,
        });
    }

    fn end(&self, outcome: Outcome<T>) {
        let tx: Arc<dyn Any + Send + Sync> = Arc::clone(&self.tx) as _;
        self.flights.remove(&self.key, &tx);
        self.tx.send_replace(outcome);
    }
}

impl<T: Clone + Send + Sync + 'static> Drop for Leader<T> {
    fn drop(&mut self) {
        if !self.done {
            self.end(Outcome::Abandoned);
        }
    }
}

/// Waits for the leader followed by `rx` to publish an outcome (never `Running`).
pub(crate) async fn follow<T: Clone>(mut rx: watch::Receiver<Outcome<T>>) -> Outcome<T> {
    match rx.wait_for(|o| !matches!(o, Outcome::Running)).await {
        Ok(outcome) => outcome.clone(),
        // The sender is gone without a word: only possible if the leader's guard was
        // leaked; treat it as abandoned.
        Err(_) => Outcome::Abandoned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_leader_removes_its_flight_and_frees_its_followers() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(leader) = flights.join::<u32>("k") else {
            panic!("first caller leads")
        };
        let Joined::Follower(rx) = flights.join::<u32>("k") else {
            panic!("second caller follows")
        };
        assert_eq!(flights.len(), 1);
        drop(leader);
        assert_eq!(flights.len(), 0, "the flight left with its leader");
        assert!(matches!(follow(rx).await, Outcome::Abandoned));
        assert!(matches!(flights.join::<u32>("k"), Joined::Leader(_)));
    }

    #[tokio::test]
    async fn values_and_failures_reach_every_follower() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(leader) = flights.join::<u32>("k") else {
            panic!("leads")
        };
        let followers: Vec<_> = (0..3)
            .map(|_| match flights.join::<u32>("k") {
                Joined::Follower(rx) => rx,
                _ => panic!("follows"),
            })
            .collect();
        leader.finish(Some(7));
        for rx in followers {
            assert!(matches!(follow(rx).await, Outcome::Value(7)));
        }
        let Joined::Leader(leader) = flights.join::<u32>("k") else {
            panic!("a finished flight is gone")
        };
        let Joined::Follower(rx) = flights.join::<u32>("k") else {
            panic!("follows")
        };
        leader.finish(None);
        assert!(matches!(follow(rx).await, Outcome::Failed));
    }

    #[tokio::test]
    async fn the_same_task_joining_its_own_flight_is_reentry_other_types_are_not() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(leader) = flights.join::<u32>("k") else {
            panic!("leads")
        };
        let inner = leader
            .run(async {
                let again = matches!(flights.join::<u32>("k"), Joined::Reentered);
                // Another value type under the same key is another flight.
                let other = matches!(flights.join::<String>("k"), Joined::Leader(_));
                (again, other)
            })
            .await;
        assert_eq!(inner, (true, true));
        // Outside the body, the same task is a follower again.
        assert!(matches!(flights.join::<u32>("k"), Joined::Follower(_)));
        leader.finish(Some(1));
    }
}
