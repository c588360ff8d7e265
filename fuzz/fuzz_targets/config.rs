//! Config parsing: `config::parse` on arbitrary text never panics, and a
//! config it accepts prints (`gleaner check`) as TOML that parses back to
//! the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/gleaner/gleaner.toml");
    let Ok(cfg) = gleaner::config::parse(text, path) else {
        return;
    };
    let printed = cfg.to_toml();
    match gleaner::config::parse(&printed, path) {
        Ok(back) => assert_eq!(back.to_toml(), printed, "check output does not round-trip"),
        Err(e) => panic!("check output does not parse: {e}\n{printed}"),
    }
});
