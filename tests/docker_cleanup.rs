//! The process-wide container and network registry: `remove_all_blocking` (what a signal handler or panic
//! hook calls) removes every live container of this process. Its own test binary, since it
//! removes everything this process registered.

mod common;

use common::docker::{busybox_image, container_exists, engine_or_skip, network_exists, options};
use sandcrab::workspace::docker::cleanup;
use sandcrab::workspace::DockerWorkspace;

#[tokio::test(flavor = "multi_thread")]
async fn remove_all_blocking_removes_every_live_container() {
    if !engine_or_skip() {
        return;
    }
    let first = DockerWorkspace::start(options(busybox_image()), None)
        .await
        .unwrap();
    let second = DockerWorkspace::start(options(busybox_image()), None)
        .await
        .unwrap();
    let ids = [first.container_id(), second.container_id()].map(str::to_string);
    let nets = [&first, &second].map(|w| w.network_id().unwrap().to_string());
    assert_eq!(cleanup::registered().len(), 2);
    assert_eq!(cleanup::registered_networks().len(), 2);
    cleanup::remove_all_blocking();
    assert!(cleanup::registered().is_empty());
    assert!(cleanup::registered_networks().is_empty());
    for id in &ids {
        assert!(!container_exists(id), "{id} survived remove_all_blocking");
    }
    for id in &nets {
        assert!(
            !network_exists(id),
            "network {id} survived remove_all_blocking"
        );
    }
    drop((first, second)); // nothing left to remove; must not fail
}
