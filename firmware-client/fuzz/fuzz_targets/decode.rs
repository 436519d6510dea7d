//! cargo-fuzz target: the decoder must never panic, and whatever decodes
//! must re-encode to the same packet.
#![no_main]

use edgemq_client::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let full = codec::decode(data);
    let inbound = codec::decode_inbound(data);
    if let Ok(Some((p, n))) = full {
        assert!(n <= data.len());
        let mut out = vec![0u8; n + 8];
        let m = p.encode(&mut out).expect("re-encode");
        let (p2, n2) = codec::decode(&out[..m]).expect("decode again").expect("complete");
        assert_eq!(p, p2);
        assert_eq!(n2, m);
        if let Ok(Some(x)) = inbound {
            assert_eq!(x, (p, n));
        }
    } else {
        assert!(!matches!(inbound, Ok(Some(_))));
    }
});
