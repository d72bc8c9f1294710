//! The syslog header scanner and the topic template on arbitrary messages: never panic, every
//! field is a slice of the message, and the rendered topic stays short.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerolog_proto::syslog::{scan, TopicTemplate};

fuzz_target!(|msg: &[u8]| {
    let h = scan(msg);
    let range = msg.as_ptr_range();
    for field in [h.hostname, h.app, h.procid, h.msgid].into_iter().flatten() {
        let f = field.as_ptr_range();
        assert!(
            range.start <= f.start && f.end <= range.end,
            "a header field must point into the message"
        );
    }
    let _ = (h.facility(), h.severity());
    let template =
        TopicTemplate::parse("{facility}.{severity}.{hostname}.{app}.{procid}.{msgid}").unwrap();
    let mut topic = Vec::new();
    template.render(&h, &mut topic);
    assert!(
        topic.len() <= 4 * msg.len() + 32,
        "topic of {} bytes from a {}-byte message",
        topic.len(),
        msg.len()
    );
});
