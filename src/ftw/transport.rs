//! Engine.IO v4 / Socket.IO v5 and primus-emitter framing.
