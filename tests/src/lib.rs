//! Paddock's hostile-agent test suite lives in `tests/`: the red-team binary runs as the agent
//! inside the real sandbox and every escape it tries must be refused.

#![forbid(unsafe_code)]
