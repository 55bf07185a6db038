//! The elements the gateway feeds its own stream, byte for byte.
use super::*;

#[test]
fn login_elements() {
    assert_eq!(
        open_element("localhost"),
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
    );
    assert_eq!(
        close_element(),
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
    );
    // "\0juliet\0it's <&>", base64.
    assert_eq!(
        auth_element("juliet", "it's <&>"),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABpdCdzIDwmPg==</auth>"
    );
    assert_eq!(
        auth_element("", ""),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AAA=</auth>"
    );
    assert_eq!(
        bind_element(Some("it's <b>&amp;\r")),
        "<iq type='set' id='ftw-bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>it's &lt;b&gt;&amp;amp;&#13;</resource></bind></iq>"
    );
    assert_eq!(
        bind_element(Some("")),
        "<iq type='set' id='ftw-bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource></resource></bind></iq>"
    );
    assert_eq!(
        bind_element(None),
        "<iq type='set' id='ftw-bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'></bind></iq>"
    );
}
