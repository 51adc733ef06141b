//! The USD budget of a run (`--max-budget-usd`): checked against the cost of every LLM call of
//! the conversation (agent, condenser, any usage id in [`ConversationStats`]), it tells the
//! agent to wrap up once at [`WRAP_UP_SHARE`] and stops the run at 100% with OpenHands'
//! `MaxBudgetReached` error.

use crate::protocol::metrics::ConversationStats;

/// The share of the budget at which the agent is told to wrap up.
pub const WRAP_UP_SHARE: f64 = 0.8;

/// The start of the wrap-up message (how a resumed conversation knows it was sent).
pub const WRAP_UP_MARKER: &str = "[budget]";

/// Where the spending stands against the budget.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetCheck {
    /// Below the wrap-up share, or no budget.
    Within,
    /// At or past the wrap-up share: the message to give the agent.
    WrapUp(String),
    /// At or past the budget: OpenHands' `MaxBudgetReached` detail.
    Exhausted(String),
}

/// A budget in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub max_usd: f64,
}

impl Budget {
    /// Checks what `stats` has spent so far.
    pub fn check(&self, stats: &ConversationStats) -> BudgetCheck {
        let spent = stats.accumulated_cost();
        if spent >= self.max_usd {
            return BudgetCheck::Exhausted(format!(
                "Agent reached maximum budget limit (${:.4}); accumulated cost ${spent:.4}.",
                self.max_usd
            ));
        }
        if spent >= self.max_usd * WRAP_UP_SHARE {
            return BudgetCheck::WrapUp(format!(
                "{WRAP_UP_MARKER} ${spent:.2} of this run's ${:.2} budget is spent ({:.0}%). Wrap \
                 up now: finish the change you are making, check it if that is quick, and call \
                 `finish` with what you did and what is left. The run stops when the budget is \
                 used up.",
                self.max_usd,
                spent / self.max_usd * 100.0
            ));
        }
        BudgetCheck::Within
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatResponse, Usage};
    use crate::protocol::metrics::Prices;
    use std::time::Duration;

    fn spend(stats: &mut ConversationStats, usage_id: &str, usd: f64) {
        let response = ChatResponse {
            id: "r".into(),
            usage: Usage::default(),
            cost: Some(usd),
            ..ChatResponse::default()
        };
        stats.record(usage_id, "m", &response, Duration::ZERO, Prices::default());
    }

    #[test]
    fn every_usage_id_counts_and_the_thresholds_are_inclusive() {
        let budget = Budget { max_usd: 1.0 };
        let mut stats = ConversationStats::default();
        spend(&mut stats, "agent", 0.5);
        assert_eq!(budget.check(&stats), BudgetCheck::Within);
        spend(&mut stats, "condenser", 0.3);
        assert!(
            matches!(budget.check(&stats), BudgetCheck::WrapUp(m) if m.starts_with(WRAP_UP_MARKER))
        );
        spend(&mut stats, "agent", 0.2213);
        assert_eq!(
            budget.check(&stats),
            BudgetCheck::Exhausted(
                "Agent reached maximum budget limit ($1.0000); accumulated cost $1.0213.".into()
            )
        );
    }
}
