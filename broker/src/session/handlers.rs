//! One handler per packet type a client sends, on [`Machine`].

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::machine::{Accepted, Action, Close, Connected, Identity, Machine, State};
use super::outbound::Outbound;
use crate::auth::acl::Access;
use crate::auth::stats::Denial;
use crate::config::CertUsername;
use crate::message::Message;
use crate::protocol::topic::{shared, valid_filter, valid_shared, within_levels};
use crate::protocol::{
    Ack, ConnAck, ConnAckProps, Connect, ConnectReason, Disconnect, DisconnectReason, Packet, PubAckReason,
    PubRecReason, PubRelReason, Publish, QoS, SubAck, SubAckReason, Subscribe, UnsubAck, UnsubAckReason, Unsubscribe,
    Version,
};
use crate::router::{ConnectReply, ConnectRequest, Sub, SubscribeEntry};

/// Shrinks an MQTT 5 CONNACK to the client's Maximum Packet Size
/// [MQTT-3.1.2-24] by leaving out what only informs (Reason String,
/// Response Information) and properties whose absence means the same to
/// the client (the `*_available` flags, all true; Topic Alias Maximum,
/// absent = 0: the client then sends no aliases; Receive Maximum 65,535,
/// the value of its absence). Whether it fits then.
fn fit_connack(p: &mut Packet, max: u32) -> bool {
    let fits = |p: &Packet| {
        let mut b = bytes::BytesMut::new();
        crate::protocol::encode(p, Version::V5, &mut b).is_ok() && b.len() <= max as usize
    };
    let steps: [fn(&mut ConnAckProps); 4] = [
        |p| {
            p.reason_string = None;
            p.response_information = None;
        },
        |p| {
            p.retain_available = None;
            p.wildcard_subscription_available = None;
            p.subscription_identifiers_available = None;
            p.shared_subscription_available = None;
        },
        |p| p.topic_alias_maximum = None,
        |p| p.receive_maximum = p.receive_maximum.filter(|&r| r != u16::MAX),
    ];
    for step in steps {
        if fits(p) {
            return true;
        }
        if let Packet::ConnAck(a) = p {
            step(&mut a.props);
        }
    }
    fits(p)
}

impl Machine {
    /// CONNACK with the error `code`, then close.
    /// The CONNACK fits the client's Maximum Packet Size without its
    /// Reason String [MQTT-3.2.2-19], or is not sent.
    /// [`Machine::refuse`] for the client's credentials (counted).
    pub(super) fn refuse_auth(&mut self, code: ConnectReason) {
        self.cfg.auth_stats.count(Denial::Authentication);
        self.refuse(code);
    }

    pub(super) fn refuse(&mut self, code: ConnectReason) {
        let props = ConnAckProps { reason_string: Some(code.text().to_owned()), ..ConnAckProps::default() };
        let mut connack = Packet::ConnAck(Box::new(ConnAck { code, props, ..ConnAck::default() }));
        if self.client_max.is_none_or(|max| fit_connack(&mut connack, max)) {
            self.send(connack);
        }
        self.close(Close::Refused);
    }

    pub(super) fn connected_mut(&mut self) -> Option<&mut Connected> {
        match &mut self.state {
            State::Connected(c) => Some(c),
            _ => None,
        }
    }

    /// CONNECT: checks the client identifier and credentials (or runs
    /// enhanced authentication, `auth_flow.rs`), then asks the router for
    /// the session. `deadline` bounds the whole of it.
    pub(super) fn on_connect(&mut self, mut c: Connect, deadline: Instant) {
        self.version = Some(c.version);
        self.client_max = c.maximum_packet_size.filter(|_| c.version.is_v5());
        self.bridge = c.bridge;
        self.conn.set_v5(c.version.is_v5());
        if let Some(code) = self.refusal {
            return self.refuse(code);
        }
        if c.will.as_ref().is_some_and(|w| !within_levels(&w.topic, self.cfg.max_topic_levels)) {
            // A will topic beyond `max_topic_levels`: MQTT 5 CONNACK 0x90;
            // 3.1.1 has no code for it, so the connection is closed.
            if c.version.is_v5() {
                return self.refuse(ConnectReason::TopicNameInvalid);
            }
            return self.close(Close::Error(DisconnectReason::TopicNameInvalid));
        }
        let mut assigned = false;
        if c.client_id.is_empty() {
            let allowed = match c.version {
                // MQTT 3.1 requires an identifier.
                Version::V31 => false,
                // [MQTT-3.1.3-7], [MQTT-3.1.3-8] only with a clean session.
                Version::V311 => c.clean_start,
                // [MQTT-3.1.3-6] 5.0 always assigns one.
                Version::V5 => true,
            };
            if !allowed {
                // [MQTT-3.1.3-9] CONNACK 0x02 (0x85), then close.
                return self.refuse(ConnectReason::ClientIdentifierNotValid);
            }
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(self.conn.id);
            c.client_id = format!("edgemq-{:016x}", h.finish());
            assigned = true;
        }
        if self.cfg.cert_username != CertUsername::No {
            let cert = match &mut self.state {
                State::AwaitConnect { cert_username, .. } => cert_username.take(),
                _ => None,
            };
            let Some(name) = cert else {
                // 3.1.1: 0x04 Bad user name or password.
                return self.refuse_auth(ConnectReason::BadUserNameOrPassword);
            };
            // The certificate is the credential: what CONNECT says is ignored.
            c.username = Some(*name);
            c.password = None;
            let accepted = Accepted { connect: c, assigned, auth_data: None };
            return self.request_session(accepted);
        }
        let enhanced = c.authentication_method.is_some() || c.authentication_data.is_some();
        let accepted = Accepted { connect: c, assigned, auth_data: None };
        if enhanced {
            // The method authenticates the client (allow_anonymous does not apply).
            return self.start_auth(accepted, deadline);
        }
        if !self.cfg.allow_anonymous && accepted.connect.username.is_none() {
            return self.refuse_auth(ConnectReason::NotAuthorized);
        }
        let passwords = self.cfg.files.as_ref().is_some_and(|f| f.has_passwords());
        match &accepted.connect.username {
            Some(username) if passwords => {
                // Verified off the async workers (a hash costs milliseconds);
                // the answer comes back in `password_checked`.
                let password = accepted.connect.password.clone().unwrap_or_default();
                self.out.push(Action::CheckPassword { username: username.clone(), password });
                self.state = State::Verifying(Box::new(accepted));
                return;
            }
            // Nothing can verify a user name: with anonymous clients not
            // allowed, no one is admitted (as Mosquitto without a password file).
            Some(_) if !self.cfg.allow_anonymous => return self.refuse_auth(ConnectReason::BadUserNameOrPassword),
            _ => {}
        }
        self.request_session(accepted);
    }

    /// The password of a CONNECT in [`State::Verifying`] was not checked
    /// within the connect timeout (the hashes of a burst queued before
    /// it): closed without CONNACK, as a connect timeout closes.
    pub fn password_unchecked(&mut self) {
        if matches!(self.state, State::Verifying(_)) {
            self.close(Close::Refused);
        }
    }

    /// The password of a CONNECT in [`State::Verifying`] was checked.
    pub fn password_checked(&mut self, ok: bool) {
        let State::Verifying(a) = std::mem::replace(&mut self.state, State::Closed) else {
            return;
        };
        if !ok {
            // 3.1.1: 0x04 Bad user name or password.
            return self.refuse_auth(ConnectReason::BadUserNameOrPassword);
        }
        self.request_session(*a);
    }

    /// Whether `topic` is the broker's own (`$SYS/broker/...`) for this
    /// client: a bridge (level | 0x80) may publish its connection state
    /// under `$SYS/broker/connection/`, as Mosquitto's bridges do (a will
    /// and a retained `1`). An MQTT 5 bridge carries no such mark: its
    /// will is refused, and our bridges connect again without it (the
    /// state then stays on their side).
    fn reserved(&self, topic: &str) -> bool {
        crate::router::is_internal_topic(topic) && !(self.bridge && topic.starts_with("$SYS/broker/connection/"))
    }

    /// Asks the router to open or resume the session of an accepted CONNECT
    /// (its will, if any, must be one the ACL lets it publish).
    pub(super) fn request_session(&mut self, mut a: Accepted) {
        if self.cfg.use_username_as_clientid {
            let Some(user) = a.connect.username.clone() else {
                return self.refuse_auth(ConnectReason::NotAuthorized);
            };
            a.assigned |= a.connect.client_id != user;
            a.connect.client_id = user;
        }
        let c = &a.connect;
        let internal = c.will.as_ref().is_some_and(|w| self.reserved(&w.topic));
        let denied = match (&self.cfg.files, &c.will) {
            (Some(files), Some(w)) => !files.allows(c.username.as_deref(), &c.client_id, &w.topic, Access::Write),
            _ => false,
        };
        if internal || denied {
            self.cfg.auth_stats.count(Denial::Will);
            return self.refuse(ConnectReason::NotAuthorized);
        }
        let expiry = match c.version {
            Version::V5 => match c.session_expiry_interval.unwrap_or(0) {
                u32::MAX => None,
                secs => Some(Duration::from_secs(u64::from(secs))),
            },
            // 3.1.1: a clean session ends with the connection; others keep
            // the configured expiry.
            _ if c.clean_start => Some(Duration::ZERO),
            _ => self.cfg.session_expiry,
        };
        // Only where users authenticate does a session get an owner: a
        // broker without authentication writes session records as the
        // releases before owners did (an older release can read them).
        let check_owner = self.cfg.check_session_owner
            && (self.cfg.files.as_ref().is_some_and(|f| f.has_passwords())
                || self.cfg.cert_username != CertUsername::No);
        self.out.push(Action::Connect(ConnectRequest {
            client_id: c.client_id.clone(),
            clean_start: c.clean_start,
            expiry,
            conn: self.conn.clone(),
            user: c.username.as_deref().filter(|_| check_owner).map(Into::into),
            check_owner,
        }));
        self.state = State::Connecting(Box::new(a));
    }

    /// The router opened or resumed the session: CONNACK, then whatever was
    /// in flight.
    pub(super) fn on_session(&mut self, a: Accepted, reply: ConnectReply, now: Instant) {
        let Accepted { connect: c, assigned, auth_data } = a;
        let v5 = c.version.is_v5();
        let mut keep_alive = c.keep_alive;
        let mut props = ConnAckProps::default();
        if v5 {
            if keep_alive == 0 || keep_alive > self.cfg.max_keepalive {
                // [MQTT-3.2.2-21] the client must use the Server Keep Alive.
                keep_alive = self.cfg.max_keepalive;
                props.server_keep_alive = Some(keep_alive);
            }
            props.assigned_client_identifier = assigned.then(|| c.client_id.clone());
            props.maximum_packet_size = u32::try_from(self.cfg.max_packet_size).ok();
            props.receive_maximum = Some(self.cfg.receive_maximum);
            if self.cfg.topic_alias_maximum > 0 {
                props.topic_alias_maximum = Some(self.cfg.topic_alias_maximum);
            }
            props.retain_available = Some(true);
            props.wildcard_subscription_available = Some(true);
            props.subscription_identifiers_available = Some(true);
            props.shared_subscription_available = Some(true);
            if c.request_response_information {
                props.response_information =
                    self.cfg.response_information.as_ref().map(|r| format!("{r}{}", c.client_id));
            }
            // [MQTT-4.12.0-5] a successful CONNACK names the method of CONNECT.
            props.authentication_method = c.authentication_method.clone();
            props.authentication_data = auth_data;
        }
        let zero_expiry = v5 && c.session_expiry_interval.unwrap_or(0) == 0;
        let window = self.cfg.max_inflight.min(c.receive_maximum.unwrap_or(u16::MAX));
        let alias_max = if v5 && self.cfg.server_topic_aliases { c.topic_alias_maximum.unwrap_or(0) } else { 0 };
        let mut out = Outbound::new(c.version, c.maximum_packet_size, alias_max);
        // [MQTT-3.2.2-2] session present reflects a resumed session.
        let mut connack = Packet::ConnAck(Box::new(ConnAck {
            session_present: reply.session_present,
            code: ConnectReason::Success,
            props,
        }));
        let fits = c.maximum_packet_size.filter(|_| v5).is_none_or(|max| fit_connack(&mut connack, max));
        if fits {
            self.send_connack(reply.durable_before, connack);
        }
        let session = reply.session;
        let recorded = session.lock().is_journaled();
        self.set_session_recorded(recorded);
        self.resend_inflight(&mut session.lock(), &mut out, (c.username.as_deref(), &reply.client_id), now);
        self.state = State::Connected(Box::new(Connected {
            version: c.version,
            client_id: reply.client_id,
            key: reply.key,
            session,
            keep_alive,
            will: c.will.map(Box::new),
            window: window.max(1),
            zero_expiry,
            problem_info: c.request_problem_information,
            expiry_update: None,
            out,
            aliases_in: None,
            auth: (c.authentication_method.is_some() || self.cfg.files.as_ref().is_some_and(|f| f.acl.is_some()))
                .then(|| Box::new(Identity { method: c.authentication_method, username: c.username, exchange: None })),
        }));
        if !fits {
            // Not even the smallest CONNACK fits the client's Maximum
            // Packet Size [MQTT-3.1.2-24]: nothing can be sent to it. The
            // session is released as for any closed connection.
            tracing::debug!("CONNACK exceeds the client's Maximum Packet Size: closing");
            self.close(Close::Refused);
        }
    }

    /// Resolves an MQTT 5 Topic Alias on an inbound PUBLISH, or says why not.
    fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), DisconnectReason> {
        let max = self.cfg.topic_alias_maximum;
        let Some(c) = self.connected_mut() else { return Ok(()) };
        let Some(alias) = p.props.as_mut().and_then(|pp| pp.topic_alias.take()) else {
            return Ok(());
        };
        if alias == 0 || alias > max {
            // [MQTT-3.3.2-8], [MQTT-3.3.2-9]: 0 or above the maximum.
            return Err(DisconnectReason::TopicAliasInvalid);
        }
        if p.topic.is_empty() {
            // An alias that was never set is a protocol error.
            p.topic =
                c.aliases_in.as_ref().and_then(|a| a.get(&alias)).cloned().ok_or(DisconnectReason::ProtocolError)?;
        } else {
            c.aliases_in.get_or_insert_with(Box::default).insert(alias, p.topic.clone());
        }
        Ok(())
    }

    pub(super) fn on_publish(&mut self, mut p: Publish, now: Instant) {
        // An aliased topic was checked when its alias was set.
        if !within_levels(&p.topic, self.cfg.max_topic_levels) {
            return self.refuse_publish(&p);
        }
        if let Err(code) = self.resolve_alias(&mut p) {
            return self.close(Close::Error(code));
        }
        // `$SYS/broker/...` is the broker's own (router/sys.rs): no client
        // may publish there, whatever the ACL says.
        if !self.acl_allows(&p.topic, Access::Write) || self.reserved(&p.topic) {
            return self.deny_publish(&p);
        }
        let receive_maximum = usize::from(self.cfg.receive_maximum);
        // Inbound QoS 1 whose PUBACK is held until durable count too (MQTT
        // 5 section 3.3.4: PUBLISH not yet answered by PUBACK or PUBCOMP).
        let held_pubacks = self.held_pubacks();
        let Some(c) = self.connected_mut() else { return };
        let key = c.key;
        let v5 = c.version.is_v5();
        let mut route = true;
        if p.qos == QoS::AtLeastOnce && v5 {
            let pending = c.session.lock().inbound_qos2_pending();
            if pending + held_pubacks >= receive_maximum {
                // [MQTT-3.3.4-7], [MQTT-3.3.4-8]
                return self.close(Close::Error(DisconnectReason::ReceiveMaximumExceeded));
            }
        }
        if p.qos == QoS::ExactlyOnce {
            let mut st = c.session.lock();
            let pending = st.inbound_qos2_pending() + if v5 { held_pubacks } else { 0 };
            if pending >= receive_maximum && !st.inbound_qos2_contains(p.pkid) {
                drop(st);
                // [MQTT-3.3.4-7] more unacknowledged QoS 2 than Receive Maximum.
                return self.close(Close::Error(DisconnectReason::ReceiveMaximumExceeded));
            }
            // Routed on first receipt only; a resent PUBLISH with the same
            // identifier before PUBREL is a duplicate ([MQTT-4.3.3-10]).
            route = st.inbound_qos2_received(p.pkid);
        }
        let (qos, pkid) = (p.qos, p.pkid);
        if route {
            let props = p.props.filter(|pp| **pp != Default::default());
            self.emit_routed(Action::Route(Message {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                props,
                origin: key,
                received: now,
            }));
        }
        match qos {
            QoS::AtMostOnce => {}
            // [MQTT-4.3.2-2] PUBACK after taking ownership.
            QoS::AtLeastOnce => self.send(Packet::PubAck(Ack::ok(pkid))),
            // [MQTT-4.3.3-2] PUBREC.
            QoS::ExactlyOnce => self.send(Packet::PubRec(Ack::ok(pkid))),
        }
    }

    /// A PUBLISH whose topic has more levels than `max_topic_levels`: not
    /// routed; MQTT 5 QoS 1/2 get PUBACK/PUBREC 0x90 Topic Name invalid,
    /// QoS 0 and MQTT 3.1/3.1.1 (which cannot refuse a message) a close.
    fn refuse_publish(&mut self, p: &Publish) {
        let v5 = self.version.is_some_and(Version::is_v5);
        match p.qos {
            QoS::AtLeastOnce if v5 => self.send(Packet::PubAck(Ack::new(p.pkid, PubAckReason::TopicNameInvalid))),
            QoS::ExactlyOnce if v5 => self.send(Packet::PubRec(Ack::new(p.pkid, PubRecReason::TopicNameInvalid))),
            _ => self.close(Close::Error(DisconnectReason::TopicNameInvalid)),
        }
    }

    /// A PUBLISH the ACL does not allow: not routed. MQTT 5 QoS 1/2 get
    /// PUBACK/PUBREC 0x87 Not authorized; MQTT 3.1/3.1.1 (no way to refuse)
    /// an ordinary acknowledgement, as Mosquitto does; QoS 0 nothing.
    fn deny_publish(&mut self, p: &Publish) {
        let v5 = self.version.is_some_and(Version::is_v5);
        self.cfg.auth_stats.count(Denial::Publish);
        let code = if v5 { PubAckReason::NotAuthorized } else { PubAckReason::Success };
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(Ack::new(p.pkid, code))),
            QoS::ExactlyOnce => self.send(Packet::PubRec(Ack::new(p.pkid, code))),
        }
    }

    /// Whether the listener's ACL (if any) grants the connected client
    /// `access` to `topic`.
    pub(super) fn acl_allows(&self, topic: &str, access: Access) -> bool {
        let (Some(files), State::Connected(c)) = (&self.cfg.files, &self.state) else { return true };
        let user = c.auth.as_ref().and_then(|a| a.username.as_deref());
        files.allows(user, &c.client_id, topic, access)
    }

    pub(super) fn on_puback(&mut self, a: Ack<PubAckReason>) {
        let Some(c) = self.connected_mut() else { return };
        if !c.session.lock().puback(a.pkid) {
            tracing::debug!(client_id = %c.client_id, pkid = a.pkid, "PUBACK for an unknown packet identifier");
        }
    }

    pub(super) fn on_pubrec(&mut self, a: Ack<PubRecReason>) {
        let Some(c) = self.connected_mut() else { return };
        let v5 = c.version.is_v5();
        let mut st = c.session.lock();
        if a.reason.is_error() {
            // MQTT 5: the receiver refused the message; the flow ends here.
            st.complete(a.pkid);
            return;
        }
        let known = st.pubrec(a.pkid);
        drop(st);
        // [MQTT-4.3.3-4] PUBREL in answer to PUBREC.
        let reason = if known || !v5 { PubRelReason::Success } else { PubRelReason::PacketIdentifierNotFound };
        self.send(Packet::PubRel(Ack::new(a.pkid, reason)));
    }

    pub(super) fn on_pubrel(&mut self, a: Ack<PubRelReason>) {
        let Some(c) = self.connected_mut() else { return };
        let v5 = c.version.is_v5();
        let known = c.session.lock().inbound_qos2_released(a.pkid);
        // [MQTT-4.3.3-11] PUBCOMP in answer to PUBREL, known or not.
        let reason = if known || !v5 { PubRelReason::Success } else { PubRelReason::PacketIdentifierNotFound };
        self.send(Packet::PubComp(Ack::new(a.pkid, reason)));
    }

    pub(super) fn on_pubcomp(&mut self, a: Ack<PubRelReason>) {
        let Some(c) = self.connected_mut() else { return };
        c.session.lock().complete(a.pkid);
    }

    pub(super) fn on_subscribe(&mut self, s: Subscribe) {
        let (max_levels, max_subs) = (self.cfg.max_topic_levels, self.cfg.max_subscriptions);
        // `$share/{group}/` is checked as its filter.
        let allowed: Vec<bool> = s
            .filters
            .iter()
            .map(|f| self.acl_allows(shared(&f.filter).map_or(f.filter.as_str(), |(_, real)| real), Access::Subscribe))
            .collect();
        let stats = self.cfg.auth_stats.clone();
        let bridge = self.bridge;
        let Some(c) = self.connected_mut() else { return };
        let version = c.version;
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut entries = Vec::with_capacity(s.filters.len());
        let mut st = c.session.lock();
        for (f, allowed) in s.filters.into_iter().zip(allowed) {
            if !allowed {
                stats.count(Denial::Subscribe);
                codes.push(SubAckReason::NotAuthorized);
                continue;
            }
            let is_shared = f.filter.starts_with("$share/");
            let valid = if is_shared { valid_shared(&f.filter) } else { valid_filter(&f.filter) };
            let real = shared(&f.filter).map_or(f.filter.as_str(), |(_, real)| real);
            if !valid || !within_levels(real, max_levels) {
                // [MQTT-4.8.2-1], [MQTT-4.8.2-2] for shared ones.
                codes.push(SubAckReason::TopicFilterInvalid);
                continue;
            }
            if st.subscriptions.len() >= max_subs && !st.subscriptions.contains_key(&f.filter) {
                tracing::debug!(client_id = &*c.client_id, filter = %f.filter, "SUBSCRIBE beyond max_subscriptions_per_client");
                codes.push(SubAckReason::QuotaExceeded);
                continue;
            }
            let mut f = f;
            if bridge && !is_shared {
                // A 3.1/3.1.1 bridge (level | 0x80) gets MQTT 5's No Local
                // and Retain As Published, as Mosquitto gives them: what it
                // sent is not echoed back, retained flags survive the hop.
                f.options.no_local = true;
                f.options.retain_as_published = true;
            }
            if is_shared && f.options.no_local {
                drop(st);
                // [MQTT-3.8.3-4] (5.0) No Local on a shared subscription.
                return self.close(Close::Error(DisconnectReason::ProtocolError));
            }
            let existed = st.subscriptions.insert(f.filter.clone(), (f.options, s.subscription_identifier)).is_some();
            // [MQTT-3.9.3-1] one code per filter, in order: the granted QoS.
            codes.push(SubAckReason::granted(f.options.qos));
            entries.push(SubscribeEntry {
                filter: f.filter,
                sub: Sub { options: f.options, id: s.subscription_identifier },
                existed,
            });
        }
        drop(st);
        if version == Version::V31 && codes.iter().any(|c| c.is_error()) {
            // MQTT 3.1 has no failure code in SUBACK: close instead.
            return self.close(Close::Error(DisconnectReason::TopicFilterInvalid));
        }
        if !entries.is_empty() {
            self.emit_routed(Action::Subscribe(entries));
        }
        // [MQTT-3.8.4-1] SUBACK with the same packet identifier.
        self.send(Packet::SubAck(SubAck { pkid: s.pkid, codes, reason_string: None }));
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let Some(c) = self.connected_mut() else { return };
        let mut st = c.session.lock();
        let codes = u
            .filters
            .iter()
            .map(|f| {
                if st.subscriptions.remove(f).is_some() {
                    UnsubAckReason::Success
                } else {
                    UnsubAckReason::NoSubscriptionExisted
                }
            })
            .collect();
        drop(st);
        self.emit_routed(Action::Unsubscribe(u.filters));
        // [MQTT-3.10.4-4] UNSUBACK with the same packet identifier.
        self.send(Packet::UnsubAck(UnsubAck { pkid: u.pkid, codes, reason_string: None }));
    }

    pub(super) fn on_disconnect(&mut self, d: Disconnect) {
        let Some(c) = self.connected_mut() else { return };
        if let Some(secs) = d.session_expiry_interval {
            if c.zero_expiry && secs != 0 {
                // [MQTT-3.14.2-2] cannot set an expiry after connecting with 0.
                return self.close(Close::Error(DisconnectReason::ProtocolError));
            }
            c.expiry_update = Some(if secs == u32::MAX { None } else { Some(Duration::from_secs(u64::from(secs))) });
        }
        if d.reason != DisconnectReason::DisconnectWithWill {
            // [MQTT-3.1.2-10] a normal DISCONNECT discards the will.
            c.will = None;
        }
        self.close(Close::Normal);
    }
}
