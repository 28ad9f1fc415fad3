//! Rooms: many independent Krmx worlds in one driver, one [`Krmx`] core each, routed by the
//! WebSocket path (`/rooms/<id>`). [`RoomsConfig`] says where and how many; [`RoomTable`]
//! holds the cores.

use krmx_core::Krmx;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default cap on the rooms open at once.
pub const DEFAULT_MAX_ROOMS: usize = 10_000;
/// Default cap on a room id's length, in characters.
pub const DEFAULT_MAX_ROOM_ID_CHARS: usize = 64;
/// Default time a room is kept after its last user left and its last connection closed.
pub const DEFAULT_ROOM_IDLE: Duration = Duration::from_secs(30);

/// Rooms on: every WebSocket path `PREFIX/<id>` is its own Krmx world (users, presence,
/// authentication, limits), created on its first connection and dropped
/// [`idle`](Self::idle) after its last user left and its last connection closed. An id is 1 to
/// [`max_id_chars`](Self::max_id_chars) characters of `A-Z a-z 0-9 - _ .`; other paths are
/// answered 404, and a connection to a new room when [`max_rooms`](Self::max_rooms) are open
/// is closed `1013` `too many rooms`.
///
/// ```
/// use krmx_driver::{RoomsConfig, TransportConfig};
/// let rooms = RoomsConfig::new("/rooms").max_rooms(1000);
/// assert_eq!(rooms.room_of("/rooms/table-7"), Some("table-7"));
/// assert_eq!(rooms.room_of("/rooms/"), None);
/// assert_eq!(rooms.room_of("/rooms/a/b"), None);
/// let transport = TransportConfig::default().rooms(rooms);
/// ```
#[derive(Clone)]
pub struct RoomsConfig {
    prefix: String,
    max_rooms: usize,
    max_id_chars: usize,
    idle: Duration,
    allow: Option<AllowId>,
}

/// The application's rule for which room ids may open a room.
type AllowId = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl std::fmt::Debug for RoomsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomsConfig")
            .field("prefix", &self.prefix)
            .field("max_rooms", &self.max_rooms)
            .field("max_id_chars", &self.max_id_chars)
            .field("idle", &self.idle)
            .field("allow", &self.allow.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl RoomsConfig {
    /// Rooms under `prefix` (a missing leading `/` is added, a trailing one dropped), with the
    /// default caps.
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        Self {
            prefix,
            max_rooms: DEFAULT_MAX_ROOMS,
            max_id_chars: DEFAULT_MAX_ROOM_ID_CHARS,
            idle: DEFAULT_ROOM_IDLE,
            allow: None,
        }
    }

    /// Only ids the application allows name a room (besides the id rule): a request for
    /// another is answered 404, so no room is created for it.
    ///
    /// ```
    /// use krmx_driver::RoomsConfig;
    /// let rooms = RoomsConfig::new("/rooms").allow(|id| id.starts_with("game-"));
    /// assert_eq!(rooms.room_of("/rooms/game-1"), Some("game-1"));
    /// assert_eq!(rooms.room_of("/rooms/other"), None);
    /// ```
    #[must_use]
    pub fn allow(mut self, allow: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.allow = Some(Arc::new(allow));
        self
    }

    /// At most this many rooms open at once (at least 1).
    #[must_use]
    pub fn max_rooms(mut self, rooms: usize) -> Self {
        self.max_rooms = rooms.max(1);
        self
    }

    /// Room ids of at most this many characters (at least 1).
    #[must_use]
    pub fn max_id_chars(mut self, chars: usize) -> Self {
        self.max_id_chars = chars.max(1);
        self
    }

    /// How long an empty room is kept before it is dropped.
    #[must_use]
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// How long an empty room is kept.
    #[must_use]
    pub fn idle_value(&self) -> Duration {
        self.idle
    }

    /// The prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cap on open rooms.
    #[must_use]
    pub fn max_rooms_value(&self) -> usize {
        self.max_rooms
    }

    /// The room of a request path (query dropped), if it names a valid one.
    #[must_use]
    pub fn room_of<'a>(&self, path: &'a str) -> Option<&'a str> {
        let id = path.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        self.is_valid_id(id).then_some(id)
    }

    /// Whether `id` may name a room.
    #[must_use]
    pub fn is_valid_id(&self, id: &str) -> bool {
        !id.is_empty()
            && id.chars().count() <= self.max_id_chars
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && id != "."
            && id != ".."
            && self.allow.as_ref().is_none_or(|allow| allow(id))
    }

    /// Which of `workers` event loops owns room `id`: a stable hash of the id (FNV-1a), the
    /// same in every process and run, so a room never spans two workers.
    ///
    /// ```
    /// use krmx_driver::RoomsConfig;
    /// let worker = RoomsConfig::worker_of("table-7", 4);
    /// assert!(worker < 4);
    /// assert_eq!(worker, RoomsConfig::worker_of("table-7", 4));
    /// assert_eq!(RoomsConfig::worker_of("table-7", 1), 0);
    /// ```
    #[must_use]
    pub fn worker_of(id: &str, workers: usize) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        usize::try_from(hash % workers.max(1) as u64).unwrap_or(0)
    }

    /// The WebSocket path of room `id`.
    pub(crate) fn path_of(&self, id: &str) -> String {
        format!("{}/{id}", self.prefix)
    }
}

/// One world: its name (`None` for the default one), its core and its timer.
pub(crate) struct Room {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) krmx: Krmx,
    /// The core's timer as last scheduled in the table.
    scheduled: Option<Instant>,
    /// Its `closed` event came.
    pub(crate) closed: bool,
    /// When it was found empty (no users, no connections), if it still is.
    empty_since: Option<Instant>,
}

/// The rooms of a driver. Index 0 is the default world, which always exists: with rooms off it
/// is the only one; with rooms on, no connection reaches it and it carries the server's
/// status.
pub(crate) struct RoomTable {
    rooms: Vec<Option<Room>>,
    free: Vec<usize>,
    by_name: HashMap<Arc<str>, usize>,
    /// Core timers, earliest first; an entry whose time is not its room's `scheduled` is stale.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Rooms found empty, in the order found (one idle length, so sorted by when they are due),
    /// with when they were found; an entry whose room's `empty_since` differs is stale.
    empty: VecDeque<(Instant, usize, Instant)>,
}

impl RoomTable {
    /// A table with the default world.
    pub(crate) fn new(default: Krmx) -> Self {
        Self {
            rooms: vec![Some(Room::new(None, default))],
            free: Vec::new(),
            by_name: HashMap::new(),
            timers: BinaryHeap::new(),
            empty: VecDeque::new(),
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Room> {
        self.rooms.get(index)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Room> {
        self.rooms.get_mut(index)?.as_mut()
    }

    /// The default world.
    pub(crate) fn default_krmx(&self) -> Option<&Krmx> {
        self.get(0).map(|room| &room.krmx)
    }

    /// The index of the named room, if it is open.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Named rooms open now.
    pub(crate) fn named(&self) -> usize {
        self.by_name.len()
    }

    /// Opens a named room with its core; its index.
    pub(crate) fn open(&mut self, name: &str, krmx: Krmx) -> usize {
        let name: Arc<str> = Arc::from(name);
        let room = Some(Room::new(Some(Arc::clone(&name)), krmx));
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(entry) = self.rooms.get_mut(index) {
                    *entry = room;
                }
                index
            }
            None => {
                self.rooms.push(room);
                self.rooms.len() - 1
            }
        };
        self.by_name.insert(name, index);
        index
    }

    /// Removes a named room now (its core closed and holds no connection).
    pub(crate) fn remove(&mut self, index: usize) {
        if index == 0 {
            return;
        }
        if let Some(Some(room)) = self.rooms.get_mut(index).map(Option::take) {
            if let Some(name) = room.name {
                self.by_name.remove(&name);
            }
            self.free.push(index);
        }
        self.prune();
    }

    /// Every open room's index (the default world first).
    pub(crate) fn indices(&self) -> Vec<usize> {
        self.rooms
            .iter()
            .enumerate()
            .filter(|(_, room)| room.is_some())
            .map(|(index, _)| index)
            .collect()
    }

    /// Every open room.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Room> {
        self.rooms.iter().flatten()
    }

    /// After the room's core was fed: its timer is scheduled again if it moved, and a named
    /// room that became empty is noted.
    pub(crate) fn settle(&mut self, index: usize, now: Instant, idle: Duration) {
        let Some(Some(room)) = self.rooms.get_mut(index) else {
            return;
        };
        let next = room.krmx.poll_timeout();
        let moved = next != room.scheduled;
        if moved {
            room.scheduled = next;
        }
        let empty = room.name.is_some()
            && room.krmx.users().len() == 0
            && room.krmx.connections().next().is_none();
        match (empty, room.empty_since) {
            (true, None) => {
                room.empty_since = Some(now);
                self.empty.push_back((now + idle, index, now));
            }
            (false, Some(_)) => room.empty_since = None,
            _ => {}
        }
        if moved {
            if let Some(at) = next {
                self.timers.push(Reverse((at, index)));
            }
            if self.timers.len() > 2 * self.rooms.len() + 64 {
                self.rebuild_timers();
            }
        }
        self.prune();
    }

    /// Drops stale entries from the front of both queues, so that the next deadline is a real
    /// one: a server that has nothing due does not wake.
    fn prune(&mut self) {
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if self
                .get(index)
                .is_some_and(|room| room.scheduled == Some(at))
            {
                break;
            }
            self.timers.pop();
        }
        while let Some(&(_, index, since)) = self.empty.front() {
            if self
                .get(index)
                .is_some_and(|room| room.empty_since == Some(since))
            {
                break;
            }
            self.empty.pop_front();
        }
    }

    /// Rebuilds the timer heap from the rooms' current timers (the stale entries gone).
    fn rebuild_timers(&mut self) {
        self.timers = self
            .rooms
            .iter()
            .enumerate()
            .filter_map(|(index, room)| Some(Reverse((room.as_ref()?.scheduled?, index))))
            .collect();
    }

    /// The earliest core timer or room drop.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let drop = self.empty.front().map(|(at, _, _)| *at);
        timer.into_iter().chain(drop).min()
    }

    /// The rooms whose core timer is due at `now` (each once).
    pub(crate) fn due(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let current = self
                .get(index)
                .is_some_and(|room| room.scheduled == Some(at));
            if current && !due.contains(&index) {
                due.push(index);
                if let Some(room) = self.get_mut(index) {
                    room.scheduled = None;
                }
            }
        }
        self.prune();
        due
    }

    /// Drops the rooms whose idle time passed by `now`; their names.
    pub(crate) fn drop_idle(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut dropped = Vec::new();
        while let Some(&(at, index, since)) = self.empty.front() {
            if at > now {
                break;
            }
            self.empty.pop_front();
            let still_empty = self
                .get(index)
                .is_some_and(|room| room.empty_since == Some(since));
            if !still_empty {
                continue;
            }
            if let Some(Some(room)) = self.rooms.get_mut(index).map(Option::take) {
                if let Some(name) = room.name {
                    self.by_name.remove(&name);
                    dropped.push(name);
                }
                self.free.push(index);
            }
        }
        self.prune();
        dropped
    }
}

impl Room {
    fn new(name: Option<Arc<str>>, krmx: Krmx) -> Self {
        Self {
            name,
            krmx,
            scheduled: None,
            closed: false,
            empty_since: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_short_plain_words_under_the_prefix() {
        let rooms = RoomsConfig::new("rooms/").max_id_chars(8);
        assert_eq!(rooms.prefix(), "/rooms");
        assert_eq!(rooms.room_of("/rooms/a-b_c.9"), Some("a-b_c.9"));
        for path in [
            "/rooms",
            "/rooms/",
            "/rooms/123456789",
            "/rooms/a/b",
            "/rooms/..",
            "/rooms/a%20b",
            "/roomsx/a",
            "/other/a",
        ] {
            assert_eq!(rooms.room_of(path), None, "{path}");
        }
    }
}
