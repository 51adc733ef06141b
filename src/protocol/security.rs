//! OpenHands' `SecurityRisk`: the label the model (and the analysers) put on each action.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// OpenHands' `SecurityRisk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SecurityRisk {
    #[default]
    Unknown,
    Low,
    Medium,
    High,
}

impl SecurityRisk {
    pub fn parse(value: &str) -> Option<Self> {
        serde_json::from_value(json!(value)).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }

    pub(crate) fn rank(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
        }
    }

    /// Max-severity fusion (an ensemble's rule): the highest known risk, UNKNOWN only when
    /// nothing is known.
    pub fn fuse(self, other: Self) -> Self {
        if self.rank() >= other.rank() {
            self
        } else {
            other
        }
    }
}
