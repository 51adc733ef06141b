//! `SecurityArgs`: the confirmation flags of `sandcrab run`. A CI run has nobody to say yes, so
//! besides OpenHands' policy and analyser it says what happens to an action that waits:
//! rejected (the model reads why and goes on) or the run stops.

use clap::{Args, ValueEnum};

use crate::agent::security::{
    ConfirmationPolicy, Headless, SecurityAnalyzer, SecurityRisk, SecuritySettings,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyChoice {
    /// Run every action (OpenHands' NeverConfirm).
    Never,
    /// Actions rated HIGH (or unrated) wait for a yes (ConfirmRisky).
    Risky,
    /// Every action but finish/think waits for a yes (AlwaysConfirm).
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnalyzerChoice {
    /// The model's own risk label, with the deterministic rails under it.
    Llm,
    /// The rails only (fetch-and-execute, catastrophic deletes, raw disk, credential writes).
    Rails,
    /// No analyser: actions are unrated.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnConfirmation {
    /// The action is not run; the model reads the rejection and goes on.
    Reject,
    /// The run stops with status confirmation_required.
    Fail,
}

#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// Which actions need a person's yes; in CI nobody gives one, see --on-confirmation.
    #[arg(long, value_enum, default_value_t = PolicyChoice::Never, env = "SANDCRAB_CONFIRMATION_POLICY")]
    pub confirmation_policy: PolicyChoice,

    /// What rates actions [default: llm, or none with --confirmation-policy never]
    #[arg(long, value_enum, env = "SANDCRAB_SECURITY_ANALYZER")]
    pub security_analyzer: Option<AnalyzerChoice>,

    /// What a CI run does with an action that needs a yes.
    #[arg(long, value_enum, default_value_t = OnConfirmation::Reject, env = "SANDCRAB_ON_CONFIRMATION")]
    pub on_confirmation: OnConfirmation,
}

impl SecurityArgs {
    /// The agent's settings and the headless answer.
    pub fn resolve(&self) -> (SecuritySettings, Headless) {
        let policy = match self.confirmation_policy {
            PolicyChoice::Never => ConfirmationPolicy::NeverConfirm,
            PolicyChoice::Risky => ConfirmationPolicy::ConfirmRisky {
                threshold: SecurityRisk::High,
                confirm_unknown: true,
            },
            PolicyChoice::Always => ConfirmationPolicy::AlwaysConfirm,
        };
        let analyzer = match self.security_analyzer {
            Some(choice) => choice,
            None if policy == ConfirmationPolicy::NeverConfirm => AnalyzerChoice::None,
            None => AnalyzerChoice::Llm,
        };
        let analyzer = match analyzer {
            AnalyzerChoice::Llm => Some(SecurityAnalyzer::LLMSecurityAnalyzer {}),
            AnalyzerChoice::Rails => Some(SecurityAnalyzer::PolicyRailSecurityAnalyzer {}),
            AnalyzerChoice::None => None,
        };
        let headless = match self.on_confirmation {
            OnConfirmation::Reject => Headless::Reject,
            OnConfirmation::Fail => Headless::Fail,
        };
        (SecuritySettings { policy, analyzer }, headless)
    }
}
