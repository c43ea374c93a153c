//! Carries out a [`FaultPlan`] against a [`SimCluster`], writing each fault
//! into the history as `nemesis` events. Windowed faults are written as a
//! pair: `f` = `"<kind>-start"` and `"<kind>-stop"`, with the same value, so
//! reports can shade the interval.

use std::time::Duration;

use serde_json::json;
use sim::cluster::SimCluster;
use sim::disk::DiskFaultConfig;
use sim::nemesis::{Fault, FaultPlan};

use crate::history::Recorder;

/// Runs every fault of `plan` at its time, then returns once the last one
/// has been undone.
pub async fn run_plan(cluster: &SimCluster, plan: &FaultPlan, history: &Recorder) {
    let start = tokio::time::Instant::now();
    for scheduled in &plan.faults {
        tokio::time::sleep_until(start + Duration::from_millis(scheduled.at_ms)).await;
        apply(cluster, &scheduled.fault, history).await;
    }
}

async fn apply(cluster: &SimCluster, fault: &Fault, history: &Recorder) {
    let sleep = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    match fault {
        Fault::Crash { node, down_ms } => {
            history.nemesis("crash-start", json!(node));
            cluster.crash(node);
            sleep(*down_ms).await;
            cluster.restart(node);
            history.nemesis("crash-stop", json!(node));
        }
        Fault::Pause { node, pause_ms } => {
            history.nemesis("pause-start", json!(node));
            cluster.pause(node);
            sleep(*pause_ms).await;
            cluster.resume(node);
            history.nemesis("pause-stop", json!(node));
        }
        Fault::CutLink { client, node, cut_ms } => {
            let value = json!([client, node]);
            history.nemesis("partition-start", value.clone());
            cluster.cut(client, node);
            sleep(*cut_ms).await;
            cluster.heal(client, node);
            history.nemesis("partition-stop", value);
        }
        Fault::PowerLoss { nodes, down_ms } => {
            history.nemesis("power-loss-start", json!(nodes));
            for node in nodes {
                cluster.crash(node);
            }
            sleep(*down_ms).await;
            for node in nodes {
                cluster.restart(node);
            }
            history.nemesis("power-loss-stop", json!(nodes));
        }
        Fault::Isolate { node, isolate_ms } => {
            history.nemesis("isolate-start", json!(node));
            cluster.isolate(node);
            sleep(*isolate_ms).await;
            cluster.rejoin(node);
            history.nemesis("isolate-stop", json!(node));
        }
        Fault::ClockSkew { node, skew_ms } => {
            history.nemesis("clock-skew", json!({"node": node, "skew_ms": skew_ms}));
            if let Some((_, clock)) = cluster.server_disk_clock(node) {
                clock.set_skew_ms(*skew_ms);
            }
        }
        Fault::DiskFull { node, window_ms } => {
            let Some((disk, _)) = cluster.server_disk_clock(node) else {
                return;
            };
            history.nemesis("disk-full-start", json!(node));
            let before = disk.faults();
            disk.set_capacity(Some(disk.stats().used_bytes));
            sleep(*window_ms).await;
            disk.set_capacity(before.capacity_bytes);
            history.nemesis("disk-full-stop", json!(node));
        }
        Fault::ReadCorruption {
            node,
            corruption_probability_pct,
            window_ms,
        } => {
            let value = json!({"node": node, "corruption_probability_pct": corruption_probability_pct});
            let probability = f64::from(*corruption_probability_pct) / 100.0;
            disk_fault_window(cluster, history, node, "read-corruption", value, *window_ms, |before| DiskFaultConfig {
                read_corruption_probability: probability,
                ..before.clone()
            })
            .await;
        }
        Fault::DiskErrors {
            node,
            error_probability_pct,
            window_ms,
        } => {
            let value = json!({"node": node, "error_probability_pct": error_probability_pct});
            let probability = f64::from(*error_probability_pct) / 100.0;
            disk_fault_window(cluster, history, node, "disk-errors", value, *window_ms, |before| DiskFaultConfig {
                write_eio_probability: probability,
                sync_eio_probability: probability,
                ..before.clone()
            })
            .await;
        }
    }
}

/// Gives `node`'s disk the fault settings `change` makes from its current
/// ones for `window_ms`, then puts the old settings back, recording
/// `<kind>-start` and `<kind>-stop`.
async fn disk_fault_window(
    cluster: &SimCluster,
    history: &Recorder,
    node: &str,
    kind: &str,
    value: serde_json::Value,
    window_ms: u64,
    change: impl FnOnce(&DiskFaultConfig) -> DiskFaultConfig,
) {
    let Some((disk, _)) = cluster.server_disk_clock(node) else {
        return;
    };
    history.nemesis(&format!("{kind}-start"), value.clone());
    let before = disk.faults();
    disk.set_faults(change(&before));
    tokio::time::sleep(Duration::from_millis(window_ms)).await;
    disk.set_faults(before);
    history.nemesis(&format!("{kind}-stop"), value);
}
