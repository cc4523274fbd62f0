//! The work-queue state machine of one (queue, partition): pure, with time
//! passed in, no I/O and no protocol types.
//!
//! The partition's records from the ack floor up are a window of slots,
//! each available, locked to a member until a deadline, delayed until a
//! time, being dead-lettered, or done, with a delivery count. The caller
//! feeds records into the window from the log ([`PartitionQueue::offer`]),
//! hands them out, and applies acks, nacks, rejects, lock extensions and
//! releases. Every change that matters after a crash is queued as a
//! [`Transition`] for the state log ([`PartitionQueue::take_transitions`]);
//! records to dead-letter are queued as [`DeadLetter`]s, and only
//! [`PartitionQueue::dead_lettered`] (called once the dead letter is
//! durably in its topic) marks them done.
//!
//! Invariants (checked by [`PartitionQueue::check_invariants`] in tests):
//! - every offset below the floor is done; the window holds at most
//!   `window_records` slots, in increasing offset order, the first not done;
//! - `available` holds exactly the available slots, `timers` exactly the
//!   locked and delayed ones, keyed by their deadline;
//! - with `ordering = key`, a locked or delayed record is the first not-done
//!   record of its key, so a key is never worked on out of order;
//! - a record is handed out at most `max_deliveries` times: a failure
//!   (nack, lock expiry, release) after the last allowed delivery
//!   dead-letters it instead of making it available.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::Hasher;

use super::settings::{Ordering, QueueSettings, REASON_BYTES_MAX};

/// Who holds a lock: an id the broker gives each queue member.
pub type MemberId = u64;

/// A record handed out to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The record's offset.
    pub offset: u64,
    /// How many times it has been handed out, this time included. Together
    /// with the offset it names this lock: a later delivery of the same
    /// record has a larger count.
    pub deliveries: u32,
    /// When the lock runs out, in Unix milliseconds.
    pub lock_deadline_ms: i64,
}

/// A record to append to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The record's offset in its partition.
    pub offset: u64,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// Why it was dead-lettered.
    pub reason: String,
}

/// A state change to persist, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The record was handed out; its delivery count is now `deliveries`.
    /// Need not be waited for: losing it only lowers a count by one.
    Delivered {
        /// The record.
        offset: u64,
        /// Its delivery count.
        deliveries: u32,
    },
    /// The record waits until `until_ms` before its next delivery.
    Delayed {
        /// The record.
        offset: u64,
        /// Unix milliseconds.
        until_ms: i64,
        /// Its delivery count.
        deliveries: u32,
    },
    /// The record is finished: acknowledged, or dead-lettered durably.
    Done {
        /// The record.
        offset: u64,
    },
    /// Every record below `floor` is finished (or expired by retention).
    Floor {
        /// The new floor.
        floor: u64,
    },
}

/// What a nack led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// Available again now.
    Available,
    /// Delayed until the given Unix millisecond.
    Delayed(i64),
    /// Out of deliveries: queued for the dead-letter topic.
    DeadLetter,
}

/// What is durably known about a partition's records, handed to
/// [`PartitionQueue::recover`] after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionDurable {
    /// Every record below is finished.
    pub floor: u64,
    /// Finished records at or above the floor.
    pub done: BTreeSet<u64>,
    /// Delivery counts of unfinished records.
    pub deliveries: BTreeMap<u64, u32>,
    /// Delayed records: until when (Unix ms).
    pub delayed: BTreeMap<u64, i64>,
}

/// Counters and gauges of one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionStats {
    /// The ack floor: the oldest unfinished record, or the window's end.
    pub floor: u64,
    /// The next offset the window takes.
    pub end: u64,
    /// Records available now.
    pub available: u64,
    /// Records locked to a member.
    pub in_flight: u64,
    /// Records waiting for a redelivery time.
    pub delayed: u64,
    /// Records queued for the dead-letter topic.
    pub dead_lettering: u64,
    /// Records dead-lettered since start.
    pub dead_lettered_total: u64,
    /// Records acknowledged since start.
    pub acked_total: u64,
    /// Locks that ran out since start.
    pub lock_expiries_total: u64,
    /// Unfinished records removed by retention since start.
    pub expired_total: u64,
}

/// Why an operation on a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueStateError {
    /// The member does not hold this delivery's lock (it ran out, was
    /// released, or the record was finished or handed out again).
    #[error(
        "offset {offset} delivery {deliveries}: lock not held (expired, released or finished); the record is or was redelivered"
    )]
    LockLost {
        /// The record.
        offset: u64,
        /// The delivery count the request named.
        deliveries: u32,
    },
    /// The offset is not in the window (finished, or never handed out).
    #[error("offset {offset} is not in the queue window {floor}..{end}")]
    NotInWindow {
        /// The record.
        offset: u64,
        /// Window start.
        floor: u64,
        /// Window end.
        end: u64,
    },
    /// Records must be offered in increasing offset order.
    #[error("offset {offset} offered below the window end {end}")]
    OfferedOutOfOrder {
        /// The record.
        offset: u64,
        /// Window end.
        end: u64,
    },
    /// `dead_lettered` for a record that is not being dead-lettered.
    #[error("offset {0} is not being dead-lettered")]
    NotDeadLettering(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Available,
    Locked { member: MemberId, deadline_ms: i64 },
    Delayed { until_ms: i64 },
    DeadLettering { reason: String },
    Done,
}

#[derive(Debug, Clone)]
struct Slot {
    offset: u64,
    key: Option<u64>,
    state: State,
    deliveries: u32,
}

/// One partition's queue state. See the module docs.
#[derive(Debug)]
pub struct PartitionQueue {
    settings: QueueSettings,
    slots: VecDeque<Slot>,
    end: u64,
    available: BTreeSet<u64>,
    timers: BTreeSet<(i64, u64)>,
    /// Per key hash: the unfinished offsets with that key.
    keys: HashMap<u64, BTreeSet<u64>>,
    /// Durable facts about records not yet back in the window.
    hints: PartitionDurable,
    transitions: Vec<Transition>,
    dead_letters: Vec<u64>,
    stats: PartitionStats,
}

/// The key's hash. Keys are not persisted, so any stable hash within one
/// process does; a collision only makes two keys wait for each other.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(key);
    h.finish()
}

impl PartitionQueue {
    /// A fresh queue state whose floor is `floor` (the log start, or where
    /// the queue starts reading).
    pub fn new(settings: QueueSettings, floor: u64) -> Self {
        Self::recover(
            settings,
            PartitionDurable {
                floor,
                ..PartitionDurable::default()
            },
        )
    }

    /// The state after a restart: the durable facts are applied as their
    /// records come back into the window. Records handed out but not
    /// finished before the crash are simply available again.
    pub fn recover(settings: QueueSettings, durable: PartitionDurable) -> Self {
        let floor = durable.floor;
        Self {
            settings,
            slots: VecDeque::new(),
            end: floor,
            available: BTreeSet::new(),
            timers: BTreeSet::new(),
            keys: HashMap::new(),
            hints: durable,
            transitions: Vec::new(),
            dead_letters: Vec::new(),
            stats: PartitionStats::default(),
        }
    }

    /// Replaces the settings (an alter). Locks and delays already set keep
    /// their deadlines.
    pub fn set_settings(&mut self, settings: QueueSettings) {
        self.settings = settings;
    }

    /// The settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// The ack floor: every record below is finished.
    pub fn floor(&self) -> u64 {
        self.slots.front().map_or(self.end, |s| s.offset)
    }

    /// The next offset the window takes: the caller reads the log from here.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// How many more records the window takes now.
    pub fn room(&self) -> usize {
        (self.settings.window_records as usize).saturating_sub(self.slots.len())
    }

    /// Adds the log's record at `offset` (at or above [`Self::end`]; gaps
    /// are skipped) to the window. `Ok(false)` if the window is full.
    pub fn offer(&mut self, offset: u64, key: Option<&[u8]>) -> Result<bool, QueueStateError> {
        if offset < self.end {
            return Err(QueueStateError::OfferedOutOfOrder {
                offset,
                end: self.end,
            });
        }
        if self.room() == 0 {
            return Ok(false);
        }
        let was_empty = self.slots.is_empty();
        self.end = offset + 1;
        let key = key.map(key_hash);
        let deliveries = self.hints.deliveries.remove(&offset).unwrap_or(0);
        let delayed = self.hints.delayed.remove(&offset);
        let state = if self.hints.done.remove(&offset) {
            State::Done
        } else if let Some(until_ms) = delayed {
            self.timers.insert((until_ms, offset));
            State::Delayed { until_ms }
        } else {
            self.available.insert(offset);
            State::Available
        };
        if state != State::Done {
            if let Some(k) = key {
                self.keys.entry(k).or_default().insert(offset);
            }
        }
        self.slots.push_back(Slot {
            offset,
            key,
            state,
            deliveries,
        });
        if was_empty {
            // The floor was `end`; with a gap it moved to this offset.
            self.advance_floor(true);
        } else {
            self.advance_floor(false);
        }
        Ok(true)
    }

    /// Hands out up to `max` available records to `member`, locked for the
    /// queue's lock time from `now_ms`, oldest first; with key ordering,
    /// only records that are the first unfinished one of their key.
    pub fn hand_out(&mut self, member: MemberId, max: usize, now_ms: i64) -> Vec<Delivery> {
        self.expire(now_ms);
        let mut picked = Vec::new();
        for &offset in &self.available {
            if picked.len() >= max {
                break;
            }
            if self.settings.ordering == Ordering::Key {
                let Some(slot) = self.slot(offset) else {
                    continue;
                };
                if let Some(k) = slot.key {
                    let first = self.keys.get(&k).and_then(|s| s.first().copied());
                    if first != Some(offset) {
                        continue;
                    }
                }
            }
            picked.push(offset);
        }
        let deadline_ms = now_ms.saturating_add(i64::from(self.settings.lock_ms));
        let mut out = Vec::with_capacity(picked.len());
        for offset in picked {
            let Some(slot) = self.slot_mut(offset) else {
                continue;
            };
            slot.deliveries = slot.deliveries.saturating_add(1);
            slot.state = State::Locked {
                member,
                deadline_ms,
            };
            let deliveries = slot.deliveries;
            self.available.remove(&offset);
            self.timers.insert((deadline_ms, offset));
            self.transitions
                .push(Transition::Delivered { offset, deliveries });
            out.push(Delivery {
                offset,
                deliveries,
                lock_deadline_ms: deadline_ms,
            });
        }
        out
    }

    /// Acknowledges a delivery: the record is done.
    pub fn ack(
        &mut self,
        member: MemberId,
        offset: u64,
        deliveries: u32,
        now_ms: i64,
    ) -> Result<(), QueueStateError> {
        self.take_lock(member, offset, deliveries, now_ms)?;
        self.finish(offset);
        self.stats.acked_total += 1;
        Ok(())
    }

    /// Gives a delivery back to be redelivered no sooner than `delay_ms`
    /// from now, or after the queue's backoff for its delivery count if that
    /// is longer; out of deliveries, the record is dead-lettered.
    pub fn nack(
        &mut self,
        member: MemberId,
        offset: u64,
        deliveries: u32,
        delay_ms: u32,
        now_ms: i64,
    ) -> Result<NackOutcome, QueueStateError> {
        self.take_lock(member, offset, deliveries, now_ms)?;
        let delay_ms = delay_ms.max(self.settings.backoff.delay_ms(deliveries));
        if self.failed(offset, "nacked") {
            return Ok(NackOutcome::DeadLetter);
        }
        if delay_ms == 0 {
            return Ok(NackOutcome::Available);
        }
        let until_ms = now_ms.saturating_add(i64::from(delay_ms));
        // `failed` made the record available; it waits instead.
        let Some(slot) = self.slot_mut(offset) else {
            return Err(self.not_in_window(offset));
        };
        slot.state = State::Delayed { until_ms };
        let deliveries = slot.deliveries;
        self.available.remove(&offset);
        self.timers.insert((until_ms, offset));
        self.transitions.push(Transition::Delayed {
            offset,
            until_ms,
            deliveries,
        });
        Ok(NackOutcome::Delayed(until_ms))
    }

    /// Sends a delivery straight to the dead-letter topic with `reason`
    /// (cut to [`REASON_BYTES_MAX`] bytes).
    pub fn reject(
        &mut self,
        member: MemberId,
        offset: u64,
        deliveries: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), QueueStateError> {
        self.take_lock(member, offset, deliveries, now_ms)?;
        self.dead_letter(offset, truncate_reason(reason));
        Ok(())
    }

    /// Extends a delivery's lock to `lock_ms` from now; returns the new
    /// deadline.
    pub fn extend(
        &mut self,
        member: MemberId,
        offset: u64,
        deliveries: u32,
        lock_ms: u32,
        now_ms: i64,
    ) -> Result<i64, QueueStateError> {
        let old = self.take_lock(member, offset, deliveries, now_ms)?;
        let deadline_ms = now_ms.saturating_add(i64::from(lock_ms)).max(old);
        let Some(slot) = self.slot_mut(offset) else {
            return Err(self.not_in_window(offset));
        };
        slot.state = State::Locked {
            member,
            deadline_ms,
        };
        self.timers.insert((deadline_ms, offset));
        Ok(deadline_ms)
    }

    /// Gives back a delivery the member will not work on (a dropped
    /// delivery): available again at once, or dead-lettered if it was the
    /// last allowed delivery.
    pub fn release(
        &mut self,
        member: MemberId,
        offset: u64,
        deliveries: u32,
        now_ms: i64,
    ) -> Result<(), QueueStateError> {
        self.take_lock(member, offset, deliveries, now_ms)?;
        self.failed(offset, "released");
        Ok(())
    }

    /// Releases every lock `member` holds (it left or timed out); returns
    /// how many.
    pub fn release_member(&mut self, member: MemberId, now_ms: i64) -> usize {
        self.expire(now_ms);
        let held: Vec<(u64, u32)> = self
            .slots
            .iter()
            .filter(|s| matches!(s.state, State::Locked { member: m, .. } if m == member))
            .map(|s| (s.offset, s.deliveries))
            .collect();
        for &(offset, deliveries) in &held {
            // Just collected from the member's own locks.
            let _ = self.release(member, offset, deliveries, now_ms);
        }
        held.len()
    }

    /// Runs every lock and delay whose time has come: expired locks make
    /// their records available again (or dead-letter them after the last
    /// allowed delivery), ended delays make them available.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some(&(at, offset)) = self.timers.first() {
            if at > now_ms {
                break;
            }
            self.timers.remove(&(at, offset));
            let Some(slot) = self.slot_mut(offset) else {
                continue;
            };
            match slot.state {
                State::Locked { .. } => {
                    self.stats.lock_expiries_total += 1;
                    self.failed(offset, "lock expired");
                }
                State::Delayed { .. } => {
                    slot.state = State::Available;
                    self.available.insert(offset);
                }
                _ => {}
            }
        }
    }

    /// Locks that ran out since start (cheap, unlike [`Self::stats`]).
    pub fn lock_expiries_total(&self) -> u64 {
        self.stats.lock_expiries_total
    }

    /// The earliest lock or delay deadline, for the caller's timer.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Takes the records queued for the dead-letter topic since the last
    /// call. Each stays in the window until [`Self::dead_lettered`].
    pub fn take_dead_letters(&mut self) -> Vec<DeadLetter> {
        let offsets = std::mem::take(&mut self.dead_letters);
        offsets
            .into_iter()
            .filter_map(|offset| {
                let slot = self.slot(offset)?;
                match &slot.state {
                    State::DeadLettering { reason } => Some(DeadLetter {
                        offset,
                        deliveries: slot.deliveries,
                        reason: reason.clone(),
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    /// The dead letter for `offset` is durably in its topic: the record is
    /// done.
    pub fn dead_lettered(&mut self, offset: u64) -> Result<(), QueueStateError> {
        match self.slot(offset).map(|s| &s.state) {
            Some(State::DeadLettering { .. }) => {}
            Some(_) => return Err(QueueStateError::NotDeadLettering(offset)),
            None => return Err(self.not_in_window(offset)),
        }
        self.finish(offset);
        self.stats.dead_lettered_total += 1;
        Ok(())
    }

    /// Retention removed the log below `log_start`: unfinished records
    /// there are counted as expired and the floor moves up.
    pub fn retain(&mut self, log_start: u64) {
        if log_start <= self.floor() {
            return;
        }
        while let Some(slot) = self.slots.pop_front() {
            if slot.offset >= log_start {
                self.slots.push_front(slot);
                break;
            }
            self.forget(&slot);
            if slot.state != State::Done {
                self.stats.expired_total += 1;
            }
        }
        while self.slots.front().is_some_and(|s| s.state == State::Done) {
            self.slots.pop_front();
        }
        self.end = self.end.max(log_start);
        let floor = self.floor();
        self.hints.floor = floor;
        self.hints.done = self.hints.done.split_off(&floor);
        self.hints.deliveries = self.hints.deliveries.split_off(&floor);
        self.hints.delayed = self.hints.delayed.split_off(&floor);
        self.transitions.push(Transition::Floor { floor });
    }

    /// Takes the transitions queued since the last call, in order.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// Counters and gauges.
    pub fn stats(&self) -> PartitionStats {
        let mut stats = self.stats;
        stats.floor = self.floor();
        stats.end = self.end;
        stats.available = self.available.len() as u64;
        let (mut in_flight, mut delayed, mut dead) = (0, 0, 0);
        for slot in &self.slots {
            match slot.state {
                State::Locked { .. } => in_flight += 1,
                State::Delayed { .. } => delayed += 1,
                State::DeadLettering { .. } => dead += 1,
                _ => {}
            }
        }
        stats.in_flight = in_flight;
        stats.delayed = delayed;
        stats.dead_lettering = dead;
        stats
    }

    /// The durable view of the window, as a snapshot of the state log
    /// would hold it: floor, finished records, counts and delays.
    pub fn durable(&self) -> PartitionDurable {
        let mut d = self.hints.clone();
        d.floor = self.floor();
        for slot in &self.slots {
            match slot.state {
                State::Done => {
                    d.done.insert(slot.offset);
                }
                State::Delayed { until_ms } => {
                    d.delayed.insert(slot.offset, until_ms);
                }
                _ => {}
            }
            if slot.state != State::Done && slot.deliveries > 0 {
                d.deliveries.insert(slot.offset, slot.deliveries);
            }
        }
        d
    }

    fn slot_index(&self, offset: u64) -> Option<usize> {
        let first = self.slots.front()?.offset;
        if offset < first {
            return None;
        }
        // Dense offsets (the common case) are found directly.
        let guess = usize::try_from(offset - first).ok()?;
        if self.slots.get(guess).is_some_and(|s| s.offset == offset) {
            return Some(guess);
        }
        self.slots.binary_search_by_key(&offset, |s| s.offset).ok()
    }

    fn slot(&self, offset: u64) -> Option<&Slot> {
        self.slot_index(offset).and_then(|i| self.slots.get(i))
    }

    fn slot_mut(&mut self, offset: u64) -> Option<&mut Slot> {
        self.slot_index(offset).and_then(|i| self.slots.get_mut(i))
    }

    fn not_in_window(&self, offset: u64) -> QueueStateError {
        QueueStateError::NotInWindow {
            offset,
            floor: self.floor(),
            end: self.end,
        }
    }

    /// Checks that `member` holds the lock of this delivery (after running
    /// the timers up to `now_ms`), removes its timer and returns the
    /// deadline it had. The slot stays `Locked` until the caller moves it.
    fn take_lock(
        &mut self,
        member: MemberId,
        offset: u64,
        deliveries: u32,
        now_ms: i64,
    ) -> Result<i64, QueueStateError> {
        self.expire(now_ms);
        let lost = QueueStateError::LockLost { offset, deliveries };
        let Some(slot) = self.slot(offset) else {
            return Err(if offset < self.floor() {
                lost
            } else {
                self.not_in_window(offset)
            });
        };
        match slot.state {
            State::Locked {
                member: holder,
                deadline_ms,
            } if holder == member && slot.deliveries == deliveries => {
                self.timers.remove(&(deadline_ms, offset));
                Ok(deadline_ms)
            }
            _ => Err(lost),
        }
    }

    /// A delivery failed (its timer already removed): dead-letter it after
    /// the last allowed delivery, else make it available. Returns whether
    /// it was dead-lettered.
    fn failed(&mut self, offset: u64, why: &str) -> bool {
        let max = self.settings.max_deliveries;
        let Some(slot) = self.slot_mut(offset) else {
            return false;
        };
        if slot.deliveries >= max {
            let reason = format!(
                "{why} after {} deliveries (max_deliveries {max})",
                slot.deliveries
            );
            self.dead_letter(offset, reason);
            true
        } else {
            slot.state = State::Available;
            self.available.insert(offset);
            false
        }
    }

    fn dead_letter(&mut self, offset: u64, reason: String) {
        if let Some(slot) = self.slot_mut(offset) {
            slot.state = State::DeadLettering { reason };
            self.available.remove(&offset);
            self.dead_letters.push(offset);
        }
    }

    /// Marks a record done and moves the floor past finished records.
    fn finish(&mut self, offset: u64) {
        let Some(slot) = self.slot_mut(offset) else {
            return;
        };
        slot.state = State::Done;
        let key = slot.key;
        if let Some(k) = key {
            self.remove_key(k, offset);
        }
        self.available.remove(&offset);
        self.transitions.push(Transition::Done { offset });
        self.advance_floor(false);
    }

    fn remove_key(&mut self, k: u64, offset: u64) {
        if let Some(set) = self.keys.get_mut(&k) {
            set.remove(&offset);
            if set.is_empty() {
                self.keys.remove(&k);
            }
        }
    }

    /// Removes a slot's entries from the indexes.
    fn forget(&mut self, slot: &Slot) {
        self.available.remove(&slot.offset);
        match slot.state {
            State::Locked { deadline_ms, .. } => {
                self.timers.remove(&(deadline_ms, slot.offset));
            }
            State::Delayed { until_ms } => {
                self.timers.remove(&(until_ms, slot.offset));
            }
            _ => {}
        }
        if let Some(k) = slot.key {
            self.remove_key(k, slot.offset);
        }
    }

    fn advance_floor(&mut self, force: bool) {
        let before = self.floor();
        while self.slots.front().is_some_and(|s| s.state == State::Done) {
            self.slots.pop_front();
        }
        let floor = self.floor();
        if floor != before || force {
            self.transitions.push(Transition::Floor { floor });
        }
    }

    /// Checks the module's invariants; panics with what broke. For tests.
    #[cfg(test)]
    pub fn check_invariants(&self) {
        assert!(self.slots.len() <= self.settings.window_records as usize);
        assert!(self.slots.front().is_none_or(|s| s.state != State::Done));
        let mut prev = None;
        let mut available = BTreeSet::new();
        let mut timers = BTreeSet::new();
        let mut keys: HashMap<u64, BTreeSet<u64>> = HashMap::new();
        for slot in &self.slots {
            assert!(prev.is_none_or(|p| p < slot.offset), "offsets increase");
            assert!(slot.offset < self.end);
            prev = Some(slot.offset);
            assert!(slot.deliveries <= self.settings.max_deliveries);
            match slot.state {
                State::Available => {
                    available.insert(slot.offset);
                }
                State::Locked { deadline_ms, .. } => {
                    timers.insert((deadline_ms, slot.offset));
                }
                State::Delayed { until_ms } => {
                    timers.insert((until_ms, slot.offset));
                }
                _ => {}
            }
            if slot.state != State::Done {
                if let Some(k) = slot.key {
                    keys.entry(k).or_default().insert(slot.offset);
                }
            }
        }
        assert_eq!(available, self.available);
        assert_eq!(timers, self.timers);
        assert_eq!(keys, self.keys);
        if self.settings.ordering == Ordering::Key {
            for slot in &self.slots {
                if matches!(slot.state, State::Locked { .. } | State::Delayed { .. }) {
                    if let Some(k) = slot.key {
                        assert_eq!(
                            keys[&k].first(),
                            Some(&slot.offset),
                            "a worked-on record is the first of its key"
                        );
                    }
                }
            }
        }
    }
}

fn truncate_reason(reason: &str) -> String {
    if reason.len() <= REASON_BYTES_MAX {
        return reason.to_owned();
    }
    let mut cut = REASON_BYTES_MAX;
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason[..cut].to_owned()
}

#[cfg(test)]
mod tests;
