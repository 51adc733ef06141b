//! `CondenserArgs`: the context-condensation flags of `sandcrab run`, resolved into the
//! condenser's configuration (on by default, with OpenHands' defaults and the model's window).

use clap::Args;

use crate::agent::condenser::{CondenserConfig, DEFAULT_MARGIN, DEFAULT_MAX_SIZE};
use crate::error::BadInput;
use crate::llm::context_window::window_for;

/// Flags of context condensation.
#[derive(Debug, Clone, Args)]
pub struct CondenserArgs {
    /// Turn off context condensation: a history that outgrows the model's window then ends
    /// the run with the provider's error.
    #[arg(long, env = "SANDCRAB_NO_CONDENSER")]
    pub no_condenser: bool,

    /// Events in the model's view before old ones are summarized (OpenHands' max_size).
    #[arg(long, default_value_t = DEFAULT_MAX_SIZE, env = "SANDCRAB_CONDENSER_MAX_EVENTS")]
    pub condenser_max_events: usize,

    /// The model's input window in tokens, for models the built-in table does not know
    /// [default: from the model name, else 128000]
    #[arg(long, env = "SANDCRAB_CONTEXT_WINDOW")]
    pub context_window: Option<u64>,

    /// Share of the window the estimated prompt may reach before the history is condensed.
    #[arg(long, default_value_t = DEFAULT_MARGIN, env = "SANDCRAB_CONDENSER_MARGIN")]
    pub condenser_margin: f64,
}

impl CondenserArgs {
    /// The condenser for `model`, or `None` when it is turned off.
    pub fn resolve(&self, model: &str) -> Result<Option<CondenserConfig>, BadInput> {
        if self.no_condenser {
            return Ok(None);
        }
        if self.context_window == Some(0) {
            return Err(BadInput::new(
                "--context-window is 0: give the model's input window in tokens (e.g. 128000)",
            ));
        }
        let mut config = CondenserConfig::new(window_for(model, self.context_window));
        config.max_size = self.condenser_max_events;
        config.margin = self.condenser_margin;
        config.validate().map_err(BadInput::new)?;
        Ok(Some(config))
    }
}
