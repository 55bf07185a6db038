//! The JSON session (login, callbacks, rendering hook).
