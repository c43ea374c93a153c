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
            let Some((disk, _)) = cluster.server_disk_clock(node) else {
                return;
            };
            history.nemesis("read-corruption-start", value.clone());
            let before = disk.faults();
            disk.set_faults(DiskFaultConfig {
                read_corruption_probability: f64::from(*corruption_probability_pct) / 100.0,
                ..before.clone()
            });
            sleep(*window_ms).await;
            disk.set_faults(before);
            history.nemesis("read-corruption-stop", value);
        }
        Fault::DiskErrors {
            node,
            error_probability_pct,
            window_ms,
        } => {
            let value = json!({"node": node, "error_probability_pct": error_probability_pct});
            let Some((disk, _)) = cluster.server_disk_clock(node) else {
                return;
            };
            history.nemesis("disk-errors-start", value.clone());
            let before = disk.faults();
            let probability = f64::from(*error_probability_pct) / 100.0;
            disk.set_faults(DiskFaultConfig {
                write_eio_probability: probability,
                sync_eio_probability: probability,
                ..before.clone()
            });
            sleep(*window_ms).await;
            disk.set_faults(before);
            history.nemesis("disk-errors-stop", value);
        }
    }
}
