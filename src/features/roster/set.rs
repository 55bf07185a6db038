//! A roster set (RFC 6121 §2.3, §2.5) as a typed value: the one `<item/>` of
//! `<query xmlns='jabber:iq:roster'>`, checked against the rules of §2.1.2 and §2.3.3.
//!
//! - exactly one `<item/>`, else `bad-request` (§2.3.3);
//! - a `jid` is required (`bad-request`) and must be a JID (`jid-malformed`); the item is
//!   the contact's bare JID;
//! - `subscription='remove'` deletes the item (§2.5); any other value is ignored, as
//!   §2.1.2.5 says (slixmpp, and the clients built on it, send `subscription='none'` with
//!   every set);
//! - a `<group/>` with empty text is `not-acceptable`, the same group twice `bad-request`
//!   (§2.3.3);
//! - an empty `name` is no name; `ask` and `approved` are the server's to set and are
//!   ignored (§2.1.2.1, §2.1.2.2).
//!
//! A roster get or set addressed to another JID than the user's own bare JID is
//! `forbidden` ([`to_self`]).

use crate::xml::stanza::Stanza;
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterSet {
    /// The contact's bare JID.
    pub jid: Jid,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// `subscription='remove'`: delete the item (§2.5).
    pub remove: bool,
}

/// The roster set in `query`, the `<query/>` child of the iq `st`.
pub fn parse(st: &Stanza, query: usize) -> Result<RosterSet, Cond> {
    let mut items = st.children(query).filter(|&c| st.elems[c].local == "item");
    let (Some(i), None) = (items.next(), items.next()) else {
        return Err(Cond::BadRequest);
    };
    let jid = st
        .attr(i, "jid")
        .map(|a| a.value())
        .ok_or(Cond::BadRequest)?;
    let jid = Jid::parse(&jid).map_err(|_| Cond::JidMalformed)?;
    let remove = match st.attr(i, "subscription").map(|a| a.value()) {
        None => false,
        Some(s) if s == "remove" => true,
        // §2.1.2.5: "the server MUST ignore all values of the 'subscription' attribute
        // other than 'remove'".
        Some(_) => false,
    };
    let mut groups: Vec<String> = Vec::new();
    for g in st.children(i).filter(|&c| st.elems[c].local == "group") {
        let name = st.text(g).into_owned();
        if name.is_empty() {
            return Err(Cond::NotAcceptable);
        }
        if groups.contains(&name) {
            return Err(Cond::BadRequest);
        }
        groups.push(name);
    }
    let name = st
        .attr(i, "name")
        .map(|a| a.value().into_owned())
        .filter(|n| !n.is_empty());
    Ok(RosterSet {
        jid: jid.to_bare(),
        name,
        groups,
        remove,
    })
}

/// A roster get or set may have no `to`, or the user's own bare JID (else `forbidden`).
pub fn to_self(st: &Stanza, user: &Jid) -> bool {
    st.attr(0, "to").is_none_or(|t| {
        Jid::parse(&t.value())
            .map(|j| j.bare() == user.bare())
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::stanza::Limits;

    fn set(xml: &str) -> Result<RosterSet, Cond> {
        let st = Stanza::parse(xml, &Limits::default()).unwrap();
        let query = st.child(0, "query", crate::xml::ns::ROSTER).unwrap();
        parse(&st, query)
    }

    fn item(inner: &str) -> Result<RosterSet, Cond> {
        set(&format!(
            "<iq type='set' id='x'><query xmlns='jabber:iq:roster'>{inner}</query></iq>"
        ))
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn rfc_2_1_5_roster_set_example() {
        // RFC 6121 §2.1.5:
        //   C: <iq from='juliet@example.com/balcony' id='rs1' type='set'>
        //        <query xmlns='jabber:iq:roster'>
        //          <item jid='nurse@example.com'/>
        //        </query>
        //      </iq>
        let s = set("<iq from='juliet@example.com/balcony' id='rs1' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@example.com'/></query></iq>").unwrap();
        assert_eq!(
            s,
            RosterSet {
                jid: jid("nurse@example.com"),
                name: None,
                groups: vec![],
                remove: false,
            }
        );
    }

    #[test]
    fn rfc_2_3_1_add_item_example() {
        // RFC 6121 §2.3.1 (adding a roster item):
        //   C: <iq from='juliet@example.com/balcony' id='ph1xaz53' type='set'>
        //        <query xmlns='jabber:iq:roster'>
        //          <item jid='nurse@example.com' name='Nurse'>
        //            <group>Servants</group>
        //          </item>
        //        </query>
        //      </iq>
        let s = set("<iq from='juliet@example.com/balcony' id='ph1xaz53' type='set'>\n  <query xmlns='jabber:iq:roster'>\n    <item jid='nurse@example.com' name='Nurse'>\n      <group>Servants</group>\n    </item>\n  </query>\n</iq>").unwrap();
        assert_eq!(
            s,
            RosterSet {
                jid: jid("nurse@example.com"),
                name: Some("Nurse".into()),
                groups: vec!["Servants".into()],
                remove: false,
            }
        );
    }

    #[test]
    fn rfc_2_5_1_delete_item_example() {
        // RFC 6121 §2.5.1 (deleting a roster item):
        //   C: <iq from='juliet@example.com/balcony' id='hm4hs97y' type='set'>
        //        <query xmlns='jabber:iq:roster'>
        //          <item jid='nurse@example.com' subscription='remove'/>
        //        </query>
        //      </iq>
        let s = set("<iq from='juliet@example.com/balcony' id='hm4hs97y' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@example.com' subscription='remove'/></query></iq>").unwrap();
        assert!(s.remove);
        assert_eq!(s.jid, jid("nurse@example.com"));
    }

    #[test]
    fn rfc_2_3_3_more_than_one_item_is_bad_request() {
        // §2.3.3: "The <query/> element contains more than one <item/> child element."
        assert_eq!(
            item(
                "<item jid='nurse@example.com' name='Nurse'><group>Servants</group></item><item jid='mother@example.com' name='Mom'><group>Family</group></item>"
            ),
            Err(Cond::BadRequest)
        );
        // And none at all is not exactly one either.
        assert_eq!(item(""), Err(Cond::BadRequest));
    }

    #[test]
    fn rfc_2_3_3_duplicate_group_is_bad_request() {
        // §2.3.3: "The <item/> element contains more than one <group/> element, but there
        // are duplicate groups".
        assert_eq!(
            item(
                "<item jid='nurse@example.com' name='Nurse'><group>Servants</group><group>Servants</group></item>"
            ),
            Err(Cond::BadRequest)
        );
    }

    #[test]
    fn rfc_2_3_3_empty_group_is_not_acceptable() {
        // §2.3.3: "The <group/> element contains XML character data of zero length".
        assert_eq!(
            item("<item jid='nurse@example.com' name='Nurse'><group></group></item>"),
            Err(Cond::NotAcceptable)
        );
        assert_eq!(
            item("<item jid='nurse@example.com'><group/></item>"),
            Err(Cond::NotAcceptable)
        );
    }

    #[test]
    fn a_subscription_other_than_remove_is_ignored() {
        // §2.1.2.5: "the server MUST ignore all values of the 'subscription' attribute
        // other than "remove"".
        for v in ["both", "none", "to", "from", "bogus"] {
            let s = item(&format!(
                "<item jid='nurse@example.com' subscription='{v}'/>"
            ))
            .unwrap();
            assert!(!s.remove, "{v}");
        }
        assert!(
            item("<item jid='nurse@example.com' subscription='remove'/>")
                .unwrap()
                .remove
        );
    }

    #[test]
    fn the_jid_is_required_well_formed_and_made_bare() {
        assert_eq!(item("<item name='Nurse'/>"), Err(Cond::BadRequest));
        assert_eq!(item("<item jid='a@b@c'/>"), Err(Cond::JidMalformed));
        let s = item("<item jid='nurse@example.com/balcony' name=''/>").unwrap();
        assert_eq!(s.jid.as_str(), "nurse@example.com");
        assert_eq!(s.name, None, "an empty name is no name");
    }

    #[test]
    fn ask_and_approved_are_ignored() {
        // §2.1.2.1, §2.1.2.2: the client MUST NOT include them; the server sets them.
        let s = item("<item jid='nurse@example.com' ask='subscribe' approved='true'/>").unwrap();
        assert_eq!(s.jid, jid("nurse@example.com"));
        assert!(!s.remove);
    }

    #[test]
    fn only_the_users_own_bare_jid_may_be_addressed() {
        let me = jid("juliet@example.com/balcony");
        let to = |xml: &str| {
            let st = Stanza::parse(xml, &Limits::default()).unwrap();
            to_self(&st, &me)
        };
        assert!(to(
            "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>"
        ));
        assert!(to(
            "<iq to='juliet@example.com' type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>"
        ));
        assert!(to(
            "<iq to='juliet@example.com/chamber' type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>"
        ));
        assert!(!to(
            "<iq to='romeo@example.net' type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>"
        ));
        assert!(!to(
            "<iq to='a@b@c' type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>"
        ));
    }
}
