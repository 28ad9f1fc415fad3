//! The server commands (join, kick, unlink, send, broadcast) with the reference's status rules
//! and error texts.

use super::Krmx;
use crate::{Error, Message, Status, Username};
use std::time::Instant;

const LISTENING: &[Status] = &[Status::Listening];
const LISTENING_OR_CLOSING: &[Status] = &[Status::Listening, Status::Closing];

impl Krmx {
    pub(super) fn api_join(&mut self, now: Instant, name: &str) -> Result<(), Error> {
        self.check_status("join a user", LISTENING)?;
        if self.users.contains_key(name) {
            return Err(Error::JoinExistingUser);
        }
        if !self.config.username_rule.accepts(name) {
            return Err(Error::JoinInvalidUsername);
        }
        self.join(now, Username::new_unchecked(name));
        Ok(())
    }

    pub(super) fn api_kick(&mut self, now: Instant, name: &str) -> Result<(), Error> {
        self.check_status("kick a user", LISTENING)?;
        let username = self.existing(name).ok_or(Error::KickUnknownUser)?;
        tracing::info!(%username, "kicked");
        self.leave(now, &username);
        Ok(())
    }

    pub(super) fn api_unlink(&mut self, now: Instant, name: &str) -> Result<(), Error> {
        self.check_status("unlink a connection from a user", LISTENING_OR_CLOSING)?;
        let username = self.existing(name).ok_or(Error::UnlinkUnknownUser)?;
        if self.linked_connection(name).is_none() {
            return Err(Error::UnlinkNotLinked);
        }
        self.unlink(now, &username);
        Ok(())
    }

    pub(super) fn api_send(&mut self, name: &str, message: &Message) -> Result<(), Error> {
        self.check_status("send a message", LISTENING_OR_CLOSING)?;
        let user = self.users.get(name).ok_or(Error::SendUnknownUser)?;
        let conn = user.conn.ok_or(Error::SendNotLinked)?;
        self.send(conn, message.to_text());
        Ok(())
    }

    pub(super) fn api_broadcast(
        &mut self,
        message: &Message,
        skip: Option<&str>,
    ) -> Result<(), Error> {
        self.check_status("broadcast a message", LISTENING_OR_CLOSING)?;
        self.broadcast_text(&message.to_text(), skip);
        Ok(())
    }

    fn existing(&self, name: &str) -> Option<Username> {
        self.users
            .get_key_value(name)
            .map(|(username, _)| username.clone())
    }
}
