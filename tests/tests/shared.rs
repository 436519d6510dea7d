//! Shared subscriptions end to end (MQTT 5.0 section 4.8.2, also offered
//! to 3.1.1 clients as Mosquitto and EMQX do): 3.1.1 members, the `random`
//! strategy, and redelivery of a leaving member's unacknowledged QoS 1
//! messages to another member.

mod common;

use common::*;
use edgemq::config::SharedStrategy;

fn numbers(got: &[(usize, Pub)]) -> Vec<usize> {
    let mut n: Vec<usize> =
        got.iter().map(|(_, m)| String::from_utf8_lossy(&m.payload).parse().expect("number")).collect();
    n.sort();
    n
}

async fn members(b: &TestBroker, proto: Proto, filter: &str, count: usize) -> Vec<Raw> {
    let mut out = Vec::new();
    for i in 0..count {
        let (mut m, _) = Raw::connect(b.addr, &ConnectOpts::new(proto, &format!("sh-{filter}-{i}"))).await;
        assert_eq!(m.subscribe(1, &[(filter, 1)]).await, vec![1], "shared SUBSCRIBE granted");
        out.push(m);
    }
    out
}

/// 3.1.1 clients may join a group with `$share/GROUP/FILTER`: each message
/// goes to exactly one member (5.0 4.8.2: "each message is sent to only one
/// of the subscribing sessions"), and round robin spreads them evenly.
#[tokio::test]
async fn v311_members_share_a_group_round_robin() {
    const N: usize = 40;
    let b = TestBroker::start().await;
    let mut group = members(&b, Proto::V311, "$share/g311/s311/t", 2).await;
    let mut p = Raw::v311(b.addr, "sh311-pub").await;
    for i in 0..N {
        p.publish("s311/t", 1, false, i as u16 + 1, format!("{i}").as_bytes()).await;
    }
    let got = collect_from(&mut group, N, true).await;
    for m in group.iter_mut() {
        m.expect_silence("each message to one member only").await;
    }
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>(), "each message to exactly one member");
    let first = got.iter().filter(|(i, _)| *i == 0).count();
    assert_eq!(first, N / 2, "round robin over two online members");
    b.shutdown().await;
}

/// `shared_subscription_strategy = "random"`: still exactly one member per
/// message, and (200 messages) both members get some.
#[tokio::test]
async fn random_strategy_delivers_each_message_once() {
    const N: usize = 200;
    let b = TestBroker::start_with(|c| c.shared_subscription_strategy = SharedStrategy::Random).await;
    let mut group = members(&b, Proto::V5, "$share/gr/sr/t", 2).await;
    let mut p = Raw::v5(b.addr, "shr-pub").await;
    for i in 0..N {
        p.publish("sr/t", 1, false, i as u16 + 1, format!("{i}").as_bytes()).await;
    }
    let got = collect_from(&mut group, N, true).await;
    for m in group.iter_mut() {
        m.expect_silence("each message to one member only").await;
    }
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>());
    let first = got.iter().filter(|(i, _)| *i == 0).count();
    assert!(first > 0 && first < N, "random choice used both members: {first} of {N}");
    b.shutdown().await;
}

/// A member that leaves with QoS 1 messages unacknowledged: the broker
/// sends them to another member of the group (5.0 4.8.2: the Server may
/// send such a message to another subscribing Client), each once.
#[tokio::test]
async fn unacknowledged_qos1_goes_to_another_member_when_one_leaves() {
    let b = TestBroker::start().await;
    let mut first = members(&b, Proto::V5, "$share/gl/sl/t", 1).await.remove(0);
    let mut p = Raw::v5(b.addr, "shl-pub").await;
    for i in 0..3u16 {
        p.publish("sl/t", 1, false, i + 1, format!("{i}").as_bytes()).await;
    }
    // The only member receives all three and acknowledges none.
    let held = collect_from(std::slice::from_mut(&mut first), 3, false).await;
    assert_eq!(numbers(&held), vec![0, 1, 2]);
    let (mut second, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "sh-late")).await;
    assert_eq!(second.subscribe(1, &[("$share/gl/sl/t", 1)]).await, vec![1]);
    second.expect_silence("nothing for the new member while the first holds the messages").await;
    // The first member's connection drops (no DISCONNECT, clean session).
    drop(first);
    let got = collect_from(std::slice::from_mut(&mut second), 3, true).await;
    assert_eq!(numbers(&got), vec![0, 1, 2], "every unacknowledged message, once");
    second.expect_silence("no duplicates").await;
    // The group keeps working with the remaining member.
    p.publish("sl/t", 1, false, 9, b"after").await;
    assert_eq!(second.receive_acked().await.payload, b"after");
    b.shutdown().await;
}

/// An offline persistent member does not take messages from an online one:
/// online members are chosen first, so nothing waits in the offline
/// member's queue while another member could take it.
#[tokio::test]
async fn online_members_are_preferred() {
    let b = TestBroker::start().await;
    let opts = ConnectOpts::new(Proto::V311, "sh-away").clean(false);
    let (mut away, _) = Raw::connect(b.addr, &opts).await;
    assert_eq!(away.subscribe(1, &[("$share/go/so/t", 1)]).await, vec![1]);
    away.disconnect().await;
    let mut here = members(&b, Proto::V311, "$share/go/so/t", 1).await.remove(0);
    let mut p = Raw::v311(b.addr, "sho-pub").await;
    for i in 0..10u16 {
        p.publish("so/t", 1, false, i + 1, format!("{i}").as_bytes()).await;
    }
    let got = collect_from(std::slice::from_mut(&mut here), 10, true).await;
    assert_eq!(numbers(&got), (0..10).collect::<Vec<_>>(), "all to the online member");
    // The away member comes back: nothing was queued for it.
    let (mut back, present) = Raw::connect(b.addr, &opts).await;
    assert!(present);
    back.expect_silence("nothing queued for an offline member while another was online").await;
    b.shutdown().await;
}
