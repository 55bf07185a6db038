//! Unit tests of the connection task: close codes, and what an idle connection's tasks cost.

mod close_codes {
    use super::super::close_answer;

    #[test]
    fn close_codes_answered_per_rfc_6455() {
        assert_eq!(close_answer(b""), 1000);
        assert_eq!(close_answer(&[3]), 1002);
        assert_eq!(close_answer(&1000u16.to_be_bytes()), 1000);
        assert_eq!(close_answer(&4000u16.to_be_bytes()), 4000);
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(close_answer(&bad.to_be_bytes()), 1002, "{bad}");
        }
        assert_eq!(close_answer(&[0x03, 0xE8, 0xFF, 0xFE]), 1007);
        assert_eq!(close_answer(&[0x03, 0xE8, b'o', b'k']), 1000);
    }
}

mod size_tests {
    /// What every idle connection's two tasks cost, TLS or not: the connection future and
    /// its writer's (1,264 and 344 bytes before TLS; TLS state lives behind a pointer, its
    /// write path in a boxed future).
    #[test]
    fn idle_task_sizes_are_bounded() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let b = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let mut cfg = crate::config::Config::default();
            cfg.auth.jwt_secret = "x".into();
            let shard = crate::server::Shard::standalone(cfg);
            let s = super::super::TcpStream::from_std(a).unwrap();
            let peer = l.local_addr().unwrap();
            let conn = super::super::serve(shard.clone(), s, peer, super::super::Listener::Http);
            let (_r, w) =
                monoio::io::Splitable::into_split(super::super::TcpStream::from_std(b).unwrap());
            let ctl = shard.register_conn(1 << 20);
            let writer = crate::net::outbox::writer(ctl, w, shard.write_pool.clone(), None);
            let (c, w) = (std::mem::size_of_val(&conn), std::mem::size_of_val(&writer));
            eprintln!(
                "connection future {c} bytes, writer future {w} bytes, sink {}",
                std::mem::size_of::<crate::xmpp::sink::Sink>()
            );
            assert!(c <= 1344 && w <= 400, "connection {c}, writer {w}");
            // With the Rc's two counts, a Sink stays in mimalloc's 256-byte class.
            let sink = std::mem::size_of::<crate::xmpp::sink::Sink>();
            assert!(sink <= 240, "sink {sink}");
        });
    }
}
