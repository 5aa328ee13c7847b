use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn p(text: &str) -> Pointer {
    Pointer::parse(text).expect("pointer")
}

#[test]
fn parses_rfc_6901_examples() {
    let doc = json!({
        "foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4,
        "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8
    });
    assert_eq!(p("").get(&doc), Some(&doc));
    assert_eq!(p("/foo").get(&doc), Some(&json!(["bar", "baz"])));
    assert_eq!(p("/foo/0").get(&doc), Some(&json!("bar")));
    assert_eq!(p("/").get(&doc), Some(&json!(0)));
    assert_eq!(p("/a~1b").get(&doc), Some(&json!(1)));
    assert_eq!(p("/m~0n").get(&doc), Some(&json!(8)));
    assert_eq!(p("/ ").get(&doc), Some(&json!(7)));
    assert_eq!(
        p("/foo/01").get(&doc),
        None,
        "leading zeros are not indexes"
    );
    assert_eq!(p("/foo/2").get(&doc), None);
}

#[test]
fn refuses_malformed_pointers() {
    assert!(Pointer::parse("foo").is_err());
    assert!(Pointer::parse("/a~2").is_err());
    assert!(Pointer::parse("/a~").is_err());
    assert_eq!(p("/a~01~1").tokens(), &["a~1/".into()]);
}

#[test]
fn remove_set_and_move() {
    let mut doc = json!({"a": {"b": 1, "c": 2}, "list": [1, 2, 3], "s": "x"});
    assert_eq!(p("/a/b").remove(&mut doc), Some(json!(1)));
    assert_eq!(p("/list/0").remove(&mut doc), Some(json!(1)));
    assert_eq!(p("/nope/x").remove(&mut doc), None);
    assert_eq!(p("").remove(&mut doc), None, "the root stays");
    p("/new/deep/er").set(&mut doc, json!(true)).expect("set");
    p("/list/-").set(&mut doc, json!(9)).expect("append");
    p("/list/0").set(&mut doc, json!(0)).expect("replace");
    assert!(p("/list/7").set(&mut doc, json!(0)).is_err());
    assert!(
        p("/s/x").set(&mut doc, json!(0)).is_err(),
        "scalars are not clobbered"
    );
    p("/a/c").move_to(&p("/moved/c"), &mut doc);
    p("/missing").move_to(&p("/elsewhere"), &mut doc);
    p("/s").move_to(&p("/list/9"), &mut doc);
    assert_eq!(
        doc.to_string(),
        r#"{"a":{},"list":[0,3,9],"s":"x","new":{"deep":{"er":true}},"moved":{"c":2}}"#
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z~/0-9]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c~/0-2-]{0,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_tokens() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-c~/0-2-]{0,2}", 0..4)
}

proptest! {
    #[test]
    fn escape_round_trips(tokens in arb_tokens()) {
        let text: String = tokens
            .iter()
            .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
            .collect();
        let pointer = Pointer::parse(&text).expect("valid");
        let got: Vec<String> = pointer.tokens().iter().map(|t| t.to_string()).collect();
        prop_assert_eq!(&got, &tokens);
        prop_assert_eq!(pointer.to_string(), text);
    }

    #[test]
    fn parse_never_panics(text in ".{0,12}") {
        if let Ok(pointer) = Pointer::parse(&text) {
            prop_assert_eq!(Pointer::parse(&pointer.to_string()).ok(), Some(pointer));
        }
    }

    #[test]
    fn edits_never_panic_and_set_then_get_agrees(
        mut doc in arb_json(),
        a in arb_tokens(),
        b in arb_tokens(),
        value in arb_json(),
    ) {
        let join = |t: &[String]| -> String {
            t.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect()
        };
        let (pa, pb) = (p(&join(&a)), p(&join(&b)));
        let before = doc.clone();
        if let Some(removed) = pa.remove(&mut doc) {
            prop_assert_eq!(pa.get(&before), Some(&removed));
        }
        pa.move_to(&pb, &mut doc);
        if pb.set(&mut doc, value.clone()).is_ok() && !b.iter().any(|t| t == "-") {
            prop_assert_eq!(pb.get(&doc), Some(&value));
        }
        let _ = super::super::select::Selection::new([&pa, &pb]).apply(doc);
    }
}
