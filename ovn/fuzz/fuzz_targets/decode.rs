//! Feeds arbitrary bytes through everything that reads what a server sends: the frame splitter
//! (in arbitrary chunks), the JSON-RPC decoder, value and row decoding, transact results and the
//! monitor cache. Nothing may panic, and a frame is never larger than the limit.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use nauti_ovn::core::cache::Cache;
use nauti_ovn::core::framing::JsonSplitter;
use nauti_ovn::core::ops::{Operation, parse_transact_result};
use nauti_ovn::core::rpc::Message;
use nauti_ovn::core::schema::DatabaseSchema;
use nauti_ovn::core::value::Value;

const MAX: usize = 4096;

fn schema() -> Option<&'static Arc<DatabaseSchema>> {
    static SCHEMA: OnceLock<Option<Arc<DatabaseSchema>>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let text = std::fs::read_to_string("/usr/share/ovn/ovn-nb.ovsschema").ok()?;
            let json = serde_json::from_str(&text).ok()?;
            DatabaseSchema::from_json(&json).ok().map(Arc::new)
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut splitter = JsonSplitter::new(MAX);
    let mut cache = schema().map(|s| Cache::new(s.clone()));
    for piece in bytes.chunks(chunk) {
        splitter.push(piece);
        loop {
            match splitter.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX);
                    let Ok(msg) = Message::decode(&frame) else { continue };
                    let json = msg.to_json();
                    let _ = Value::from_json(&json);
                    if let Message::Response { result: Ok(result), .. } = &msg {
                        let ops = [Operation::select("Logical_Switch", vec![], &[])];
                        let _ = parse_transact_result(&ops, result, schema().map(|s| s.as_ref()));
                        if let Some(c) = cache.as_mut() {
                            let _ = c.apply_update2(result);
                            let _ = c.apply_update(result);
                        }
                    }
                    if let Message::Notification { params, .. } = &msg {
                        if let (Some(c), Some(updates)) = (cache.as_mut(), params.get(1)) {
                            let _ = c.apply_update2(updates);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
