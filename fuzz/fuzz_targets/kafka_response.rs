#![no_main]
// See fuzz/README.md; the code under test is latency_logger::fuzzing::kafka_response,
// which tests/fuzz_replay.rs runs on stable over the saved inputs.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| latency_logger::fuzzing::kafka_response(data));
