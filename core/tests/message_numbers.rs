//! Numbers in a message survive parsing and writing unchanged (found by the `frames` fuzz
//! target: `99e91` came back as `9.900000000000001e92` before serde_json's exact float parsing
//! was turned on).
#![allow(clippy::unwrap_used)]

use krmx_core::Message;
use serde_json::Value;

#[test]
fn floats_keep_their_exact_value_through_a_round_trip() {
    for payload in [
        "99e91",
        "0.1",
        "1.7976931348623157e308",
        "5e-324",
        "123456789.123456789",
    ] {
        let text = format!(r#"{{"type":"chat","payload":{payload}}}"#);
        let message = Message::parse(&text).unwrap();
        let expected: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message.clone().into_value(), expected, "{payload}");
        let written = serde_json::to_string(&message).unwrap();
        let again = Message::parse(&written).unwrap().into_value();
        assert_eq!(again, expected, "{payload} written as {written}");
        assert_eq!(
            expected["payload"].as_f64(),
            payload.parse::<f64>().ok(),
            "{payload}"
        );
    }
}
