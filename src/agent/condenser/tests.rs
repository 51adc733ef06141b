//! Unit tests of the condenser's decisions (when, how much, thrash), with a scripted model.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::llm::scripted::ScriptedModel;
use crate::protocol::event::test_terminal_action;

fn action(call: &str, response: &str, output_chars: usize) -> [Event; 2] {
    let action = test_terminal_action(call, response, json!({}), "{\"command\":\"ls\"}");
    let observation = Event::new(
        Source::Environment,
        EventBody::ObservationEvent {
            tool_name: "terminal".into(),
            tool_call_id: call.into(),
            observation: json!({"content": [{"type": "text", "text": "o".repeat(output_chars)}]}),
            action_id: action.id.clone(),
            extended_content: vec![],
        },
    );
    [action, observation]
}

fn history(steps: usize, output_chars: usize) -> Vec<Event> {
    let mut events = vec![
        Event::message(Source::Agent, "system", "system prompt"),
        Event::user_message("the task"),
    ];
    for i in 0..steps {
        events.extend(action(&format!("c{i}"), &format!("r{i}"), output_chars));
    }
    events
}

fn condenser(window: u64) -> Condenser {
    let yaml = "- message: unused\n";
    let llm = Arc::new(ScriptedModel::from_yaml("scripted:summary", yaml, None).unwrap());
    Condenser::new(llm, Prices::default(), CondenserConfig::new(window))
}

#[test]
fn openhands_defaults_and_validation() {
    let config = CondenserConfig::new(1000);
    assert_eq!((config.max_size, config.keep_first), (80, 4));
    assert!(config.validate().is_ok());
    let small = CondenserConfig {
        max_size: 10,
        ..config
    };
    assert!(small.validate().is_err());
}

#[tokio::test]
async fn too_many_events_forget_the_middle_and_keep_the_head() {
    let events = history(50, 10);
    let view = View::from_events(&events);
    let c = condenser(1_000_000);
    let reasons = c.reasons(&view, 1000);
    assert_eq!(
        reasons,
        Reasons {
            events: true,
            ..Reasons::default()
        }
    );
    let mut stats = ConversationStats::default();
    let event = c
        .condense(&view, reasons, 1000, &mut stats)
        .await
        .unwrap()
        .unwrap();
    let EventBody::Condensation {
        forgotten_event_ids,
        summary_offset,
        summary,
        ..
    } = &event.body
    else {
        panic!("not a condensation");
    };
    assert_eq!(*summary_offset, Some(4));
    assert_eq!(
        summary.as_deref(),
        Some("USER_CONTEXT: scripted summary of 64 events")
    );
    // 102 events; keep 4 + the last 80/2 - 4 - 1 = 35 (snapped to whole steps: 34).
    assert_eq!(forgotten_event_ids.len(), 102 - 4 - 34);
    assert_eq!(forgotten_event_ids[0], events[4].id);
    assert!(stats.usage_to_metrics.contains_key(USAGE_ID));
    let mut all = events.clone();
    all.push(event);
    let condensed = View::from_events(&all);
    assert_eq!(condensed.len(), 4 + 1 + 34);
    assert!(thrashing(&all));
    all.extend(action("next", "rn", 1));
    assert!(!thrashing(&all));
}

#[tokio::test]
async fn the_token_estimate_keeps_a_tail_within_its_share_of_the_window() {
    let events = history(20, 4000);
    let view = View::from_events(&events);
    let c = condenser(20_000);
    c.calibrate(4, 1);
    let chars: usize = view.iter().map(estimate::event_chars).sum();
    let reasons = c.reasons(&view, chars);
    assert!(reasons.tokens && !reasons.events && !reasons.request);
    let mut stats = ConversationStats::default();
    let event = c
        .condense(&view, reasons, chars, &mut stats)
        .await
        .unwrap()
        .unwrap();
    let mut all = events.clone();
    all.push(event);
    let after = View::from_events(&all);
    let kept: usize = after.iter().map(estimate::event_chars).sum();
    assert!(
        c.estimate_tokens(kept) <= (20_000.0 * super::TAIL_SHARE) as u64,
        "{}",
        c.estimate_tokens(kept)
    );
    assert!(after.len() > 6, "kept the recent steps: {}", after.len());
}

#[test]
fn an_overflow_error_teaches_window_and_ratio() {
    let c = condenser(200_000);
    let error = LlmError::Http {
        status: 400,
        body: "prompt is too long: 70000 tokens > 60000 maximum".into(),
        attempts: 1,
    };
    c.learn_overflow(&error, 280_000);
    assert_eq!(c.window(), 60_000);
    assert_eq!(c.estimate_tokens(280_000), 70_000);
}
