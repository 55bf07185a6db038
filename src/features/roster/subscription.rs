//! Presence subscriptions as a pure function (RFC 6121 §3 and Appendix A): the nine
//! subscription states of a contact (A.1) and what the server does with an outbound (A.2)
//! or inbound (A.3) `subscribe` / `subscribed` / `unsubscribe` / `unsubscribed`: the
//! state after, what happens to the stanza, which presences the user's resources send the
//! contact, and whether the contact becomes a roster item. `roster.rs` loads, stores,
//! pushes and routes; the decisions are all here.
//!
//! A.2 (outbound): `subscribe` and `unsubscribe` are always routed, so that a user can
//! resynchronize subscription states the two servers disagree on; `subscribed` and
//! `unsubscribed` are routed only when they change the state (otherwise nothing happens).
//! A.3 (inbound): the stanza is delivered to the user only when it changes the state,
//! except a `subscribe` from a contact that already has a subscription, which the server
//! answers with `subscribed` on the user's behalf.

use crate::storage::{RosterItem, Subscription};
use crate::xmpp::router::SType;

/// A contact's subscription state from the user's side (RFC 6121 A.1). `None` includes a
/// contact that is not in the user's roster at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// "None": neither is subscribed, nobody asked.
    None,
    /// "None + Pending Out": the user asked the contact (`ask='subscribe'`).
    NonePendingOut,
    /// "None + Pending In": the contact asked the user, who has not answered.
    NonePendingIn,
    /// "None + Pending Out+In": both asked, neither answered.
    NonePendingOutIn,
    /// "To": the user receives the contact's presence.
    To,
    /// "To + Pending In": and the contact asked for the user's.
    ToPendingIn,
    /// "From": the contact receives the user's presence.
    From,
    /// "From + Pending Out": and the user asked for the contact's.
    FromPendingOut,
    /// "Both": each receives the other's presence.
    Both,
}

impl State {
    /// The state of a subscription with its pending flags. A pending out next to `to` and
    /// a pending in next to `from` mean nothing (the subscription is there) and are dropped.
    pub fn new(sub: Subscription, pending_out: bool, pending_in: bool) -> State {
        match (sub, pending_out, pending_in) {
            (Subscription::None, false, false) => State::None,
            (Subscription::None, true, false) => State::NonePendingOut,
            (Subscription::None, false, true) => State::NonePendingIn,
            (Subscription::None, true, true) => State::NonePendingOutIn,
            (Subscription::To, _, false) => State::To,
            (Subscription::To, _, true) => State::ToPendingIn,
            (Subscription::From, false, _) => State::From,
            (Subscription::From, true, _) => State::FromPendingOut,
            (Subscription::Both, _, _) => State::Both,
        }
    }

    /// The state of a roster entry; no entry is "None".
    pub fn of(item: Option<&RosterItem>) -> State {
        item.map_or(State::None, |i| {
            State::new(i.subscription, i.ask, i.pending_in)
        })
    }

    pub fn subscription(self) -> Subscription {
        match self {
            State::None
            | State::NonePendingOut
            | State::NonePendingIn
            | State::NonePendingOutIn => Subscription::None,
            State::To | State::ToPendingIn => Subscription::To,
            State::From | State::FromPendingOut => Subscription::From,
            State::Both => Subscription::Both,
        }
    }

    /// The user asked and the contact has not answered (`ask='subscribe'`).
    pub fn pending_out(self) -> bool {
        matches!(
            self,
            State::NonePendingOut | State::NonePendingOutIn | State::FromPendingOut
        )
    }

    /// The contact asked and the user has not answered.
    pub fn pending_in(self) -> bool {
        matches!(
            self,
            State::NonePendingIn | State::NonePendingOutIn | State::ToPendingIn
        )
    }

    /// Writes this state into a roster entry (subscription, `ask`, pending in).
    pub fn write(self, item: &mut RosterItem) {
        item.subscription = self.subscription();
        item.ask = self.pending_out();
        item.pending_in = self.pending_in();
    }
}

/// Who sent the subscription stanza: the user (outbound, A.2) or the contact (inbound, A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

/// The four subscription-related presence types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubType {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl SubType {
    pub fn of(stype: SType) -> Option<SubType> {
        Some(match stype {
            SType::Subscribe => SubType::Subscribe,
            SType::Subscribed => SubType::Subscribed,
            SType::Unsubscribe => SubType::Unsubscribe,
            SType::Unsubscribed => SubType::Unsubscribed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SubType::Subscribe => "subscribe",
            SubType::Subscribed => "subscribed",
            SubType::Unsubscribe => "unsubscribe",
            SubType::Unsubscribed => "unsubscribed",
        }
    }
}

/// What happens to the subscription stanza itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Outbound: stamped with the user's bare JID and routed to the contact.
    Route,
    /// Inbound: delivered to the user's available resources (after the roster push), or
    /// kept for the next one when it is a request (§3.1.3).
    Deliver,
    /// Inbound `subscribe` from a contact that already has a subscription: not delivered;
    /// the server sends `subscribed` to the contact on the user's behalf (§3.1.3).
    AutoReplySubscribed,
    /// Nothing: the stanza is dropped.
    Drop,
}

/// Presence from each of the user's available resources to the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presences {
    Nothing,
    /// The current presence: the contact just got a subscription (§3.1.5).
    Available,
    /// `unavailable`: the contact's subscription just ended (§3.2.2, §3.3.3).
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The state after.
    pub state: State,
    pub action: Action,
    pub presences: Presences,
    /// The state changed: store the entry and push it to the interested resources (if it
    /// is a roster item).
    pub push: bool,
    /// The contact becomes a roster item if it is not one (§3.1.2, §3.1.5); otherwise an
    /// entry may exist only to remember a pending-in request (A.1: "None + Pending In" is
    /// not a roster item until the user approves).
    pub list: bool,
}

/// RFC 6121 A.2 and A.3: the server's processing of a subscription stanza of type `ty` sent
/// in `dir`, for a contact in state `before`.
pub fn process(before: State, dir: Direction, ty: SubType) -> Outcome {
    let (after, passes) = match (dir, ty) {
        (Direction::Outbound, SubType::Subscribe) => (out_subscribe(before), true),
        (Direction::Outbound, SubType::Unsubscribe) => (out_unsubscribe(before), true),
        (Direction::Outbound, SubType::Subscribed) => on_change(out_subscribed(before)),
        (Direction::Outbound, SubType::Unsubscribed) => on_change(out_unsubscribed(before)),
        (Direction::Inbound, SubType::Subscribe) => on_change(in_subscribe(before)),
        (Direction::Inbound, SubType::Unsubscribe) => on_change(in_unsubscribe(before)),
        (Direction::Inbound, SubType::Subscribed) => on_change(in_subscribed(before)),
        (Direction::Inbound, SubType::Unsubscribed) => on_change(in_unsubscribed(before)),
    };
    let changed = after.is_some();
    let action = if passes {
        match dir {
            Direction::Outbound => Action::Route,
            Direction::Inbound => Action::Deliver,
        }
    } else if dir == Direction::Inbound
        && ty == SubType::Subscribe
        && before.subscription().has_from()
    {
        // A.3.1: "From", "From + Pending Out", "Both": "no *", the server auto-replies.
        Action::AutoReplySubscribed
    } else {
        Action::Drop
    };
    let presences = match (dir, ty) {
        (Direction::Outbound, SubType::Subscribed) if changed => Presences::Available,
        (Direction::Outbound, SubType::Unsubscribed)
        | (Direction::Inbound, SubType::Unsubscribe)
            if changed && before.subscription().has_from() =>
        {
            Presences::Unavailable
        }
        _ => Presences::Nothing,
    };
    let list = match (dir, ty) {
        (Direction::Outbound, SubType::Subscribe) => true,
        (Direction::Outbound, SubType::Subscribed) => changed,
        _ => false,
    };
    Outcome {
        state: after.unwrap_or(before),
        action,
        presences,
        push: changed,
        list,
    }
}

/// The tables whose stanza passes exactly when the state changes.
fn on_change(after: Option<State>) -> (Option<State>, bool) {
    (after, after.is_some())
}

// Each table: the new state, or `None` for "no state change".

/// A.2.1, outbound "subscribe" (routed in every state).
fn out_subscribe(s: State) -> Option<State> {
    match s {
        State::None => Some(State::NonePendingOut),
        State::NonePendingIn => Some(State::NonePendingOutIn),
        State::From => Some(State::FromPendingOut),
        State::NonePendingOut
        | State::NonePendingOutIn
        | State::To
        | State::ToPendingIn
        | State::FromPendingOut
        | State::Both => None,
    }
}

/// A.2.2, outbound "unsubscribe" (routed in every state).
fn out_unsubscribe(s: State) -> Option<State> {
    match s {
        State::NonePendingOut | State::To => Some(State::None),
        State::NonePendingOutIn | State::ToPendingIn => Some(State::NonePendingIn),
        State::FromPendingOut | State::Both => Some(State::From),
        State::None | State::NonePendingIn | State::From => None,
    }
}

/// A.2.3, outbound "subscribed".
fn out_subscribed(s: State) -> Option<State> {
    match s {
        State::NonePendingIn => Some(State::From),
        State::NonePendingOutIn => Some(State::FromPendingOut),
        State::ToPendingIn => Some(State::Both),
        State::None
        | State::NonePendingOut
        | State::To
        | State::From
        | State::FromPendingOut
        | State::Both => None,
    }
}

/// A.2.4, outbound "unsubscribed".
fn out_unsubscribed(s: State) -> Option<State> {
    match s {
        State::NonePendingIn | State::From => Some(State::None),
        State::NonePendingOutIn | State::FromPendingOut => Some(State::NonePendingOut),
        State::ToPendingIn | State::Both => Some(State::To),
        State::None | State::NonePendingOut | State::To => None,
    }
}

/// A.3.1, inbound "subscribe".
fn in_subscribe(s: State) -> Option<State> {
    match s {
        State::None => Some(State::NonePendingIn),
        State::NonePendingOut => Some(State::NonePendingOutIn),
        State::To => Some(State::ToPendingIn),
        State::NonePendingIn
        | State::NonePendingOutIn
        | State::ToPendingIn
        | State::From
        | State::FromPendingOut
        | State::Both => None,
    }
}

/// A.3.2, inbound "unsubscribe".
fn in_unsubscribe(s: State) -> Option<State> {
    match s {
        State::NonePendingIn | State::From => Some(State::None),
        State::NonePendingOutIn | State::FromPendingOut => Some(State::NonePendingOut),
        State::ToPendingIn | State::Both => Some(State::To),
        State::None | State::NonePendingOut | State::To => None,
    }
}

/// A.3.3, inbound "subscribed".
fn in_subscribed(s: State) -> Option<State> {
    match s {
        State::NonePendingOut => Some(State::To),
        State::NonePendingOutIn => Some(State::ToPendingIn),
        State::FromPendingOut => Some(State::Both),
        State::None
        | State::NonePendingIn
        | State::To
        | State::ToPendingIn
        | State::From
        | State::Both => None,
    }
}

/// A.3.4, inbound "unsubscribed".
fn in_unsubscribed(s: State) -> Option<State> {
    match s {
        State::NonePendingOut | State::To => Some(State::None),
        State::NonePendingOutIn | State::ToPendingIn => Some(State::NonePendingIn),
        State::FromPendingOut | State::Both => Some(State::From),
        State::None | State::NonePendingIn | State::From => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Action::{AutoReplySubscribed, Deliver, Drop, Route};
    use super::Direction::{Inbound, Outbound};
    use super::Presences::{Available, Nothing, Unavailable};
    use super::State::{
        Both, From, FromPendingOut, NonePendingIn, NonePendingOut, NonePendingOutIn, To,
        ToPendingIn,
    };
    use super::SubType::{Subscribe, Subscribed, Unsubscribe, Unsubscribed};
    use super::*;

    /// The state an RFC table names; `None` for "no state change".
    fn named(s: &str) -> Option<State> {
        Some(match s.trim().trim_matches('"') {
            "no state change" => return None,
            "None" => State::None,
            "None + Pending Out" => NonePendingOut,
            "None + Pending In" => NonePendingIn,
            "None + Pending Out+In" => NonePendingOutIn,
            "To" => To,
            "To + Pending In" => ToPendingIn,
            "From" => From,
            "From + Pending Out" => FromPendingOut,
            "Both" => Both,
            other => panic!("not an RFC 6121 A.1 state: {other}"),
        })
    }

    /// Checks one row of an RFC 6121 A.2 / A.3 table, quoted as `| EXISTING STATE |
    /// ROUTE? or DELIVER? | NEW STATE |`: the quote itself is checked against `process`,
    /// and so are what the table leaves to §3 (`action` for the "no *" rows, the presences
    /// sent, the contact listed).
    fn row(
        quote: &str,
        dir: Direction,
        ty: SubType,
        action: Action,
        presences: Presences,
        list: bool,
    ) {
        let cols: Vec<&str> = quote
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let [before, passes, after] = cols[..] else {
            panic!("not a table row: {quote}")
        };
        let before = named(before).expect(quote);
        let after = named(after);
        let o = process(before, dir, ty);
        let what = format!("{dir:?} {}: {quote}", ty.name());
        assert_eq!(o.state, after.unwrap_or(before), "{what}: state after");
        assert_eq!(o.push, after.is_some(), "{what}: roster push");
        assert_eq!(
            matches!(o.action, Route | Deliver),
            passes == "yes",
            "{what}: passes"
        );
        assert_eq!(o.action, action, "{what}: action");
        assert_eq!(o.presences, presences, "{what}: presences");
        assert_eq!(o.list, list, "{what}: listed");
    }

    /// One `#[test]` per table row: `name: "quoted row" => action, presences, listed;`.
    macro_rules! table {
        ($dir:ident $ty:ident { $($name:ident: $quote:literal => $action:ident, $pres:ident, $list:literal;)* }) => {
            $(
                #[test]
                fn $name() {
                    row($quote, $dir, $ty, $action, $pres, $list);
                }
            )*
        };
    }

    // A.2.1 Server processing of outbound "subscribe": routed in every state (so a user can
    // resynchronize); the contact becomes a roster item (§3.1.2).
    table!(Outbound Subscribe {
        a_2_1_none: r#"| "None" | yes | "None + Pending Out" |"# => Route, Nothing, true;
        a_2_1_none_pending_out: r#"| "None + Pending Out" | yes | no state change |"# => Route, Nothing, true;
        a_2_1_none_pending_in: r#"| "None + Pending In" | yes | "None + Pending Out+In" |"# => Route, Nothing, true;
        a_2_1_none_pending_out_in: r#"| "None + Pending Out+In" | yes | no state change |"# => Route, Nothing, true;
        a_2_1_to: r#"| "To" | yes | no state change |"# => Route, Nothing, true;
        a_2_1_to_pending_in: r#"| "To + Pending In" | yes | no state change |"# => Route, Nothing, true;
        a_2_1_from: r#"| "From" | yes | "From + Pending Out" |"# => Route, Nothing, true;
        a_2_1_from_pending_out: r#"| "From + Pending Out" | yes | no state change |"# => Route, Nothing, true;
        a_2_1_both: r#"| "Both" | yes | no state change |"# => Route, Nothing, true;
    });

    // A.2.2 Server processing of outbound "unsubscribe": routed in every state.
    table!(Outbound Unsubscribe {
        a_2_2_none: r#"| "None" | yes | no state change |"# => Route, Nothing, false;
        a_2_2_none_pending_out: r#"| "None + Pending Out" | yes | "None" |"# => Route, Nothing, false;
        a_2_2_none_pending_in: r#"| "None + Pending In" | yes | no state change |"# => Route, Nothing, false;
        a_2_2_none_pending_out_in: r#"| "None + Pending Out+In" | yes | "None + Pending In" |"# => Route, Nothing, false;
        a_2_2_to: r#"| "To" | yes | "None" |"# => Route, Nothing, false;
        a_2_2_to_pending_in: r#"| "To + Pending In" | yes | "None + Pending In" |"# => Route, Nothing, false;
        a_2_2_from: r#"| "From" | yes | no state change |"# => Route, Nothing, false;
        a_2_2_from_pending_out: r#"| "From + Pending Out" | yes | "From" |"# => Route, Nothing, false;
        a_2_2_both: r#"| "Both" | yes | "From" |"# => Route, Nothing, false;
    });

    // A.2.3 Server processing of outbound "subscribed": routed only with a state change;
    // then the contact gets the user's current presence and is a roster item (§3.1.5).
    table!(Outbound Subscribed {
        a_2_3_none: r#"| "None" | no | no state change |"# => Drop, Nothing, false;
        a_2_3_none_pending_out: r#"| "None + Pending Out" | no | no state change |"# => Drop, Nothing, false;
        a_2_3_none_pending_in: r#"| "None + Pending In" | yes | "From" |"# => Route, Available, true;
        a_2_3_none_pending_out_in: r#"| "None + Pending Out+In" | yes | "From + Pending Out" |"# => Route, Available, true;
        a_2_3_to: r#"| "To" | no | no state change |"# => Drop, Nothing, false;
        a_2_3_to_pending_in: r#"| "To + Pending In" | yes | "Both" |"# => Route, Available, true;
        a_2_3_from: r#"| "From" | no | no state change |"# => Drop, Nothing, false;
        a_2_3_from_pending_out: r#"| "From + Pending Out" | no | no state change |"# => Drop, Nothing, false;
        a_2_3_both: r#"| "Both" | no | no state change |"# => Drop, Nothing, false;
    });

    // A.2.4 Server processing of outbound "unsubscribed": routed only with a state change;
    // a contact whose subscription ends gets `unavailable` (§3.2.2), a denied request not.
    table!(Outbound Unsubscribed {
        a_2_4_none: r#"| "None" | no | no state change |"# => Drop, Nothing, false;
        a_2_4_none_pending_out: r#"| "None + Pending Out" | no | no state change |"# => Drop, Nothing, false;
        a_2_4_none_pending_in: r#"| "None + Pending In" | yes | "None" |"# => Route, Nothing, false;
        a_2_4_none_pending_out_in: r#"| "None + Pending Out+In" | yes | "None + Pending Out" |"# => Route, Nothing, false;
        a_2_4_to: r#"| "To" | no | no state change |"# => Drop, Nothing, false;
        a_2_4_to_pending_in: r#"| "To + Pending In" | yes | "To" |"# => Route, Nothing, false;
        a_2_4_from: r#"| "From" | yes | "None" |"# => Route, Unavailable, false;
        a_2_4_from_pending_out: r#"| "From + Pending Out" | yes | "None + Pending Out" |"# => Route, Unavailable, false;
        a_2_4_both: r#"| "Both" | yes | "To" |"# => Route, Unavailable, false;
    });

    // A.3.1 Server processing of inbound "subscribe"; "no *": the server auto-replies
    // "subscribed" on the user's behalf (§3.1.3).
    table!(Inbound Subscribe {
        a_3_1_none: r#"| "None" | yes | "None + Pending In" |"# => Deliver, Nothing, false;
        a_3_1_none_pending_out: r#"| "None + Pending Out" | yes | "None + Pending Out+In" |"# => Deliver, Nothing, false;
        a_3_1_none_pending_in: r#"| "None + Pending In" | no | no state change |"# => Drop, Nothing, false;
        a_3_1_none_pending_out_in: r#"| "None + Pending Out+In" | no | no state change |"# => Drop, Nothing, false;
        a_3_1_to: r#"| "To" | yes | "To + Pending In" |"# => Deliver, Nothing, false;
        a_3_1_to_pending_in: r#"| "To + Pending In" | no | no state change |"# => Drop, Nothing, false;
        a_3_1_from: r#"| "From" | no * | no state change |"# => AutoReplySubscribed, Nothing, false;
        a_3_1_from_pending_out: r#"| "From + Pending Out" | no * | no state change |"# => AutoReplySubscribed, Nothing, false;
        a_3_1_both: r#"| "Both" | no * | no state change |"# => AutoReplySubscribed, Nothing, false;
    });

    // A.3.2 Server processing of inbound "unsubscribe"; a contact whose subscription ends
    // gets `unavailable` from the user's resources (§3.3.3).
    table!(Inbound Unsubscribe {
        a_3_2_none: r#"| "None" | no | no state change |"# => Drop, Nothing, false;
        a_3_2_none_pending_out: r#"| "None + Pending Out" | no | no state change |"# => Drop, Nothing, false;
        a_3_2_none_pending_in: r#"| "None + Pending In" | yes | "None" |"# => Deliver, Nothing, false;
        a_3_2_none_pending_out_in: r#"| "None + Pending Out+In" | yes | "None + Pending Out" |"# => Deliver, Nothing, false;
        a_3_2_to: r#"| "To" | no | no state change |"# => Drop, Nothing, false;
        a_3_2_to_pending_in: r#"| "To + Pending In" | yes | "To" |"# => Deliver, Nothing, false;
        a_3_2_from: r#"| "From" | yes | "None" |"# => Deliver, Unavailable, false;
        a_3_2_from_pending_out: r#"| "From + Pending Out" | yes | "None + Pending Out" |"# => Deliver, Unavailable, false;
        a_3_2_both: r#"| "Both" | yes | "To" |"# => Deliver, Unavailable, false;
    });

    // A.3.3 Server processing of inbound "subscribed".
    table!(Inbound Subscribed {
        a_3_3_none: r#"| "None" | no | no state change |"# => Drop, Nothing, false;
        a_3_3_none_pending_out: r#"| "None + Pending Out" | yes | "To" |"# => Deliver, Nothing, false;
        a_3_3_none_pending_in: r#"| "None + Pending In" | no | no state change |"# => Drop, Nothing, false;
        a_3_3_none_pending_out_in: r#"| "None + Pending Out+In" | yes | "To + Pending In" |"# => Deliver, Nothing, false;
        a_3_3_to: r#"| "To" | no | no state change |"# => Drop, Nothing, false;
        a_3_3_to_pending_in: r#"| "To + Pending In" | no | no state change |"# => Drop, Nothing, false;
        a_3_3_from: r#"| "From" | no | no state change |"# => Drop, Nothing, false;
        a_3_3_from_pending_out: r#"| "From + Pending Out" | yes | "Both" |"# => Deliver, Nothing, false;
        a_3_3_both: r#"| "Both" | no | no state change |"# => Drop, Nothing, false;
    });

    // A.3.4 Server processing of inbound "unsubscribed".
    table!(Inbound Unsubscribed {
        a_3_4_none: r#"| "None" | no | no state change |"# => Drop, Nothing, false;
        a_3_4_none_pending_out: r#"| "None + Pending Out" | yes | "None" |"# => Deliver, Nothing, false;
        a_3_4_none_pending_in: r#"| "None + Pending In" | no | no state change |"# => Drop, Nothing, false;
        a_3_4_none_pending_out_in: r#"| "None + Pending Out+In" | yes | "None + Pending In" |"# => Deliver, Nothing, false;
        a_3_4_to: r#"| "To" | yes | "None" |"# => Deliver, Nothing, false;
        a_3_4_to_pending_in: r#"| "To + Pending In" | yes | "None + Pending In" |"# => Deliver, Nothing, false;
        a_3_4_from: r#"| "From" | no | no state change |"# => Drop, Nothing, false;
        a_3_4_from_pending_out: r#"| "From + Pending Out" | yes | "From" |"# => Deliver, Nothing, false;
        a_3_4_both: r#"| "Both" | yes | "From" |"# => Deliver, Nothing, false;
    });

    const ALL: [State; 9] = [
        State::None,
        NonePendingOut,
        NonePendingIn,
        NonePendingOutIn,
        To,
        ToPendingIn,
        From,
        FromPendingOut,
        Both,
    ];

    #[test]
    fn a_1_the_nine_states_round_trip_through_a_roster_entry() {
        for s in ALL {
            let mut item = RosterItem::default();
            s.write(&mut item);
            assert_eq!(State::of(Some(&item)), s);
        }
        // "a subscription state of "None" includes the case of the contact not being in
        // the user's roster at all"
        assert_eq!(State::of(None), State::None);
        // A pending out next to 'to', or a pending in next to 'from', is no state.
        assert_eq!(State::new(Subscription::Both, true, true), Both);
        assert_eq!(State::new(Subscription::To, true, false), To);
        assert_eq!(State::new(Subscription::From, false, true), From);
    }

    #[test]
    fn a_state_change_is_a_different_state_and_a_push() {
        for s in ALL {
            for dir in [Outbound, Inbound] {
                for ty in [Subscribe, Subscribed, Unsubscribe, Unsubscribed] {
                    let o = process(s, dir, ty);
                    assert_eq!(o.push, o.state != s, "{dir:?} {} in {s:?}", ty.name());
                }
            }
        }
    }
}
