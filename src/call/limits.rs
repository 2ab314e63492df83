//! Call caps: a global total, and per scope (browser user, SIP profile). A call holds its slot
//! for its whole life; dropping the slot frees it, so no path can leak a count.

use std::collections::HashMap;
use std::sync::Arc;

/// Calls in progress, globally and per scope (a browser user, a SIP profile); a slot is held
/// for a call's whole life.
#[derive(Default)]
pub struct CallCounter {
    state: std::sync::Mutex<(usize, HashMap<CallScope, usize>)>,
    /// Woken whenever a slot is freed, for `idle`.
    released: tokio::sync::Notify,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallScope {
    User(String),
    Profile(String),
}

pub struct CallSlot {
    counter: Arc<CallCounter>,
    scopes: Vec<CallScope>,
}

impl CallCounter {
    /// Calls in progress right now.
    pub fn active(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Completes once no call is in progress (a drain waits on this).
    pub async fn idle(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a slot freed in between still wakes us.
            released.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            released.await;
        }
    }

    /// Takes a slot when the total and every scope are below their caps; otherwise takes nothing.
    pub fn acquire(self: &Arc<Self>, max_total: usize, scopes: &[(CallScope, usize)]) -> Option<CallSlot> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let full = |(scope, cap): &(CallScope, usize)| state.1.get(scope).copied().unwrap_or(0) >= *cap;
        if state.0 >= max_total || scopes.iter().any(full) {
            return None;
        }
        state.0 += 1;
        for (scope, _) in scopes {
            *state.1.entry(scope.clone()).or_default() += 1;
        }
        Some(CallSlot { counter: self.clone(), scopes: scopes.iter().map(|(scope, _)| scope.clone()).collect() })
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut state = self.counter.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = state.0.saturating_sub(1);
        for scope in &self.scopes {
            if let Some(count) = state.1.get_mut(scope) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    state.1.remove(scope);
                }
            }
        }
        drop(state);
        self.counter.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, cap: usize) -> (CallScope, usize) {
        (CallScope::User(name.into()), cap)
    }

    fn profile(name: &str, cap: usize) -> (CallScope, usize) {
        (CallScope::Profile(name.into()), cap)
    }

    #[test]
    fn a_full_profile_refuses_while_other_profiles_and_users_still_get_slots() {
        let counter = Arc::new(CallCounter::default());
        let first = counter.acquire(100, &[user("alice", 4), profile("trunk", 1)]).expect("first call");
        assert!(counter.acquire(100, &[user("bob", 4), profile("trunk", 1)]).is_none(), "the trunk is full");
        let other = counter.acquire(100, &[user("bob", 4), profile("pbx", 1)]);
        assert!(other.is_some(), "another profile is unaffected");
        drop(first);
        assert!(counter.acquire(100, &[user("bob", 4), profile("trunk", 1)]).is_some(), "the slot came back");
    }

    #[test]
    fn a_refused_call_takes_nothing_from_any_scope() {
        let counter = Arc::new(CallCounter::default());
        let _alice = counter.acquire(100, &[user("alice", 1)]).expect("alice");
        // Refused for alice's cap: the trunk's count must not have moved.
        assert!(counter.acquire(100, &[user("alice", 1), profile("trunk", 1)]).is_none());
        assert!(counter.acquire(100, &[user("bob", 1), profile("trunk", 1)]).is_some());
    }

    #[test]
    fn idle_completes_when_the_last_slot_is_freed_and_not_before() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let counter = Arc::new(CallCounter::default());
            let slots: Vec<_> = (0..2).filter_map(|i| counter.acquire(3, &[user(&format!("u{i}"), 1)])).collect();
            let idle = counter.idle();
            tokio::pin!(idle);
            let mut slots = slots.into_iter();
            drop(slots.next());
            assert!(futures_poll_once(idle.as_mut()).await.is_none(), "one call is still up");
            drop(slots.next());
            assert!(futures_poll_once(idle.as_mut()).await.is_some(), "no call is up");
        });
    }

    /// Polls `future` once: `Some` if it completed.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }))
        .await
    }

    #[test]
    fn the_global_total_caps_every_scope() {
        let counter = Arc::new(CallCounter::default());
        let slots: Vec<_> = (0..3).filter_map(|i| counter.acquire(3, &[user(&format!("u{i}"), 1)])).collect();
        assert_eq!(slots.len(), 3);
        assert!(counter.acquire(3, &[user("u9", 1)]).is_none());
    }
}
