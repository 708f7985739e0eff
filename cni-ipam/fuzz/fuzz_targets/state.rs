//! The state file parser: corrupt or torn state is an error, never a panic, and what parses
//! renders back to the same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nauti_ipam::store::StoreState;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(state) = StoreState::parse(text)
    {
        assert_eq!(StoreState::parse(&state.render()), Ok(state));
    }
});
