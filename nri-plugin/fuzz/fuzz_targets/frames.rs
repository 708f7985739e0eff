//! Feeds arbitrary bytes, in arbitrary chunks, through what reads the NRI socket: the frame
//! decoder, then each payload as the messages a runtime sends (`Synchronize`, `RunPodSandbox`,
//! `StateChange`) and their conversion to plain types. Nothing may panic; every frame respects the
//! limit and the reserved connection; decoded frames re-encode to exactly the bytes they came from;
//! an error is final.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nauti_nri::core::frame::{FrameDecoder, MAX_PAYLOAD, RESERVED_CONN, encode_frames};
use nauti_nri::proto::api;
use nauti_nri::{Container, PodSandbox};
use protobuf::Message as _;

fn convert(payload: &[u8]) {
    if let Ok(sync) = api::SynchronizeRequest::parse_from_bytes(payload) {
        let pods: Vec<PodSandbox> = sync.pods.into_iter().map(PodSandbox::from).collect();
        let containers: Vec<Container> = sync.containers.into_iter().map(Container::from).collect();
        for pod in &pods {
            assert!(pod.netns_path.as_deref() != Some(""));
            let _ = pod.key().to_string();
        }
        let _ = containers;
    }
    if let Ok(event) = api::StateChangeEvent::parse_from_bytes(payload) {
        if let Some(pod) = event.pod.into_option() {
            let _ = PodSandbox::from(pod);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = FrameDecoder::new();
    let mut reencoded = Vec::new();
    let mut failed = None;
    for piece in bytes.chunks(chunk) {
        decoder.extend(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(failed.is_none(), "a frame after an error");
                    assert!(frame.payload.len() <= MAX_PAYLOAD);
                    assert_ne!(frame.conn, RESERVED_CONN);
                    encode_frames(frame.conn, &frame.payload, &mut reencoded);
                    convert(&frame.payload);
                }
                Ok(None) => break,
                Err(err) => {
                    if let Some(previous) = &failed {
                        assert_eq!(previous, &err, "errors are final");
                    }
                    failed = Some(err);
                    break;
                }
            }
        }
    }
    // Frames re-encode to the very bytes they were decoded from.
    assert_eq!(reencoded.as_slice(), &bytes[..reencoded.len()]);
    if failed.is_none() {
        assert_eq!(reencoded.len() + decoder.pending(), bytes.len());
        assert_eq!(decoder.finish().is_ok(), decoder.pending() == 0);
    }
});
