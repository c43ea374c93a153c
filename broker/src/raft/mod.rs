//! Sans-IO Raft core (in progress).
