//! Rooms: joining, leaving and publishing to them, the waiting room every
//! WebSocket joins as it opens, and their bounds. A room is a set of the
//! hub's connections, so this is the hub's own state seen from its rooms
//! (an `impl Hub` beside [`Hub`]'s); with several workers or a
//! backplane the counts and publishes reach the cluster too.

use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;

use super::{Frames, Hub, Targets};
use crate::message::{ConnId, Message};

/// Why a connection could not join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    /// The connection is in `limits.roomsPerConnection` rooms already.
    TooManyRooms,
    /// The room has `limits.roomMembers` members already.
    RoomFull,
    /// The id is not an open WebSocket.
    Closed,
}

impl fmt::Display for RoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoomError::TooManyRooms => "too many rooms for one connection",
            RoomError::RoomFull => "the room is full",
            RoomError::Closed => "the connection is closed",
        })
    }
}

impl std::error::Error for RoomError {}

/// Room bounds (from `limits`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomLimits {
    pub per_connection: usize,
    pub members: usize,
}

/// `webSockets.waitingRoom`: the room every WebSocket joins as it opens.
#[derive(Debug, Clone)]
pub(crate) struct WaitingRoom {
    pub name: Rc<str>,
    /// Left when the connection joins its first other room (`leaveWaitingRoom`).
    pub leave_on_join: bool,
}

impl Hub {
    /// Puts a connection in a room (creating the room). Joining a room twice is fine.
    pub fn join(&mut self, id: ConnId, room: &str) -> Result<(), RoomError> {
        if !self.is_open(id) {
            return Err(RoomError::Closed);
        }
        let mut rooms = self.joined.get(&id).map_or(0, Vec::len);
        if self.rooms.get(room).is_some_and(|m| m.contains(&id)) {
            return Ok(());
        }
        let leaving = self.leaves_waiting_room(id, room);
        if leaving.is_some() {
            // Its seat in the waiting room is given up for this one.
            rooms = rooms.saturating_sub(1);
        }
        if rooms >= self.limits.per_connection {
            return Err(RoomError::TooManyRooms);
        }
        if self.rooms.get(room).map_or(0, HashSet::len) >= self.limits.members {
            return Err(RoomError::RoomFull);
        }
        let name: Rc<str> = match self.rooms.get_key_value(room) {
            Some((name, _)) => Rc::clone(name),
            None => room.into(),
        };
        self.rooms.entry(Rc::clone(&name)).or_default().insert(id);
        self.joined.entry(id).or_default().push(name);
        if let Some(cluster) = &self.cluster {
            cluster.count(room, true);
        }
        if let Some(waiting) = leaving {
            self.leave(id, &waiting);
        }
        Ok(())
    }

    /// The waiting room, when joining `room` takes `id` out of it.
    fn leaves_waiting_room(&self, id: ConnId, room: &str) -> Option<Rc<str>> {
        let waiting = self.waiting.as_ref().filter(|w| w.leave_on_join)?;
        let other = &*waiting.name != room && self.in_room(id, &waiting.name);
        other.then(|| Rc::clone(&waiting.name))
    }

    /// Takes a connection out of a room; false if it was not in it.
    pub fn leave(&mut self, id: ConnId, room: &str) -> bool {
        let Some(list) = self.joined.get_mut(&id) else {
            return false;
        };
        let Some(i) = list.iter().position(|r| &**r == room) else {
            return false;
        };
        list.swap_remove(i);
        if list.is_empty() {
            self.joined.remove(&id);
        }
        self.drop_member(room, id);
        true
    }

    pub(super) fn drop_member(&mut self, room: &str, id: ConnId) {
        if let Some(members) = self.rooms.get_mut(room) {
            if members.remove(&id) {
                if let Some(cluster) = &self.cluster {
                    cluster.count(room, false);
                }
            }
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Sends a message to every member of a room but `except`; returns how
    /// many it goes to. The frame is encoded once and shared by all of them.
    ///
    /// With several workers or a backplane the room spans them all: the
    /// message goes to the members everywhere, and the count is of this
    /// worker's members (the others count theirs as it arrives).
    pub fn publish(&mut self, room: &str, msg: Message<'_>, except: Option<ConnId>) -> usize {
        let frames = self.encode(msg);
        self.publish_frame(room, frames, [except, None])
    }

    /// Publishes a frame to a room: here, and with several workers or a
    /// backplane everywhere else (`except[1]`, the sender, is of this loop).
    pub(crate) fn publish_frame(
        &mut self,
        room: &str,
        frame: Frames,
        except: [Option<ConnId>; 2],
    ) -> usize {
        if self.cluster.is_some() {
            self.spread(Some(room), &frame, except[0]);
        }
        self.publish_here(room, frame, except)
    }

    /// Publishes a frame to this loop's members of a room.
    pub(super) fn publish_here(
        &mut self,
        room: &str,
        frame: Frames,
        except: [Option<ConnId>; 2],
    ) -> usize {
        let Some((name, members)) = self.rooms.get_key_value(room) else {
            return 0;
        };
        // The same id may be excluded twice (the sender, and an explicit except).
        let [a, b] = except;
        let excluded = [a, b.filter(|b| Some(*b) != a)];
        let count = members.len()
            - excluded
                .iter()
                .flatten()
                .filter(|e| members.contains(e))
                .count();
        if count > 0 {
            let to = Targets::Room(Rc::clone(name));
            self.deliver_here(to, frame, except);
        }
        count
    }

    /// The members of a room, in no particular order (on this worker: with
    /// several, [`Hub::room_size`] counts them all).
    pub fn members(&self, room: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.rooms.get(room).into_iter().flatten().copied()
    }

    /// How many members a room has (0 for a room nobody is in), on every
    /// worker of this process.
    pub fn room_size(&self, room: &str) -> usize {
        match &self.cluster {
            Some(cluster) => cluster.room_size(room),
            None => self.rooms.get(room).map_or(0, HashSet::len),
        }
    }

    /// True if the connection is in the room.
    pub fn in_room(&self, id: ConnId, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|m| m.contains(&id))
    }

    /// The rooms a connection is in.
    pub fn rooms_of(&self, id: ConnId) -> impl Iterator<Item = &str> + '_ {
        self.joined.get(&id).into_iter().flatten().map(|r| &**r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::tests::{hub, id};
    use crate::hub::Delivery;

    #[test]
    fn rooms_join_leave_and_auto_leave() {
        let mut h = hub();
        let (a, b) = (id(0, 1), id(1, 2));
        h.add_socket(a, 0);
        h.add_socket(b, 0);
        assert_eq!(h.join(a, "lobby"), Ok(()));
        assert_eq!(h.join(a, "lobby"), Ok(()), "joining twice is fine");
        assert_eq!(h.join(b, "lobby"), Ok(()));
        assert_eq!(h.room_size("lobby"), 2);
        assert!(h.in_room(a, "lobby"));
        assert_eq!(h.rooms_of(a).collect::<Vec<_>>(), ["lobby"]);
        assert!(h.leave(a, "lobby"));
        assert!(!h.leave(a, "lobby"));
        assert_eq!(h.members("lobby").collect::<Vec<_>>(), [b]);
        h.remove_socket(b);
        assert_eq!(
            h.room_size("lobby"),
            0,
            "a closed connection leaves its rooms"
        );
        assert_eq!(h.rooms.len(), 0, "an empty room is dropped");
    }

    #[test]
    fn the_waiting_room_is_joined_on_open_and_left_for_another() {
        let waiting = |leave_on_join| {
            hub().with_waiting_room(Some(WaitingRoom {
                name: "lobby".into(),
                leave_on_join,
            }))
        };
        let mut h = waiting(true);
        let (a, b) = (id(0, 1), id(1, 2));
        h.add_socket(a, 0);
        h.add_socket(b, 0);
        h.add_stream(id(2, 3), 0);
        assert_eq!(h.room_size("lobby"), 2, "WebSockets only");
        assert_eq!(
            h.join(a, "lobby"),
            Ok(()),
            "joining it again leaves nothing"
        );
        assert!(h.in_room(a, "lobby"));
        assert_eq!(h.join(a, "r1"), Ok(()));
        assert_eq!(h.join(a, "r2"), Ok(()), "the lobby's seat was given up");
        assert_eq!(h.rooms_of(a).collect::<Vec<_>>(), ["r1", "r2"]);
        assert_eq!(h.members("lobby").collect::<Vec<_>>(), [b]);
        assert_eq!(h.join(a, "lobby"), Err(RoomError::TooManyRooms));

        let mut h = waiting(false);
        h.add_socket(a, 0);
        assert_eq!(h.join(a, "r1"), Ok(()));
        assert!(h.in_room(a, "lobby"), "kept when not configured to leave");
        assert_eq!(h.join(a, "r2"), Err(RoomError::TooManyRooms));
    }

    #[test]
    fn room_limits() {
        let mut h = hub();
        let ids: Vec<ConnId> = (0..4).map(|k| id(k, k as u64 + 10)).collect();
        for &i in &ids {
            h.add_socket(i, 0);
        }
        assert_eq!(h.join(ids[0], "r1"), Ok(()));
        assert_eq!(h.join(ids[0], "r2"), Ok(()));
        assert_eq!(h.join(ids[0], "r3"), Err(RoomError::TooManyRooms));
        for &i in &ids[1..3] {
            assert_eq!(h.join(i, "r1"), Ok(()));
        }
        assert_eq!(h.join(ids[3], "r1"), Err(RoomError::RoomFull));
        assert_eq!(h.join(id(9, 99), "r1"), Err(RoomError::Closed));
    }

    #[test]
    fn publish_counts_recipients_and_encodes_once() {
        let mut h = hub();
        let (a, b, c) = (id(0, 1), id(1, 2), id(2, 3));
        for i in [a, b, c] {
            h.add_socket(i, 0);
            h.join(i, "r").unwrap();
        }
        assert_eq!(h.publish("r", Message::Text("hi"), Some(a)), 2);
        let frames = h.encode(Message::Text("hi"));
        let twice = h.publish_frame("r", frames, [Some(a), Some(a)]);
        assert_eq!(twice, 2, "one id excluded twice counts once");
        h.outbox.pop();
        assert_eq!(h.publish("nobody", Message::Text("hi"), None), 0);
        assert_eq!(h.outbox.len(), 1);
        let Delivery::Frame { frame, to, .. } = &h.outbox[0] else {
            panic!("a frame delivery")
        };
        assert_eq!(&frame.plain[..], b"\x81\x02hi");
        let mut got: Vec<ConnId> = h.resolve(to).collect();
        got.sort();
        assert_eq!(got, [a, b, c], "exclusion is applied when delivering");
    }
}
